/**
 * The client half of OCSP (RFC 6960) for a relying party: the request it sends and a strict, bounded
 * reader of the answer. src/pki/ocsp.ts holds the responder's half (request reader, answer writer);
 * this file reads what that writes, and what any RFC 6960 responder writes.
 */
import { verify } from "node:crypto";
import { OID_ECDSA_WITH_SHA256, OID_SHA256_WITH_RSA } from "../pki/algorithms.js";
import {
  type ParsedCertificate,
  parseCertificate,
  readAlgorithmIdentifier,
  readExtensions,
} from "../pki/certificate.js";
import { CrlReason, type CrlReasonCode } from "../pki/crl.js";
import {
  children,
  DerError,
  DerNode,
  expectTag,
  explicit,
  octetString,
  readDer,
  readInteger,
  readOid,
  readTime,
  sequence,
  Tag,
} from "../pki/der.js";
import { extension } from "../pki/extensions.js";
import { OID_PKIX_OCSP_BASIC, OID_PKIX_OCSP_NONCE, OID_SHA1, OID_SHA256 } from "../pki/oids.js";
import { publicKeyFromSpki } from "../pki/public-key.js";

/** An answer is a few kilobytes (one SingleResponse and the responder certificate). */
export const OCSP_RESPONSE_LIMITS = { maxBytes: 64 * 1024, maxDepth: 20 };

/**
 * OCSPRequest (RFC 6960 §4.1.1) for one CertID (the DER of ocspCertId), unsigned, with the nonce
 * extension of RFC 8954 §2.1 when given: `SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF
 * Request { reqCert }, requestExtensions [2] EXPLICIT Extensions OPTIONAL } }`. Version v1 is the
 * DEFAULT and so left out (X.690 §11.5).
 */
export function encodeOcspRequest(certId: Buffer, nonce?: Buffer): Buffer {
  const tbs = [sequence(sequence(certId))];
  if (nonce) tbs.push(explicit(2, sequence(extension(OID_PKIX_OCSP_NONCE, false, octetString(nonce)))));
  return sequence(sequence(...tbs));
}

/** CertStatus (RFC 6960 §4.2.1) as read. */
export type ReadCertStatus =
  | { readonly status: "good" }
  | { readonly status: "revoked"; readonly revocationTime: Date; readonly reason?: CrlReasonCode }
  | { readonly status: "unknown" };

export type ReadSingleResponse = ReadCertStatus & {
  readonly hashAlgorithm: string;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  readonly serial: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
};

/** ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash } (RFC 6960 §4.2.1). */
export type ResponderId = { readonly byName: Buffer } | { readonly byKey: Buffer };

export interface ReadBasicOcspResponse {
  /** ResponseData DER: what the responder signed. */
  readonly tbsResponseData: Buffer;
  readonly signatureAlgorithmOid: string;
  readonly signature: Buffer;
  /** Certificates sent to help verify the signature (the delegated responder's). */
  readonly certs: readonly ParsedCertificate[];
  readonly responderId: ResponderId;
  readonly producedAt: Date;
  readonly responses: readonly ReadSingleResponse[];
  readonly nonce?: Buffer;
}

/** An OCSPResponse: its status, and the BasicOCSPResponse when successful. */
export type ReadOcspResponse =
  | { readonly responseStatus: 0; readonly basic: ReadBasicOcspResponse }
  | { readonly responseStatus: number; readonly basic?: undefined };

/** OCSPResponseStatus names (RFC 6960 §4.2.1), for messages. */
export const OCSP_RESPONSE_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "successful",
  1: "malformedRequest",
  2: "internalError",
  3: "tryLater",
  5: "sigRequired",
  6: "unauthorized",
};

const REASON_NAMES = new Map<number, string>(Object.entries(CrlReason).map(([name, code]) => [code, name]));

/** The CRLReason name (RFC 5280 §5.3.1) of a code, for messages. */
export function crlReasonName(code: number | undefined): string {
  return code === undefined ? "unspecified" : (REASON_NAMES.get(code) ?? `reason ${code}`);
}

function readEnumerated(node: DerNode | undefined, what: string): number {
  const value = expectTag(node, Tag.enumerated, what);
  // ENUMERATED is encoded as an INTEGER (X.690 §8.4); read through the same minimal-encoding check.
  const asInteger = readInteger(
    new DerNode(Tag.integer, value.input, value.start, value.contentStart, value.end),
  );
  if (asInteger < 0n || asInteger > 255n) throw new DerError(`${what}: ${asInteger} is out of range`);
  return Number(asInteger);
}

/**
 * Reads an OCSPResponse (RFC 6960 §4.2.1): `SEQUENCE { responseStatus ENUMERATED, responseBytes [0]
 * EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } OPTIONAL }`. A successful answer must
 * carry an id-pkix-ocsp-basic BasicOCSPResponse. Throws DerError for anything else.
 */
export function parseOcspResponse(der: Buffer): ReadOcspResponse {
  const top = expectTag(readDer(der, OCSP_RESPONSE_LIMITS), Tag.sequence, "OCSPResponse");
  const [statusNode, bytesNode, ...extra] = children(top);
  if (extra.length) throw new DerError("OCSPResponse: unexpected fields");
  const responseStatus = readEnumerated(statusNode, "responseStatus");
  if (responseStatus !== 0) {
    if (bytesNode)
      throw new DerError("an unsuccessful OCSPResponse carries no responseBytes (RFC 6960 §2.3)");
    return { responseStatus };
  }
  const wrapped = children(expectTag(bytesNode, 0xa0, "responseBytes"));
  if (wrapped.length !== 1) throw new DerError("responseBytes: [0] EXPLICIT must hold one SEQUENCE");
  const [type, response, ...rest] = children(expectTag(wrapped[0], Tag.sequence, "ResponseBytes"));
  if (rest.length) throw new DerError("ResponseBytes: unexpected fields");
  if (readOid(expectTag(type, Tag.oid, "responseType")) !== OID_PKIX_OCSP_BASIC)
    throw new DerError("responseType is not id-pkix-ocsp-basic");
  return { responseStatus: 0, basic: readBasic(expectTag(response, Tag.octetString, "response").content) };
}

/**
 * BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm, signature BIT
 * STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }.
 */
function readBasic(der: Buffer): ReadBasicOcspResponse {
  const top = expectTag(readDer(der, OCSP_RESPONSE_LIMITS), Tag.sequence, "BasicOCSPResponse");
  const [tbs, algorithm, signatureNode, certsNode, ...extra] = children(top);
  if (extra.length) throw new DerError("BasicOCSPResponse: unexpected fields");
  const signatureAlgorithmOid = readAlgorithmIdentifier(algorithm, "signatureAlgorithm");
  const bits = expectTag(signatureNode, Tag.bitString, "signature").content;
  if (bits.length < 2 || bits[0] !== 0) throw new DerError("signature: expected whole bytes");
  let certs: ParsedCertificate[] = [];
  if (certsNode) {
    const inner = children(expectTag(certsNode, 0xa0, "certs"));
    if (inner.length !== 1) throw new DerError("certs: [0] EXPLICIT must hold one SEQUENCE OF");
    certs = children(expectTag(inner[0], Tag.sequence, "certs")).map((c) =>
      parseCertificate(Buffer.from(c.encoded)),
    );
  }
  const data = readResponseData(expectTag(tbs, Tag.sequence, "tbsResponseData"));
  return {
    ...data,
    tbsResponseData: Buffer.from(tbs!.encoded),
    signatureAlgorithmOid,
    signature: Buffer.from(bits.subarray(1)),
    certs,
  };
}

/**
 * ResponseData ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, responderID ResponderID,
 * producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT
 * Extensions OPTIONAL }.
 */
function readResponseData(
  node: DerNode,
): Pick<ReadBasicOcspResponse, "responderId" | "producedAt" | "responses" | "nonce"> {
  const items = children(node);
  let i = 0;
  if (items[i]?.tag === 0xa0) {
    const version = children(items[i++]!);
    if (version.length !== 1 || readInteger(expectTag(version[0], Tag.integer, "version")) !== 0n)
      throw new DerError("ResponseData version: only v1 (0) exists");
  }
  const responder = items[i++];
  let responderId: ResponderId;
  if (responder?.tag === 0xa1) {
    const [name] = children(responder);
    responderId = { byName: Buffer.from(expectTag(name, Tag.sequence, "responderID byName").encoded) };
  } else if (responder?.tag === 0xa2) {
    const [hash] = children(responder);
    const keyHash = expectTag(hash, Tag.octetString, "responderID byKey").content;
    if (keyHash.length !== 20) throw new DerError("responderID byKey: KeyHash is a SHA-1 hash (20 bytes)");
    responderId = { byKey: Buffer.from(keyHash) };
  } else throw new DerError("responderID: expected byName [1] or byKey [2]");
  const producedAt = readTime(expectTag(items[i++], Tag.generalizedTime, "producedAt"));
  const responses = children(expectTag(items[i++], Tag.sequence, "responses")).map(readSingleResponse);
  let nonce: Buffer | undefined;
  if (items[i]?.tag === 0xa1) {
    for (const ext of readExtensions(items[i++]!, "responseExtensions")) {
      if (ext.oid === OID_PKIX_OCSP_NONCE)
        nonce = Buffer.from(
          expectTag(readDer(ext.value, { maxBytes: 128, maxDepth: 0 }), Tag.octetString, "nonce").content,
        );
      else if (ext.critical) throw new DerError(`unknown critical response extension ${ext.oid}`);
    }
  }
  if (i !== items.length) throw new DerError("ResponseData: unexpected fields");
  return nonce ? { responderId, producedAt, responses, nonce } : { responderId, producedAt, responses };
}

/**
 * SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
 * nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }
 * with CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2]
 * IMPLICIT UnknownInfo }.
 */
function readSingleResponse(node: DerNode): ReadSingleResponse {
  const items = children(expectTag(node, Tag.sequence, "SingleResponse"));
  const [certId, statusNode, thisUpdateNode] = items;
  const idParts = children(expectTag(certId, Tag.sequence, "CertID"));
  if (idParts.length !== 4) throw new DerError("CertID must have four fields");
  const [algorithm] = children(expectTag(idParts[0], Tag.sequence, "CertID hashAlgorithm"));
  const hashAlgorithm = readOid(expectTag(algorithm, Tag.oid, "CertID hashAlgorithm"));
  const issuerNameHash = Buffer.from(expectTag(idParts[1], Tag.octetString, "issuerNameHash").content);
  const issuerKeyHash = Buffer.from(expectTag(idParts[2], Tag.octetString, "issuerKeyHash").content);
  const serialNode = expectTag(idParts[3], Tag.integer, "serialNumber");
  if (readInteger(serialNode) <= 0n) throw new DerError("serialNumber must be positive");
  const serial = Buffer.from(
    serialNode.content[0] === 0 ? serialNode.content.subarray(1) : serialNode.content,
  );

  let status: ReadCertStatus;
  if (statusNode?.tag === 0x80 && statusNode.length === 0) status = { status: "good" };
  else if (statusNode?.tag === 0x82 && statusNode.length === 0) status = { status: "unknown" };
  else if (statusNode?.tag === 0xa1) {
    // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
    const [time, reasonNode, ...rest] = children(statusNode);
    if (rest.length) throw new DerError("RevokedInfo: unexpected fields");
    const revocationTime = readTime(expectTag(time, Tag.generalizedTime, "revocationTime"));
    if (reasonNode) {
      const inner = children(expectTag(reasonNode, 0xa0, "revocationReason"));
      if (inner.length !== 1) throw new DerError("revocationReason: [0] EXPLICIT must hold one CRLReason");
      const reason = readEnumerated(inner[0], "revocationReason") as CrlReasonCode;
      status = { status: "revoked", revocationTime, reason };
    } else status = { status: "revoked", revocationTime };
  } else throw new DerError("certStatus: expected good [0], revoked [1] or unknown [2]");

  const thisUpdate = readTime(expectTag(thisUpdateNode, Tag.generalizedTime, "thisUpdate"));
  let i = 3;
  let nextUpdate: Date | undefined;
  if (items[i]?.tag === 0xa0) {
    const inner = children(items[i++]!);
    if (inner.length !== 1) throw new DerError("nextUpdate: [0] EXPLICIT must hold one GeneralizedTime");
    nextUpdate = readTime(expectTag(inner[0], Tag.generalizedTime, "nextUpdate"));
  }
  if (items[i]?.tag === 0xa1) {
    for (const ext of readExtensions(items[i++]!, "singleExtensions"))
      if (ext.critical) throw new DerError(`unknown critical single extension ${ext.oid}`);
  }
  if (i !== items.length) throw new DerError("SingleResponse: unexpected fields");
  const fields = { hashAlgorithm, issuerNameHash, issuerKeyHash, serial, thisUpdate };
  return nextUpdate ? { ...status, ...fields, nextUpdate } : { ...status, ...fields };
}

/** The hash a CertID's hashAlgorithm names, among those the responder side accepts. */
export function certIdHashName(hashAlgorithm: string): "sha1" | "sha256" | undefined {
  return hashAlgorithm === OID_SHA1 ? "sha1" : hashAlgorithm === OID_SHA256 ? "sha256" : undefined;
}

/**
 * Whether `signature` over `data` verifies with the SubjectPublicKeyInfo `spki` under one of the
 * project's two signature algorithms (sha256WithRSAEncryption, ecdsa-with-SHA256).
 */
export function verifyWithSpki(algorithmOid: string, data: Buffer, signature: Buffer, spki: Buffer): boolean {
  const keyType =
    algorithmOid === OID_SHA256_WITH_RSA ? "rsa" : algorithmOid === OID_ECDSA_WITH_SHA256 ? "ec" : undefined;
  if (!keyType) return false;
  try {
    const key = publicKeyFromSpki(spki);
    if (key.asymmetricKeyType !== keyType) return false;
    return verify("sha256", data, { key, dsaEncoding: "der" }, signature);
  } catch {
    return false;
  }
}
