/**
 * CMS SignedData (RFC 5652 §5) as the online application uses it: an application signed with the
 * signing key of the My Number card (個人番号カード), whose SIGN command takes a DER DigestInfo and pads
 * it itself (JPKI-FACTS §1). docs/application-format.md describes the profile.
 *
 * The profile: one SignerInfo, identified by issuerAndSerialNumber; SHA-256; RSASSA-PKCS1-v1_5; the
 * content attached (encapsulated); signed attributes contentType, messageDigest and signingTime.
 */
import { constants, createHash, type KeyObject, privateEncrypt, verify } from "node:crypto";
import { JpkiError } from "../errors.js";
import { OID_SHA256_WITH_RSA } from "./algorithms.js";
import { checkName, type ParsedCertificate, parseCertificate } from "./certificate.js";
import {
  children,
  DerError,
  type DerNode,
  expectTag,
  explicit,
  integer,
  NULL,
  octetString,
  oid,
  type ReadLimits,
  readDer,
  readInteger,
  readOid,
  readTime,
  sequence,
  setOf,
  Tag,
  x509Time,
} from "./der.js";
import {
  OID_AA_CONTENT_TYPE,
  OID_AA_MESSAGE_DIGEST,
  OID_AA_SIGNING_TIME,
  OID_CT_DATA,
  OID_CT_SIGNED_DATA,
  OID_RSA_ENCRYPTION,
  OID_SHA256,
} from "./oids.js";
import { publicKeyFromSpki } from "./public-key.js";

/**
 * Signs a DER DigestInfo (RFC 8017 §9.2 step 2) with RSASSA-PKCS1-v1_5: pads it with type 01 and
 * applies the private key, as the card's SIGN `80 2A 00 80` does. Resolves to the signature.
 */
export type DigestInfoSigner = (digestInfo: Buffer) => Promise<Buffer>;

/** SHA-256 AlgorithmIdentifier with parameters absent: what RFC 5754 §2 says to generate in CMS. */
const SHA256_ALGORITHM = sequence(oid(OID_SHA256));
/** rsaEncryption with NULL parameters as the signatureAlgorithm (RFC 3370 §3.2). */
const RSA_ENCRYPTION_ALGORITHM = sequence(oid(OID_RSA_ENCRYPTION), NULL);

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();

/**
 * DigestInfo ::= SEQUENCE { digestAlgorithm, digest OCTET STRING } for a SHA-256 hash, with the NULL
 * parameters of RFC 8017 §9.2 note 1: `30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20 ‖ H`.
 */
export function sha256DigestInfo(hash: Uint8Array): Buffer {
  if (hash.length !== 32) throw new RangeError(`a SHA-256 hash has 32 bytes, not ${hash.length}`);
  return sequence(sequence(oid(OID_SHA256), NULL), octetString(hash));
}

/**
 * A DigestInfoSigner over a software RSA key, doing exactly what the card does: PKCS#1 v1.5 type 01
 * padding of the DigestInfo as given, then the private-key operation (RFC 8017 §8.2.1 with step 1's
 * encoding done by the caller). For tests and tools: a citizen's key never leaves the card.
 */
export function softwareDigestInfoSigner(privateKey: KeyObject): DigestInfoSigner {
  return async (digestInfo) =>
    privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo);
}

// ---------------------------------------------------------------------------------------------
// Encoder

export interface SignedDataInput {
  /** The application: the eContent octets. */
  readonly content: Buffer;
  /** eContentType (RFC 5652 §5.2), dotted; default id-data. */
  readonly contentType?: string;
  /** The signer's certificate, DER: its issuer and serial identify the signer (RFC 5652 §5.3). */
  readonly signerCertificate: Buffer;
  /** Further certificates to carry (e.g. the signing CA); the signer's is always included. */
  readonly certificates?: readonly Buffer[];
  /** Written as the signingTime attribute (RFC 5652 §11.3), to the second. */
  readonly signingTime: Date;
  /** Signs the DigestInfo of the signed attributes: the card's SIGN, or softwareDigestInfoSigner. */
  readonly sign: DigestInfoSigner;
}

/** Attribute ::= SEQUENCE { attrType, attrValues SET OF AttributeValue } with one value (RFC 5652 §5.3). */
function attribute(type: string, value: Buffer): Buffer {
  return sequence(oid(type), setOf(value));
}

/** The same TLV under another identifier octet (same length, so the same header size). */
function retagged(tlv: Buffer, tag: number): Buffer {
  const out = Buffer.from(tlv);
  out[0] = tag;
  return out;
}

function signerCertificateOf(der: Buffer, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (error) {
    if (error instanceof DerError)
      throw new JpkiError("bad-input", `${what}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * Builds a ContentInfo (RFC 5652 §3) holding a SignedData (§5.1) with the content attached. The
 * `sign` callback receives the DER DigestInfo of the SHA-256 hash of the signed attributes encoded as
 * a SET OF (§5.4: the EXPLICIT SET OF tag, not the [0] IMPLICIT one); its signature is checked against
 * the signer certificate's key before anything is returned, so a card that signed with another key
 * (the authentication key, say) is caught here and not at the RA.
 */
export async function buildSignedData(input: SignedDataInput): Promise<Buffer> {
  const contentType = input.contentType ?? OID_CT_DATA;
  const signer = signerCertificateOf(input.signerCertificate, "signerCertificate");
  const key = rsaPublicKey(signer, (message, cause) => new JpkiError("bad-input", message, { cause }));
  let signingTime: Buffer;
  try {
    // Time ::= UTCTime through 2049, GeneralizedTime from 2050 (RFC 5652 §11.3, as RFC 5280).
    signingTime = x509Time(input.signingTime);
  } catch (error) {
    throw new JpkiError("bad-input", `signingTime: ${(error as Error).message}`, { cause: error });
  }
  // SignedAttributes is a SET OF: DER sorts the encoded attributes (X.690 §11.6), which setOf does.
  const signedAttributes = setOf(
    attribute(OID_AA_CONTENT_TYPE, oid(contentType)),
    attribute(OID_AA_SIGNING_TIME, signingTime),
    attribute(OID_AA_MESSAGE_DIGEST, octetString(sha256(input.content))),
  );
  const signature = await input.sign(sha256DigestInfo(sha256(signedAttributes)));
  if (!rsaSignatureVerifies(key, signedAttributes, signature))
    throw new JpkiError(
      "bad-input",
      "the signature made by `sign` does not verify with the signer certificate's public key (another key signed?)",
    );

  // SignerInfo version 1: the signer is identified by issuerAndSerialNumber (RFC 5652 §5.3).
  const signerInfo = sequence(
    integer(1),
    sequence(signer.issuerDer, integer(signer.serial)),
    SHA256_ALGORITHM,
    retagged(signedAttributes, 0xa0), // signedAttrs [0] IMPLICIT SignedAttributes
    RSA_ENCRYPTION_ALGORITHM,
    octetString(signature),
  );
  const certificates = new Map<string, Buffer>();
  for (const [i, der] of [input.signerCertificate, ...(input.certificates ?? [])].entries()) {
    if (i > 0) signerCertificateOf(der, `certificates[${i - 1}]`);
    certificates.set(der.toString("base64"), der);
  }
  // certificates [0] IMPLICIT CertificateSet, a SET OF: sorted as DER requires (X.690 §11.6).
  const certificateSet = retagged(setOf(...certificates.values()), 0xa0);
  // §5.1: version 1 when the content is id-data and every SignerInfo is version 1, else 3.
  const version = contentType === OID_CT_DATA ? 1 : 3;
  const signedData = sequence(
    integer(version),
    setOf(SHA256_ALGORITHM),
    // EncapsulatedContentInfo: eContent [0] EXPLICIT OCTET STRING, present (attached, §5.2).
    sequence(oid(contentType), explicit(0, octetString(input.content))),
    certificateSet,
    setOf(signerInfo),
  );
  return sequence(oid(OID_CT_SIGNED_DATA), explicit(0, signedData));
}

// ---------------------------------------------------------------------------------------------
// Parser and verifier

/** What is wrong with a SignedData, for callers that answer differently (e.g. the RA's refusal). */
export type SignedDataFault =
  /** Not DER, not a SignedData, or not this profile's shape. */
  | "malformed"
  /** Larger than the limit. */
  | "too-large"
  /** An algorithm, signer identifier or field outside the profile. */
  | "unsupported"
  /** No embedded certificate matches the SignerInfo's issuerAndSerialNumber. */
  | "signer-not-found"
  /** The contentType attribute differs from eContentType (RFC 5652 §11.1). */
  | "content-type-mismatch"
  /** The messageDigest attribute is not the SHA-256 of the content (RFC 5652 §11.2). */
  | "digest-mismatch"
  /** The signature does not verify with the signer certificate's key (RFC 5652 §5.6). */
  | "bad-signature";

/** A SignedData that cannot be read or does not verify; the message names the first fault found. */
export class InvalidSignedDataError extends JpkiError {
  override readonly name = "InvalidSignedDataError";
  constructor(
    readonly fault: SignedDataFault,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("bad-input", `invalid CMS SignedData: ${message}`, options);
  }
}

/**
 * An application is a few kilobytes (two certificates, a SIM attestation, a public key); the deepest
 * legitimate path, ContentInfo > SignedData > certificates > Certificate > tbsCertificate >
 * extensions > Extension, is 9 levels.
 */
export const SIGNED_DATA_LIMITS: Required<ReadLimits> = { maxBytes: 64 * 1024, maxDepth: 16 };

export interface VerifiedSignedData {
  /** The eContent octets. */
  readonly content: Buffer;
  /** eContentType, dotted (equal to the signed contentType attribute). */
  readonly contentType: string;
  /** The certificate whose key verified the signature, DER. */
  readonly signerCertificate: Buffer;
  /** Every embedded certificate, DER, in encoded order (the signer's among them). */
  readonly certificates: readonly Buffer[];
  /** The signed signingTime attribute. */
  readonly signingTime: Date;
  /** The digest algorithm, dotted: always id-sha256 in this profile. */
  readonly digestAlgorithm: string;
  /** The signatureAlgorithm as written: rsaEncryption or sha256WithRSAEncryption, dotted. */
  readonly signatureAlgorithm: string;
}

/**
 * Reads a ContentInfo holding a SignedData (RFC 5652 §3, §5) and verifies its one signature
 * (§5.6): the signer's certificate found among the embedded ones by issuerAndSerialNumber, the
 * messageDigest attribute equal to SHA-256 of the content, the contentType attribute equal to
 * eContentType, the RSASSA-PKCS1-v1_5 signature over the DER SET OF the signed attributes verified
 * with the certificate's public key (Node's crypto).
 *
 * Strict and bounded: DER only (no indefinite lengths, no trailing bytes), at most `limits.maxBytes`
 * (64 KiB by default) and `limits.maxDepth`; exactly one SignerInfo; SHA-256 and RSA only; no CRLs,
 * no unsigned attributes, no other certificate formats.
 *
 * It does NOT check the signer certificate's chain, validity period, key usage, policy or revocation
 * status, nor how fresh signingTime is: the caller (the RA) does, with the certificate returned.
 * Throws InvalidSignedDataError, and nothing else, for any input that does not verify.
 */
export function verifySignedData(der: Buffer, limits: ReadLimits = SIGNED_DATA_LIMITS): VerifiedSignedData {
  const bounds = {
    maxBytes: limits.maxBytes ?? SIGNED_DATA_LIMITS.maxBytes,
    maxDepth: limits.maxDepth ?? SIGNED_DATA_LIMITS.maxDepth,
  };
  if (der.length > bounds.maxBytes)
    throw new InvalidSignedDataError(
      "too-large",
      `${der.length} bytes exceed the limit of ${bounds.maxBytes}`,
    );
  try {
    return readSignedData(der, bounds);
  } catch (error) {
    if (error instanceof DerError)
      throw new InvalidSignedDataError("malformed", error.message, { cause: error });
    throw error;
  }
}

const malformed = (message: string) => new InvalidSignedDataError("malformed", message);
const unsupported = (message: string) => new InvalidSignedDataError("unsupported", message);

const CONTEXT_0 = 0xa0;
const CONTEXT_1 = 0xa1;

function readSignedData(der: Buffer, limits: Required<ReadLimits>): VerifiedSignedData {
  // ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY } (RFC 5652 §3).
  const contentInfo = children(expectTag(readDer(der, limits), Tag.sequence, "ContentInfo"));
  if (contentInfo.length !== 2) throw malformed("ContentInfo must hold contentType and content");
  const outerType = readOid(expectTag(contentInfo[0], Tag.oid, "ContentInfo contentType"));
  if (outerType !== OID_CT_SIGNED_DATA) throw unsupported(`content type ${outerType} is not id-signedData`);
  const wrapper = children(expectTag(contentInfo[1], CONTEXT_0, "ContentInfo content"));
  if (wrapper.length !== 1) throw malformed("content [0] EXPLICIT must hold one SignedData");

  // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, certificates [0] IMPLICIT
  // OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos } (RFC 5652 §5.1).
  const fields = children(expectTag(wrapper[0], Tag.sequence, "SignedData"));
  let i = 0;
  const version = readInteger(expectTag(fields[i++], Tag.integer, "SignedData version"));
  const digestAlgorithms = children(expectTag(fields[i++], Tag.set, "digestAlgorithms"));
  checkSorted(digestAlgorithms, "digestAlgorithms");
  if (digestAlgorithms.length === 0) throw malformed("digestAlgorithms is empty");
  for (const algorithm of digestAlgorithms) readDigestAlgorithm(algorithm, "digestAlgorithms");
  const { contentType, content } = readEncapsulatedContent(fields[i++]);
  let certificateNodes: DerNode[] = [];
  if (fields[i]?.tag === CONTEXT_0) {
    certificateNodes = children(fields[i++]!);
    checkSorted(certificateNodes, "certificates");
  }
  if (fields[i]?.tag === CONTEXT_1)
    throw unsupported("crls are not accepted (revocation is checked by the RA)");
  const signerInfos = children(expectTag(fields[i++], Tag.set, "signerInfos"));
  if (i !== fields.length) throw malformed(`unexpected field ${i + 1} in SignedData`);
  if (signerInfos.length !== 1)
    throw unsupported(`exactly one SignerInfo is accepted, found ${signerInfos.length}`);

  const certificates = certificateNodes.map((node, n) => {
    // CertificateChoices: only `certificate` (a plain SEQUENCE); the tagged alternatives are obsolete
    // or attribute certificates (§10.2.2), which say nothing about the signer here.
    if (node.tag !== Tag.sequence) throw unsupported(`certificate ${n + 1} is not an X.509 certificate`);
    try {
      return parseCertificate(node.encoded);
    } catch (error) {
      if (error instanceof DerError) throw malformed(`certificate ${n + 1}: ${error.message}`);
      throw error;
    }
  });

  const signerInfo = readSignerInfo(signerInfos[0]!);
  // §5.1: version 1 for id-data content with version-1 SignerInfos and plain certificates, else 3.
  const expectedVersion = contentType === OID_CT_DATA ? 1n : 3n;
  if (version !== expectedVersion)
    throw malformed(`SignedData version ${version} where RFC 5652 §5.1 requires ${expectedVersion}`);
  const matches = certificates.filter(
    (cert) =>
      cert.issuerDer.equals(signerInfo.issuer) && BigInt(`0x${cert.serialHex || "0"}`) === signerInfo.serial,
  );
  if (matches.length === 0)
    throw new InvalidSignedDataError(
      "signer-not-found",
      `no embedded certificate has the SignerInfo's issuer and serial number ${signerInfo.serial.toString(16)}`,
    );
  if (matches.length > 1)
    throw new InvalidSignedDataError(
      "signer-not-found",
      "two embedded certificates have the SignerInfo's issuer and serial number",
    );
  const signer = matches[0]!;

  const attributes = signerInfo.attributes;
  if (attributes.contentType !== contentType)
    throw new InvalidSignedDataError(
      "content-type-mismatch",
      `the contentType attribute ${attributes.contentType} differs from eContentType ${contentType}`,
    );
  // §5.4: the message digest is computed over the eContent octets only, without tag and length.
  if (!attributes.messageDigest.equals(sha256(content)))
    throw new InvalidSignedDataError(
      "digest-mismatch",
      "the messageDigest attribute is not the SHA-256 of the content",
    );
  // §5.4: the signature covers the DER of the signed attributes with the EXPLICIT SET OF tag.
  if (
    !rsaSignatureVerifies(
      rsaPublicKey(signer),
      retagged(signerInfo.signedAttributes, Tag.set),
      signerInfo.signature,
    )
  )
    throw new InvalidSignedDataError(
      "bad-signature",
      "the signature does not verify with the signer certificate's public key",
    );
  return {
    content,
    contentType,
    signerCertificate: signer.der,
    certificates: certificates.map((cert) => cert.der),
    signingTime: attributes.signingTime,
    digestAlgorithm: OID_SHA256,
    signatureAlgorithm: signerInfo.signatureAlgorithm,
  };
}

/** A SET OF in DER has its encodings in ascending order (X.690 §11.6). */
function checkSorted(items: readonly DerNode[], what: string): void {
  for (let n = 1; n < items.length; n++)
    if (Buffer.compare(items[n - 1]!.encoded, items[n]!.encoded) > 0)
      throw malformed(`${what}: SET OF elements are not in DER order (X.690 §11.6)`);
}

/** AlgorithmIdentifier parts: the OID and the parameters node, if any. */
function algorithmParts(node: DerNode | undefined, what: string): { id: string; parameters?: DerNode } {
  const parts = children(expectTag(node, Tag.sequence, what));
  if (parts.length < 1 || parts.length > 2) throw malformed(`${what}: malformed AlgorithmIdentifier`);
  const id = readOid(expectTag(parts[0], Tag.oid, `${what} algorithm`));
  return parts[1] ? { id, parameters: parts[1] } : { id };
}

const isNull = (node: DerNode | undefined) => node?.encoded.equals(NULL) === true;

/** id-sha256, parameters absent or NULL (RFC 5754 §2: both MUST be accepted). */
function readDigestAlgorithm(node: DerNode | undefined, what: string): void {
  const { id, parameters } = algorithmParts(node, what);
  if (id !== OID_SHA256) throw unsupported(`${what}: digest algorithm ${id} (only SHA-256 is accepted)`);
  if (parameters && !isNull(parameters))
    throw malformed(`${what}: SHA-256 parameters must be absent or NULL`);
}

/**
 * rsaEncryption with NULL parameters (RFC 3370 §3.2, what OpenSSL and NSS write), or
 * sha256WithRSAEncryption with NULL or absent parameters (RFC 5754 §3.2); both name the same
 * RSASSA-PKCS1-v1_5 signature once the digest algorithm is SHA-256. Anything else is refused.
 */
function readSignatureAlgorithm(node: DerNode | undefined): string {
  const { id, parameters } = algorithmParts(node, "signatureAlgorithm");
  if (id === OID_RSA_ENCRYPTION) {
    if (!isNull(parameters)) throw malformed("signatureAlgorithm: rsaEncryption takes NULL parameters");
  } else if (id === OID_SHA256_WITH_RSA) {
    if (parameters && !isNull(parameters))
      throw malformed("signatureAlgorithm: sha256WithRSAEncryption parameters must be absent or NULL");
  } else {
    throw unsupported(`signature algorithm ${id} (only RSASSA-PKCS1-v1_5 with SHA-256 is accepted)`);
  }
  return id;
}

/** EncapsulatedContentInfo ::= SEQUENCE { eContentType, eContent [0] EXPLICIT OCTET STRING OPTIONAL } (§5.2). */
function readEncapsulatedContent(node: DerNode | undefined): { contentType: string; content: Buffer } {
  const parts = children(expectTag(node, Tag.sequence, "encapContentInfo"));
  const contentType = readOid(expectTag(parts[0], Tag.oid, "eContentType"));
  if (parts.length === 1)
    throw unsupported("the content is detached; applications carry it inside (eContent)");
  if (parts.length !== 2) throw malformed("encapContentInfo: unexpected fields");
  const inner = children(expectTag(parts[1], CONTEXT_0, "eContent"));
  if (inner.length !== 1) throw malformed("eContent [0] EXPLICIT must hold one OCTET STRING");
  // DER: a primitive OCTET STRING (X.690 §10.2); the constructed form 0x24 is refused by the tag check.
  return { contentType, content: expectTag(inner[0], Tag.octetString, "eContent").content };
}

interface SignerInfoFields {
  issuer: Buffer;
  serial: bigint;
  /** signedAttrs as received, under its [0] IMPLICIT tag. */
  signedAttributes: Buffer;
  attributes: { contentType: string; messageDigest: Buffer; signingTime: Date };
  signatureAlgorithm: string;
  signature: Buffer;
}

/**
 * SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT OPTIONAL,
 * signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL } (RFC 5652 §5.3).
 */
function readSignerInfo(node: DerNode): SignerInfoFields {
  const parts = children(expectTag(node, Tag.sequence, "SignerInfo"));
  const version = readInteger(expectTag(parts[0], Tag.integer, "SignerInfo version"));
  if (parts[1]?.tag === 0x80)
    throw unsupported("signers identified by subjectKeyIdentifier are not accepted");
  if (version !== 1n) throw malformed(`SignerInfo version ${version}: issuerAndSerialNumber needs 1 (§5.3)`);
  // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber } (§10.2.4).
  const sid = children(expectTag(parts[1], Tag.sequence, "issuerAndSerialNumber"));
  if (sid.length !== 2) throw malformed("issuerAndSerialNumber must hold issuer and serialNumber");
  const issuer = checkName(sid[0], "issuerAndSerialNumber issuer");
  const serial = readInteger(expectTag(sid[1], Tag.integer, "issuerAndSerialNumber serialNumber"));
  readDigestAlgorithm(parts[2], "SignerInfo digestAlgorithm");
  // §5.3: signedAttrs is optional only for id-data content; this profile needs messageDigest always.
  if (parts[3]?.tag !== CONTEXT_0) throw unsupported("signedAttrs are missing");
  const signedAttributes = parts[3];
  const attributes = readSignedAttributes(signedAttributes);
  const signatureAlgorithm = readSignatureAlgorithm(parts[4]);
  const signature = expectTag(parts[5], Tag.octetString, "signature").content;
  if (parts[6]?.tag === CONTEXT_1)
    throw unsupported("unsignedAttrs are not accepted: nothing unsigned is carried");
  if (parts.length !== 6) throw malformed("SignerInfo: unexpected fields");
  return {
    issuer,
    serial,
    signedAttributes: signedAttributes.encoded,
    attributes,
    signatureAlgorithm,
    signature,
  };
}

/**
 * SignedAttributes ::= SET SIZE (1..MAX) OF Attribute (RFC 5652 §5.3): contentType (§11.1),
 * messageDigest (§11.2) and signingTime (§11.3) each once, with one value; other attributes (OpenSSL
 * adds smimeCapabilities) are covered by the signature and otherwise ignored.
 */
function readSignedAttributes(node: DerNode): SignerInfoFields["attributes"] {
  const list = children(node);
  if (list.length === 0) throw malformed("signedAttrs is empty");
  checkSorted(list, "signedAttrs");
  const values = new Map<string, DerNode>();
  for (const attributeNode of list) {
    const parts = children(expectTag(attributeNode, Tag.sequence, "Attribute"));
    if (parts.length !== 2) throw malformed("Attribute must hold attrType and attrValues");
    const type = readOid(expectTag(parts[0], Tag.oid, "attrType"));
    if (values.has(type)) throw malformed(`signed attribute ${type} appears twice`);
    const attrValues = children(expectTag(parts[1], Tag.set, `attribute ${type} attrValues`));
    if (attrValues.length === 0) throw malformed(`signed attribute ${type} has no value`);
    checkSorted(attrValues, `attribute ${type} attrValues`);
    if (attrValues.length !== 1 && isSingleValued(type))
      throw malformed(`signed attribute ${type} must have exactly one value (§11)`);
    values.set(type, attrValues[0]!);
  }
  const contentTypeNode = values.get(OID_AA_CONTENT_TYPE);
  const digestNode = values.get(OID_AA_MESSAGE_DIGEST);
  const timeNode = values.get(OID_AA_SIGNING_TIME);
  if (!contentTypeNode) throw malformed("the contentType attribute is missing (§5.3)");
  if (!digestNode) throw malformed("the messageDigest attribute is missing (§5.3)");
  if (!timeNode) throw malformed("the signingTime attribute is missing (required by this profile)");
  const messageDigest = expectTag(digestNode, Tag.octetString, "messageDigest").content;
  if (messageDigest.length !== 32)
    throw malformed(`messageDigest of ${messageDigest.length} bytes is not SHA-256`);
  const signingTime = readTime(timeNode);
  // §11.3: dates from 1950 through 2049 MUST be UTCTime.
  const year = signingTime.getUTCFullYear();
  if (timeNode.tag === Tag.generalizedTime && year >= 1950 && year <= 2049)
    throw malformed("signingTime: dates from 1950 through 2049 must be UTCTime (§11.3)");
  return {
    contentType: readOid(expectTag(contentTypeNode, Tag.oid, "contentType attribute")),
    messageDigest,
    signingTime,
  };
}

const isSingleValued = (type: string) =>
  type === OID_AA_CONTENT_TYPE || type === OID_AA_MESSAGE_DIGEST || type === OID_AA_SIGNING_TIME;

/** The certificate's RSA-2048 public key (JPKI's card keys); any other key is refused. */
function rsaPublicKey(
  cert: ParsedCertificate,
  fail: (message: string, cause?: unknown) => Error = (message, cause) =>
    new InvalidSignedDataError("unsupported", message, { cause }),
): KeyObject {
  let key: KeyObject;
  try {
    key = publicKeyFromSpki(cert.spki);
  } catch (cause) {
    throw fail("the signer certificate's public key cannot be read", cause);
  }
  if (key.asymmetricKeyType !== "rsa" || key.asymmetricKeyDetails?.modulusLength !== 2048)
    throw fail(
      `the signer certificate's key is ${key.asymmetricKeyType} (${key.asymmetricKeyDetails?.modulusLength ?? "?"} bits); RSA of 2048 bits is required`,
    );
  // rsaEncryption with NULL parameters only (RFC 3279 §2.3.1): OpenSSL reads an RSA key under other
  // parameters or OIDs as the same key, which would let other certificate bytes pass for this one.
  // An RSA-2048 SPKI is 30 82 01 22, then exactly this AlgorithmIdentifier.
  if (!cert.spki.subarray(4, 4 + RSA_ENCRYPTION_ALGORITHM.length).equals(RSA_ENCRYPTION_ALGORITHM))
    throw fail("the signer certificate's key is not encoded as rsaEncryption with NULL parameters");
  return key;
}

/** RSASSA-PKCS1-v1_5 with SHA-256 over `data` (RFC 8017 §8.2.2), in Node's crypto. */
function rsaSignatureVerifies(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return verify("sha256", data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}
