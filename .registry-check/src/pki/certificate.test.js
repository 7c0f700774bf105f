import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate } from "@peculiar/asn1-x509";
import fc from "fast-check";
import { runTool } from "../testing/tools.js";
import { assembleSigned, signatureAlgorithmIdentifier } from "./algorithms.js";
import { findExtension, issuerKeyOf, keyAlgorithmOf, parseCertificate, parseName, readJpkiSubjectAltName, renderName, verifyCertificateSignature, } from "./certificate.js";
import { boolean, DerError, explicit, integer, octetString, oid, sequence, tlv, utcTime } from "./der.js";
import { encodeName } from "./names.js";
import { pemDecode, pemDecodeAll, pemEncode } from "./pem.js";
import { buildTestHierarchy, TEST_PERSON } from "./test-hierarchy.js";
const h = buildTestHierarchy();
const all = [
    h.signCa,
    h.authCa,
    h.signOcsp,
    h.authOcsp,
    h.cardSign,
    h.cardAuth,
    h.phoneSign,
    h.phoneAuth,
    h.simMakerCa,
    h.simAttestation,
];
describe("parseCertificate agrees with @peculiar/asn1-x509", () => {
    test("every field of every certificate kind", () => {
        for (const der of all) {
            const ours = parseCertificate(der);
            const theirs = AsnConvert.parse(der, Certificate);
            const t = theirs.tbsCertificate;
            assert.equal(ours.version, t.version + 1);
            assert.equal(ours.serialHex, Buffer.from(t.serialNumber).toString("hex").replace(/^00/, ""));
            assert.deepEqual(ours.issuerDer, Buffer.from(AsnConvert.serialize(t.issuer)));
            assert.deepEqual(ours.subjectDer, Buffer.from(AsnConvert.serialize(t.subject)));
            assert.deepEqual(ours.spki, Buffer.from(AsnConvert.serialize(t.subjectPublicKeyInfo)));
            assert.deepEqual(ours.tbs, Buffer.from(AsnConvert.serialize(t)));
            assert.equal(ours.notBefore.getTime(), t.validity.notBefore.getTime().getTime());
            assert.equal(ours.notAfter.getTime(), t.validity.notAfter.getTime().getTime());
            assert.equal(ours.signatureAlgorithmOid, theirs.signatureAlgorithm.algorithm);
            assert.deepEqual(ours.signature, Buffer.from(theirs.signatureValue));
            assert.deepEqual(ours.extensions.map((e) => [e.oid, e.critical, e.value.toString("hex")]), Array.from(t.extensions ?? [], (e) => [
                e.extnID,
                e.critical,
                Buffer.from(e.extnValue.buffer).toString("hex"),
            ]));
        }
    });
    test("the serial matches OpenSSL's reading", () => {
        const r = runTool("openssl", ["x509", "-inform", "DER", "-noout", "-serial"], { input: h.cardSign });
        assert.equal(r.stdout.trim().toLowerCase(), `serial=${parseCertificate(h.cardSign).serialHex}`);
    });
    test("names render in encoded order, RFC 4514-escaped", () => {
        assert.match(renderName(parseCertificate(h.cardSign).issuerDer), /^C=JP, O=JPKI, OU=JPKI for digital signature, /);
        assert.equal(renderName(encodeName([
            ["O", "a,b+c"],
            ["OU", " lead"],
            ["CN", "#x"],
        ])), "O=a\\,b\\+c, OU=\\ lead, CN=\\#x");
        assert.deepEqual(parseName(encodeName([["CN", "公的"]]))[0], [
            { oid: "2.5.4.3", type: "CN", value: "公的" },
        ]);
    });
    test("the JPKI SubjectAltName reads back; the auth certificates have none", () => {
        assert.deepEqual(readJpkiSubjectAltName(parseCertificate(h.cardSign)), {
            name: TEST_PERSON.name,
            nameSubstitutes: "",
            sex: "1",
            birthDate: "419900401",
            address: TEST_PERSON.address,
            addressSubstitutes: "",
        });
        assert.equal(readJpkiSubjectAltName(parseCertificate(h.cardAuth)), undefined);
        assert.equal(readJpkiSubjectAltName(parseCertificate(h.signCa)), undefined);
        assert.equal(findExtension(parseCertificate(h.cardAuth), "2.5.29.15")?.critical, true);
    });
});
describe("parseCertificate on hostile input", () => {
    test("mutated and truncated certificates: a parse or a DerError, nothing else", () => {
        const der = h.cardSign;
        fc.assert(fc.property(fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 3,
        }), fc.nat(der.length), (edits, cut) => {
            const mutated = Buffer.from(der);
            for (const [at, value] of edits)
                mutated[at] = value;
            for (const input of [mutated, mutated.subarray(0, cut)]) {
                try {
                    const cert = parseCertificate(input);
                    readJpkiSubjectAltName(cert);
                    renderName(cert.subjectDer);
                }
                catch (error) {
                    if (!(error instanceof DerError))
                        throw error;
                }
            }
        }), { numRuns: 3000 });
    });
    test("limits: too large or too deep input is refused", () => {
        assert.throws(() => parseCertificate(h.cardSign, { maxBytes: 100 }), DerError);
        assert.throws(() => parseCertificate(h.cardSign, { maxDepth: 3 }), DerError);
        assert.throws(() => parseCertificate(Buffer.concat([h.cardSign, Buffer.from([0])])), DerError);
    });
    test("structural checks: tampered algorithm, duplicate extension, non-positive serial", () => {
        const cert = parseCertificate(h.cardAuth);
        const tbsAlgorithm = h.cardAuth.indexOf(Buffer.from("06092a864886f70d01010b", "hex"));
        const swapped = Buffer.from(h.cardAuth);
        swapped[tbsAlgorithm + 10] = 0x0c; // sha384WithRSAEncryption in the TBS only
        assert.throws(() => parseCertificate(swapped), /differs/);
        const alg = signatureAlgorithmIdentifier("rsa-2048");
        const name = encodeName([["CN", "x"]]);
        const time = utcTime(new Date("2025-01-01T00:00:00Z"));
        const build = (serial, extensions) => assembleSigned(sequence(explicit(0, integer(2)), serial, alg, name, sequence(time, time), name, cert.spki, explicit(3, sequence(...extensions))), alg, Buffer.alloc(1));
        const ku = cert.extensions.find((e) => e.oid === "2.5.29.15");
        const kuExtension = sequence(oid(ku.oid), boolean(true), octetString(ku.value));
        assert.equal(parseCertificate(build(integer(5), [kuExtension])).serialHex, "05");
        assert.throws(() => parseCertificate(build(integer(5), [kuExtension, kuExtension])), /twice/);
        assert.throws(() => parseCertificate(build(integer(0), [kuExtension])), /positive/);
        assert.throws(() => parseCertificate(build(integer(-1), [kuExtension])), /positive/);
        assert.throws(() => parseCertificate(build(tlv(0x02, Buffer.from("0005", "hex")), [kuExtension])), /non-minimal/);
        const falseCritical = sequence(oid(ku.oid), boolean(false), octetString(ku.value));
        assert.throws(() => parseCertificate(build(integer(5), [falseCritical])), /TRUE/);
    });
});
describe("PEM (RFC 7468)", () => {
    test("OpenSSL reads our PEM, and we read OpenSSL's", () => {
        const pem = pemEncode(h.signCa);
        assert.match(pem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/);
        const r = runTool("openssl", ["x509", "-inform", "PEM", "-outform", "PEM"], { input: pem });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(pemDecode(r.stdout), h.signCa);
    });
    test("several blocks, explanatory text, and strictness", () => {
        const text = `subject=...\n${pemEncode(h.signCa)}junk\n${pemEncode(Buffer.from("3000", "hex"), "X509 CRL")}`;
        assert.deepEqual(pemDecodeAll(text).map((b) => b.label), ["CERTIFICATE", "X509 CRL"]);
        assert.deepEqual(pemDecode(text, "X509 CRL"), Buffer.from("3000", "hex"));
        assert.throws(() => pemDecode("nothing here"));
        assert.throws(() => pemDecode("-----BEGIN CERTIFICATE-----\nMAA*\n-----END CERTIFICATE-----\n"));
        assert.throws(() => pemDecode("-----BEGIN CERTIFICATE-----\nMAA=\n-----END X509 CRL-----\n"));
        fc.assert(fc.property(fc.uint8Array({ maxLength: 500 }), (bytes) => {
            assert.deepEqual(pemDecode(pemEncode(bytes, "TEST"), "TEST"), Buffer.from(bytes));
        }));
    });
});
describe("keys and signatures", () => {
    test("issuerKeyOf a CA certificate and signature checks", () => {
        const signCa = parseCertificate(h.signCa);
        assert.deepEqual(issuerKeyOf(signCa), h.signIssuer);
        assert.deepEqual(issuerKeyOf(parseCertificate(h.simMakerCa)), h.simMakerIssuer);
        assert.equal(keyAlgorithmOf(h.keys.citizen.spki), "rsa-2048");
        assert.equal(verifyCertificateSignature(parseCertificate(h.cardSign), h.keys.signCa.spki), true);
        assert.equal(verifyCertificateSignature(parseCertificate(h.cardSign), h.keys.authCa.spki), false);
        assert.equal(verifyCertificateSignature(parseCertificate(h.simAttestation), h.keys.simMaker.spki), true);
        assert.equal(verifyCertificateSignature(parseCertificate(h.simAttestation), h.keys.signCa.spki), false);
        const broken = Buffer.from(h.cardAuth);
        broken[broken.length - 1] ^= 1;
        assert.equal(verifyCertificateSignature(parseCertificate(broken), h.keys.authCa.spki), false);
    });
});
//# sourceMappingURL=certificate.test.js.map