/**
 * Delivery to the SIM on both databases: retried with backoff while the phone cannot be reached, and
 * never left dangling: past the delivery window the certificate is revoked (destroyed before
 * delivery) and the application fails, while a delivered one is left alone.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { CrlReason } from "../pki/crl.js";
import { forEachDialect } from "../testing/dialects.js";
import { getApplication } from "./applications.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { inProcessJlis } from "./jlis-client.js";
import {
  DEFAULT_DELIVERY_WINDOW_MS,
  DELIVERY_WINDOW_SETTING,
  deliverWithRetry,
  revokeUndelivered,
} from "./provisioning.js";
import { openRaSandbox } from "./ra-fixture.js";

const DAY = 86_400_000;

forEachDialect((_dialect, open) => {
  test("delivery is retried with backoff; what is not delivered in time is revoked and the application fails", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const jlis = inProcessJlis(authority, () => phone.relay);
      const app = phone.app(jlis);
      const apply = async () =>
        jlis.submit(
          await app.prepareOnlineApplication({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD }),
        );

      // The phone is unreachable twice, then the relay gets through.
      const first = await apply();
      let failures = 0;
      const waits: number[] = [];
      const tries = await deliverWithRetry(
        authority,
        () =>
          failures++ < 2
            ? {
                transmit: () =>
                  Promise.reject(new JpkiError("signer-unavailable", "the phone did not fetch its commands")),
              }
            : phone.relay.transportFor(phone.sim.iccid),
        first.applicationId,
        { sleep: async (ms) => void waits.push(ms) },
      );
      assert.equal(tries, 3);
      assert.deepEqual(waits, [1000, 2000]);
      assert.equal((await getApplication(db, first.applicationId))?.status, "delivered");
      // Not retried when the application cannot be delivered at all (already delivered is success; a
      // failed one is refused at once).
      await assert.rejects(
        deliverWithRetry(authority, () => phone.relay.transportFor(phone.sim.iccid), "AP-0000-0000-0000", {
          sleep: async () => assert.fail("a refusal was retried"),
        }),
        /no application/,
      );

      // A second application is issued, and its phone never comes back.
      const second = await apply();
      const stillOpen = await getApplication(db, second.applicationId);
      assert.equal(stillOpen?.status, "issued");
      assert.deepEqual(await revokeUndelivered(authority), [], "within the window nothing is ended");
      const later = new Date(Date.now() + DEFAULT_DELIVERY_WINDOW_MS + DAY);
      assert.deepEqual(await revokeUndelivered(authority, { now: later }), [second.applicationId]);
      const ended = await getApplication(db, second.applicationId);
      assert.equal(ended?.status, "failed");
      assert.match(ended?.failureReason ?? "", /could not be delivered.*revoked/);
      const certificate = await authority.registry.getCertificate(second.certificateSerial!);
      assert.deepEqual(
        [certificate?.status, certificate?.revocationReason],
        ["revoked", CrlReason.unspecified],
      );
      // The delivered application and its certificate are untouched (the second superseded it on
      // issuance, as one-per-medium says; the sweep did not touch it).
      assert.equal((await getApplication(db, first.applicationId))?.status, "delivered");
      assert.deepEqual(await revokeUndelivered(authority, { now: later }), [], "the sweep is idempotent");
      // The window is a registry setting: an hour, and a third application is ended two hours on.
      await authority.registry.setSetting(DELIVERY_WINDOW_SETTING, "3600", "test");
      const third = await apply();
      assert.deepEqual(await revokeUndelivered(authority), []);
      assert.deepEqual(await revokeUndelivered(authority, { now: new Date(Date.now() + 2 * 3_600_000) }), [
        third.applicationId,
      ]);
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });
});
