/**
 * Micro-benchmark of end-entity TBS building (the issuance hot path; target well under 30 µs):
 * `node --import tsx src/pki/profiles.bench.ts`. Each run uses fresh serials, shards and validities,
 * so the per-issuer caches help only with what is really constant per issuer.
 */
import { AUTH_CA_NAME } from "./names.js";
import { cardAuthenticationCertificateTbs, cardSigningCertificateTbs, smartphoneAuthenticationCertificateTbs, } from "./profiles.js";
import { randomSerial, shardOf } from "./serial.js";
import { generateTestKey, TEST_PERSON } from "./test-hierarchy.js";
import { citizenCertificateValidity } from "./validity.js";
const caKey = generateTestKey("rsa-2048");
const subjectSpki = generateTestKey("rsa-2048").spki;
const issuer = { name: AUTH_CA_NAME, spki: caKey.spki, algorithm: "rsa-2048" };
const start = Date.now();
const inputs = Array.from({ length: 4096 }, (_, i) => {
    const serial = randomSerial();
    const birthDate = { year: 1940 + (i % 70), month: 1 + (i % 12), day: 1 + (i % 28) };
    const issuedAt = new Date(start + i * 1000);
    return {
        serial,
        issuer,
        subjectSpki,
        validity: citizenCertificateValidity(birthDate, issuedAt, new Date(start + 20 * 365 * 86_400_000)),
        baseUrl: "http://127.0.0.1:8080",
        shard: shardOf(serial, 256),
    };
});
const cases = [
    [
        "card signing (SAN with 6 otherNames, SKI)",
        (input) => cardSigningCertificateTbs({ ...input, person: TEST_PERSON }),
    ],
    ["card user-auth (SKI)", cardAuthenticationCertificateTbs],
    [
        "smartphone user-auth (no SKI)",
        (input) => smartphoneAuthenticationCertificateTbs({ ...input, subjectKeyIdentifier: false }),
    ],
];
for (const [label, build] of cases) {
    for (let i = 0; i < 20_000; i++)
        build(inputs[i % inputs.length]);
    const runs = 200_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < runs; i++)
        build(inputs[i % inputs.length]);
    const microseconds = Number(process.hrtime.bigint() - t0) / 1000 / runs;
    console.log(`${label}: ${microseconds.toFixed(2)} µs per TBS`);
}
//# sourceMappingURL=profiles.bench.js.map