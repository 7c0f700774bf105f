/**
 * The CA signer: it signs only what the registry hands it, and has no network listener (DESIGN §3,
 * as Boulder's CA takes orders only from its RA). Before signing it checks that the to-be-signed
 * value is well-formed DER naming this CA and this key's algorithm; after signing it verifies the
 * signature with Node's crypto against the CA public key, so a faulty HSM never releases a bad
 * certificate, CRL or OCSP answer.
 */
import { createHash, type KeyObject, verify } from "node:crypto";
import { promisify } from "node:util";
import { JpkiError } from "../errors.js";
import { assembleSigned, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import {
  findExtension,
  type ParsedCertificate,
  type ParsedTbsCertificate,
  parseCertificate,
  parseTbsCertificate,
  verifyCertificateSignature,
} from "../pki/certificate.js";
import { bitString, children, DerError, explicit, readDer, readOid, sequence } from "../pki/der.js";
import {
  OID_CE_EXT_KEY_USAGE,
  OID_EC_PUBLIC_KEY,
  OID_KP_OCSP_SIGNING,
  OID_RSA_ENCRYPTION,
  OID_SHA1,
  OID_SHA256,
} from "../pki/oids.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import type { SigningKey } from "./keystore.js";
import { readResponseData, readTbsCertList } from "./tbs.js";

const verifyInThreadpool = promisify(verify);

/** Runs a reader over untrusted DER, turning its DerError into a bad-input JpkiError. */
function read<T>(what: string, reader: () => T): T {
  try {
    return reader();
  } catch (error) {
    if (error instanceof DerError)
      throw new JpkiError("bad-input", `${what} is malformed: ${error.message}`, { cause: error });
    throw error;
  }
}

function publicKeyOf(spki: Buffer, what: string): KeyObject {
  try {
    return publicKeyFromSpki(spki);
  } catch (error) {
    throw new JpkiError("bad-input", `${what}: unreadable SubjectPublicKeyInfo`, { cause: error });
  }
}

/**
 * The subject key is an RSA or EC SubjectPublicKeyInfo (RFC 5280 §4.1.2.7). A structural check: a
 * full key import (createPublicKey) costs about half an RSA signature, too much on the issuing path.
 */
function checkSubjectPublicKeyInfo(spki: Buffer): void {
  try {
    const [algorithm, key] = children(readDer(spki, { maxBytes: 2048, maxDepth: 3 }));
    const id = readOid(children(algorithm!)[0]!);
    if ((id !== OID_RSA_ENCRYPTION && id !== OID_EC_PUBLIC_KEY) || key?.tag !== 0x03 || key.length < 33)
      throw new DerError(`unexpected key algorithm ${id}`);
  } catch (error) {
    throw new JpkiError(
      "bad-input",
      "the TBSCertificate's subjectPublicKeyInfo is not an RSA or EC public key",
      {
        cause: error,
      },
    );
  }
}

/**
 * Signs `tbs` with `key`, then checks the signature against `publicKey` before anything leaves,
 * unless the key's own code already did (see SigningKey.verifiesItsSignatures).
 */
async function signChecked(
  key: SigningKey,
  publicKey: KeyObject,
  tbs: Buffer,
  what: string,
): Promise<Buffer> {
  const signature = await key.sign(tbs);
  if (key.verifiesItsSignatures && key.algorithm === "rsa-2048") return signature;
  const valid = await verifyInThreadpool("sha256", tbs, { key: publicKey, dsaEncoding: "der" }, signature);
  if (!valid)
    throw new JpkiError(
      "integrity",
      `the signature of ${what} by key "${key.label}" does not verify: the key's device is faulty; nothing was released`,
    );
  return signature;
}

function expectAlgorithm(found: Buffer, key: SigningKey, what: string): Buffer {
  const expected = signatureAlgorithmIdentifier(key.algorithm);
  if (!found.equals(expected))
    throw new JpkiError(
      "bad-input",
      `${what}: its signature AlgorithmIdentifier ${found.toString("hex")} is not the one of the ` +
        `${key.algorithm} key "${key.label}" (${expected.toString("hex")})`,
    );
  return expected;
}

/**
 * A self-signed root (RFC 5280 §6.1: trust anchor): the TBS must name its subject as issuer and carry
 * `key`'s public key. Returns the Certificate DER.
 */
export async function selfSign(key: SigningKey, tbsCertificate: Buffer): Promise<Buffer> {
  const fields = read("TBSCertificate", () => parseTbsCertificate(tbsCertificate));
  const algorithm = expectAlgorithm(fields.signatureAlgorithm, key, "TBSCertificate");
  if (!fields.issuerDer.equals(fields.subjectDer))
    throw new JpkiError("bad-input", "a self-signed TBSCertificate must have issuer equal to subject");
  if (!fields.spki.equals(key.publicKeySpki))
    throw new JpkiError("bad-input", `the TBSCertificate does not carry the public key of "${key.label}"`);
  const publicKey = publicKeyOf(key.publicKeySpki, `key "${key.label}"`);
  const signature = await signChecked(key, publicKey, tbsCertificate, "the self-signed certificate");
  return assembleSigned(tbsCertificate, algorithm, signature);
}

/** A CA certificate and the key it certifies, checked to belong together. */
function caIdentity(key: SigningKey, caCertificate: Buffer, what: string) {
  const certificate = read(what, () => parseCertificate(caCertificate));
  if (!certificate.spki.equals(key.publicKeySpki))
    throw new JpkiError("integrity", `${what} does not certify the public key of "${key.label}"`);
  return { certificate, publicKey: publicKeyOf(key.publicKeySpki, what) };
}

/**
 * Delegated OCSP responder (RFC 6960 §4.2.2.2): a key whose certificate, issued by the CA and
 * carrying id-kp-OCSPSigning, signs the answers about that CA's certificates.
 */
export class OcspSigner {
  private readonly responder: ParsedCertificate;
  private readonly publicKey: KeyObject;
  private readonly responderKeyHash: Buffer;
  private readonly issuerHashes: Map<string, { name: Buffer; key: Buffer }>;

  /**
   * @param key the responder's key
   * @param responderCertificate its certificate (DER), put into every answer's `certs`
   * @param caCertificate the CA it answers for, which must have issued `responderCertificate`
   */
  constructor(
    readonly key: SigningKey,
    private readonly responderCertificate: Buffer,
    caCertificate: Buffer,
  ) {
    const identity = caIdentity(key, responderCertificate, "the OCSP responder certificate");
    this.responder = identity.certificate;
    this.publicKey = identity.publicKey;
    const ca = read("the CA certificate", () => parseCertificate(caCertificate));
    if (!this.responder.issuerDer.equals(ca.subjectDer))
      throw new JpkiError("integrity", "the OCSP responder certificate was not issued by this CA");
    publicKeyOf(ca.spki, "the CA certificate"); // an unreadable CA key is bad input, not a bad signature
    if (!verifyCertificateSignature(this.responder, ca.spki))
      throw new JpkiError(
        "integrity",
        "the OCSP responder certificate's signature does not verify with the CA key",
      );
    if (!hasOcspSigning(this.responder))
      throw new JpkiError(
        "integrity",
        "the OCSP responder certificate lacks id-kp-OCSPSigning (RFC 6960 §4.2.2.2)",
      );
    this.responderKeyHash = sha("sha1", this.responder.subjectPublicKey);
    this.issuerHashes = new Map([
      [OID_SHA1, { name: sha("sha1", ca.subjectDer), key: sha("sha1", ca.subjectPublicKey) }],
      [OID_SHA256, { name: sha("sha256", ca.subjectDer), key: sha("sha256", ca.subjectPublicKey) }],
    ]);
  }

  /**
   * BasicOCSPResponse (RFC 6960 §4.2.1): { tbsResponseData, signatureAlgorithm, signature,
   * certs [0] EXPLICIT SEQUENCE OF Certificate } with the responder certificate in `certs`.
   */
  async signOcsp(tbsResponseData: Buffer): Promise<Buffer> {
    const data = read("ResponseData", () => readResponseData(tbsResponseData));
    if ("byName" in data.responderId) {
      if (!data.responderId.byName.equals(this.responder.subjectDer))
        throw new JpkiError("bad-input", "ResponseData responderID byName is not the responder's subject");
    } else if (!data.responderId.byKey.equals(this.responderKeyHash)) {
      // KeyHash: SHA-1 of the subjectPublicKey BIT STRING value (RFC 6960 §4.2.1).
      throw new JpkiError(
        "bad-input",
        "ResponseData responderID byKey is not the hash of the responder's key",
      );
    }
    for (const certId of data.certIds) {
      const expected = this.issuerHashes.get(certId.hashAlgorithm);
      if (!expected)
        throw new JpkiError(
          "bad-input",
          `CertID hash algorithm ${certId.hashAlgorithm} is neither SHA-1 nor SHA-256`,
        );
      if (!certId.issuerNameHash.equals(expected.name) || !certId.issuerKeyHash.equals(expected.key))
        throw new JpkiError(
          "bad-input",
          `the answer for serial ${certId.serialNumber.toString(16)} names another issuer than this responder's CA`,
        );
    }
    const algorithm = signatureAlgorithmIdentifier(this.key.algorithm);
    const signature = await signChecked(this.key, this.publicKey, tbsResponseData, "the OCSP response");
    return sequence(
      tbsResponseData,
      algorithm,
      bitString(signature),
      explicit(0, sequence(this.responderCertificate)),
    );
  }
}

function sha(algorithm: "sha1" | "sha256", data: Buffer): Buffer {
  return createHash(algorithm).update(data).digest();
}

function hasOcspSigning(certificate: ParsedTbsCertificate): boolean {
  const value = findExtension(certificate, OID_CE_EXT_KEY_USAGE)?.value;
  if (!value) return false;
  const purposes = children(readDer(value, { maxBytes: 4096, maxDepth: 2 }));
  return purposes.some((purpose) => readOid(purpose) === OID_KP_OCSP_SIGNING);
}

export interface CertificateSignerOptions {
  /** The delegated OCSP responder of this CA, when this signer also answers OCSP. */
  ocspResponder?: { key: SigningKey; certificate: Buffer };
}

/**
 * The signer of one CA: `issue` and `signCrl` with the CA key, `signOcsp` with its delegated
 * responder key. It holds no policy; the registry decides what to sign.
 */
export class CertificateSigner {
  readonly caCertificate: Buffer;
  private readonly subject: Buffer;
  private readonly publicKey: KeyObject;
  private readonly algorithm: Buffer;
  private readonly ocsp: OcspSigner | undefined;

  constructor(
    readonly key: SigningKey,
    caCertificate: Buffer,
    options: CertificateSignerOptions = {},
  ) {
    const { certificate, publicKey } = caIdentity(key, caCertificate, "the CA certificate");
    this.caCertificate = caCertificate;
    this.subject = certificate.subjectDer;
    this.publicKey = publicKey;
    this.algorithm = signatureAlgorithmIdentifier(key.algorithm);
    this.ocsp = options.ocspResponder
      ? new OcspSigner(options.ocspResponder.key, options.ocspResponder.certificate, caCertificate)
      : undefined;
  }

  /** Signs a TBSCertificate (RFC 5280 §4.1.2) issued by this CA; returns the Certificate DER. */
  async issue(tbsCertificate: Buffer): Promise<Buffer> {
    this.checkTbsCertificate(tbsCertificate);
    const signature = await signChecked(this.key, this.publicKey, tbsCertificate, "the certificate");
    return assembleSigned(tbsCertificate, this.algorithm, signature);
  }

  /**
   * What `issue` checks before signing, in a function of its own so the parsed fields are garbage
   * before the signature is awaited: a registry batch keeps hundreds of signatures in flight.
   */
  private checkTbsCertificate(tbsCertificate: Buffer): void {
    const fields = read("TBSCertificate", () => parseTbsCertificate(tbsCertificate));
    expectAlgorithm(fields.signatureAlgorithm, this.key, "TBSCertificate");
    if (!fields.issuerDer.equals(this.subject))
      throw new JpkiError("bad-input", "the TBSCertificate's issuer is not this CA's subject");
    checkSubjectPublicKeyInfo(fields.spki);
  }

  /** Signs a TBSCertList (RFC 5280 §5.1.2) of this CA; returns the CertificateList DER. */
  async signCrl(tbsCertList: Buffer): Promise<Buffer> {
    const fields = read("TBSCertList", () => readTbsCertList(tbsCertList));
    expectAlgorithm(fields.signature, this.key, "TBSCertList");
    if (!fields.issuer.equals(this.subject))
      throw new JpkiError("bad-input", "the TBSCertList's issuer is not this CA's subject");
    const signature = await signChecked(this.key, this.publicKey, tbsCertList, "the CRL");
    return assembleSigned(tbsCertList, this.algorithm, signature);
  }

  /** Signs OCSP ResponseData with the delegated responder key; returns BasicOCSPResponse DER. */
  signOcsp(tbsResponseData: Buffer): Promise<Buffer> {
    if (!this.ocsp)
      return Promise.reject(new JpkiError("internal", "this signer has no OCSP responder key configured"));
    return this.ocsp.signOcsp(tbsResponseData);
  }
}
