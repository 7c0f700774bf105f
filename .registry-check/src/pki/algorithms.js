/**
 * Key and signature algorithms the project uses, and the signed-object envelope shared by
 * certificates and CRLs.
 */
import { bitString, NULL, oid, sequence } from "./der.js";
export const OID_SHA256_WITH_RSA = "1.2.840.113549.1.1.11";
export const OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
/**
 * AlgorithmIdentifier of the signature a key of this algorithm makes: sha256WithRSAEncryption with
 * NULL parameters (RFC 4055 §5), ecdsa-with-SHA256 with parameters absent (RFC 5758 §3.2).
 */
export function signatureAlgorithmIdentifier(algorithm) {
    return algorithm === "rsa-2048"
        ? sequence(oid(OID_SHA256_WITH_RSA), NULL)
        : sequence(oid(OID_ECDSA_WITH_SHA256));
}
/**
 * SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }: the shape of Certificate
 * (RFC 5280 §4.1), CertificateList (§5.1) and, with the same fields, BasicOCSPResponse's core.
 */
export function assembleSigned(tbs, algorithmIdentifier, signature) {
    return sequence(tbs, algorithmIdentifier, bitString(signature));
}
//# sourceMappingURL=algorithms.js.map