/**
 * An eSIM profile deleted (or downloaded again) takes the JPKI applet with it: the carrier reports
 * it, J-LIS revokes the certificate at once, and the app, finding no applet on the SIM, tells the
 * citizen to apply again. Before that, the app shows the applet, and with the PIN the certificate.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CardManagerSession } from "../card/uicc/host.js";
import { JLIS_SD_AID } from "../card/uicc/uicc.js";
import { carrierEventPublicKey } from "../mno/carrier-events.js";
import { cardManagerKeys } from "../mno/carriers.js";
import { CarrierEventOutbox } from "../mno/event-outbox.js";
import { CrlReason } from "../pki/crl.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { enrolCarrierKey, inProcessEventSender } from "../ra/carrier-events.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { getCertificate } from "../registry/issuance.js";

test("an eSIM profile deleted: the certificate is revoked and the app asks the citizen to apply again", async () => {
  const sandbox = await openRaSandbox();
  try {
    const { authority, dir } = sandbox;
    const citizen = await sandbox.citizen();
    const phone = await sandbox.phone("kaede");
    const app = phone.app();
    assert.deepEqual(await app.credentialStatus(), { state: "present" });
    const answer = await app.applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
    await app.ensurePin("2580");
    assert.deepEqual(await app.credentialStatus("2580"), {
      state: "installed",
      serial: answer.certificateSerial,
    });

    // The profile goes: the carrier's card manager deletes the J-LIS domain and the applet in it,
    // and the carrier reports it.
    const manager = await CardManagerSession.open(phone.uicc, cardManagerKeys(dir, "kaede", phone.sim.iccid));
    await manager.delete(JLIS_SD_AID, true);
    await phone.uicc.reset();
    await enrolCarrierKey(authority.registry.db, "kaede", carrierEventPublicKey(dir, "kaede"));
    const outbox = CarrierEventOutbox.open(dir, "kaede");
    outbox.record("esim-profile-deleted", phone.sim.iccid);
    assert.equal((await outbox.deliver(inProcessEventSender(authority))).delivered, 1);

    const certificate = await getCertificate(authority.registry.db, answer.certificateSerial!);
    assert.deepEqual(
      [certificate?.status, certificate?.revocationReason],
      ["revoked", CrlReason.cessationOfOperation],
    );
    const status = await app.credentialStatus();
    assert.equal(status.state, "no-applet");
    assert.match(status.state === "no-applet" ? status.advice : "", /apply again/);
  } finally {
    await sandbox.close();
  }
});
