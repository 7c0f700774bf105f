/**
 * Reading certificates (RFC 5280 §4.1) with our strict, bounded DER reader: the fields the registry
 * stores and the CLI prints. It checks structure, not trust: chain and signature checks live elsewhere.
 */
import { createPublicKey, verify } from "node:crypto";
import { OID_ECDSA_WITH_SHA256, OID_SHA256_WITH_RSA } from "./algorithms.js";
import { children, DerError, expectTag, readDer, readInteger, readOid, readString, readTime, readTlvAt, Tag, } from "./der.js";
import { ATTRIBUTE_SHORT_NAMES, OID_CE_SUBJECT_ALT_NAME, OID_CURVE_P256, OID_EC_PUBLIC_KEY, OID_JPKI_ADDRESS, OID_JPKI_ADDRESS_SUBSTITUTES, OID_JPKI_BIRTH_DATE, OID_JPKI_NAME, OID_JPKI_NAME_SUBSTITUTES, OID_JPKI_SEX, OID_RSA_ENCRYPTION, } from "./oids.js";
/** Certificates are small; anything larger or deeper than this is refused before parsing. */
export const CERTIFICATE_LIMITS = { maxDepth: 16, maxBytes: 64 * 1024 };
/**
 * Parses a DER certificate: `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 * signatureValue }` (RFC 5280 §4.1). Throws DerError on anything malformed, including a TBS
 * signature algorithm different from the outer one (§4.1.1.2) and duplicate extensions (§4.2).
 */
export function parseCertificate(der, limits = CERTIFICATE_LIMITS) {
    const top = expectTag(readDer(der, limits), Tag.sequence, "Certificate");
    const [tbsNode, algNode, sigNode, ...extra] = children(top);
    if (extra.length)
        throw new DerError("Certificate: unexpected fields after signatureValue");
    const tbs = expectTag(tbsNode, Tag.sequence, "tbsCertificate");
    const signatureAlgorithm = expectTag(algNode, Tag.sequence, "signatureAlgorithm");
    const signatureBits = expectTag(sigNode, Tag.bitString, "signatureValue");
    if (signatureBits.content.length < 1 || signatureBits.content[0] !== 0)
        throw new DerError("signatureValue: expected whole bytes");
    const fields = children(tbs);
    let i = 0;
    let version = 1;
    if (fields[0]?.tag === 0xa0) {
        const inner = children(fields[0]);
        if (inner.length !== 1)
            throw new DerError("version: expected one INTEGER");
        const v = readInteger(inner[0]);
        if (v !== 1n && v !== 2n)
            throw new DerError(`version: unknown value ${v}`);
        version = Number(v) + 1;
        i++;
    }
    const serialNode = expectTag(fields[i++], Tag.integer, "serialNumber");
    if (readInteger(serialNode) <= 0n)
        throw new DerError("serialNumber: must be positive");
    const serial = serialNode.content[0] === 0 ? serialNode.content.subarray(1) : serialNode.content;
    const innerAlg = expectTag(fields[i++], Tag.sequence, "signature");
    if (!innerAlg.encoded.equals(signatureAlgorithm.encoded))
        throw new DerError("the TBS signature algorithm differs from signatureAlgorithm");
    const issuer = expectTag(fields[i++], Tag.sequence, "issuer");
    const validity = children(expectTag(fields[i++], Tag.sequence, "validity"));
    if (validity.length !== 2)
        throw new DerError("validity: expected notBefore and notAfter");
    const subject = expectTag(fields[i++], Tag.sequence, "subject");
    const spki = expectTag(fields[i++], Tag.sequence, "subjectPublicKeyInfo");
    let extensions = [];
    for (; i < fields.length; i++) {
        const field = fields[i];
        if (field.tag === 0x81 || field.tag === 0x82)
            continue; // issuer/subjectUniqueID (§4.1.2.8)
        if (field.tag !== 0xa3 || i !== fields.length - 1)
            throw new DerError(`tbsCertificate: unexpected field with tag 0x${field.tag.toString(16)}`);
        if (version !== 3)
            throw new DerError("extensions in a certificate that is not v3");
        const inner = children(field);
        if (inner.length !== 1)
            throw new DerError("extensions: expected one SEQUENCE");
        extensions = parseExtensions(expectTag(inner[0], Tag.sequence, "extensions"));
    }
    return {
        der: top.encoded,
        tbs: tbs.encoded,
        version,
        serial,
        serialHex: serial.toString("hex"),
        issuerDer: issuer.encoded,
        subjectDer: subject.encoded,
        notBefore: readTime(validity[0]),
        notAfter: readTime(validity[1]),
        spki: spki.encoded,
        signatureAlgorithmOid: readOid(expectTag(children(signatureAlgorithm)[0], Tag.oid, "algorithm")),
        signatureAlgorithm: signatureAlgorithm.encoded,
        signature: signatureBits.content.subarray(1),
        extensions,
    };
}
function parseExtensions(node) {
    const out = [];
    const seen = new Set();
    for (const ext of children(node)) {
        const parts = children(expectTag(ext, Tag.sequence, "Extension"));
        const extnId = readOid(expectTag(parts[0], Tag.oid, "extnID"));
        let critical = false;
        let valueNode = parts[1];
        if (valueNode?.tag === Tag.boolean) {
            // DER: a present critical flag is TRUE, encoded as FF (X.690 §11.1, §11.5).
            if (valueNode.content.length !== 1 || valueNode.content[0] !== 0xff)
                throw new DerError(`extension ${extnId}: critical must be encoded TRUE (FF) when present`);
            critical = true;
            valueNode = parts[2];
        }
        const value = expectTag(valueNode, Tag.octetString, `extension ${extnId} value`);
        if (parts.length !== (critical ? 3 : 2))
            throw new DerError(`extension ${extnId}: unexpected fields`);
        if (seen.has(extnId))
            throw new DerError(`extension ${extnId} appears twice`);
        seen.add(extnId);
        out.push({ oid: extnId, critical, value: value.content });
    }
    return out;
}
/** The extension with this OID, if present. */
export function findExtension(cert, extnId) {
    return cert.extensions.find((e) => e.oid === extnId);
}
/** The attributes of a Name (RFC 5280 §4.1.2.4) in encoded order, RDN by RDN. */
export function parseName(nameDer, limits = CERTIFICATE_LIMITS) {
    const name = expectTag(readDer(nameDer, limits), Tag.sequence, "Name");
    return children(name).map((rdn) => children(expectTag(rdn, Tag.set, "RelativeDistinguishedName")).map((atv) => {
        const [typeNode, valueNode, ...rest] = children(expectTag(atv, Tag.sequence, "AttributeTypeAndValue"));
        if (!valueNode || rest.length)
            throw new DerError("AttributeTypeAndValue: expected type and value");
        const attributeOid = readOid(expectTag(typeNode, Tag.oid, "AttributeType"));
        let value;
        try {
            value = readString(valueNode);
        }
        catch {
            value = `#${valueNode.encoded.toString("hex")}`;
        }
        return { oid: attributeOid, type: ATTRIBUTE_SHORT_NAMES[attributeOid] ?? attributeOid, value };
    }));
}
/** Escapes an attribute value as RFC 4514 §2.4 asks (hex-form values are left as they are). */
function escapeValue(value) {
    if (value.startsWith("#") && /^#[0-9a-f]+$/.test(value))
        return value;
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
export function renderName(nameDer) {
    return parseName(nameDer)
        .map((rdn) => rdn.map((a) => `${a.type}=${escapeValue(a.value)}`).join("+"))
        .join(", ");
}
const jpkiFields = {
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
export function readJpkiSubjectAltName(cert) {
    const san = findExtension(cert, OID_CE_SUBJECT_ALT_NAME);
    if (!san)
        return undefined;
    const out = {};
    let found = false;
    for (const generalName of children(expectTag(readDer(san.value), Tag.sequence, "GeneralNames"))) {
        if (generalName.tag !== 0xa0)
            continue;
        const [typeNode, valueNode, ...rest] = children(generalName);
        if (!valueNode || rest.length || valueNode.tag !== 0xa0)
            throw new DerError("malformed otherName");
        const field = jpkiFields[readOid(expectTag(typeNode, Tag.oid, "type-id"))];
        if (!field)
            continue;
        const inner = readTlvAt(valueNode.content, 0);
        if (inner.encoded.length !== valueNode.content.length)
            throw new DerError("malformed otherName value");
        out[field] = readString(expectTag(inner, Tag.utf8String, "otherName value"));
        found = true;
    }
    return found ? out : undefined;
}
// ---------------------------------------------------------------------------------------------
// Keys and signatures
/**
 * The key algorithm of a SubjectPublicKeyInfo among those the project uses: rsaEncryption with a
 * 2048-bit modulus (RFC 3279 §2.3.1), or id-ecPublicKey on P-256 (RFC 5480 §2.1.1). Others are refused.
 */
export function keyAlgorithmOf(spki) {
    const [algorithm] = children(expectTag(readDer(spki, CERTIFICATE_LIMITS), Tag.sequence, "SPKI"));
    const [algorithmOid, parameters] = children(expectTag(algorithm, Tag.sequence, "SPKI algorithm"));
    const keyOid = readOid(expectTag(algorithmOid, Tag.oid, "SPKI algorithm OID"));
    if (keyOid === OID_RSA_ENCRYPTION) {
        const key = createPublicKey({ key: spki, format: "der", type: "spki" });
        if (key.asymmetricKeyDetails?.modulusLength === 2048)
            return "rsa-2048";
    }
    else if (keyOid === OID_EC_PUBLIC_KEY &&
        parameters?.tag === Tag.oid &&
        readOid(parameters) === OID_CURVE_P256) {
        return "ec-p256";
    }
    throw new DerError(`unsupported public key (${keyOid})`);
}
/** What profiles need to issue under a CA certificate: its subject, its SPKI and its key algorithm. */
export function issuerKeyOf(caCertificate) {
    return {
        name: caCertificate.subjectDer,
        spki: caCertificate.spki,
        algorithm: keyAlgorithmOf(caCertificate.spki),
    };
}
/**
 * Checks a certificate's signature with the issuer's public key (Node's crypto, never a JavaScript
 * RSA implementation: LIBRARY-NOTES). Only the two signature algorithms of this project are accepted.
 */
export function verifyCertificateSignature(cert, issuerSpki) {
    if (cert.signatureAlgorithmOid !== OID_SHA256_WITH_RSA &&
        cert.signatureAlgorithmOid !== OID_ECDSA_WITH_SHA256)
        return false;
    const key = createPublicKey({ key: issuerSpki, format: "der", type: "spki" });
    const expected = cert.signatureAlgorithmOid === OID_SHA256_WITH_RSA ? "rsa" : "ec";
    if (key.asymmetricKeyType !== expected)
        return false;
    try {
        return verify("sha256", cert.tbs, { key, dsaEncoding: "der" }, cert.signature);
    }
    catch {
        return false;
    }
}
//# sourceMappingURL=certificate.js.map