/**
 * Every OBJECT IDENTIFIER the certificate profiles use, in dotted form (encode with der.oid, which
 * caches the encodings). Grouped by the standard that assigns them.
 */

// ---------------------------------------------------------------------------------------------
// Attribute types of a Name (X.520; RFC 5280 §4.1.2.4 and Appendix A)

export const OID_AT_COMMON_NAME = "2.5.4.3";
/** X520SerialNumber ::= PrintableString (RFC 5280 Appendix A): the SIM's EID goes here. */
export const OID_AT_SERIAL_NUMBER = "2.5.4.5";
export const OID_AT_COUNTRY = "2.5.4.6";
export const OID_AT_LOCALITY = "2.5.4.7";
export const OID_AT_STATE_OR_PROVINCE = "2.5.4.8";
export const OID_AT_ORGANIZATION = "2.5.4.10";
export const OID_AT_ORGANIZATIONAL_UNIT = "2.5.4.11";

// ---------------------------------------------------------------------------------------------
// Certificate extensions (RFC 5280 §4.2)

export const OID_CE_SUBJECT_KEY_IDENTIFIER = "2.5.29.14";
export const OID_CE_KEY_USAGE = "2.5.29.15";
export const OID_CE_SUBJECT_ALT_NAME = "2.5.29.17";
export const OID_CE_ISSUER_ALT_NAME = "2.5.29.18";
export const OID_CE_BASIC_CONSTRAINTS = "2.5.29.19";
export const OID_CE_CRL_DISTRIBUTION_POINTS = "2.5.29.31";
export const OID_CE_CERTIFICATE_POLICIES = "2.5.29.32";
export const OID_CE_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35";
export const OID_CE_EXT_KEY_USAGE = "2.5.29.37";
/** id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1). */
export const OID_PE_AUTHORITY_INFO_ACCESS = "1.3.6.1.5.5.7.1.1";
/** id-ad-ocsp, the access method of an OCSP responder in AuthorityInfoAccess (RFC 5280 §4.2.2.1). */
export const OID_AD_OCSP = "1.3.6.1.5.5.7.48.1";
/** id-kp-OCSPSigning (RFC 5280 §4.2.1.12): marks a delegated OCSP responder (RFC 6960 §4.2.2.2). */
export const OID_KP_OCSP_SIGNING = "1.3.6.1.5.5.7.3.9";
/** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients need not check the responder's own status. */
export const OID_PKIX_OCSP_NOCHECK = "1.3.6.1.5.5.7.48.1.5";

// ---------------------------------------------------------------------------------------------
// Keys (RFC 3279 §2.3, RFC 5480 §2.1.1)

export const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
export const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
export const OID_CURVE_P256 = "1.2.840.10045.3.1.7";

// ---------------------------------------------------------------------------------------------
// JPKI: SubjectAltName otherName types of the signing certificate (JPKI-FACTS §2)

/** 氏名 (name), UTF8String. */
export const OID_JPKI_NAME = "1.2.392.200149.8.5.5.1";
/** 氏名代替文字の使用位置 (positions of substitute characters in the name), UTF8String. */
export const OID_JPKI_NAME_SUBSTITUTES = "1.2.392.200149.8.5.5.2";
/** 性別 (sex): "1" male, "2" female, "3" unknown. */
export const OID_JPKI_SEX = "1.2.392.200149.8.5.5.3";
/** 生年月日 (birth date) as EYYYYMMDD: era digit then the Gregorian date. */
export const OID_JPKI_BIRTH_DATE = "1.2.392.200149.8.5.5.4";
/** 住所 (address), UTF8String. */
export const OID_JPKI_ADDRESS = "1.2.392.200149.8.5.5.5";
/** 住所代替文字の使用位置 (positions of substitute characters in the address), UTF8String. */
export const OID_JPKI_ADDRESS_SUBSTITUTES = "1.2.392.200149.8.5.5.6";

// ---------------------------------------------------------------------------------------------
// Certificate policies. TEST arc only (JPKI-FACTS §2: 1.2.392.200149.8.5.1.0.x is the arc of the
// JPKI test cards), so nobody mistakes these certificates for production ones. The last arc mirrors
// the production numbering (signing ...1.1.20, user-auth ...1.3.30): .20/.30 for the card, and the
// next number (.21/.31) for the smartphone, whose certificates are separate from the card's.
// The production OIDs are deliberately not defined anywhere in this project.

/** My Number card signing certificate (署名用電子証明書), test policy. */
export const OID_POLICY_TEST_CARD_SIGNING = "1.2.392.200149.8.5.1.0.20";
/** Smartphone (SIM) signing certificate (移動端末設備用署名用電子証明書), test policy. */
export const OID_POLICY_TEST_SMARTPHONE_SIGNING = "1.2.392.200149.8.5.1.0.21";
/** My Number card user-authentication certificate (利用者証明用電子証明書), test policy. */
export const OID_POLICY_TEST_CARD_AUTH = "1.2.392.200149.8.5.1.0.30";
/** Smartphone (SIM) user-authentication certificate (移動端末設備用利用者証明用電子証明書), test policy. */
export const OID_POLICY_TEST_SMARTPHONE_AUTH = "1.2.392.200149.8.5.1.0.31";

/** Short names for printing (RFC 4514 §3 keywords where one exists). */
export const ATTRIBUTE_SHORT_NAMES: Readonly<Record<string, string>> = {
  [OID_AT_COMMON_NAME]: "CN",
  [OID_AT_SERIAL_NUMBER]: "serialNumber",
  [OID_AT_COUNTRY]: "C",
  [OID_AT_LOCALITY]: "L",
  [OID_AT_STATE_OR_PROVINCE]: "ST",
  [OID_AT_ORGANIZATION]: "O",
  [OID_AT_ORGANIZATIONAL_UNIT]: "OU",
};

// ---------------------------------------------------------------------------------------------
// CRL and CRL entry extensions (RFC 5280 §5.2, §5.3)

export const OID_CE_CRL_NUMBER = "2.5.29.20";
export const OID_CE_CRL_REASON = "2.5.29.21";
export const OID_CE_INVALIDITY_DATE = "2.5.29.24";
export const OID_CE_DELTA_CRL_INDICATOR = "2.5.29.27";
export const OID_CE_ISSUING_DISTRIBUTION_POINT = "2.5.29.28";
/** FreshestCRL (RFC 5280 §4.2.1.15, §5.2.6): where the delta CRLs of a complete CRL are published. */
export const OID_CE_FRESHEST_CRL = "2.5.29.46";

// ---------------------------------------------------------------------------------------------
// OCSP (RFC 6960 §4.2.1, §4.4; RFC 8954) and the hashes of its CertID (RFC 6960 §4.1.1)

/** id-pkix-ocsp-basic: the BasicOCSPResponse type of responseBytes. */
export const OID_PKIX_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1";
/** id-pkix-ocsp-nonce (RFC 8954 §2.1). */
export const OID_PKIX_OCSP_NONCE = "1.3.6.1.5.5.7.48.1.2";
/** id-sha1 (RFC 3279 §2.2.1): the CertID hash RFC 5019 §2.1.1 makes clients use. */
export const OID_SHA1 = "1.3.14.3.2.26";
/** id-sha256 (RFC 5754 §2.2). */
export const OID_SHA256 = "2.16.840.1.101.3.4.2.1";

// ---------------------------------------------------------------------------------------------
// CMS (RFC 5652): content types (§4, §5.1) and the signed attributes of §11

/** id-data (RFC 5652 §4): arbitrary octets, the default content of a SignedData. */
export const OID_CT_DATA = "1.2.840.113549.1.7.1";
/** id-signedData (RFC 5652 §5.1). */
export const OID_CT_SIGNED_DATA = "1.2.840.113549.1.7.2";
/** id-contentType (RFC 5652 §11.1): the signed copy of eContentType. */
export const OID_AA_CONTENT_TYPE = "1.2.840.113549.1.9.3";
/** id-messageDigest (RFC 5652 §11.2): the hash of the eContent octets. */
export const OID_AA_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
/** id-signingTime (RFC 5652 §11.3). */
export const OID_AA_SIGNING_TIME = "1.2.840.113549.1.9.5";
