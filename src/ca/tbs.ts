/**
 * Structural checks of what the signer is asked to sign besides certificates: TBSCertList (RFC 5280
 * §5.1) and OCSP ResponseData (RFC 6960 §4.2.1), read with der.ts's bounded reader. TBSCertificate is
 * read by pki/certificate.ts's parseTbsCertificate, whose Name, AlgorithmIdentifier and Extensions
 * checks these readers share. These are the signer's own guard rails, not the profile linter: they
 * check the fields the signer answers for (algorithm, issuer, responder) and that the value is
 * well-formed DER.
 */
import { checkName, readAlgorithmIdentifier, readExtensions } from "../pki/certificate.js";
import {
  children,
  DerError,
  type DerNode,
  expectTag,
  type ReadLimits,
  readDer,
  readInteger,
  readOid,
  readTime,
  readTlvAt,
  Tag,
} from "../pki/der.js";

/** A CRL is read shallowly (its entries are pre-encoded by the registry), so it may be large. */
export const TBS_CERT_LIST_MAX_BYTES = 512 * 1024 * 1024;
export const RESPONSE_DATA_LIMITS: ReadLimits = { maxBytes: 1024 * 1024, maxDepth: 24 };

const CONTEXT_0 = 0xa0;
const CONTEXT_1 = 0xa1;
const CONTEXT_2 = 0xa2;

export interface TbsCertListFields {
  signature: Buffer;
  issuer: Buffer;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
}

/**
 * Reads a TBSCertList (RFC 5280 §5.1.2) shallowly: its top-level fields are checked, the revoked
 * entries only framed (one SEQUENCE, not empty), so a million-entry CRL costs no per-entry parsing.
 */
export function readTbsCertList(tbs: Buffer): TbsCertListFields {
  if (tbs.length > TBS_CERT_LIST_MAX_BYTES)
    throw new DerError(`TBSCertList of ${tbs.length} bytes exceeds ${TBS_CERT_LIST_MAX_BYTES}`);
  const root = expectTag(readTlvAt(tbs, 0), Tag.sequence, "TBSCertList");
  if (root.encoded.length !== tbs.length) throw new DerError("trailing bytes after the TBSCertList");
  const items = children(root);
  let i = 0;
  let v2 = false;
  if (items[0]?.tag === Tag.integer) {
    if (readInteger(items[0]) !== 1n) throw new DerError("TBSCertList version must be v2 when present");
    v2 = true;
    i++;
  }
  const small = (node: DerNode | undefined) =>
    node ? readDer(node.encoded, RESPONSE_DATA_LIMITS) : undefined;
  const signatureNode = small(items[i++]);
  readAlgorithmIdentifier(signatureNode, "signature");
  const signature = signatureNode!.encoded;
  const issuer = checkName(small(items[i++]), "issuer");
  const thisUpdate = readTime(expectTime(items[i++], "thisUpdate"));
  let nextUpdate: Date | undefined;
  if (items[i]?.tag === Tag.utcTime || items[i]?.tag === Tag.generalizedTime)
    nextUpdate = readTime(items[i++]!);
  if (items[i]?.tag === Tag.sequence) {
    // RFC 5280 §5.1.2.6: with no revoked certificates the list is absent, not empty.
    if (items[i]!.length === 0) throw new DerError("revokedCertificates is present but empty");
    i++;
  }
  if (items[i]?.tag === CONTEXT_0) {
    if (!v2) throw new DerError("crlExtensions need v2");
    readExtensions(small(items[i])!, "crlExtensions");
    i++;
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in TBSCertList`);
  return { signature, issuer, thisUpdate, nextUpdate };
}

function expectTime(node: DerNode | undefined, what: string): DerNode {
  if (!node || (node.tag !== Tag.utcTime && node.tag !== Tag.generalizedTime))
    throw new DerError(`${what}: expected a time`);
  return node;
}

export type ResponderId = { byName: Buffer } | { byKey: Buffer };

export interface CertIdFields {
  hashAlgorithm: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serialNumber: bigint;
}

export interface ResponseDataFields {
  responderId: ResponderId;
  producedAt: Date;
  certIds: CertIdFields[];
}

/** Reads OCSP ResponseData (RFC 6960 §4.2.1). */
export function readResponseData(tbs: Buffer): ResponseDataFields {
  const root = expectTag(readDer(tbs, RESPONSE_DATA_LIMITS), Tag.sequence, "ResponseData");
  const items = children(root);
  let i = 0;
  // version [0] EXPLICIT DEFAULT v1, and v1 is the only version: DER leaves it out.
  if (items[0]?.tag === CONTEXT_0)
    throw new DerError("ResponseData version v1 is the default and must be absent");
  const responder = items[i++];
  let responderId: ResponderId;
  if (responder?.tag === CONTEXT_1) {
    const inner = children(responder);
    if (inner.length !== 1) throw new DerError("responderID byName must hold one Name");
    responderId = { byName: checkName(inner[0], "responderID byName") };
  } else if (responder?.tag === CONTEXT_2) {
    const inner = children(responder);
    if (inner.length !== 1) throw new DerError("responderID byKey must hold one KeyHash");
    const hash = expectTag(inner[0], Tag.octetString, "responderID byKey").content;
    if (hash.length !== 20) throw new DerError("responderID byKey must be a SHA-1 hash");
    responderId = { byKey: hash };
  } else {
    throw new DerError("responderID: expected [1] byName or [2] byKey");
  }
  const producedAtNode = expectTag(items[i++], Tag.generalizedTime, "producedAt");
  const producedAt = readTime(producedAtNode);
  const responses = children(expectTag(items[i++], Tag.sequence, "responses"));
  if (responses.length === 0) throw new DerError("responses must not be empty");
  const certIds = responses.map((single) => {
    const parts = children(expectTag(single, Tag.sequence, "SingleResponse"));
    const certId = children(expectTag(parts[0], Tag.sequence, "certID"));
    if (certId.length !== 4) throw new DerError("certID must have four fields");
    const algorithm = children(expectTag(certId[0], Tag.sequence, "certID hashAlgorithm"));
    return {
      hashAlgorithm: readOid(algorithm[0]!),
      issuerNameHash: expectTag(certId[1], Tag.octetString, "issuerNameHash").content,
      issuerKeyHash: expectTag(certId[2], Tag.octetString, "issuerKeyHash").content,
      serialNumber: readInteger(expectTag(certId[3], Tag.integer, "serialNumber")),
    };
  });
  if (items[i]?.tag === CONTEXT_1) {
    readExtensions(items[i]!, "responseExtensions");
    i++;
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in ResponseData`);
  return { responderId, producedAt, certIds };
}
