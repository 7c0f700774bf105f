/**
 * Encoders of the certificate extensions the JPKI profiles use (RFC 5280 §4.2). Each returns a whole
 * `Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }` (RFC 5280 §4.1).
 */
import { createHash } from "node:crypto";
import { boolean, constructed, DerError, expectTag, explicit, implicit, NULL, namedBits, octetString, oid, readTlvAt, sequence, Tag, utf8String, } from "./der.js";
import { assertUtf8Text } from "./names.js";
import { OID_AD_OCSP, OID_CE_AUTHORITY_KEY_IDENTIFIER, OID_CE_BASIC_CONSTRAINTS, OID_CE_CERTIFICATE_POLICIES, OID_CE_CRL_DISTRIBUTION_POINTS, OID_CE_EXT_KEY_USAGE, OID_CE_ISSUER_ALT_NAME, OID_CE_KEY_USAGE, OID_CE_SUBJECT_ALT_NAME, OID_CE_SUBJECT_KEY_IDENTIFIER, OID_PE_AUTHORITY_INFO_ACCESS, OID_PKIX_OCSP_NOCHECK, } from "./oids.js";
const CRITICAL = boolean(true);
/** Extension: criticality is omitted when FALSE, as DER requires for a DEFAULT value (X.690 §11.5). */
export function extension(extnId, critical, value) {
    return critical
        ? sequence(oid(extnId), CRITICAL, octetString(value))
        : sequence(oid(extnId), octetString(value));
}
/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KeyUsageBit = {
    digitalSignature: 0,
    nonRepudiation: 1,
    keyEncipherment: 2,
    dataEncipherment: 3,
    keyAgreement: 4,
    keyCertSign: 5,
    cRLSign: 6,
};
/** KeyUsage, always critical here (RFC 5280 §4.2.1.3 says SHOULD; JPKI-FACTS §2 marks it critical). */
export function keyUsageExtension(bits) {
    return extension(OID_CE_KEY_USAGE, true, namedBits(bits));
}
/** BasicConstraints cA TRUE, critical (RFC 5280 §4.2.1.9: MUST be critical in CA certificates). */
export function caBasicConstraintsExtension() {
    return extension(OID_CE_BASIC_CONSTRAINTS, true, sequence(CRITICAL));
}
/**
 * Key identifier by method (1) of RFC 5280 §4.2.1.2: the SHA-1 of the BIT STRING subjectPublicKey
 * (excluding tag, length and unused-bits octet) of a SubjectPublicKeyInfo.
 */
export function keyIdentifier(spki) {
    // Two levels only, read directly: this runs for every issued certificate (SKI).
    if (spki.length > 16_384)
        throw new DerError("SubjectPublicKeyInfo too large");
    const outer = expectTag(readTlvAt(spki, 0), Tag.sequence, "SubjectPublicKeyInfo");
    if (outer.encoded.length !== spki.length)
        throw new DerError("SubjectPublicKeyInfo: trailing bytes");
    const algorithm = expectTag(readTlvAt(outer.content, 0), Tag.sequence, "SubjectPublicKeyInfo.algorithm");
    const bits = expectTag(readTlvAt(outer.content, algorithm.encoded.length), Tag.bitString, "SubjectPublicKeyInfo.subjectPublicKey");
    if (algorithm.encoded.length + bits.encoded.length !== outer.content.length)
        throw new DerError("SubjectPublicKeyInfo: expected SEQUENCE { algorithm, subjectPublicKey }");
    if (bits.content.length < 2 || bits.content[0] !== 0)
        throw new DerError("subjectPublicKey: expected whole bytes");
    return createHash("sha1").update(bits.content.subarray(1)).digest();
}
/** SubjectKeyIdentifier, non-critical (RFC 5280 §4.2.1.2). */
export function subjectKeyIdentifierExtension(spki) {
    return extension(OID_CE_SUBJECT_KEY_IDENTIFIER, false, octetString(keyIdentifier(spki)));
}
/** AuthorityKeyIdentifier with keyIdentifier [0] only, non-critical (RFC 5280 §4.2.1.1). */
export function authorityKeyIdentifierExtension(issuerSpki) {
    return extension(OID_CE_AUTHORITY_KEY_IDENTIFIER, false, sequence(implicit(0, keyIdentifier(issuerSpki))));
}
/**
 * GeneralNames holding one directoryName. directoryName is `[4] Name` and Name is a CHOICE, so the tag
 * is EXPLICIT despite the module's IMPLICIT TAGS default (X.680 §31.2.7).
 */
function directoryNames(nameDer) {
    return sequence(explicit(4, nameDer));
}
/** SubjectAltName with a directoryName, non-critical since the subject is not empty (RFC 5280 §4.2.1.6). */
export function subjectAltNameDirectoryExtension(nameDer) {
    return extension(OID_CE_SUBJECT_ALT_NAME, false, directoryNames(nameDer));
}
/** IssuerAltName with a directoryName, non-critical (RFC 5280 §4.2.1.7 SHOULD). */
export function issuerAltNameDirectoryExtension(nameDer) {
    return extension(OID_CE_ISSUER_ALT_NAME, false, directoryNames(nameDer));
}
/**
 * OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY } as the GeneralName
 * alternative `[0] IMPLICIT OtherName` (RFC 5280 §4.2.1.6), the value a UTF8String (JPKI-FACTS §2).
 */
export function utf8OtherName(typeId, value) {
    assertUtf8Text(value, typeId);
    return constructed(0xa0, [oid(typeId), explicit(0, utf8String(value))]);
}
/** SubjectAltName made of otherNames, non-critical (the subject is not empty). */
export function subjectAltNameExtension(generalNames) {
    return extension(OID_CE_SUBJECT_ALT_NAME, false, sequence(...generalNames));
}
/** certificatePolicies with policy identifiers only, non-critical (RFC 5280 §4.2.1.4). */
export function certificatePoliciesExtension(...policyOids) {
    return extension(OID_CE_CERTIFICATE_POLICIES, false, sequence(...policyOids.map((p) => sequence(oid(p)))));
}
/** `[6] IA5String` uniformResourceIdentifier (RFC 5280 §4.2.1.6); refuses non-ASCII (IRIs must be mapped). */
function uriGeneralName(uri) {
    if (!/^[\x21-\x7e]+$/.test(uri))
        throw new DerError(`URI must be printable ASCII: ${JSON.stringify(uri)}`);
    return implicit(6, Buffer.from(uri, "latin1"));
}
/**
 * cRLDistributionPoints with one DistributionPoint whose distributionPoint is `[0] fullName [0]
 * GeneralNames` holding the URI, without reasons or cRLIssuer (RFC 5280 §4.2.1.13).
 */
export function crlDistributionPointExtension(url) {
    const distributionPointName = implicit(0, uriGeneralName(url), true);
    return extension(OID_CE_CRL_DISTRIBUTION_POINTS, false, sequence(sequence(explicit(0, distributionPointName))));
}
/** authorityInfoAccess with one id-ad-ocsp AccessDescription, non-critical (RFC 5280 §4.2.2.1). */
export function ocspAccessExtension(url) {
    return extension(OID_PE_AUTHORITY_INFO_ACCESS, false, sequence(sequence(oid(OID_AD_OCSP), uriGeneralName(url))));
}
/** extKeyUsage (RFC 5280 §4.2.1.12). Non-critical, as common practice for OCSP responders. */
export function extKeyUsageExtension(...purposeOids) {
    return extension(OID_CE_EXT_KEY_USAGE, false, sequence(...purposeOids.map((p) => oid(p))));
}
/** id-pkix-ocsp-nocheck, whose value is NULL (RFC 6960 §4.2.2.2.1), non-critical. */
export function ocspNoCheckExtension() {
    return extension(OID_PKIX_OCSP_NOCHECK, false, NULL);
}
//# sourceMappingURL=extensions.js.map