/**
 * Test and measurement fixtures: a minimal valid TBSCertificate built with der.ts and an RSA-2048
 * software signer on node:crypto. Not the JPKI profiles (src/pki builds those); the registry only needs
 * something a real signer signs and OpenSSL parses.
 */
import { generateKeyPair, sign } from "node:crypto";
import { promisify } from "node:util";
import { assembleSigned, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { explicit, integer, oid, sequence, setOf, utf8String, x509Time } from "../pki/der.js";
export async function generateTestKey() {
    const { privateKey, publicKey } = await promisify(generateKeyPair)("rsa", { modulusLength: 2048 });
    return { privateKey, publicKey, spki: publicKey.export({ type: "spki", format: "der" }) };
}
/** Name ::= SEQUENCE OF RDN, here one RDN with a commonName (RFC 5280 §4.1.2.4). */
function commonName(text) {
    return sequence(setOf(sequence(oid("2.5.4.3"), utf8String(text))));
}
/** A minimal v3 TBSCertificate (RFC 5280 §4.1) without extensions. */
export function minimalTbs(serial, spki, subject, notBefore, notAfter, issuer = "jpki-mobile registry test CA") {
    return sequence(explicit(0, integer(2)), integer(serial), signatureAlgorithmIdentifier("rsa-2048"), commonName(issuer), sequence(x509Time(notBefore), x509Time(notAfter)), commonName(subject), spki);
}
/**
 * A signer on a software RSA key: sha256WithRSAEncryption, signed on libuv's thread pool so several
 * signatures run at once. `onSigned` sees each certificate the moment it exists (before it is returned).
 */
export function rsaSigner(key, onSigned) {
    const algorithm = signatureAlgorithmIdentifier("rsa-2048");
    return {
        issue: (tbs) => new Promise((resolve, reject) => sign("sha256", tbs, key.privateKey, (error, signature) => {
            if (error)
                return reject(error);
            const der = assembleSigned(tbs, algorithm, signature);
            onSigned?.(der);
            resolve(der);
        })),
    };
}
export function testRequest(key, overrides = {}) {
    const notBefore = overrides.notBefore ?? new Date("2026-01-01T00:00:00Z");
    const notAfter = overrides.notAfter ?? new Date("2031-01-01T00:00:00Z");
    const subject = overrides.subject ?? "test subject";
    return {
        issuer: (overrides.issuer ?? "auth"),
        kind: (overrides.kind ?? "card-auth"),
        medium: (overrides.medium ?? "card"),
        personId: overrides.personId ?? null,
        cardId: overrides.cardId ?? null,
        simId: overrides.simId ?? null,
        parentSerial: overrides.parentSerial ?? null,
        notBefore,
        notAfter,
        buildTbs: (serial) => minimalTbs(serial, key.spki, subject, notBefore, notAfter),
    };
}
//# sourceMappingURL=test-fixtures.js.map