import * as assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import type * as Pkcs11Types from "pkcs11js";
import { JpkiError, SignerUnavailableError } from "../errors.js";
import type { KeyAlgorithm } from "../pki/algorithms.js";
import { createSoftHsmToken, type SoftHsmToken, softHsmMissing } from "../testing/softhsm.js";
import { opensslVerifySignature } from "../testing/tools.js";
import { Pkcs11KeyStore } from "./pkcs11-keystore.js";

const pkcs11js = createRequire(import.meta.url)("pkcs11js") as typeof Pkcs11Types;

// SoftHSM2 is part of the system set-up (scripts/setup-system.sh); CI must not skip these tests.
const missing = softHsmMissing();
if (missing && process.env["CI"]) throw new Error(`PKCS#11 tests need SoftHSM2: ${missing}`);

let work: string;
let token: SoftHsmToken;
let store: Pkcs11KeyStore;

/**
 * A second handle on the same PKCS#11 library, acting behind the key store's back as a broken or
 * hostile application would. C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED while the store
 * holds the library; this handle never finalizes it.
 */
function intruder(): { api: Pkcs11Types.PKCS11; slot: Buffer } {
  const api = new pkcs11js.PKCS11();
  api.load(token.modulePath);
  try {
    api.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if ((error as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
  }
  const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).label.trimEnd() === token.label);
  if (!slot) throw new Error("the intruder does not see the token");
  return { api, slot };
}

describe("PKCS#11 key store on SoftHSM2", { skip: missing }, () => {
  before(async () => {
    work = await fs.mkdtemp(path.join(tmpdir(), "jpki-p11ks-"));
    token = await createSoftHsmToken();
    store = await Pkcs11KeyStore.open(token.uri);
  });
  after(async () => {
    await store?.close();
    await token?.cleanup();
    await fs.rm(work, { recursive: true, force: true });
  });

  for (const algorithm of ["rsa-2048", "ec-p256"] as KeyAlgorithm[]) {
    test(`${algorithm}: generates on the token, signs, OpenSSL verifies; reopened by label`, async () => {
      const label = `ca-${algorithm}`;
      const key = await store.generate(label, algorithm);
      assert.equal(key.algorithm, algorithm);
      assert.equal(await store.has(label), true);
      const data = Buffer.from(`tbs for ${algorithm}`);
      const signature = await key.sign(data);
      assert.match(verifiedOutput(key.publicKeySpki, data, signature), /Verified OK/);

      const other = await Pkcs11KeyStore.open(token.uri);
      try {
        const reopened = await other.open(label);
        assert.equal(reopened.algorithm, algorithm);
        assert.deepEqual(reopened.publicKeySpki, key.publicKeySpki);
        const again = Buffer.from("signed through a second store");
        assert.match(verifiedOutput(key.publicKeySpki, again, await reopened.sign(again)), /Verified OK/);
      } finally {
        await other.close();
      }
    });
  }

  test("refuses a duplicate label and reports an unknown one as not-found", async () => {
    await store.generate("dup", "ec-p256");
    await assert.rejects(
      store.generate("dup", "ec-p256"),
      (e: unknown) => e instanceof JpkiError && e.code === "conflict",
    );
    await assert.rejects(
      store.open("absent"),
      (e: unknown) => e instanceof JpkiError && e.code === "not-found",
    );
    assert.equal(await store.has("absent"), false);
  });

  test("ATTACK: the private keys cannot be read, exported, wrapped or made extractable", async () => {
    await store.generate("attack-rsa", "rsa-2048");
    await store.generate("attack-ec", "ec-p256");
    const { api, slot } = intruder();
    const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      try {
        api.C_Login(session, pkcs11js.CKU_USER, token.pin);
      } catch (error) {
        if ((error as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw error;
      }
      const find = (label: string): Buffer => {
        api.C_FindObjectsInit(session, [
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        ]);
        const handle = api.C_FindObjects(session);
        api.C_FindObjectsFinal(session);
        assert.ok(handle, `private key ${label} found`);
        return handle;
      };
      const sensitive = (error: unknown) =>
        (error as { code?: number }).code === pkcs11js.CKR_ATTRIBUTE_SENSITIVE;
      for (const [label, secret] of [
        ["attack-rsa", pkcs11js.CKA_PRIVATE_EXPONENT],
        ["attack-rsa", pkcs11js.CKA_PRIME_1],
        ["attack-ec", pkcs11js.CKA_VALUE],
      ] as const) {
        const handle = find(label);
        const flags = api.C_GetAttributeValue(session, handle, [
          { type: pkcs11js.CKA_TOKEN },
          { type: pkcs11js.CKA_PRIVATE },
          { type: pkcs11js.CKA_SENSITIVE },
          { type: pkcs11js.CKA_EXTRACTABLE },
          { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
          { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
        ]);
        assert.deepEqual(
          flags.map((a) => a.value[0]),
          [1, 1, 1, 0, 1, 1],
          "TOKEN, PRIVATE, SENSITIVE, not EXTRACTABLE, ALWAYS_SENSITIVE, NEVER_EXTRACTABLE",
        );
        assert.throws(() => api.C_GetAttributeValue(session, handle, [{ type: secret }]), sensitive);
        // CKA_EXTRACTABLE may only go from true to false (PKCS#11 v2.40 §4.9, table 26 note 11).
        assert.throws(() =>
          api.C_SetAttributeValue(session, handle, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]),
        );
        assert.throws(() =>
          api.C_SetAttributeValue(session, handle, [{ type: pkcs11js.CKA_SENSITIVE, value: false }]),
        );
        // Wrapping under a key the attacker holds is refused too.
        const wrapping = api.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_WRAP, value: true },
          { type: pkcs11js.CKA_TOKEN, value: false },
        ]);
        assert.throws(
          () =>
            api.C_WrapKey(
              session,
              { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD },
              wrapping,
              handle,
              Buffer.alloc(4096),
            ),
          (error: unknown) => (error as { code?: number }).code === pkcs11js.CKR_KEY_UNEXTRACTABLE,
        );
      }
    } finally {
      api.C_CloseSession(session);
    }
  });

  test("a session closed behind the store's back is reopened and the signature made", async () => {
    const key = await store.generate("lost-session", "rsa-2048");
    const { api, slot } = intruder();
    api.C_CloseAllSessions(slot); // also logs the application out and voids every object handle
    const data = Buffer.from("after C_CloseAllSessions");
    assert.match(verifiedOutput(key.publicKeySpki, data, await key.sign(data)), /Verified OK/);
  });

  test("a library finalized behind the store's back is initialized again", async () => {
    const key = await store.generate("finalized", "ec-p256");
    intruder().api.C_Finalize();
    const data = Buffer.from("after C_Finalize");
    assert.match(verifiedOutput(key.publicKeySpki, data, await key.sign(data)), /Verified OK/);
  });

  test("many concurrent signatures are serialized on one session and all verify", async () => {
    const key = await store.generate("concurrent", "ec-p256");
    const messages = Array.from({ length: 20 }, (_, i) => Buffer.from(`m${i}`));
    const signatures = await Promise.all(messages.map((m) => key.sign(m)));
    for (const [i, m] of messages.entries())
      assert.match(verifiedOutput(key.publicKeySpki, m, signatures[i]!), /Verified OK/);
  });

  test("an HSM that stays down gives SignerUnavailableError in bounded time, and signing resumes when it is back", async () => {
    const key = await store.generate("down", "rsa-2048");
    // The token's files vanish and its sessions drop, as when a network HSM goes away.
    // Out of the token directory: SoftHSM finds tokens in every subdirectory of it.
    const moved = path.join(path.dirname(path.dirname(token.tokenDirectory)), "away");
    const { api, slot } = intruder();
    await fs.rename(token.tokenDirectory, moved);
    api.C_CloseAllSessions(slot);
    try {
      const started = performance.now();
      await assert.rejects(key.sign(Buffer.from("while down")), (error: unknown) => {
        assert.ok(error instanceof SignerUnavailableError, String(error));
        assert.equal(error.status, 503);
        assert.match(error.message, /unavailable/);
        return true;
      });
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2000, `gave up after ${elapsed.toFixed(0)} ms`);
    } finally {
      await fs.rename(moved, token.tokenDirectory);
    }
    const data = Buffer.from("after the token came back");
    assert.match(verifiedOutput(key.publicKeySpki, data, await key.sign(data)), /Verified OK/);
  });

  test("a wrong PIN is reported at open, as a server error naming the PIN", async () => {
    // A token of its own: SoftHSM skips the PIN check for a token the application is logged in to.
    const lonely = await createSoftHsmToken();
    try {
      const uri = lonely.uri.replace(/pin-value=[^&]*/, "pin-value=0000");
      await assert.rejects(Pkcs11KeyStore.open(uri), (error: unknown) => {
        assert.ok(error instanceof JpkiError, String(error));
        assert.equal(error.code, "internal");
        assert.match(error.message, /refused the user PIN \(CKR_PIN_INCORRECT\)/);
        assert.doesNotMatch(error.message, /0000/);
        return true;
      });
    } finally {
      await lonely.cleanup();
    }
  });

  test("a token that does not exist gives SignerUnavailableError listing the tokens seen", async () => {
    const uri = token.uri.replace(/token=[^?;]*/, "token=nonexistent");
    await assert.rejects(Pkcs11KeyStore.open(uri), (error: unknown) => {
      assert.ok(error instanceof SignerUnavailableError, String(error));
      assert.match(error.message, /no token matching .*tokens seen: "jpki-test/);
      return true;
    });
  });
});

/** OpenSSL's verdict on a signature (stdout and stderr), checked against "Verified OK". */
function verifiedOutput(spki: Buffer, data: Buffer, signature: Buffer): string {
  const result = opensslVerifySignature(spki, data, signature);
  return result.stdout + result.stderr;
}
