import * as assert from "node:assert/strict";
import { createHash, createPublicKey } from "node:crypto";
import { describe, test } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import { AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, Certificate, CertificatePolicies, CRLDistributionPoints, DirectoryString, ExtendedKeyUsage, IssueAlternativeName, SubjectAlternativeName, SubjectKeyIdentifier, TBSCertificate, } from "@peculiar/asn1-x509";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { parseCertificate, readJpkiSubjectAltName } from "./certificate.js";
import { DerError } from "./der.js";
import { keyIdentifier } from "./extensions.js";
import { AUTH_CA_NAME, SIGNING_CA_NAME, SIM_MAKER_CA_NAME } from "./names.js";
import { CITIZEN_POLICY_OIDS, cardAuthenticationCertificateTbs, cardSigningCertificateTbs, citizenCertificateTbs, crlUrl, ocspUrl, purposeOf, } from "./profiles.js";
import { randomSerial, shardOf } from "./serial.js";
import { buildTestHierarchy, TEST_BASE_URL, TEST_EID, TEST_PERSON, TEST_SHARDS } from "./test-hierarchy.js";
const now = new Date();
const h = buildTestHierarchy(now);
/** Reads a certificate with @peculiar/asn1-x509 (independent of our DER code) into what the tests check. */
function inspect(der) {
    const cert = AsnConvert.parse(der, Certificate);
    const tbs = cert.tbsCertificate;
    const extensions = new Map((tbs.extensions ?? []).map((e) => [e.extnID, e]));
    assert.equal(extensions.size, tbs.extensions?.length, "no duplicate extensions");
    const ext = (id) => {
        const e = extensions.get(id);
        assert.ok(e, `extension ${id} present`);
        return { critical: e.critical, value: Buffer.from(e.extnValue.buffer) };
    };
    const serial = Buffer.from(tbs.serialNumber);
    return {
        cert,
        tbs,
        ext,
        has: (id) => extensions.has(id),
        oids: [...extensions.keys()].sort(),
        serial,
        name: (n) => Array.from(n, (rdn) => `${rdn[0].type}=${rdn[0].value.toString()}`),
    };
}
/** SHA-1 of the subjectPublicKey bits, computed from Node's key export (RFC 5280 §4.2.1.2 (1)). */
function keyId(spki) {
    const key = createPublicKey({ key: spki, format: "der", type: "spki" });
    if (key.asymmetricKeyType === "rsa")
        return createHash("sha1")
            .update(key.export({ type: "pkcs1", format: "der" }))
            .digest("hex");
    const jwk = key.export({ format: "jwk" });
    const point = Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x, "base64url"),
        Buffer.from(jwk.y, "base64url"),
    ]);
    return createHash("sha1").update(point).digest("hex");
}
const KU = "2.5.29.15";
const BC = "2.5.29.19";
const SKI = "2.5.29.14";
const AKI = "2.5.29.35";
const SAN = "2.5.29.17";
const IAN = "2.5.29.18";
const POLICIES = "2.5.29.32";
const CRLDP = "2.5.29.31";
const AIA = "1.3.6.1.5.5.7.1.1";
const EKU = "2.5.29.37";
const NOCHECK = "1.3.6.1.5.5.7.48.1.5";
const SHA256_RSA = "1.2.840.113549.1.1.11";
const ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const JPKI_DIRNAME = ["2.5.4.6=JP", "2.5.4.10=公的個人認証サービス"];
function assertSerial(serial) {
    // RFC 5280 §4.1.2.2: positive, minimal (X.690 §8.3.2), here 16 bytes = 127 random bits ≥ 64.
    assert.equal(serial.length, 16);
    assert.ok(serial[0] >= 0x01 && serial[0] <= 0x7f, "positive and minimal");
}
function assertCommon(der, issuer, algorithm) {
    const c = inspect(der);
    assert.equal(c.tbs.version, 2, "v3");
    assertSerial(c.serial);
    assert.equal(c.tbs.signature.algorithm, algorithm);
    assert.equal(c.cert.signatureAlgorithm.algorithm, algorithm);
    // sha256WithRSAEncryption with NULL parameters (RFC 4055 §5); ecdsa-with-SHA256 without (RFC 5758 §3.2).
    const algorithmHex = algorithm === SHA256_RSA ? "300d06092a864886f70d01010b0500" : "300a06082a8648ce3d040302";
    assert.equal(Buffer.from(AsnConvert.serialize(c.tbs.signature)).toString("hex"), algorithmHex);
    assert.equal(Buffer.from(AsnConvert.serialize(c.cert.signatureAlgorithm)).toString("hex"), algorithmHex);
    assert.equal(Buffer.from(AsnConvert.serialize(c.tbs.issuer)).toString("hex"), issuer.toString("hex"));
    return c;
}
function dirNames(value, type) {
    return Array.from(AsnConvert.parse(value, type), (gn) => Array.from(gn.directoryName, (rdn) => `${rdn[0].type}=${rdn[0].value.toString()}`));
}
describe("JPKI root CAs (JPKI-FACTS §2)", () => {
    for (const [label, der, name, key] of [
        ["signing CA", h.signCa, SIGNING_CA_NAME, h.keys.signCa],
        ["user-auth CA", h.authCa, AUTH_CA_NAME, h.keys.authCa],
    ]) {
        test(`${label}: self-signed RSA-2048 root with the CA extensions`, () => {
            const c = assertCommon(der, name, SHA256_RSA);
            assert.deepEqual(Buffer.from(AsnConvert.serialize(c.tbs.subject)), name);
            assert.equal(createPublicKey({ key: key.spki, format: "der", type: "spki" }).asymmetricKeyDetails?.modulusLength, 2048);
            assert.deepEqual(c.oids, [SKI, KU, SAN, BC].sort());
            const ku = c.ext(KU);
            assert.equal(ku.critical, true);
            assert.equal(ku.value.toString("hex"), "03020106", "keyCertSign + cRLSign");
            const bc = c.ext(BC);
            assert.equal(bc.critical, true);
            const constraints = AsnConvert.parse(bc.value, BasicConstraints);
            assert.equal(constraints.cA, true);
            assert.equal(constraints.pathLenConstraint, undefined);
            assert.equal(c.ext(SAN).critical, false);
            assert.deepEqual(dirNames(c.ext(SAN).value, SubjectAlternativeName), [JPKI_DIRNAME]);
            const ski = c.ext(SKI);
            assert.equal(ski.critical, false);
            assert.equal(Buffer.from(AsnConvert.parse(ski.value, SubjectKeyIdentifier).buffer).toString("hex"), keyId(key.spki));
            const notBefore = c.tbs.validity.notBefore.getTime();
            const notAfter = c.tbs.validity.notAfter.getTime();
            assert.equal(notBefore.getTime(), Math.floor(now.getTime() / 1000) * 1000);
            const years = (notAfter.getTime() - notBefore.getTime()) / (365.25 * 86_400_000);
            assert.ok(years > 9.99 && years < 10.01, `10 years, got ${years}`);
        });
    }
});
/** The checks shared by the four citizen certificates. */
function assertCitizen(der, issuer, caKey, purpose, policy) {
    const c = assertCommon(der, issuer, SHA256_RSA);
    const expected = purpose === "sign"
        ? [KU, POLICIES, IAN, CRLDP, AIA, AKI, SAN, SKI]
        : [KU, POLICIES, IAN, CRLDP, AIA, AKI, SKI];
    assert.deepEqual(c.oids, expected.sort());
    assert.ok(!c.has(BC) && !c.has(EKU));
    const ku = c.ext(KU);
    assert.equal(ku.critical, true);
    assert.equal(ku.value.toString("hex"), purpose === "sign" ? "030206c0" : "03020780", purpose === "sign" ? "digitalSignature + nonRepudiation" : "digitalSignature");
    const policies = AsnConvert.parse(c.ext(POLICIES).value, CertificatePolicies);
    assert.deepEqual(Array.from(policies, (p) => p.policyIdentifier), [policy]);
    assert.ok(policy.startsWith("1.2.392.200149.8.5.1.0."), "test arc only");
    assert.equal(c.ext(IAN).critical, false);
    assert.deepEqual(dirNames(c.ext(IAN).value, IssueAlternativeName), [JPKI_DIRNAME]);
    const shard = shardOf(c.serial, TEST_SHARDS);
    const dps = AsnConvert.parse(c.ext(CRLDP).value, CRLDistributionPoints);
    assert.equal(dps.length, 1);
    assert.deepEqual(dps[0].distributionPoint.fullName.map((gn) => gn.uniformResourceIdentifier), [`${TEST_BASE_URL}/crl/${purpose}/${shard}.crl`]);
    assert.equal(dps[0].reasons, undefined);
    const aia = AsnConvert.parse(c.ext(AIA).value, AuthorityInfoAccessSyntax);
    assert.deepEqual(Array.from(aia, (a) => [a.accessMethod, a.accessLocation.uniformResourceIdentifier]), [["1.3.6.1.5.5.7.48.1", `${TEST_BASE_URL}/ocsp`]]);
    const aki = AsnConvert.parse(c.ext(AKI).value, AuthorityKeyIdentifier);
    assert.equal(Buffer.from(aki.keyIdentifier.buffer).toString("hex"), keyId(caKey));
    assert.equal(aki.authorityCertIssuer, undefined);
    assert.equal(Buffer.from(AsnConvert.parse(c.ext(SKI).value, SubjectKeyIdentifier).buffer).toString("hex"), keyId(h.keys.citizen.spki));
    assert.deepEqual(c.name(c.tbs.subject), [
        "2.5.4.6=JP",
        `2.5.4.3=${c.serial.toString("hex").toUpperCase()}`,
    ]);
    return c;
}
function assertSigningSan(c, person, era) {
    const san = c.ext(SAN);
    assert.equal(san.critical, false);
    const names = Array.from(AsnConvert.parse(san.value, SubjectAlternativeName), (gn) => {
        assert.ok(gn.otherName, "otherName only");
        const value = AsnConvert.parse(gn.otherName.value, DirectoryString);
        assert.notEqual(value.utf8String, undefined, "UTF8String");
        return [gn.otherName.typeId, value.utf8String];
    });
    assert.deepEqual(names, [
        ["1.2.392.200149.8.5.5.1", person.name],
        ["1.2.392.200149.8.5.5.2", person.nameSubstitutes ?? ""],
        ["1.2.392.200149.8.5.5.3", String(person.sex)],
        ["1.2.392.200149.8.5.5.4", era],
        ["1.2.392.200149.8.5.5.5", person.address],
        ["1.2.392.200149.8.5.5.6", person.addressSubstitutes ?? ""],
    ]);
}
describe("citizen certificates (JPKI-FACTS §2)", () => {
    test("card signing certificate (署名用電子証明書)", () => {
        const c = assertCitizen(h.cardSign, SIGNING_CA_NAME, h.keys.signCa.spki, "sign", "1.2.392.200149.8.5.1.0.20");
        assertSigningSan(c, TEST_PERSON, "419900401");
    });
    test("card user-authentication certificate (利用者証明用電子証明書): no personal data", () => {
        assertCitizen(h.cardAuth, AUTH_CA_NAME, h.keys.authCa.spki, "auth", "1.2.392.200149.8.5.1.0.30");
        for (const secret of [TEST_PERSON.name, TEST_PERSON.address, "19900401", "1.2.392.200149.8.5.5"])
            assert.ok(!h.cardAuth.includes(Buffer.from(secret)), `no ${secret}`);
        assert.ok(!h.cardAuth.includes(Buffer.from("2a83088c9b5508050501", "hex")), "no JPKI otherName OID");
    });
    test("smartphone signing certificate", () => {
        const c = assertCitizen(h.phoneSign, SIGNING_CA_NAME, h.keys.signCa.spki, "sign", "1.2.392.200149.8.5.1.0.21");
        assertSigningSan(c, TEST_PERSON, "419900401");
    });
    test("smartphone user-authentication certificate", () => {
        assertCitizen(h.phoneAuth, AUTH_CA_NAME, h.keys.authCa.spki, "auth", "1.2.392.200149.8.5.1.0.31");
        assert.ok(!h.phoneAuth.includes(Buffer.from(TEST_PERSON.name)));
    });
    test("validity: notBefore is the issuance second, notAfter 23:59:59 JST of the 5th birthday", () => {
        const validity = inspect(h.cardAuth).tbs.validity;
        const notBefore = validity.notBefore.getTime();
        const notAfter = validity.notAfter.getTime();
        assert.equal(notBefore.getTime(), Math.floor(now.getTime() / 1000) * 1000);
        assert.equal(notAfter.getUTCHours(), 14);
        assert.equal(notAfter.getUTCMinutes(), 59);
        assert.equal(notAfter.getUTCSeconds(), 59);
        assert.equal(notAfter.getUTCMonth(), 3);
        assert.equal(notAfter.getUTCDate(), 1);
    });
    test("the subject key identifier can be left out", () => {
        const serial = randomSerial();
        const tbs = cardAuthenticationCertificateTbs({
            serial,
            issuer: h.authIssuer,
            subjectSpki: h.keys.citizen.spki,
            validity: { notBefore: now, notAfter: new Date(now.getTime() + 1000) },
            baseUrl: `${TEST_BASE_URL}/`,
            shard: 3,
            subjectKeyIdentifier: false,
            subjectId: "ABCDEF",
        });
        const parsed = AsnConvert.parse(tbs, TBSCertificate);
        assert.ok(!parsed.extensions.some((e) => e.extnID === SKI));
        assert.equal(parsed.subject[1][0].value.toString(), "ABCDEF");
        assert.equal(crlUrl(`${TEST_BASE_URL}/`, "auth", 3), `${TEST_BASE_URL}/crl/auth/3.crl`);
        assert.equal(ocspUrl(TEST_BASE_URL), `${TEST_BASE_URL}/ocsp`);
    });
    test("key identifiers refuse what is not a SubjectPublicKeyInfo", () => {
        assert.equal(keyIdentifier(h.keys.citizen.spki).toString("hex"), keyId(h.keys.citizen.spki));
        assert.equal(keyIdentifier(h.keys.sim.spki).toString("hex"), keyId(h.keys.sim.spki));
        for (const bad of ["3000", "300530030500", `${h.keys.sim.spki.toString("hex")}00`, "0403010203"])
            assert.throws(() => keyIdentifier(Buffer.from(bad, "hex")), DerError, bad);
    });
    test("policies and purposes by kind", () => {
        assert.deepEqual(CITIZEN_POLICY_OIDS, {
            "card-sign": "1.2.392.200149.8.5.1.0.20",
            "card-auth": "1.2.392.200149.8.5.1.0.30",
            "phone-sign": "1.2.392.200149.8.5.1.0.21",
            "phone-auth": "1.2.392.200149.8.5.1.0.31",
        });
        assert.deepEqual(["card-sign", "card-auth", "phone-sign", "phone-auth"].map(purposeOf), [
            "sign",
            "auth",
            "sign",
            "auth",
        ]);
    });
    test("bad inputs are refused", () => {
        const base = {
            serial: randomSerial(),
            issuer: h.signIssuer,
            subjectSpki: h.keys.citizen.spki,
            validity: { notBefore: now, notAfter: new Date(now.getTime() + 1000) },
            baseUrl: TEST_BASE_URL,
            shard: 0,
        };
        assert.throws(() => cardSigningCertificateTbs({ ...base, person: { ...TEST_PERSON, sex: 4 } }), JpkiError);
        assert.throws(() => cardSigningCertificateTbs({ ...base, person: { ...TEST_PERSON, name: "" } }), JpkiError);
        assert.throws(() => cardSigningCertificateTbs({ ...base, person: { ...TEST_PERSON, address: "\ud800" } }), DerError);
        assert.throws(() => cardSigningCertificateTbs({
            ...base,
            person: { ...TEST_PERSON, birthDate: { year: 1868, month: 1, day: 24 } },
        }), JpkiError);
        assert.throws(() => citizenCertificateTbs("phone-sign", base), JpkiError);
        assert.throws(() => cardAuthenticationCertificateTbs({ ...base, serial: Buffer.alloc(16) }), DerError);
        assert.throws(() => cardAuthenticationCertificateTbs({ ...base, serial: Buffer.alloc(21, 1) }), DerError);
        assert.throws(() => cardAuthenticationCertificateTbs({ ...base, baseUrl: "http://例え.jp" }), DerError);
        assert.throws(() => cardAuthenticationCertificateTbs({ ...base, shard: -1 }), RangeError);
        assert.throws(() => cardAuthenticationCertificateTbs({
            ...base,
            validity: { notBefore: now, notAfter: new Date(now.getTime() - 1000) },
        }), JpkiError);
        assert.doesNotThrow(() => cardAuthenticationCertificateTbs({ ...base, serial: Buffer.alloc(20, 0x7f) }));
    });
    test("property: any Unicode name and addresses up to 200 characters survive @peculiar parsing and our reader", () => {
        const text = (max) => fc.string({
            unit: fc.oneof(fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), fc.constantFrom("\u0301", "\u3099", "𠮷", "髙", "﨑", "丁目", "－", "ー", "\u200d", "🏠")),
            minLength: 1,
            maxLength: max,
        });
        fc.assert(fc.property(text(60), text(200), fc.constantFrom(1, 2, 3), fc.date({
            min: new Date("1868-01-25T00:00:00Z"),
            max: new Date("2025-12-31T00:00:00Z"),
            noInvalidDate: true,
        }), fc.string({ unit: fc.constantFrom(..."0123456789,"), maxLength: 20 }), (name, address, sex, birth, positions) => {
            const person = {
                name,
                address,
                sex: sex,
                birthDate: {
                    year: birth.getUTCFullYear(),
                    month: birth.getUTCMonth() + 1,
                    day: birth.getUTCDate(),
                },
                nameSubstitutes: positions,
                addressSubstitutes: positions,
            };
            const serial = randomSerial();
            const tbs = cardSigningCertificateTbs({
                serial,
                issuer: h.signIssuer,
                subjectSpki: h.keys.citizen.spki,
                validity: { notBefore: now, notAfter: now },
                baseUrl: TEST_BASE_URL,
                shard: shardOf(serial, 64),
                person,
            });
            const ext = AsnConvert.parse(tbs, TBSCertificate).extensions.find((e) => e.extnID === SAN);
            const values = Array.from(AsnConvert.parse(ext.extnValue.buffer, SubjectAlternativeName), (gn) => AsnConvert.parse(gn.otherName.value, DirectoryString).utf8String);
            assert.equal(values[0], name);
            assert.equal(values[4], address);
            assert.equal(values[1], positions);
            // Our own reader agrees (it reads whole certificates: wrap the TBS with a dummy signature).
            const cert = Buffer.from(AsnConvert.serialize(new Certificate({
                tbsCertificate: AsnConvert.parse(tbs, TBSCertificate),
                signatureAlgorithm: AsnConvert.parse(tbs, TBSCertificate).signature,
                signatureValue: new Uint8Array(1).buffer,
            })));
            const ours = readJpkiSubjectAltName(parseCertificate(cert));
            assert.equal(ours?.name, name);
            assert.equal(ours?.address, address);
            assert.equal(ours?.sex, String(sex));
        }), { numRuns: 200 });
    });
});
describe("OCSP responders (RFC 6960 §4.2.2.2)", () => {
    for (const [label, der, issuer, caKey] of [
        ["signing CA", h.signOcsp, SIGNING_CA_NAME, h.keys.signCa.spki],
        ["user-auth CA", h.authOcsp, AUTH_CA_NAME, h.keys.authCa.spki],
    ]) {
        test(`${label}'s delegated responder`, () => {
            const c = assertCommon(der, issuer, SHA256_RSA);
            assert.deepEqual(c.oids, [KU, EKU, NOCHECK, AKI, SKI].sort());
            assert.equal(c.ext(KU).critical, true);
            assert.equal(c.ext(KU).value.toString("hex"), "03020780");
            assert.deepEqual([...AsnConvert.parse(c.ext(EKU).value, ExtendedKeyUsage)], ["1.3.6.1.5.5.7.3.9"]);
            assert.equal(c.ext(NOCHECK).value.toString("hex"), "0500");
            const aki = AsnConvert.parse(c.ext(AKI).value, AuthorityKeyIdentifier);
            assert.equal(Buffer.from(aki.keyIdentifier.buffer).toString("hex"), keyId(caKey));
            const days = (c.tbs.validity.notAfter.getTime().getTime() - c.tbs.validity.notBefore.getTime().getTime()) /
                86_400_000;
            assert.ok(days > 6.99 && days <= 7);
            assert.equal(c.name(c.tbs.subject).at(-1), "2.5.4.3=OCSP Responder");
            assert.ok(c.name(c.tbs.subject).includes("2.5.4.11=TEST"));
        });
    }
});
describe("SIM maker attestation", () => {
    test("SIM maker root: P-256, ecdsa-with-SHA256, CA extensions", () => {
        const c = assertCommon(h.simMakerCa, SIM_MAKER_CA_NAME, ECDSA_SHA256);
        assert.equal(c.tbs.subjectPublicKeyInfo.algorithm.algorithm, "1.2.840.10045.2.1");
        assert.deepEqual(c.oids, [BC, KU, SKI].sort());
        assert.equal(c.ext(KU).value.toString("hex"), "03020106");
        assert.equal(c.ext(BC).critical, true);
        assert.ok(c.name(c.tbs.subject).includes("2.5.4.11=TEST"));
    });
    test("SIM attestation certificate: digitalSignature + keyAgreement, EID in the subject", () => {
        const c = assertCommon(h.simAttestation, SIM_MAKER_CA_NAME, ECDSA_SHA256);
        assert.deepEqual(c.oids, [KU, AKI, SKI].sort());
        assert.equal(c.ext(KU).critical, true);
        assert.equal(c.ext(KU).value.toString("hex"), "03020388", "digitalSignature + keyAgreement");
        assert.equal(c.name(c.tbs.subject).at(-1), `2.5.4.5=${TEST_EID}`);
        const aki = AsnConvert.parse(c.ext(AKI).value, AuthorityKeyIdentifier);
        assert.equal(Buffer.from(aki.keyIdentifier.buffer).toString("hex"), keyId(h.keys.simMaker.spki));
        assert.equal(c.tbs.validity.notAfter.getTime().getUTCFullYear() >= 2050, true);
        assert.notEqual(c.tbs.validity.notAfter.generalTime, undefined, "GeneralizedTime past 2049 (RFC 5280 §4.1.2.5)");
    });
});
//# sourceMappingURL=profiles.test.js.map