/**
 * OCSP codec (RFC 6960) in the RFC 5019 profile, with the nonce of RFC 8954: a strict, bounded
 * reader of requests (their sender is anyone on the network), and writers of the ResponseData the
 * CA signer's `signOcsp` signs and of the OCSPResponse envelope around its answer.
 *
 * Requests are read as DER only. One liberty is taken: an explicit `version` v1, which DER leaves out
 * (a DEFAULT value), is accepted, since refusing it would only turn away a client for a redundancy.
 */
import { createHash } from "node:crypto";
import { JpkiError } from "../errors.js";
import { parseCertificate, readAlgorithmIdentifier, readExtensions } from "./certificate.js";
import { CrlReason, type CrlReasonCode } from "./crl.js";
import {
  children,
  DerError,
  type DerNode,
  enumerated,
  expectTag,
  explicit,
  generalizedTime,
  implicit,
  integer,
  NULL,
  octetString,
  oid,
  type ReadLimits,
  readDer,
  readInteger,
  readOid,
  readTlvAt,
  sequence,
  Tag,
} from "./der.js";
import { extension, keyIdentifier } from "./extensions.js";
import { OID_PKIX_OCSP_BASIC, OID_PKIX_OCSP_NONCE, OID_SHA1, OID_SHA256 } from "./oids.js";

/** OCSPResponseStatus (RFC 6960 §4.2.1); 4 is not used. */
export const OcspResponseStatus = {
  successful: 0,
  /** Illegal confirmation request. */
  malformedRequest: 1,
  /** Internal error in issuer. */
  internalError: 2,
  /** Try again later (e.g. the signer is unavailable). */
  tryLater: 3,
  /** Must sign the request. */
  sigRequired: 5,
  /** Request unauthorized: RFC 5019 §2.2.3's answer for a certificate this responder does not serve. */
  unauthorized: 6,
} as const;

export type OcspErrorStatus = Exclude<(typeof OcspResponseStatus)[keyof typeof OcspResponseStatus], 0>;

/** A request that cannot be read: answered with malformedRequest (RFC 6960 §2.3). */
export class MalformedOcspRequestError extends JpkiError {
  override readonly name = "MalformedOcspRequestError";
  readonly ocspStatus = OcspResponseStatus.malformedRequest;
  constructor(message: string, options?: { cause?: unknown }) {
    super("bad-input", `malformed OCSP request: ${message}`, options);
  }
}

/**
 * Bounds on a request, checked before anything is decoded. A request for one certificate is about
 * 80 bytes; a signed one with its certificates a few kilobytes. The deepest legitimate path is
 * optionalSignature > certs > Certificate > tbsCertificate > extensions > Extension (10 levels).
 */
export const OCSP_REQUEST_LIMITS: Required<ReadLimits> = { maxBytes: 64 * 1024, maxDepth: 16 };

/** RFC 5019 §2.1.1 lets clients ask for one certificate; we answer up to this many per request. */
export const MAX_CERT_IDS_PER_REQUEST = 64;

/** Nonce ::= OCTET STRING (SIZE(1..32)) (RFC 8954 §2.1). */
export const MAX_NONCE_BYTES = 32;

/** Hash lengths of the CertID algorithms we know; other algorithms are read but bounded at 64. */
const HASH_LENGTHS: ReadonlyMap<string, number> = new Map([
  [OID_SHA1, 20],
  [OID_SHA256, 32],
]);

/** CertID (RFC 6960 §4.1.1): the certificate a client asks about, as the client identified it. */
export interface OcspCertId {
  /** The CertID exactly as received: the SingleResponse echoes these bytes (RFC 6960 §4.2.1). */
  readonly der: Buffer;
  /** OID of hashAlgorithm: OID_SHA1 (what RFC 5019 §2.1.1 makes clients use), OID_SHA256, or other. */
  readonly hashAlgorithm: string;
  /** Hash of the issuer's Name DER. */
  readonly issuerNameHash: Buffer;
  /** Hash of the issuer's subjectPublicKey BIT STRING value. */
  readonly issuerKeyHash: Buffer;
  /** The serial as a positive magnitude without sign byte (serial.ts form). */
  readonly serial: Buffer;
  /** Lower-case hex of `serial` (serial.serialToHex form, as the registry stores it). */
  readonly serialHex: string;
}

/** What a request asks. Buffers are views into the request's DER, not copies. */
export interface OcspRequest {
  readonly certIds: readonly OcspCertId[];
  /** The Nonce's octets (inside its OCTET STRING), to echo (RFC 8954 §2.1); absent when not asked. */
  readonly nonce?: Buffer;
  /** Whether optionalSignature is present. Signatures are not required here, so not checked. */
  readonly signed: boolean;
}

// ---------------------------------------------------------------------------------------------
// Requests

const CONTEXT_0 = 0xa0;
const CONTEXT_1 = 0xa1;
const CONTEXT_2 = 0xa2;

/**
 * Reads an OCSPRequest (RFC 6960 §4.1.1). Throws MalformedOcspRequestError, and nothing else, for
 * any input that is not a well-formed DER request within OCSP_REQUEST_LIMITS, asks about no
 * certificate or more than MAX_CERT_IDS_PER_REQUEST, carries a nonce outside 1..32 octets (RFC 8954
 * §2.1: MUST be refused as malformed above 32) or an unknown critical extension (RFC 6960 §4.4).
 */
export function parseOcspRequest(der: Buffer): OcspRequest {
  try {
    return readOcspRequest(der);
  } catch (error) {
    if (error instanceof DerError) throw new MalformedOcspRequestError(error.message, { cause: error });
    throw error;
  }
}

/**
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT
 *   GeneralName OPTIONAL, requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 */
function readOcspRequest(der: Buffer): OcspRequest {
  const top = expectTag(readDer(der, OCSP_REQUEST_LIMITS), Tag.sequence, "OCSPRequest");
  const [tbsRequest, optionalSignature, ...extra] = children(top);
  if (extra.length) throw new DerError("OCSPRequest: unexpected fields after optionalSignature");
  if (optionalSignature) readSignature(optionalSignature);

  const items = children(expectTag(tbsRequest, Tag.sequence, "tbsRequest"));
  let i = 0;
  if (items[i]?.tag === CONTEXT_0) {
    const version = children(items[i++]!);
    if (version.length !== 1 || readInteger(expectTag(version[0], Tag.integer, "version")) !== 0n)
      throw new DerError("version: only v1 (0) exists");
  }
  if (items[i]?.tag === CONTEXT_1) {
    // requestorName: who signed the request (§4.1.2). Not used, but must be one GeneralName.
    if (children(items[i++]!).length !== 1) throw new DerError("requestorName must hold one GeneralName");
  }
  const requestList = children(expectTag(items[i++], Tag.sequence, "requestList"));
  if (requestList.length === 0) throw new DerError("requestList is empty");
  if (requestList.length > MAX_CERT_IDS_PER_REQUEST)
    throw new DerError(`more than ${MAX_CERT_IDS_PER_REQUEST} certificates in one request`);
  let nonce: Buffer | undefined;
  if (items[i]?.tag === CONTEXT_2) {
    for (const ext of readExtensions(items[i++]!, "requestExtensions")) {
      if (ext.oid === OID_PKIX_OCSP_NONCE) nonce = readNonce(ext.value);
      else if (ext.critical) throw new DerError(`unknown critical request extension ${ext.oid}`);
    }
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in tbsRequest`);

  const certIds = requestList.map(readRequest);
  return nonce
    ? { certIds, nonce, signed: optionalSignature !== undefined }
    : { certIds, signed: optionalSignature !== undefined };
}

/**
 * Signature ::= SEQUENCE { signatureAlgorithm, signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF
 * Certificate OPTIONAL } (§4.1.1), framed only: we do not require signed requests, so we do not
 * verify them.
 */
function readSignature(node: DerNode): void {
  const inner = children(expectTag(node, CONTEXT_0, "optionalSignature"));
  if (inner.length !== 1) throw new DerError("optionalSignature must hold one Signature");
  const [algorithm, signature, certs, ...extra] = children(expectTag(inner[0], Tag.sequence, "Signature"));
  readAlgorithmIdentifier(algorithm, "Signature signatureAlgorithm");
  expectTag(signature, Tag.bitString, "Signature signature");
  if (certs) {
    const list = children(expectTag(certs, CONTEXT_0, "Signature certs"));
    if (list.length !== 1) throw new DerError("Signature certs must hold one SEQUENCE OF Certificate");
    for (const certificate of children(expectTag(list[0], Tag.sequence, "Signature certs")))
      expectTag(certificate, Tag.sequence, "Certificate");
  }
  if (extra.length) throw new DerError("Signature: unexpected fields");
}

/** Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL } */
function readRequest(node: DerNode): OcspCertId {
  const [certId, extensions, ...extra] = children(expectTag(node, Tag.sequence, "Request"));
  if (extra.length) throw new DerError("Request: unexpected fields");
  if (extensions) {
    // None is defined that we act on (the service locator of §4.4.6 is for forwarding responders).
    for (const ext of readExtensions(
      expectTag(extensions, CONTEXT_0, "singleRequestExtensions"),
      "singleRequestExtensions",
    ))
      if (ext.critical) throw new DerError(`unknown critical single request extension ${ext.oid}`);
  }
  return readCertId(certId);
}

/**
 * CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING, issuerKeyHash
 * OCTET STRING, serialNumber CertificateSerialNumber } (§4.1.1).
 */
function readCertId(node: DerNode | undefined): OcspCertId {
  const certId = expectTag(node, Tag.sequence, "CertID");
  const parts = children(certId);
  if (parts.length !== 4) throw new DerError("CertID must have four fields");
  const algorithm = children(expectTag(parts[0], Tag.sequence, "CertID hashAlgorithm"));
  if (algorithm.length < 1 || algorithm.length > 2) throw new DerError("CertID hashAlgorithm: malformed");
  const hashAlgorithm = readOid(expectTag(algorithm[0], Tag.oid, "CertID hashAlgorithm"));
  // Hash parameters are absent or NULL (RFC 5754 §2: both must be accepted).
  const parameters = algorithm[1];
  if (parameters && (parameters.tag !== Tag.null || parameters.content.length !== 0))
    throw new DerError("CertID hashAlgorithm: parameters must be absent or NULL");
  const issuerNameHash = readHash(parts[1], hashAlgorithm, "issuerNameHash");
  const issuerKeyHash = readHash(parts[2], hashAlgorithm, "issuerKeyHash");
  const serial = readSerial(parts[3]);
  return {
    der: certId.encoded,
    hashAlgorithm,
    issuerNameHash,
    issuerKeyHash,
    serial,
    serialHex: serial.toString("hex"),
  };
}

function readHash(node: DerNode | undefined, algorithm: string, what: string): Buffer {
  const hash = expectTag(node, Tag.octetString, what).content;
  const expected = HASH_LENGTHS.get(algorithm);
  if (expected !== undefined ? hash.length !== expected : hash.length < 1 || hash.length > 64)
    throw new DerError(`${what}: ${hash.length} bytes is not a hash of ${algorithm}`);
  return hash;
}

/**
 * CertificateSerialNumber: a positive INTEGER of at most 20 octets (RFC 5280 §4.1.2.2), minimally
 * encoded. A request for any other serial cannot be about a certificate of ours, and its echo would
 * not be DER, so it is refused rather than answered.
 */
function readSerial(node: DerNode | undefined): Buffer {
  const serial = expectTag(node, Tag.integer, "serialNumber");
  if (readInteger(serial) <= 0n) throw new DerError("serialNumber must be positive");
  const magnitude = serial.content[0] === 0 ? serial.content.subarray(1) : serial.content;
  if (magnitude.length > 20) throw new DerError("serialNumber is longer than 20 octets");
  return magnitude;
}

/** The nonce extension's extnValue is the DER of `Nonce ::= OCTET STRING (SIZE(1..32))` (RFC 8954 §2.1). */
function readNonce(extnValue: Buffer): Buffer {
  const nonce = expectTag(
    readDer(extnValue, { maxBytes: 64, maxDepth: 0 }),
    Tag.octetString,
    "nonce",
  ).content;
  if (nonce.length < 1 || nonce.length > MAX_NONCE_BYTES)
    throw new DerError(`nonce of ${nonce.length} octets (RFC 8954 §2.1 allows 1 to ${MAX_NONCE_BYTES})`);
  return nonce;
}

// ---------------------------------------------------------------------------------------------
// CertIDs we build ourselves (pre-produced answers, tests)

/** The subjectPublicKey BIT STRING value of a SubjectPublicKeyInfo: what issuerKeyHash covers. */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  const [, key] = children(expectTag(readDer(spki, { maxBytes: 16_384, maxDepth: 2 }), Tag.sequence, "SPKI"));
  const bits = expectTag(key, Tag.bitString, "subjectPublicKey").content;
  if (bits[0] !== 0) throw new DerError("subjectPublicKey: expected whole bytes");
  return bits.subarray(1);
}

/**
 * CertID (RFC 6960 §4.1.1) of the certificate `serial` of the issuer (`issuerName`, `issuerSpki`):
 * SHA-1 by default, as RFC 5019 §2.1.1 asks of clients; hash parameters NULL, as OpenSSL writes them.
 */
export function ocspCertId(
  issuerName: Buffer,
  issuerSpki: Buffer,
  serial: Uint8Array,
  hash: "sha1" | "sha256" = "sha1",
): Buffer {
  const digest = (data: Buffer) => createHash(hash).update(data).digest();
  return sequence(
    sequence(oid(hash === "sha1" ? OID_SHA1 : OID_SHA256), NULL),
    octetString(digest(issuerName)),
    octetString(digest(subjectPublicKeyBits(issuerSpki))),
    integer(serial),
  );
}

/**
 * KeyHash of a responder (RFC 6960 §4.2.1): SHA-1 of its certificate's subjectPublicKey BIT STRING
 * value, the value of responderID byKey. It is key identifier method (1) of RFC 5280 §4.2.1.2.
 */
export function ocspResponderKeyHash(responderCertificate: Buffer): Buffer {
  return keyIdentifier(parseCertificate(responderCertificate).spki);
}

// ---------------------------------------------------------------------------------------------
// Responses

/**
 * CertStatus (RFC 6960 §4.2.1). A held certificate (一時保留, 一時利用停止) is `revoked` with reason
 * certificateHold, as RFC 6960 §2.2 says; reason unspecified is left out, as in CRL entries
 * (RFC 5280 §5.3.1).
 */
export type OcspCertStatus =
  | { readonly status: "good" }
  | { readonly status: "revoked"; readonly revocationTime: Date; readonly reason?: CrlReasonCode }
  | { readonly status: "unknown" };

export type OcspSingleResponse = OcspCertStatus & {
  /** The CertID DER to answer for: the request's own bytes (OcspCertId.der), or ocspCertId's. */
  readonly certId: Buffer;
  readonly thisUpdate: Date;
  /** Absent means newer information is always available (§4.2.2.1); RFC 5019 §2.2.4 wants it. */
  readonly nextUpdate?: Date;
};

export interface ResponseDataInput {
  /** ocspResponderKeyHash of the responder certificate that will sign (responderID byKey). */
  readonly responderKeyHash: Buffer;
  readonly producedAt: Date;
  readonly responses: readonly OcspSingleResponse[];
  /** The request's nonce, echoed in responseExtensions (RFC 8954 §2.1). */
  readonly nonce?: Buffer;
}

/** certStatus good: [0] IMPLICIT NULL. */
const GOOD = implicit(0, Buffer.alloc(0));
/** certStatus unknown: [2] IMPLICIT UnknownInfo, UnknownInfo ::= NULL. */
const UNKNOWN = implicit(2, Buffer.alloc(0));

function checkDate(date: Date, what: string): Date {
  if (!(date instanceof Date) || Number.isNaN(date.getTime()))
    throw new JpkiError("bad-input", `${what} is not a valid date`);
  return date;
}

/**
 * RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason
 * OPTIONAL }, as certStatus revoked [1] IMPLICIT RevokedInfo.
 */
function revokedStatus(revocationTime: Date, reason: CrlReasonCode | undefined): Buffer {
  const time = generalizedTime(checkDate(revocationTime, "revocationTime"));
  if (reason === undefined || reason === CrlReason.unspecified) return implicit(1, time, true);
  if (!Object.values(CrlReason).includes(reason) || reason === CrlReason.removeFromCRL)
    throw new JpkiError("bad-input", `${reason} is not a revocation reason an OCSP answer can give`);
  return implicit(1, Buffer.concat([time, explicit(0, enumerated(reason))]), true);
}

/**
 * SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate GeneralizedTime, nextUpdate [0]
 * EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }.
 */
function singleResponse(response: OcspSingleResponse): Buffer {
  let framed = false;
  try {
    const certId = readTlvAt(response.certId, 0);
    framed = certId.tag === Tag.sequence && certId.encoded.length === response.certId.length;
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
  }
  if (!framed) throw new JpkiError("bad-input", "certId must be the DER of one CertID");
  let status: Buffer;
  if (response.status === "good") status = GOOD;
  else if (response.status === "unknown") status = UNKNOWN;
  else status = revokedStatus(response.revocationTime, response.reason);
  const thisUpdate = checkDate(response.thisUpdate, "thisUpdate");
  const parts = [response.certId, status, generalizedTime(thisUpdate)];
  if (response.nextUpdate !== undefined) {
    if (checkDate(response.nextUpdate, "nextUpdate").getTime() < thisUpdate.getTime())
      throw new JpkiError("bad-input", "nextUpdate must not precede thisUpdate");
    parts.push(explicit(0, generalizedTime(response.nextUpdate)));
  }
  return sequence(...parts);
}

/**
 * ResponseData (RFC 6960 §4.2.1), the tbsResponseData the signer signs: version left out (v1, the
 * DEFAULT), responderID byKey [2], producedAt, one SingleResponse per CertID, and the nonce in
 * responseExtensions [1] when the request had one. GeneralizedTime without fractional seconds
 * (RFC 5280 §4.1.2.5.2, which RFC 6960 follows).
 */
export function buildResponseData(input: ResponseDataInput): Buffer {
  if (input.responderKeyHash.length !== 20)
    throw new JpkiError("bad-input", "responderKeyHash must be a SHA-1 hash (20 bytes)");
  if (input.responses.length === 0) throw new JpkiError("bad-input", "an answer needs at least one response");
  const parts = [
    explicit(2, octetString(input.responderKeyHash)),
    generalizedTime(checkDate(input.producedAt, "producedAt")),
    sequence(...input.responses.map(singleResponse)),
  ];
  if (input.nonce !== undefined) {
    if (input.nonce.length < 1 || input.nonce.length > MAX_NONCE_BYTES)
      throw new JpkiError("bad-input", `a nonce has 1 to ${MAX_NONCE_BYTES} octets (RFC 8954 §2.1)`);
    parts.push(explicit(1, sequence(extension(OID_PKIX_OCSP_NONCE, false, octetString(input.nonce)))));
  }
  return sequence(...parts);
}

/**
 * OCSPResponse ::= SEQUENCE { responseStatus successful, responseBytes [0] EXPLICIT ResponseBytes }
 * with ResponseBytes ::= SEQUENCE { responseType id-pkix-ocsp-basic, response OCTET STRING } holding
 * the BasicOCSPResponse the signer returned (RFC 6960 §4.2.1).
 */
export function ocspResponse(basicOcspResponse: Buffer): Buffer {
  return sequence(
    enumerated(OcspResponseStatus.successful),
    explicit(0, sequence(oid(OID_PKIX_OCSP_BASIC), octetString(basicOcspResponse))),
  );
}

const ERROR_STATUSES = new Set<number>(Object.values(OcspResponseStatus).filter((s) => s !== 0));

/** An unsuccessful OCSPResponse: the status alone, without responseBytes (RFC 6960 §2.3), unsigned. */
export function ocspErrorResponse(status: OcspErrorStatus): Buffer {
  if (!ERROR_STATUSES.has(status)) throw new JpkiError("bad-input", `${status} is not an OCSP error status`);
  return sequence(enumerated(status));
}
