import * as assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { JpkiError } from "../errors.js";
import type { KeyAlgorithm } from "../pki/algorithms.js";
import { opensslVerifySignature } from "../testing/tools.js";
import { resolvePassphrase, SoftwareKeyStore } from "./software-keystore.js";
import { openssl } from "./test-fixtures.js";

const PASSPHRASE = "correct horse battery staple";
let work: string;

before(async () => {
  work = await fs.mkdtemp(path.join(tmpdir(), "jpki-swks-"));
});
after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

function freshStore(passphrase: string | (() => Promise<string>) = PASSPHRASE): SoftwareKeyStore {
  return new SoftwareKeyStore({
    directory: path.join(work, `keys-${Math.random().toString(36).slice(2)}`),
    passphrase,
  });
}

for (const algorithm of ["rsa-2048", "ec-p256"] as KeyAlgorithm[]) {
  describe(`software key store, ${algorithm}`, () => {
    test("generates, signs, and OpenSSL verifies the signature", async () => {
      const store = freshStore();
      const key = await store.generate("sign-ca", algorithm);
      assert.equal(key.algorithm, algorithm);
      const data = Buffer.from("to be signed");
      const signature = await key.sign(data);
      assert.match(verifiedOutput(key.publicKeySpki, data, signature), /Verified OK/);
      assert.ok(
        verify(
          "sha256",
          data,
          {
            key: createPublicKey({ key: key.publicKeySpki, format: "der", type: "spki" }),
            dsaEncoding: "der",
          },
          signature,
        ),
      );
      if (algorithm === "ec-p256") assert.equal(signature[0], 0x30, "ECDSA signature is a DER SEQUENCE");
      else assert.equal(signature.length, 256);
    });

    test("writes an encrypted PKCS#8 file with mode 0600 in a 0700 directory, and reopens it", async () => {
      const store = freshStore();
      const key = await store.generate("auth-ca", algorithm);
      const file = store.fileOf("auth-ca");
      assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
      assert.equal((await fs.stat(store.directory)).mode & 0o777, 0o700);
      const text = await fs.readFile(file, "utf8");
      assert.match(text, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
      // OpenSSL reads it with the passphrase: PBES2 with AES-256-CBC.
      const parsed = await openssl(["asn1parse", "-in", file]);
      assert.match(parsed, /PBES2/);
      assert.match(parsed, /aes-256-cbc/);
      await openssl(["pkey", "-in", file, "-passin", `pass:${PASSPHRASE}`, "-noout"]);
      assert.deepEqual(
        (await fs.readdir(store.directory)).sort(),
        ["auth-ca.key.pem"],
        "no temporary file is left",
      );

      const reopened = await new SoftwareKeyStore({
        directory: store.directory,
        passphrase: PASSPHRASE,
      }).open("auth-ca");
      assert.equal(reopened.algorithm, algorithm);
      assert.deepEqual(reopened.publicKeySpki, key.publicKeySpki);
      const data = Buffer.from("after reopening");
      assert.match(verifiedOutput(key.publicKeySpki, data, await reopened.sign(data)), /Verified OK/);
    });
  });
}

describe("software key store, refusals", () => {
  test("refuses a key file readable by group or others, and says how to fix it", async () => {
    const store = freshStore();
    await store.generate("ca", "ec-p256");
    const file = store.fileOf("ca");
    await fs.chmod(file, 0o644);
    const other = new SoftwareKeyStore({ directory: store.directory, passphrase: PASSPHRASE });
    await assert.rejects(other.open("ca"), (error: unknown) => {
      assert.ok(error instanceof JpkiError);
      assert.match(error.message, /mode 0644/);
      assert.match(error.message, new RegExp(`chmod 600 ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      return true;
    });
    await fs.chmod(file, 0o600);
    await other.open("ca");
  });

  test("a wrong passphrase is a clear bad-input error", async () => {
    const store = freshStore();
    await store.generate("ca", "rsa-2048");
    const wrong = new SoftwareKeyStore({ directory: store.directory, passphrase: "not the passphrase" });
    await assert.rejects(wrong.open("ca"), (error: unknown) => {
      assert.ok(error instanceof JpkiError);
      assert.equal(error.code, "bad-input");
      assert.match(error.message, /^wrong passphrase for the key file .*ca\.key\.pem$/);
      return true;
    });
  });

  test("a missing passphrase names both ways to provide it", async () => {
    await assert.rejects(resolvePassphrase({ env: {} }), (error: unknown) => {
      assert.ok(error instanceof JpkiError);
      assert.equal(error.code, "bad-input");
      assert.match(error.message, /JPKI_CA_PASSPHRASE\b.*JPKI_CA_PASSPHRASE_FILE/);
      return true;
    });
    const store = freshStore(() => resolvePassphrase({ env: {} }));
    await assert.rejects(store.generate("ca", "ec-p256"), /no CA passphrase/);
    assert.equal(await store.has("ca"), false, "nothing written");
  });

  test("the passphrase comes from a 0600 file (one trailing newline dropped) or the environment", async () => {
    const file = path.join(work, "passphrase");
    await fs.writeFile(file, `${PASSPHRASE}\n`, { mode: 0o600 });
    assert.equal(await resolvePassphrase({ env: { JPKI_CA_PASSPHRASE_FILE: file } }), PASSPHRASE);
    assert.equal(await resolvePassphrase({ env: { JPKI_CA_PASSPHRASE: "x y" } }), "x y");
    await assert.rejects(
      resolvePassphrase({ env: { JPKI_CA_PASSPHRASE: "a", JPKI_CA_PASSPHRASE_FILE: file } }),
      /set only one/,
    );
    await fs.chmod(file, 0o640);
    await assert.rejects(resolvePassphrase({ env: { JPKI_CA_PASSPHRASE_FILE: file } }), /chmod 600/);
    await assert.rejects(
      resolvePassphrase({ env: { JPKI_CA_PASSPHRASE_FILE: path.join(work, "absent") } }),
      /cannot read the CA passphrase file/,
    );
  });

  test("refuses a second key under one label, unknown labels, and labels that leave the directory", async () => {
    const store = freshStore();
    await store.generate("ca", "ec-p256");
    await assert.rejects(
      store.generate("ca", "ec-p256"),
      (error: unknown) => error instanceof JpkiError && error.code === "conflict",
    );
    await assert.rejects(
      store.open("nope"),
      (error: unknown) => error instanceof JpkiError && error.code === "not-found",
    );
    for (const label of ["../ca", "a/b", "", ".hidden", "x".repeat(65)])
      await assert.rejects(
        store.open(label),
        (error: unknown) => error instanceof JpkiError && error.code === "bad-input",
      );
  });

  test("a damaged key file is an integrity error, not a stack trace", async () => {
    const store = freshStore();
    await store.generate("ca", "ec-p256");
    await fs.writeFile(
      store.fileOf("ca"),
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
      { mode: 0o600 },
    );
    const other = new SoftwareKeyStore({ directory: store.directory, passphrase: PASSPHRASE });
    await assert.rejects(
      other.open("ca"),
      (error: unknown) => error instanceof JpkiError && error.code === "integrity",
    );
  });
});

test("concurrent signatures all verify", async () => {
  const store = freshStore();
  const key = await store.generate("ca", "rsa-2048");
  const messages = Array.from({ length: 16 }, (_, i) => Buffer.from(`message ${i}`));
  const signatures = await Promise.all(messages.map((m) => key.sign(m)));
  const publicKey = createPublicKey({ key: key.publicKeySpki, format: "der", type: "spki" });
  for (const [i, m] of messages.entries()) assert.ok(verify("sha256", m, publicKey, signatures[i]!));
});

/** OpenSSL's verdict on a signature (stdout and stderr), checked against "Verified OK". */
function verifiedOutput(spki: Buffer, data: Buffer, signature: Buffer): string {
  const result = opensslVerifySignature(spki, data, signature);
  return result.stdout + result.stderr;
}
