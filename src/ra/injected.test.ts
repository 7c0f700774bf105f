/**
 * `keyGeneration = injected` (the seed's literal design) on both databases: J-LIS makes the key after
 * the examination, keeps it sealed with the certificate, writes it to the SIM inside its channel at
 * delivery, and destroys it; the relay never carries it in clear; a key never delivered is destroyed
 * with the revocation. Applications made for the other mode are refused with the reason.
 */
import assert from "node:assert/strict";
import { constants, createPrivateKey, createPublicKey, publicDecrypt, randomBytes } from "node:crypto";
import { test } from "node:test";
import { loadUiccState } from "../card/uicc/state.js";
import { JpkiError } from "../errors.js";
import { parseCertificate } from "../pki/certificate.js";
import { sha256DigestInfo } from "../pki/cms.js";
import { forEachDialect } from "../testing/dialects.js";
import { secretParts } from "../testing/secrets.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { injectedKeyOf } from "./injected-keys.js";
import { inProcessJlis } from "./jlis-client.js";
import { DEFAULT_DELIVERY_WINDOW_MS, revokeUndelivered } from "./provisioning.js";
import { openRaSandbox } from "./ra-fixture.js";

forEachDialect((_dialect, open) => {
  test("J-LIS makes the key, delivers it sealed inside its channel, and destroys its copy", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    try {
      const onCard = sandbox.authority;
      const authority: typeof onCard = {
        ...onCard,
        policies: { ...onCard.policies, keyGeneration: "injected" },
      };
      const db = authority.registry.db;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const appWith = (jlisAuthority: typeof authority) =>
        phone.app(inProcessJlis(jlisAuthority, () => phone.relay));
      const app = appWith(authority);

      // The modes must agree with J-LIS's policy, either way.
      const refused = (pattern: RegExp) => (error: unknown) =>
        error instanceof JpkiError && error.code === "forbidden" && pattern.test(error.message);
      await assert.rejects(
        app.applyOnline({
          card: citizen.card,
          signPassword: DEFAULT_SIGN_PASSWORD,
          keyGeneration: "on-card",
        }),
        refused(/makes the key itself and injects it/),
      );
      await assert.rejects(
        appWith(onCard).applyOnline({
          card: citizen.card,
          signPassword: DEFAULT_SIGN_PASSWORD,
          keyGeneration: "injected",
        }),
        refused(/makes the key on the SIM/),
      );

      const relayedBefore = phone.relay.relayed.length;
      // By default the app follows J-LIS's policy.
      const answer = await app.applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
      assert.equal(answer.status, "delivered");
      assert.equal(
        (await db.selectFrom("injected_keys").select("application_id").execute()).length,
        0,
        "J-LIS's copy of the key is destroyed once delivered",
      );
      assert.equal(await injectedKeyOf(db, authority.dataDir, answer.applicationId), undefined);

      // The SIM holds the key of the certificate, and signs with it after the citizen's PIN.
      assert.equal(await app.ensurePin("9753"), "set");
      const certificate = await app.certificate("9753");
      const hash = randomBytes(32);
      const signature = await app.signHash(hash, "9753");
      const publicKey = createPublicKey({
        key: parseCertificate(certificate).spki,
        format: "der",
        type: "spki",
      });
      assert.ok(
        publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature).equals(
          sha256DigestInfo(hash),
        ),
      );
      // The key crossed the carrier's relay only inside J-LIS's channel.
      const simKey = createPrivateKey({
        key: Buffer.from(loadUiccState(phone.sim.simState).applet!.jpki.keys["0017"]!, "base64"),
        format: "der",
        type: "pkcs8",
      });
      const carried = Buffer.concat(
        phone.relay.relayed.slice(relayedBefore).flatMap((e) => [e.command, e.response ?? Buffer.alloc(0)]),
      );
      for (const secret of secretParts(simKey)) assert.equal(carried.indexOf(secret), -1);

      // A second application that is never delivered: its key waits sealed, then goes with the revocation.
      const pending = await appWith(authority).jlis.submit(
        await app.prepareOnlineApplication({
          card: citizen.card,
          signPassword: DEFAULT_SIGN_PASSWORD,
          keyGeneration: "injected",
        }),
      );
      const row = await db
        .selectFrom("injected_keys")
        .select("sealed_key")
        .where("application_id", "=", pending.applicationId)
        .executeTakeFirstOrThrow();
      const pkcs8 = await injectedKeyOf(db, authority.dataDir, pending.applicationId);
      assert.ok(
        pkcs8 && Buffer.from(row.sealed_key).indexOf(pkcs8.subarray(-64)) === -1,
        "sealed, not in clear",
      );
      const issued = await authority.registry.getCertificate(pending.certificateSerial!);
      assert.ok(
        createPublicKey(createPrivateKey({ key: pkcs8!, format: "der", type: "pkcs8" }))
          .export({ type: "spki", format: "der" })
          .equals(parseCertificate(issued!.der!).spki),
        "the sealed key is the certificate's",
      );
      await revokeUndelivered(authority, {
        now: new Date(Date.now() + DEFAULT_DELIVERY_WINDOW_MS + 86_400_000),
      });
      assert.equal(await injectedKeyOf(db, authority.dataDir, pending.applicationId), undefined);
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });
});
