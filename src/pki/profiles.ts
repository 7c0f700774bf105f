/**
 * The certificate profiles of the JPKI-style test hierarchy (JPKI-FACTS §2), each a function returning
 * the DER of a TBSCertificate (RFC 5280 §4.1) for the signer to sign and `assembleSigned` to wrap.
 *
 * End-entity profiles are built on the issuance hot path, so what does not depend on the subject
 * (algorithm identifier, AuthorityKeyIdentifier, fixed extensions, URLs) is encoded once and reused.
 */
import { JpkiError } from "../errors.js";
import { type KeyAlgorithm, signatureAlgorithmIdentifier } from "./algorithms.js";
import { DerError, integer, sequence, tlv, x509Time } from "./der.js";
import {
  authorityKeyIdentifierExtension,
  caBasicConstraintsExtension,
  certificatePoliciesExtension,
  crlDistributionPointExtension,
  extKeyUsageExtension,
  issuerAltNameDirectoryExtension,
  KeyUsageBit,
  keyUsageExtension,
  ocspAccessExtension,
  ocspNoCheckExtension,
  subjectAltNameDirectoryExtension,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
  utf8OtherName,
} from "./extensions.js";
import {
  AUTH_CA_NAME,
  type CaPurpose,
  endEntityName,
  JLIS_OCE_NAME,
  JPKI_SERVICE_DIRECTORY_NAME,
  ocspResponderName,
  SIGNING_CA_NAME,
  SIM_MAKER_CA_NAME,
  simAttestationName,
} from "./names.js";
import {
  OID_JPKI_ADDRESS,
  OID_JPKI_ADDRESS_SUBSTITUTES,
  OID_JPKI_BIRTH_DATE,
  OID_JPKI_NAME,
  OID_JPKI_NAME_SUBSTITUTES,
  OID_JPKI_SEX,
  OID_KP_OCSP_SIGNING,
  OID_POLICY_TEST_CARD_AUTH,
  OID_POLICY_TEST_CARD_SIGNING,
  OID_POLICY_TEST_SMARTPHONE_AUTH,
  OID_POLICY_TEST_SMARTPHONE_SIGNING,
} from "./oids.js";
import { serialToHex } from "./serial.js";
import { type CalendarDate, eraDate, type Validity } from "./validity.js";

/** The CA that signs a certificate: its Name and SubjectPublicKeyInfo (DER) and its key's algorithm. */
export interface IssuerKey {
  /** The issuer's subject Name, DER: becomes the certificate's issuer field. */
  readonly name: Buffer;
  /** The issuer's SubjectPublicKeyInfo, DER: its key identifier becomes the AuthorityKeyIdentifier. */
  readonly spki: Buffer;
  /** Algorithm of the issuer's key; selects the TBS signature AlgorithmIdentifier. */
  readonly algorithm: KeyAlgorithm;
}

/** Inputs of a self-signed root. */
export interface RootCaInput {
  readonly serial: Buffer;
  /** The root's own SubjectPublicKeyInfo, DER. */
  readonly spki: Buffer;
  readonly validity: Validity;
}

/** Inputs every end-entity profile takes. */
export interface EndEntityInput {
  readonly serial: Buffer;
  readonly issuer: IssuerKey;
  /** The subject's SubjectPublicKeyInfo, DER. */
  readonly subjectSpki: Buffer;
  readonly validity: Validity;
}

/** Inputs of a citizen's certificate (card or smartphone). */
export interface CitizenCertificateInput extends EndEntityInput {
  /** Base URL of the status services, e.g. `http://127.0.0.1:8080` (no trailing slash needed). */
  readonly baseUrl: string;
  /** CRL shard chosen at issuance (see serial.shardOf); written into the CRL distribution point. */
  readonly shard: number;
  /** CN of the subject; by default the serial's hex, which says nothing about the person. */
  readonly subjectId?: string;
  /** Adds a SubjectKeyIdentifier (RFC 5280 §4.2.1.2 SHOULD for end entities; costs a SHA-1). Default true. */
  readonly subjectKeyIdentifier?: boolean;
}

/** 性別 as JPKI codes it (JPKI-FACTS §2). */
export type Sex = 1 | 2 | 3;

/**
 * The 4 basic attributes (基本4情報: name, sex, birth date, address) that the signing certificate's
 * SubjectAltName carries, with the positions of substitute characters (代替文字) in name and address.
 */
export interface BasicAttributes {
  readonly name: string;
  /** Positions of characters replaced by substitutes in `name`; empty when none. */
  readonly nameSubstitutes?: string;
  readonly sex: Sex;
  readonly birthDate: CalendarDate;
  readonly address: string;
  /** Positions of characters replaced by substitutes in `address`; empty when none. */
  readonly addressSubstitutes?: string;
}

export interface SigningCertificateInput extends CitizenCertificateInput {
  readonly person: BasicAttributes;
}

/** The four citizen certificate kinds. */
export type CitizenCertificateKind = "card-sign" | "card-auth" | "phone-sign" | "phone-auth";

// ---------------------------------------------------------------------------------------------
// URLs of the status services (DESIGN §6)

function trimBase(baseUrl: string): string {
  return baseUrl.endsWith("/") ? baseUrl.slice(0, -1) : baseUrl;
}

/** `${baseUrl}/crl/{auth|sign}/${shard}.crl`: where the CRL shard of a certificate is published. */
export function crlUrl(baseUrl: string, purpose: CaPurpose, shard: number): string {
  if (!Number.isInteger(shard) || shard < 0) throw new RangeError(`bad CRL shard ${shard}`);
  return `${trimBase(baseUrl)}/crl/${purpose}/${shard}.crl`;
}

/** `${baseUrl}/ocsp`: the OCSP responder (RFC 6960 over HTTP, Appendix A). */
export function ocspUrl(baseUrl: string): string {
  return `${trimBase(baseUrl)}/ocsp`;
}

// ---------------------------------------------------------------------------------------------
// Caches of encodings that do not depend on the subject

/** A bounded memo: the key spaces (issuers, base URLs, shards) are small; clearing keeps it bounded. */
function memo<T>(limit: number, make: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) {
      if (cache.size >= limit) cache.clear();
      value = make(key);
      cache.set(key, value);
    }
    return value;
  };
}

const akiByIssuer = new WeakMap<Buffer, Buffer>();

/** AuthorityKeyIdentifier of an issuer, computed once per SPKI buffer. */
function authorityKeyIdentifierOf(issuer: IssuerKey): Buffer {
  let aki = akiByIssuer.get(issuer.spki);
  if (!aki) {
    aki = authorityKeyIdentifierExtension(issuer.spki);
    akiByIssuer.set(issuer.spki, aki);
  }
  return aki;
}

const algorithmIdentifiers: Record<KeyAlgorithm, Buffer> = {
  "rsa-2048": signatureAlgorithmIdentifier("rsa-2048"),
  "ec-p256": signatureAlgorithmIdentifier("ec-p256"),
};

const ocspAccessFor = memo(1000, (baseUrl) => ocspAccessExtension(ocspUrl(baseUrl)));
const crlDistributionPointFor = memo(100_000, (key) => crlDistributionPointExtension(key));

const KU_CA = keyUsageExtension([KeyUsageBit.keyCertSign, KeyUsageBit.cRLSign]);
const KU_SIGNING = keyUsageExtension([KeyUsageBit.digitalSignature, KeyUsageBit.nonRepudiation]);
const KU_DIGITAL_SIGNATURE = keyUsageExtension([KeyUsageBit.digitalSignature]);
const KU_ATTESTATION = keyUsageExtension([KeyUsageBit.digitalSignature, KeyUsageBit.keyAgreement]);
const KU_KEY_AGREEMENT = keyUsageExtension([KeyUsageBit.keyAgreement]);
const BC_CA = caBasicConstraintsExtension();
const SAN_JPKI_SERVICE = subjectAltNameDirectoryExtension(JPKI_SERVICE_DIRECTORY_NAME);
const IAN_JPKI_SERVICE = issuerAltNameDirectoryExtension(JPKI_SERVICE_DIRECTORY_NAME);
const EKU_OCSP_SIGNING = extKeyUsageExtension(OID_KP_OCSP_SIGNING);
const OCSP_NOCHECK = ocspNoCheckExtension();

/** The (test) certificate policy of each citizen certificate kind; relying parties check it. */
export const CITIZEN_POLICY_OIDS: Readonly<Record<CitizenCertificateKind, string>> = {
  "card-sign": OID_POLICY_TEST_CARD_SIGNING,
  "card-auth": OID_POLICY_TEST_CARD_AUTH,
  "phone-sign": OID_POLICY_TEST_SMARTPHONE_SIGNING,
  "phone-auth": OID_POLICY_TEST_SMARTPHONE_AUTH,
};

/** Which CA issues a kind: signing kinds under the signing CA, the others under the user-auth CA. */
export function purposeOf(kind: CitizenCertificateKind): CaPurpose {
  return kind === "card-sign" || kind === "phone-sign" ? "sign" : "auth";
}

const policyOf: Record<CitizenCertificateKind, Buffer> = {
  "card-sign": certificatePoliciesExtension(CITIZEN_POLICY_OIDS["card-sign"]),
  "card-auth": certificatePoliciesExtension(CITIZEN_POLICY_OIDS["card-auth"]),
  "phone-sign": certificatePoliciesExtension(CITIZEN_POLICY_OIDS["phone-sign"]),
  "phone-auth": certificatePoliciesExtension(CITIZEN_POLICY_OIDS["phone-auth"]),
};

/** `[0] EXPLICIT Version` v3 (RFC 5280 §4.1.2.1): extensions are present. */
const VERSION_V3 = Buffer.from("a003020102", "hex");

// ---------------------------------------------------------------------------------------------
// TBSCertificate

function checkedSerial(serial: Buffer): Buffer {
  // RFC 5280 §4.1.2.2: a positive INTEGER of at most 20 octets. der.integer reads the Buffer as an
  // unsigned magnitude, so only zero and oversize values need refusing here.
  const encoded = integer(serial);
  if (encoded.length > 22 || (encoded.length === 3 && encoded[2] === 0))
    throw new DerError(`serial must be positive and at most 20 octets: ${serialToHex(serial)}`);
  return encoded;
}

function checkedValidity(validity: Validity): Buffer {
  const { notBefore, notAfter } = validity;
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime()) || notAfter < notBefore)
    throw new JpkiError("bad-input", "validity: notAfter must not precede notBefore");
  return sequence(x509Time(notBefore), x509Time(notAfter));
}

/**
 * TBSCertificate (RFC 5280 §4.1): version v3, serial, signature, issuer, validity, subject,
 * subjectPublicKeyInfo, `[3] EXPLICIT Extensions`.
 */
function tbsCertificate(
  serial: Buffer,
  algorithm: KeyAlgorithm,
  issuerName: Buffer,
  validity: Validity,
  subjectName: Buffer,
  subjectSpki: Buffer,
  extensions: Buffer[],
): Buffer {
  return sequence(
    VERSION_V3,
    checkedSerial(serial),
    algorithmIdentifiers[algorithm],
    issuerName,
    checkedValidity(validity),
    subjectName,
    subjectSpki,
    tlv(0xa3, sequence(...extensions)),
  );
}

// ---------------------------------------------------------------------------------------------
// Root CAs

function jpkiRootTbs(name: Buffer, input: RootCaInput): Buffer {
  return tbsCertificate(input.serial, "rsa-2048", name, input.validity, name, input.spki, [
    BC_CA,
    KU_CA,
    subjectKeyIdentifierExtension(input.spki),
    SAN_JPKI_SERVICE,
  ]);
}

/**
 * 署名用認証局 (signing CA): self-signed one-tier root, RSA-2048 with sha256WithRSAEncryption
 * (JPKI-FACTS §2). Self-signed, so no AuthorityKeyIdentifier (RFC 5280 §4.2.1.1 allows omitting it).
 */
export function signingCaTbs(input: RootCaInput): Buffer {
  return jpkiRootTbs(SIGNING_CA_NAME, input);
}

/** 利用者証明用認証局 (user-authentication CA): as signingCaTbs, with its own name. */
export function authenticationCaTbs(input: RootCaInput): Buffer {
  return jpkiRootTbs(AUTH_CA_NAME, input);
}

/** The JPKI root of a purpose. */
export function jpkiCaTbs(purpose: CaPurpose, input: RootCaInput): Buffer {
  return purpose === "sign" ? signingCaTbs(input) : authenticationCaTbs(input);
}

// ---------------------------------------------------------------------------------------------
// Citizen certificates

/**
 * The otherNames of the signing certificate's SubjectAltName, in OID order (JPKI-FACTS §2): name,
 * name substitute positions, sex, birth date (EYYYYMMDD), address, address substitute positions.
 * All six are always present (empty positions when there are none), so relying parties meet one shape.
 */
export function basicAttributesSubjectAltName(person: BasicAttributes): Buffer {
  if (person.sex !== 1 && person.sex !== 2 && person.sex !== 3)
    throw new JpkiError("bad-input", `sex must be 1, 2 or 3: ${String(person.sex)}`);
  if (person.name.length === 0) throw new JpkiError("bad-input", "name must not be empty");
  if (person.address.length === 0) throw new JpkiError("bad-input", "address must not be empty");
  return subjectAltNameExtension([
    utf8OtherName(OID_JPKI_NAME, person.name),
    utf8OtherName(OID_JPKI_NAME_SUBSTITUTES, person.nameSubstitutes ?? ""),
    utf8OtherName(OID_JPKI_SEX, String(person.sex)),
    utf8OtherName(OID_JPKI_BIRTH_DATE, eraDate(person.birthDate)),
    utf8OtherName(OID_JPKI_ADDRESS, person.address),
    utf8OtherName(OID_JPKI_ADDRESS_SUBSTITUTES, person.addressSubstitutes ?? ""),
  ]);
}

function citizenTbs(
  kind: CitizenCertificateKind,
  input: CitizenCertificateInput,
  subjectAltName: Buffer | undefined,
): Buffer {
  const purpose = purposeOf(kind);
  const extensions = [
    purpose === "sign" ? KU_SIGNING : KU_DIGITAL_SIGNATURE,
    policyOf[kind],
    IAN_JPKI_SERVICE,
    crlDistributionPointFor(crlUrl(input.baseUrl, purpose, input.shard)),
    ocspAccessFor(input.baseUrl),
    authorityKeyIdentifierOf(input.issuer),
  ];
  if (subjectAltName) extensions.push(subjectAltName);
  if (input.subjectKeyIdentifier !== false) extensions.push(subjectKeyIdentifierExtension(input.subjectSpki));
  const subjectId = input.subjectId ?? serialToHex(input.serial).toUpperCase();
  return tbsCertificate(
    input.serial,
    input.issuer.algorithm,
    input.issuer.name,
    input.validity,
    endEntityName(subjectId),
    input.subjectSpki,
    extensions,
  );
}

/**
 * My Number card 署名用電子証明書 (signing certificate): KeyUsage critical digitalSignature +
 * nonRepudiation; the 4 basic attributes as SubjectAltName otherNames; IssuerAltName DirName;
 * test policy; CRL distribution point of its shard; OCSP access; AKI; SKI unless disabled.
 */
export function cardSigningCertificateTbs(input: SigningCertificateInput): Buffer {
  return citizenTbs("card-sign", input, basicAttributesSubjectAltName(input.person));
}

/**
 * My Number card 利用者証明用電子証明書 (user-authentication certificate): KeyUsage critical
 * digitalSignature, and no personal data at all: the subject is C=JP and an opaque identifier.
 */
export function cardAuthenticationCertificateTbs(input: CitizenCertificateInput): Buffer {
  return citizenTbs("card-auth", input, undefined);
}

/** Smartphone (SIM) signing certificate: the card signing profile under the smartphone test policy. */
export function smartphoneSigningCertificateTbs(input: SigningCertificateInput): Buffer {
  return citizenTbs("phone-sign", input, basicAttributesSubjectAltName(input.person));
}

/** Smartphone (SIM) user-authentication certificate: the card auth profile under the smartphone test policy. */
export function smartphoneAuthenticationCertificateTbs(input: CitizenCertificateInput): Buffer {
  return citizenTbs("phone-auth", input, undefined);
}

/** Any citizen certificate by kind; signing kinds need `person`. */
export function citizenCertificateTbs(
  kind: CitizenCertificateKind,
  input: CitizenCertificateInput & { readonly person?: BasicAttributes },
): Buffer {
  if (kind === "card-auth" || kind === "phone-auth") return citizenTbs(kind, input, undefined);
  if (!input.person) throw new JpkiError("bad-input", `${kind}: the basic attributes are required`);
  return citizenTbs(kind, input, basicAttributesSubjectAltName(input.person));
}

// ---------------------------------------------------------------------------------------------
// OCSP responders

export interface OcspResponderInput extends EndEntityInput {
  /** Which CA delegates its OCSP signing to this certificate. */
  readonly purpose: CaPurpose;
}

/**
 * Delegated OCSP responder of a CA (RFC 6960 §4.2.2.2): issued by the CA itself, extKeyUsage
 * id-kp-OCSPSigning, id-pkix-ocsp-nocheck (so clients do not ask for its own status; RFC 6960
 * §4.2.2.2.1 then wants a short validity: pass one, see validity.shortValidity), KeyUsage critical
 * digitalSignature, AKI, SKI.
 */
export function ocspResponderCertificateTbs(input: OcspResponderInput): Buffer {
  return tbsCertificate(
    input.serial,
    input.issuer.algorithm,
    input.issuer.name,
    input.validity,
    ocspResponderName(input.purpose),
    input.subjectSpki,
    [
      KU_DIGITAL_SIGNATURE,
      EKU_OCSP_SIGNING,
      OCSP_NOCHECK,
      authorityKeyIdentifierOf(input.issuer),
      subjectKeyIdentifierExtension(input.subjectSpki),
    ],
  );
}

// ---------------------------------------------------------------------------------------------
// SIM maker attestation

/**
 * The SIM maker's attestation root (a separate test hierarchy, not J-LIS's): EC P-256 key,
 * ecdsa-with-SHA256 (RFC 5758 §3.2), CA extensions as the JPKI roots but without the JPKI DirName.
 */
export function simMakerCaTbs(input: RootCaInput): Buffer {
  return tbsCertificate(
    input.serial,
    "ec-p256",
    SIM_MAKER_CA_NAME,
    input.validity,
    SIM_MAKER_CA_NAME,
    input.spki,
    [BC_CA, KU_CA, subjectKeyIdentifierExtension(input.spki)],
  );
}

export interface SimAttestationInput extends EndEntityInput {
  /** The SIM's eUICC identifier, 32 digits (GSMA SGP.29). */
  readonly eid: string;
}

/**
 * Attestation certificate of the J-LIS security domain's key on a SIM (P-256, for ECKA key agreement
 * in SCP11 and for signing key attestations): KeyUsage critical digitalSignature + keyAgreement,
 * subject carrying the EID, AKI, SKI. Issued by the SIM maker's root.
 */
export function simAttestationCertificateTbs(input: SimAttestationInput): Buffer {
  return tbsCertificate(
    input.serial,
    input.issuer.algorithm,
    input.issuer.name,
    input.validity,
    simAttestationName(input.eid),
    input.subjectSpki,
    [
      KU_ATTESTATION,
      authorityKeyIdentifierOf(input.issuer),
      subjectKeyIdentifierExtension(input.subjectSpki),
    ],
  );
}

/**
 * J-LIS's secure channel certificate (the SCP11a off-card entity, GPC Amendment F), issued by the SIM
 * maker's root, which every SIM trusts for its J-LIS security domain: P-256, KeyUsage critical
 * keyAgreement only, subject JLIS_OCE_NAME (the SIM refuses any other name), AKI, SKI.
 */
export function jlisOceCertificateTbs(input: EndEntityInput): Buffer {
  return tbsCertificate(
    input.serial,
    input.issuer.algorithm,
    input.issuer.name,
    input.validity,
    JLIS_OCE_NAME,
    input.subjectSpki,
    [
      KU_KEY_AGREEMENT,
      authorityKeyIdentifierOf(input.issuer),
      subjectKeyIdentifierExtension(input.subjectSpki),
    ],
  );
}
