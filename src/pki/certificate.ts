/**
 * Reading certificates (RFC 5280 §4.1) with our strict, bounded DER reader: the fields the registry
 * stores and the CLI prints. It checks structure, not trust: chain and signature checks live elsewhere.
 */
import { type KeyObject, verify } from "node:crypto";
import type { KeyAlgorithm } from "./algorithms.js";
import { OID_ECDSA_WITH_SHA256, OID_SHA256_WITH_RSA } from "./algorithms.js";
import {
  checkOid,
  children,
  DerError,
  type DerNode,
  expectTag,
  type ReadLimits,
  readDer,
  readInteger,
  readOid,
  readString,
  readTime,
  readTlvAt,
  Tag,
} from "./der.js";
import {
  ATTRIBUTE_SHORT_NAMES,
  OID_CE_SUBJECT_ALT_NAME,
  OID_CURVE_P256,
  OID_EC_PUBLIC_KEY,
  OID_JPKI_ADDRESS,
  OID_JPKI_ADDRESS_SUBSTITUTES,
  OID_JPKI_BIRTH_DATE,
  OID_JPKI_NAME,
  OID_JPKI_NAME_SUBSTITUTES,
  OID_JPKI_SEX,
  OID_RSA_ENCRYPTION,
} from "./oids.js";
import type { IssuerKey } from "./profiles.js";
import { publicKeyFromSpki } from "./public-key.js";

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** Content of extnValue: the DER of the extension's own value. */
  readonly value: Buffer;
}

/** The fields of a TBSCertificate (RFC 5280 §4.1.2): what a CA signs, and what a certificate carries. */
export interface ParsedTbsCertificate {
  /** The TBSCertificate, DER: what the signature covers. */
  readonly tbs: Buffer;
  /** 1, 2 or 3. */
  readonly version: number;
  /** The serial as a positive magnitude (no sign byte). */
  readonly serial: Buffer;
  /**
   * The TBS `signature` AlgorithmIdentifier, DER (§4.1.2.3); in a Certificate it equals the outer
   * signatureAlgorithm, which parseCertificate checks.
   */
  readonly signatureAlgorithm: Buffer;
  readonly signatureAlgorithmOid: string;
  readonly issuerDer: Buffer;
  readonly subjectDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo, DER. */
  readonly spki: Buffer;
  /** The subjectPublicKey bits without the unused-bits octet: what key identifiers and OCSP key hashes cover. */
  readonly subjectPublicKey: Buffer;
  readonly extensions: readonly CertificateExtension[];
}

export interface ParsedCertificate extends ParsedTbsCertificate {
  /** The whole certificate. */
  readonly der: Buffer;
  /** Lower-case hex of `serial` (serial.serialToHex form). */
  readonly serialHex: string;
  /** The signature bits (a BIT STRING of whole bytes). */
  readonly signature: Buffer;
}

/** Certificates are small; anything larger or deeper than this is refused before parsing. */
export const CERTIFICATE_LIMITS: Required<ReadLimits> = { maxDepth: 16, maxBytes: 64 * 1024 };

/**
 * Parses a DER certificate: `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 * signatureValue }` (RFC 5280 §4.1). Throws DerError on anything malformed, including a TBS
 * signature algorithm different from the outer one (§4.1.1.2) and every fault parseTbsCertificate finds.
 */
export function parseCertificate(der: Buffer, limits: ReadLimits = CERTIFICATE_LIMITS): ParsedCertificate {
  const top = expectTag(readDer(der, limits), Tag.sequence, "Certificate");
  const [tbsNode, algNode, sigNode, ...extra] = children(top);
  if (extra.length) throw new DerError("Certificate: unexpected fields after signatureValue");
  const tbs = expectTag(tbsNode, Tag.sequence, "tbsCertificate");
  readAlgorithmIdentifier(algNode, "signatureAlgorithm");
  const signatureBits = expectTag(sigNode, Tag.bitString, "signatureValue").content;
  if (signatureBits.length < 1 || signatureBits[0] !== 0)
    throw new DerError("signatureValue: expected whole bytes");
  const fields = tbsCertificateFields(tbs);
  if (!fields.signatureAlgorithm.equals(algNode!.encoded))
    throw new DerError("the TBS signature algorithm differs from signatureAlgorithm");
  return {
    ...fields,
    der: top.encoded,
    serialHex: fields.serial.toString("hex"),
    signature: signatureBits.subarray(1),
  };
}

/**
 * Reads and checks a TBSCertificate (RFC 5280 §4.1), as the CA signer does before signing; throws
 * DerError naming the first fault. Stricter than a shape check: Names attribute by attribute,
 * AlgorithmIdentifier and SPKI shapes, serial (§4.1.2.2), validity order, version rules, unique IDs
 * and extensions (§4.2: no duplicates, DER `critical`).
 */
export function parseTbsCertificate(tbs: Buffer): ParsedTbsCertificate {
  // The field-by-field reading bounds the depth itself (names, extensions: a fixed shape, values not
  // descended into), so readDer's depth walk, which would read every node twice, is not needed: this
  // runs for every certificate the signer issues.
  if (tbs.length > CERTIFICATE_LIMITS.maxBytes)
    throw new DerError(
      `TBSCertificate of ${tbs.length} bytes exceeds the limit of ${CERTIFICATE_LIMITS.maxBytes}`,
    );
  const root = readTlvAt(tbs, 0);
  if (root.end !== tbs.length) throw new DerError("trailing bytes after the TBSCertificate");
  return tbsCertificateFields(expectTag(root, Tag.sequence, "TBSCertificate"));
}

const VERSION = 0xa0;
const ISSUER_UNIQUE_ID = 0x81;
const SUBJECT_UNIQUE_ID = 0x82;
const EXTENSIONS = 0xa3;

function tbsCertificateFields(root: DerNode): ParsedTbsCertificate {
  const items = children(root);
  let i = 0;
  let version = 1;
  if (items[0]?.tag === VERSION) {
    const inner = children(items[0]);
    if (inner.length !== 1) throw new DerError("version: [0] EXPLICIT must hold one INTEGER");
    const v = expectTag(inner[0], Tag.integer, "version");
    // v1 is the DEFAULT, so DER leaves it out (X.690 §11.5). One octet 1 or 2: read without bigint.
    const octet = v.input[v.contentStart];
    if (v.length !== 1 || (octet !== 1 && octet !== 2))
      throw new DerError(`version ${readInteger(v)} must be v2 (1) or v3 (2) when present`);
    version = octet + 1;
    i++;
  }
  const serial = serialMagnitude(expectTag(items[i++], Tag.integer, "serialNumber"));
  const signature = items[i++];
  const signatureAlgorithmOid = readAlgorithmIdentifier(signature, "signature");
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
  readAlgorithmIdentifier(spkiParts[0], "subjectPublicKeyInfo algorithm");
  const subjectPublicKey = expectTag(spkiParts[1], Tag.bitString, "subjectPublicKey");
  // RSA and EC keys are whole octets (RFC 3279 §2.3.1, RFC 5480 §2.2); OpenSSL would read a key
  // with unused bits declared as the same key, so two encodings would name one key.
  if (subjectPublicKey.content[0] !== 0) throw new DerError("subjectPublicKey: unused bits in a key");
  // issuerUniqueID [1], subjectUniqueID [2], in that order (§4.1.2.8).
  for (const tag of [ISSUER_UNIQUE_ID, SUBJECT_UNIQUE_ID]) {
    if (items[i]?.tag !== tag) continue;
    if (version < 2) throw new DerError("unique identifiers need v2 or v3");
    i++;
  }
  let extensions: CertificateExtension[] = [];
  if (items[i]?.tag === EXTENSIONS) {
    if (version !== 3) throw new DerError("extensions need v3");
    extensions = readExtensions(items[i]!, "extensions");
    i++;
  }
  if (i !== items.length) throw new DerError(`unexpected field ${i + 1} in TBSCertificate`);
  return {
    tbs: root.encoded,
    version,
    serial,
    signatureAlgorithm: signature!.encoded,
    signatureAlgorithmOid,
    issuerDer: issuer,
    subjectDer: subject,
    notBefore,
    notAfter,
    spki: spki.encoded,
    subjectPublicKey: subjectPublicKey.content.subarray(1),
    extensions,
  };
}

/**
 * CertificateSerialNumber (RFC 5280 §4.1.2.2): positive, at most 20 octets. The common case is
 * checked on the octets (minimal, sign bit clear, not zero); anything else goes to readInteger,
 * which names the DER fault, or is refused as not positive.
 */
function serialMagnitude(node: DerNode): Buffer {
  const c = node.content;
  const positiveAndMinimal =
    c.length > 0 && !(c[0]! & 0x80) && (c[0] !== 0 || (c.length > 1 && (c[1]! & 0x80) !== 0));
  if (!positiveAndMinimal) {
    readInteger(node);
    throw new DerError("serialNumber must be positive");
  }
  if (c.length > 20) throw new DerError("serialNumber is longer than 20 octets");
  return c[0] === 0 ? c.subarray(1) : c;
}

/**
 * Name ::= SEQUENCE OF RelativeDistinguishedName, RDN ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
 * (RFC 5280 §4.1.2.4), checked attribute by attribute; returns the Name's DER. parseName decodes one.
 */
export function checkName(node: DerNode | undefined, what: string): Buffer {
  const name = expectTag(node, Tag.sequence, what);
  const rdnWhat = `${what} RDN`;
  const attributeWhat = `${what} attribute`;
  for (const rdn of children(name)) {
    expectTag(rdn, Tag.set, rdnWhat);
    const attributes = children(rdn);
    if (attributes.length === 0) throw new DerError(`${what}: empty RDN`);
    for (const attribute of attributes) {
      const parts = children(expectTag(attribute, Tag.sequence, attributeWhat));
      if (parts.length !== 2) throw new DerError(`${what}: AttributeTypeAndValue needs a type and a value`);
      checkOid(parts[0]!);
    }
  }
  return name.encoded;
}

/**
 * AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } (RFC 5280 §4.1.1.2);
 * returns the algorithm OID (the caller has the DER in `node.encoded`).
 */
export function readAlgorithmIdentifier(node: DerNode | undefined, what: string): string {
  const parts = children(expectTag(node, Tag.sequence, what));
  if (parts.length < 1 || parts.length > 2) throw new DerError(`${what}: malformed AlgorithmIdentifier`);
  return readOid(parts[0]!);
}

/**
 * `[n] EXPLICIT Extensions`, Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (RFC 5280 §4.1.2.9;
 * also crlExtensions §5.1.2.7 and OCSP responseExtensions). At most one instance of each extension
 * (§4.2); `critical` DEFAULT FALSE is absent when false (X.690 §11.5).
 */
export function readExtensions(wrapper: DerNode, what: string): CertificateExtension[] {
  const inner = children(wrapper);
  if (inner.length !== 1) throw new DerError(`${what}: [n] EXPLICIT must hold one SEQUENCE`);
  const list = children(expectTag(inner[0], Tag.sequence, what));
  if (list.length === 0) throw new DerError(`${what}: Extensions ::= SEQUENCE SIZE (1..MAX)`);
  const out: CertificateExtension[] = [];
  const seen = new Set<string>();
  for (const extension of list) {
    const parts = children(expectTag(extension, Tag.sequence, "Extension"));
    const id = readOid(expectTag(parts[0], Tag.oid, "extnID"));
    if (seen.has(id)) throw new DerError(`${what}: extension ${id} appears twice`);
    seen.add(id);
    let i = 1;
    const flag = parts[i];
    const critical = flag?.tag === Tag.boolean;
    if (critical) {
      if (flag.length !== 1 || flag.input[flag.contentStart] !== 0xff)
        throw new DerError(`extension ${id}: critical must be TRUE (0xFF) when present`);
      i++;
    }
    const value = expectTag(parts[i], Tag.octetString, `extension ${id} extnValue`);
    if (i + 1 !== parts.length) throw new DerError(`extension ${id}: unexpected field`);
    out.push({ oid: id, critical, value: value.content });
  }
  return out;
}

/** The extension with this OID, if present. */
export function findExtension(cert: ParsedTbsCertificate, extnId: string): CertificateExtension | undefined {
  return cert.extensions.find((e) => e.oid === extnId);
}

// ---------------------------------------------------------------------------------------------
// Names

export interface NameAttributeValue {
  readonly oid: string;
  /** RFC 4514 keyword when known (C, O, OU, CN, ...), else the dotted OID. */
  readonly type: string;
  /** The text; for value types without a text form, `#` and the hex of the DER (RFC 4514 §2.4). */
  readonly value: string;
}

/** The attributes of a Name (RFC 5280 §4.1.2.4) in encoded order, RDN by RDN. */
export function parseName(nameDer: Buffer, limits: ReadLimits = CERTIFICATE_LIMITS): NameAttributeValue[][] {
  const name = expectTag(readDer(nameDer, limits), Tag.sequence, "Name");
  return children(name).map((rdn) =>
    children(expectTag(rdn, Tag.set, "RelativeDistinguishedName")).map((atv) => {
      const [typeNode, valueNode, ...rest] = children(expectTag(atv, Tag.sequence, "AttributeTypeAndValue"));
      if (!valueNode || rest.length) throw new DerError("AttributeTypeAndValue: expected type and value");
      const attributeOid = readOid(expectTag(typeNode, Tag.oid, "AttributeType"));
      let value: string;
      try {
        value = readString(valueNode);
      } catch {
        value = `#${valueNode.encoded.toString("hex")}`;
      }
      return { oid: attributeOid, type: ATTRIBUTE_SHORT_NAMES[attributeOid] ?? attributeOid, value };
    }),
  );
}

/** Escapes an attribute value as RFC 4514 §2.4 asks (hex-form values are left as they are). */
function escapeValue(value: string): string {
  if (value.startsWith("#") && /^#[0-9a-f]+$/.test(value)) return value;
  return value
    .replace(/[\\"+,;<>]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, "\\ ")
    .replace(/\0/g, "\\00");
}

/**
 * A readable one-line rendering, e.g. `C=JP, O=JPKI, OU=TEST`. RFC 4514-style escaping, but in the
 * encoded order (as OpenSSL prints by default), not RFC 4514's reversed order: people compare it with
 * the profiles in JPKI-FACTS, written in that order. Multi-valued RDNs are joined with `+`.
 */
export function renderName(nameDer: Buffer): string {
  return parseName(nameDer)
    .map((rdn) => rdn.map((a) => `${a.type}=${escapeValue(a.value)}`).join("+"))
    .join(", ");
}

// ---------------------------------------------------------------------------------------------
// JPKI SubjectAltName (JPKI-FACTS §2)

/** The otherNames of a JPKI signing certificate, as written (birthDate stays `EYYYYMMDD`). */
export interface JpkiSubjectAltName {
  readonly name?: string;
  readonly nameSubstitutes?: string;
  readonly sex?: string;
  readonly birthDate?: string;
  readonly address?: string;
  readonly addressSubstitutes?: string;
}

const jpkiFields: Record<string, keyof JpkiSubjectAltName> = {
  [OID_JPKI_NAME]: "name",
  [OID_JPKI_NAME_SUBSTITUTES]: "nameSubstitutes",
  [OID_JPKI_SEX]: "sex",
  [OID_JPKI_BIRTH_DATE]: "birthDate",
  [OID_JPKI_ADDRESS]: "address",
  [OID_JPKI_ADDRESS_SUBSTITUTES]: "addressSubstitutes",
};

/**
 * The JPKI otherNames of a certificate's SubjectAltName, or undefined when it has none (user-auth
 * certificates). otherName is `[0] IMPLICIT SEQUENCE { type-id, [0] EXPLICIT value }` (RFC 5280 §4.2.1.6).
 */
export function readJpkiSubjectAltName(cert: ParsedCertificate): JpkiSubjectAltName | undefined {
  const san = findExtension(cert, OID_CE_SUBJECT_ALT_NAME);
  if (!san) return undefined;
  const out: Record<string, string> = {};
  let found = false;
  for (const generalName of children(expectTag(readDer(san.value), Tag.sequence, "GeneralNames"))) {
    if (generalName.tag !== 0xa0) continue;
    const [typeNode, valueNode, ...rest] = children(generalName);
    if (!valueNode || rest.length || valueNode.tag !== 0xa0) throw new DerError("malformed otherName");
    const field = jpkiFields[readOid(expectTag(typeNode, Tag.oid, "type-id"))];
    if (!field) continue;
    const inner = readTlvAt(valueNode.content, 0);
    if (inner.encoded.length !== valueNode.content.length) throw new DerError("malformed otherName value");
    out[field] = readString(expectTag(inner, Tag.utf8String, "otherName value"));
    found = true;
  }
  return found ? (out as JpkiSubjectAltName) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures

/**
 * The key algorithm of a SubjectPublicKeyInfo among those the project uses: rsaEncryption with a
 * 2048-bit modulus (RFC 3279 §2.3.1), or id-ecPublicKey on P-256 (RFC 5480 §2.1.1). Others are refused.
 */
export function keyAlgorithmOf(spki: Buffer): KeyAlgorithm {
  const [algorithm] = children(expectTag(readDer(spki, CERTIFICATE_LIMITS), Tag.sequence, "SPKI"));
  const [algorithmOid, parameters] = children(expectTag(algorithm, Tag.sequence, "SPKI algorithm"));
  const keyOid = readOid(expectTag(algorithmOid, Tag.oid, "SPKI algorithm OID"));
  // rsaEncryption's parameters are NULL (RFC 3279 §2.3.1); OpenSSL ignores them, so anything else
  // there would give one key two encodings.
  if (keyOid === OID_RSA_ENCRYPTION && parameters?.tag === Tag.null && parameters.content.length === 0) {
    const key = publicKeyFromSpki(spki);
    if (key.asymmetricKeyDetails?.modulusLength === 2048) return "rsa-2048";
  } else if (
    keyOid === OID_EC_PUBLIC_KEY &&
    parameters?.tag === Tag.oid &&
    readOid(parameters) === OID_CURVE_P256
  ) {
    return "ec-p256";
  }
  throw new DerError(`unsupported public key (${keyOid})`);
}

/** What profiles need to issue under a CA certificate: its subject, its SPKI and its key algorithm. */
export function issuerKeyOf(caCertificate: ParsedCertificate): IssuerKey {
  return {
    name: caCertificate.subjectDer,
    spki: caCertificate.spki,
    algorithm: keyAlgorithmOf(caCertificate.spki),
  };
}

/**
 * Checks a certificate's signature with the issuer's public key (Node's crypto, never a JavaScript
 * RSA implementation: LIBRARY-NOTES). Only the two signature algorithms of this project are accepted.
 * The issuer key: its SPKI DER, or the KeyObject a caller keeps (reading a key costs about as much as
 * the check).
 */
export function verifyCertificateSignature(cert: ParsedCertificate, issuerKey: Buffer | KeyObject): boolean {
  if (
    cert.signatureAlgorithmOid !== OID_SHA256_WITH_RSA &&
    cert.signatureAlgorithmOid !== OID_ECDSA_WITH_SHA256
  )
    return false;
  const key = Buffer.isBuffer(issuerKey) ? publicKeyFromSpki(issuerKey) : issuerKey;
  const expected = cert.signatureAlgorithmOid === OID_SHA256_WITH_RSA ? "rsa" : "ec";
  if (key.asymmetricKeyType !== expected) return false;
  try {
    return verify("sha256", cert.tbs, { key, dsaEncoding: "der" }, cert.signature);
  } catch {
    return false;
  }
}
