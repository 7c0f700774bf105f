/**
 * Distinguished names (RFC 5280 §4.1.2.4) and the fixed names of the JPKI-style test hierarchy.
 *
 * A Name is written as an ordered list of attributes, each in its own single-valued RDN, which is how
 * JPKI's CA names look (JPKI-FACTS §2). Encodings of the fixed names are computed once.
 */
import { DerError, oid, printableString, sequence, setOf, utf8String } from "./der.js";
import {
  OID_AT_COMMON_NAME,
  OID_AT_COUNTRY,
  OID_AT_LOCALITY,
  OID_AT_ORGANIZATION,
  OID_AT_ORGANIZATIONAL_UNIT,
  OID_AT_SERIAL_NUMBER,
  OID_AT_STATE_OR_PROVINCE,
} from "./oids.js";

/** The two JPKI hierarchies: 署名用 (digital signature) and 利用者証明用 (user authentication). */
export type CaPurpose = "sign" | "auth";

export type AttributeType = "C" | "ST" | "L" | "O" | "OU" | "CN" | "serialNumber";

/** One attribute of a Name, e.g. `["OU", "TEST"]`. */
export type NameAttribute = readonly [type: AttributeType, value: string];

const attributeOids: Record<AttributeType, string> = {
  C: OID_AT_COUNTRY,
  ST: OID_AT_STATE_OR_PROVINCE,
  L: OID_AT_LOCALITY,
  O: OID_AT_ORGANIZATION,
  OU: OID_AT_ORGANIZATIONAL_UNIT,
  CN: OID_AT_COMMON_NAME,
  serialNumber: OID_AT_SERIAL_NUMBER,
};

/** A lone UTF-16 surrogate cannot be written as UTF-8 (RFC 3629 §3); Buffer.from would silently replace it. */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Refuses text that UTF8String cannot carry faithfully. */
export function assertUtf8Text(text: string, what: string): void {
  if (loneSurrogate.test(text)) throw new DerError(`${what}: contains a lone UTF-16 surrogate`);
}

/**
 * AttributeValue encoding: countryName and serialNumber are PrintableString by definition (RFC 5280
 * Appendix A: X520countryName, X520SerialNumber); every other attribute is UTF8String, which RFC
 * 5280 §4.1.2.4 requires for new certificates (DirectoryString) and which carries Japanese text.
 */
function attributeValue(type: AttributeType, value: string): Buffer {
  if (value.length === 0) throw new DerError(`${type}: empty attribute value`);
  if (type === "C") {
    if (!/^[A-Z]{2}$/.test(value)) throw new DerError(`C: not a two-letter country code: ${value}`);
    return printableString(value);
  }
  if (type === "serialNumber") return printableString(value);
  assertUtf8Text(value, type);
  return utf8String(value);
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName, one AttributeTypeAndValue per RDN (RFC 5280 §4.1.2.4). */
export function encodeName(attributes: readonly NameAttribute[]): Buffer {
  return sequence(
    ...attributes.map(([type, value]) =>
      setOf(sequence(oid(attributeOids[type]), attributeValue(type, value))),
    ),
  );
}

/** The visible test marker: every CA name ends with it (JPKI-FACTS §2: "test" must show). */
export const TEST_MARKER: NameAttribute = ["OU", "TEST"];

const JLIS: NameAttribute = ["OU", "Japan Agency for Local Authority Information Systems"];
const purposeUnit: Record<CaPurpose, NameAttribute> = {
  sign: ["OU", "JPKI for digital signature"],
  auth: ["OU", "JPKI for user authentication"],
};

/** CA subject attributes exactly as JPKI-FACTS §2, plus the final OU=TEST. */
export function caNameAttributes(purpose: CaPurpose): NameAttribute[] {
  return [["C", "JP"], ["O", "JPKI"], purposeUnit[purpose], JLIS, TEST_MARKER];
}

/** `C=JP, O=JPKI, OU=JPKI for digital signature, OU=Japan Agency for Local Authority Information Systems, OU=TEST` */
export const SIGNING_CA_NAME: Buffer = encodeName(caNameAttributes("sign"));
/** `C=JP, O=JPKI, OU=JPKI for user authentication, OU=Japan Agency for Local Authority Information Systems, OU=TEST` */
export const AUTH_CA_NAME: Buffer = encodeName(caNameAttributes("auth"));

/** The subject (and issuer) Name of a JPKI root CA. */
export function caName(purpose: CaPurpose): Buffer {
  return purpose === "sign" ? SIGNING_CA_NAME : AUTH_CA_NAME;
}

/**
 * `C=JP, O=公的個人認証サービス` (Public Certification Service for individuals): the directoryName of the
 * CA's SubjectAltName and of the end entities' IssuerAltName (JPKI-FACTS §2).
 */
export const JPKI_SERVICE_DIRECTORY_NAME: Buffer = encodeName([
  ["C", "JP"],
  ["O", "公的個人認証サービス"],
]);

/** Subject of a CA's delegated OCSP responder (RFC 6960 §4.2.2.2): the CA's name, then CN, test-marked. */
export function ocspResponderName(purpose: CaPurpose): Buffer {
  return encodeName([...caNameAttributes(purpose), ["CN", "OCSP Responder"]]);
}

/**
 * Subject of a citizen's certificate: only C=JP and an identifier that says nothing about the person
 * (JPKI-FACTS §2: the user-auth certificate carries no personal data; the signing certificate carries
 * it in SubjectAltName only).
 */
export function endEntityName(identifier: string): Buffer {
  assertUtf8Text(identifier, "CN");
  if (identifier.length === 0) throw new DerError("CN: empty attribute value");
  return sequence(RDN_C_JP, setOf(sequence(oid(OID_AT_COMMON_NAME), utf8String(identifier))));
}

/** The RDN C=JP, encoded once (end-entity names are built on the issuance hot path). */
const RDN_C_JP = setOf(sequence(oid(OID_AT_COUNTRY), printableString("JP")));

/** The SIM maker's attestation root: a separate, test-marked hierarchy (not J-LIS's). */
export const SIM_MAKER_CA_NAME: Buffer = encodeName([
  ["C", "JP"],
  ["O", "SIM maker (TEST)"],
  ["CN", "SIM maker attestation root (TEST)"],
  TEST_MARKER,
]);

/**
 * Subject of a SIM's attestation certificate: the key of the J-LIS security domain on the SIM whose
 * eUICC identifier (EID, 32 decimal digits, GSMA SGP.29) is given.
 */
export function simAttestationName(eid: string): Buffer {
  if (!/^\d{32}$/.test(eid)) throw new DerError(`EID must be 32 decimal digits: ${eid}`);
  return encodeName([
    ["C", "JP"],
    ["O", "SIM maker (TEST)"],
    ["CN", "J-LIS security domain attestation key"],
    ["serialNumber", eid],
  ]);
}

/**
 * Subject of J-LIS's secure channel certificate (the off-card entity of SCP11a, GPC Amendment F), which
 * the SIM maker certifies so that a SIM's J-LIS security domain opens only to J-LIS: the SIM checks
 * the chain to the maker's root and this exact name.
 */
export const JLIS_OCE_NAME: Buffer = encodeName([
  ["C", "JP"],
  ["O", "J-LIS"],
  ["CN", "J-LIS security domain personalisation (SCP11a)"],
  TEST_MARKER,
]);
