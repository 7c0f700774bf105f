import * as assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { parsePkcs11Uri, readPin, redact } from "./pkcs11-uri.js";
const MODULE = "/usr/lib/softhsm/libsofthsm2.so";
test("parses the RFC 7512 forms a key store needs", () => {
    assert.deepEqual(parsePkcs11Uri(`pkcs11:token=jpki?module-path=${MODULE}&pin-value=1234`, {}), {
        modulePath: MODULE,
        token: "jpki",
        pin: { kind: "value", value: "1234" },
    });
    // Percent-encoding (RFC 7512 §2.3), several path attributes, pin-source as a file: URI.
    assert.deepEqual(parsePkcs11Uri(`pkcs11:token=JPKI%20CA;serial=abc;slot-id=7?module-path=${MODULE}&pin-source=file:/etc/jpki/pin`, {}), {
        modulePath: MODULE,
        token: "JPKI CA",
        serial: "abc",
        slotId: 7n,
        pin: { kind: "file", path: "/etc/jpki/pin" },
    });
    assert.deepEqual(parsePkcs11Uri(`pkcs11:token=t?module-path=${MODULE}`, { JPKI_HSM_PIN: "9999" }).pin, {
        kind: "env",
        variable: "JPKI_HSM_PIN",
    });
});
test("refuses malformed or incomplete URIs with a message that says what to fix", () => {
    const cases = [
        ["token=jpki", /must start with "pkcs11:"/],
        [`pkcs11:?module-path=${MODULE}&pin-value=1`, /name the token/],
        ["pkcs11:token=jpki?pin-value=1", /module-path=.* is required/],
        ["pkcs11:token=jpki?module-path=libsofthsm2.so&pin-value=1", /absolute path/],
        ["pkcs11:token=jpki?module-name=softhsm2&pin-value=1", /module-name is not supported/],
        [`pkcs11:token=jpki?module-path=${MODULE}`, /no PIN: .*JPKI_HSM_PIN/],
        [
            `pkcs11:token=jpki?module-path=${MODULE}&pin-value=1&pin-source=file:/x`,
            /either pin-value or pin-source/,
        ],
        [`pkcs11:token=jpki;token=x?module-path=${MODULE}&pin-value=1`, /appears twice/],
        [`pkcs11:token=jpki;object=ca?module-path=${MODULE}&pin-value=1`, /keys are chosen by label/],
        [`pkcs11:token=jpki;colour=red?module-path=${MODULE}&pin-value=1`, /unknown attribute "colour"/],
        [`pkcs11:token=%ZZ?module-path=${MODULE}&pin-value=1`, /percent-encoding/],
        [`pkcs11:slot-id=x?module-path=${MODULE}&pin-value=1`, /slot-id must be a decimal/],
        [`pkcs11:token=jpki?module-path=${MODULE}&pin-source=relative/pin`, /pin-source must be/],
    ];
    for (const [uri, message] of cases) {
        assert.throws(() => parsePkcs11Uri(uri, {}), (error) => error instanceof JpkiError && error.code === "bad-input" && message.test(error.message), uri);
    }
});
test("never repeats a pin-value in messages", () => {
    assert.throws(() => parsePkcs11Uri("pkcs11:token=a;bogus=1?module-path=/x&pin-value=s3cret", {}), (error) => {
        assert.ok(error instanceof Error);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
    });
    assert.equal(redact("pkcs11:token=a?pin-value=s3cret&module-path=/m"), "pkcs11:token=a?pin-value=***&module-path=/m");
});
test("reads the PIN from a file only when group and others cannot", async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), "jpki-pin-"));
    try {
        const file = path.join(dir, "pin");
        await fs.writeFile(file, "4321\n", { mode: 0o600 });
        const config = parsePkcs11Uri(`pkcs11:token=t?module-path=${MODULE}&pin-source=file://${file}`, {});
        assert.equal(readPin(config), "4321");
        await fs.chmod(file, 0o644);
        assert.throws(() => readPin(config), /chmod 600/);
        assert.throws(() => readPin(parsePkcs11Uri(`pkcs11:token=t?module-path=${MODULE}`, { JPKI_HSM_PIN: "1" }), {}), /JPKI_HSM_PIN is not set/);
    }
    finally {
        await fs.rm(dir, { recursive: true, force: true });
    }
});
test("openKeyStore: software by default, a pkcs11: URI, anything else refused", async () => {
    const { openKeyStore } = await import("./open-keystore.js");
    const store = await openKeyStore(undefined, { dataDirectory: "/nonexistent/data", passphrase: "p" });
    assert.equal(store.kind, "software");
    await assert.rejects(openKeyStore("hsm", { dataDirectory: "/x" }), /use "software" or a pkcs11: URI/);
    await assert.rejects(openKeyStore("pkcs11:token=t?module-path=/nonexistent/lib.so&pin-value=1", { dataDirectory: "/x" }), /PKCS#11 module \/nonexistent\/lib.so does not exist/);
});
//# sourceMappingURL=pkcs11-uri.test.js.map