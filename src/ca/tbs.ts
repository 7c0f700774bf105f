/**
 * Structural checks of what the signer is asked to sign: TBSCertificate (RFC 5280 §4.1),
 * TBSCertList (§5.1) and OCSP ResponseData (RFC 6960 §4.2.1), read with der.ts's bounded reader.
 * These are the signer's own guard rails, not the profile linter: they check the fields the signer
 * answers for (algorithm, issuer, responder) and that the whole value is well-formed DER.
 */
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

/** What a TBSCertificate may weigh: generous for certificates, small enough to bound the work. */
export const TBS_CERTIFICATE_LIMITS: ReadLimits = { maxBytes: 64 * 1024, maxDepth: 24 };
/** A CRL is read shallowly (its entries are pre-encoded by the registry), so it may be large. */
export const TBS_CERT_LIST_MAX_BYTES = 512 * 1024 * 1024;
export const RESPONSE_DATA_LIMITS: ReadLimits = { maxBytes: 1024 * 1024, maxDepth: 24 };

const CONTEXT_0 = 0xa0;
const CONTEXT_1 = 0xa1;
const CONTEXT_2 = 0xa2;
const CONTEXT_3 = 0xa3;
const ISSUER_UNIQUE_ID = 0x81;
const SUBJECT_UNIQUE_ID = 0x82;

export interface TbsCertificateFields {
  /** 0 = v1, 1 = v2, 2 = v3 (RFC 5280 §4.1.2.1). */
  version: number;
  serialNumber: bigint;
  /** Encoded AlgorithmIdentifier, TLV included. */
  signature: Buffer;
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  subject: Buffer;
  subjectPublicKeyInfo: Buffer;
  /** Each Extension SEQUENCE, encoded, in order. */
  extensions: DerNode[];
}

export interface CertificateFields {
  tbs: Buffer;
  fields: TbsCertificateFields;
  signatureAlgorithm: Buffer;
  signatureValue: Buffer;
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET SIZE (1..MAX) OF AttributeTypeAndValue). */
function checkName(node: DerNode | undefined, what: string): Buffer {
  const name = expectTag(node, Tag.sequence, what);
  for (const rdn of children(name)) {
    expectTag(rdn, Tag.set, `${what} RDN`);
    const attributes = children(rdn);
    if (attributes.length === 0) throw new DerError(`${what}: empty RDN`);
    for (const attribute of attributes) {
      const parts = children(expectTag(attribute, Tag.sequence, `${what} attribute`));
      if (parts.length !== 2) throw new DerError(`${what}: AttributeTypeAndValue needs a type and a value`);
      readOid(parts[0]!);
    }
  }
  return name.encoded;
}

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }. */
function checkAlgorithm(node: DerNode | undefined, what: string): Buffer {
  const parts = children(expectTag(node, Tag.sequence, what));
  if (parts.length < 1 || parts.length > 2) throw new DerError(`${what}: malformed AlgorithmIdentifier`);
  readOid(parts[0]!);
  return node!.encoded;
}

function checkExtensions(wrapper: DerNode, what: string): DerNode[] {
  const inner = children(wrapper);
  if (inner.length !== 1) throw new DerError(`${what}: [n] EXPLICIT must hold one SEQUENCE`);
  const list = children(expectTag(inner[0], Tag.sequence, what));
  if (list.length === 0) throw new DerError(`${what}: Extensions ::= SEQUENCE SIZE (1..MAX)`);
  const seen = new Set<string>();
  for (const extension of list) {
    const parts = children(expectTag(extension, Tag.sequence, "Extension"));
    const id = readOid(parts[0]!);
    // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
    if (seen.has(id)) throw new DerError(`${what}: extension ${id} appears twice`);
    seen.add(id);
    let i = 1;
    if (parts[i]?.tag === Tag.boolean) {
      // DER: critical DEFAULT FALSE is absent when false (X.690 §11.5).
      if (parts[i]!.content.length !== 1 || parts[i]!.content[0] !== 0xff)
        throw new DerError(`extension ${id}: critical must be TRUE (0xFF) when present`);
      i++;
    }
    expectTag(parts[i], Tag.octetString, `extension ${id} extnValue`);
    if (i + 1 !== parts.length) throw new DerError(`extension ${id}: unexpected field`);
  }
  return list;
}

/** Reads and checks a TBSCertificate (RFC 5280 §4.1); throws DerError naming the first fault. */
export function readTbsCertificate(tbs: Buffer): TbsCertificateFields {
  // The field-by-field reading below bounds the depth itself (names, extensions: a fixed shape), so the
  // generic depth walk of readDer, which would read every node twice, is not needed here.
  if (tbs.length > TBS_CERTIFICATE_LIMITS.maxBytes!) throw new DerError(`TBSCertificate of ${tbs.length} bytes exceeds the limit of ${TBS_CERTIFICATE_LIMITS.maxBytes}`);
  const root = readTlvAt(tbs, 0);
  if (root.encoded.length !== tbs.length) throw new DerError("trailing bytes after the TBSCertificate");
  expectTag(root, Tag.sequence, "TBSCertificate");
  return tbsCertificateFields(root);
}

function tbsCertificateFields(root: DerNode): TbsCertificateFields {
  const items = children(root);
  let i = 0;
  let version = 0;
  if (items[0]?.tag === CONTEXT_0) {
    const inner = children(items[0]);
    if (inner.length !== 1) throw new DerError("version: [0] EXPLICIT must hold one INTEGER");
    version = Number(readInteger(inner[0]!));
    // v1 is the DEFAULT, so DER leaves it out (X.690 §11.5).
    if (version !== 1 && version !== 2)
      throw new DerError(`version ${version} must be v2 or v3 when present`);
    i++;
  }
  const serialNode = expectTag(items[i++], Tag.integer, "serialNumber");
  const serialNumber = readInteger(serialNode);
  // RFC 5280 §4.1.2.2: positive, at most 20 octets.
  if (serialNumber <= 0n) throw new DerError("serialNumber must be positive");
  if (serialNode.content.length > 20) throw new DerError("serialNumber is longer than 20 octets");
  const signature = checkAlgorithm(items[i++], "signature");
  const issuer = checkName(items[i++], "issuer");
  const times = children(expectTag(items[i++], Tag.sequence, "validity"));
  if (times.length !== 2) throw new DerError("validity must hold notBefore and notAfter");
  const notBefore = readTime(times[0]!);
  const notAfter = readTime(times[1]!);
  if (notAfter < notBefore) throw new DerError("validity: notAfter is before notBefore");
  const subject = checkName(items[i++], "subject");
  const spki = expectTag(items[i++], Tag.sequence, "subjectPublicKeyInfo");
  const spkiParts = children(spki);
  if (spkiParts.length !== 2) throw new DerError("subjectPublicKeyInfo: expected algorithm and key");
  checkAlgorithm(spkiParts[0], "subjectPublicKeyInfo algorithm");
  expectTag(spkiParts[1], Tag.bitString, "subjectPublicKey");
  for (const tag of [ISSUER_UNIQUE_ID, SUBJECT_UNIQUE_ID]) {
    if (items[i]?.tag !== tag) continue;
    if (version < 1) throw new DerError("unique identifiers need v2 or v3");
    i++;
  }
  let extensions: DerNode[] = [];
  if (items[i]?.tag === CONTEXT_3) {
    if (version !== 2) throw new DerError("extensions need v3");
    extensions = checkExtensions(items[i]!, "extensions");
    i++;
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in TBSCertificate`);
  return {
    version,
    serialNumber,
    signature,
    issuer,
    notBefore,
    notAfter,
    subject,
    subjectPublicKeyInfo: spki.encoded,
    extensions,
  };
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1). */
export function readCertificate(der: Buffer): CertificateFields {
  const root = expectTag(
    readDer(der, { maxBytes: 2 * (TBS_CERTIFICATE_LIMITS.maxBytes ?? 0), maxDepth: 25 }),
    Tag.sequence,
    "Certificate",
  );
  const parts = children(root);
  if (parts.length !== 3) throw new DerError("Certificate must have three fields");
  const tbs = expectTag(parts[0], Tag.sequence, "tbsCertificate");
  const signatureAlgorithm = checkAlgorithm(parts[1], "signatureAlgorithm");
  const signature = expectTag(parts[2], Tag.bitString, "signatureValue");
  if (signature.content[0] !== 0) throw new DerError("signatureValue has unused bits");
  return {
    tbs: tbs.encoded,
    fields: tbsCertificateFields(tbs),
    signatureAlgorithm,
    signatureValue: signature.content.subarray(1),
  };
}

/** The value of one extension (extnValue's content), or undefined. */
export function extensionValue(fields: TbsCertificateFields, id: string): Buffer | undefined {
  for (const extension of fields.extensions) {
    const parts = children(extension);
    if (readOid(parts[0]!) === id) return parts[parts.length - 1]!.content;
  }
  return undefined;
}

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
  const signature = checkAlgorithm(small(items[i++]), "signature");
  const issuer = checkName(small(items[i++]), "issuer");
  const thisUpdate = readTime(expectTime(items[i++], "thisUpdate"));
  let nextUpdate: Date | undefined;
  if (items[i]?.tag === Tag.utcTime || items[i]?.tag === Tag.generalizedTime)
    nextUpdate = readTime(items[i++]!);
  if (items[i]?.tag === Tag.sequence) {
    // RFC 5280 §5.1.2.6: with no revoked certificates the list is absent, not empty.
    if (items[i]!.content.length === 0) throw new DerError("revokedCertificates is present but empty");
    i++;
  }
  if (items[i]?.tag === CONTEXT_0) {
    if (!v2) throw new DerError("crlExtensions need v2");
    checkExtensions(small(items[i])!, "crlExtensions");
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
    const hash = expectTag(inner[0], Tag.octetString, "responderID byKey");
    if (hash.content.length !== 20) throw new DerError("responderID byKey must be a SHA-1 hash");
    responderId = { byKey: hash.content };
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
    checkExtensions(items[i]!, "responseExtensions");
    i++;
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in ResponseData`);
  return { responderId, producedAt, certIds };
}

/** The subjectPublicKey bits of an SPKI, without the unused-bits octet (what OCSP key hashes cover). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const parts = children(readDer(spki, TBS_CERTIFICATE_LIMITS));
  const bits = expectTag(parts[1], Tag.bitString, "subjectPublicKey");
  return bits.content.subarray(1);
}
