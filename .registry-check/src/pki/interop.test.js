/**
 * Every certificate kind checked by three independent implementations (STYLE.md): OpenSSL
 * (`openssl verify` with the purpose a relying party would ask), GnuTLS (`certtool --verify`) and NSS
 * (`vfychain` with the root trusted in a fresh database). Negative cases prove the checks can fail.
 */
import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { certtoolVerify, NssUsage, opensslText, opensslVerify, vfychainVerify } from "../testing/tools.js";
import { buildTestHierarchy } from "./test-hierarchy.js";
const h = buildTestHierarchy();
/** Key purposes GnuTLS checks with --verify-purpose (RFC 5280 §4.2.1.12). */
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4";
const OCSP_SIGNING = "1.3.6.1.5.5.7.3.9";
const kinds = [
    { label: "signing CA", root: h.signCa, leaf: h.signCa, purpose: "any", usage: NssUsage.anyCa },
    { label: "user-auth CA", root: h.authCa, leaf: h.authCa, purpose: "any", usage: NssUsage.anyCa },
    {
        label: "card signing",
        root: h.signCa,
        leaf: h.cardSign,
        purpose: "smimesign",
        usage: NssUsage.emailSigner,
        keyPurpose: EMAIL_PROTECTION,
    },
    {
        label: "smartphone signing",
        root: h.signCa,
        leaf: h.phoneSign,
        purpose: "smimesign",
        usage: NssUsage.emailSigner,
        keyPurpose: EMAIL_PROTECTION,
    },
    {
        label: "card user-auth",
        root: h.authCa,
        leaf: h.cardAuth,
        purpose: "sslclient",
        usage: NssUsage.sslClient,
        keyPurpose: CLIENT_AUTH,
    },
    {
        label: "smartphone user-auth",
        root: h.authCa,
        leaf: h.phoneAuth,
        purpose: "sslclient",
        usage: NssUsage.sslClient,
        keyPurpose: CLIENT_AUTH,
    },
    {
        label: "signing OCSP responder",
        root: h.signCa,
        leaf: h.signOcsp,
        purpose: "ocsphelper",
        usage: NssUsage.ocspResponder,
        keyPurpose: OCSP_SIGNING,
    },
    {
        label: "user-auth OCSP responder",
        root: h.authCa,
        leaf: h.authOcsp,
        purpose: "ocsphelper",
        usage: NssUsage.ocspResponder,
        keyPurpose: OCSP_SIGNING,
    },
    { label: "SIM maker CA", root: h.simMakerCa, leaf: h.simMakerCa, purpose: "any", usage: NssUsage.anyCa },
    {
        label: "SIM attestation",
        root: h.simMakerCa,
        leaf: h.simAttestation,
        purpose: "any",
        usage: NssUsage.sslClient,
    },
];
describe("OpenSSL, GnuTLS and NSS accept every certificate kind", () => {
    for (const k of kinds) {
        test(`${k.label}: openssl verify -x509_strict -purpose ${k.purpose}`, () => {
            const r = opensslVerify({ root: k.root, leaf: k.leaf, purpose: k.purpose });
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.match(r.stdout, /: OK$/m);
        });
        test(`${k.label}: certtool --verify${k.keyPurpose ? ` --verify-purpose ${k.keyPurpose}` : ""}`, () => {
            const r = certtoolVerify({
                root: k.root,
                leaf: k.leaf,
                ...(k.keyPurpose ? { purpose: k.keyPurpose } : {}),
            });
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.match(r.stdout, /Chain verification output: Verified\./);
        });
        test(`${k.label}: vfychain -pp -u ${k.usage}`, () => {
            const r = vfychainVerify({ root: k.root, leaf: k.leaf, usage: k.usage });
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.match(r.stdout + r.stderr, /Chain is good!/);
        });
    }
    test("openssl verify with the test policy required (-policy -explicit_policy)", () => {
        const ok = opensslVerify({
            root: h.signCa,
            leaf: h.cardSign,
            purpose: "smimesign",
            policy: "1.2.392.200149.8.5.1.0.20",
        });
        assert.equal(ok.code, 0, ok.stderr);
        const wrong = opensslVerify({
            root: h.authCa,
            leaf: h.cardAuth,
            purpose: "sslclient",
            policy: "1.2.392.200149.8.5.1.0.31",
        });
        assert.notEqual(wrong.code, 0, "a card auth certificate is not a smartphone one");
    });
    test("NSS policy validation (vfychain -o): the test policy of each citizen kind, and only it", () => {
        for (const [root, leaf, policy, other] of [
            [h.signCa, h.cardSign, "1.2.392.200149.8.5.1.0.20", "1.2.392.200149.8.5.1.0.21"],
            [h.signCa, h.phoneSign, "1.2.392.200149.8.5.1.0.21", "1.2.392.200149.8.5.1.0.20"],
            [h.authCa, h.cardAuth, "1.2.392.200149.8.5.1.0.30", "1.2.392.200149.8.5.1.0.31"],
            [h.authCa, h.phoneAuth, "1.2.392.200149.8.5.1.0.31", "1.2.392.200149.8.5.1.0.30"],
        ]) {
            const usage = root === h.signCa ? NssUsage.emailSigner : NssUsage.sslClient;
            const ok = vfychainVerify({ root, leaf, usage, policy });
            assert.equal(ok.code, 0, ok.stdout + ok.stderr);
            assert.notEqual(vfychainVerify({ root, leaf, usage, policy: other }).code, 0, `${policy} is not ${other}`);
        }
    });
    test("OpenSSL prints the JPKI SubjectAltName and IssuerAltName", () => {
        const text = opensslText(h.cardSign).stdout;
        assert.match(text, /othername: 1\.2\.392\.200149\.8\.5\.5\.1::公的 太郎/);
        assert.match(text, /othername: 1\.2\.392\.200149\.8\.5\.5\.4::419900401/);
        assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature, Non Repudiation/);
        assert.match(text, /X509v3 Issuer Alternative Name: \n\s+DirName:/);
    });
});
describe("the checkers refuse what they should (the tests above can fail)", () => {
    test("a certificate under the other root", () => {
        assert.notEqual(opensslVerify({ root: h.signCa, leaf: h.cardAuth, purpose: "sslclient" }).code, 0);
        assert.notEqual(certtoolVerify({ root: h.signCa, leaf: h.cardAuth }).code, 0);
        assert.notEqual(vfychainVerify({ root: h.signCa, leaf: h.cardAuth, usage: NssUsage.sslClient }).code, 0);
    });
    test("an OCSP responder is no TLS client", () => {
        assert.notEqual(opensslVerify({ root: h.authCa, leaf: h.authOcsp, purpose: "sslclient" }).code, 0);
        assert.notEqual(vfychainVerify({ root: h.authCa, leaf: h.authOcsp, usage: NssUsage.sslClient }).code, 0);
        assert.notEqual(certtoolVerify({ root: h.authCa, leaf: h.authOcsp, purpose: CLIENT_AUTH }).code, 0);
    });
    test("a tampered signature", () => {
        const broken = Buffer.from(h.cardSign);
        broken[broken.length - 5] ^= 0x01;
        assert.notEqual(opensslVerify({ root: h.signCa, leaf: broken, purpose: "smimesign" }).code, 0);
        assert.notEqual(certtoolVerify({ root: h.signCa, leaf: broken }).code, 0);
        assert.notEqual(vfychainVerify({ root: h.signCa, leaf: broken, usage: NssUsage.emailSigner }).code, 0);
    });
    test("a user certificate is not a CA", () => {
        assert.notEqual(vfychainVerify({ root: h.authCa, leaf: h.cardAuth, usage: NssUsage.anyCa }).code, 0);
    });
});
//# sourceMappingURL=interop.test.js.map