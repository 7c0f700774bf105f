/**
 * A physical SIM moved to a new handset keeps working with no J-LIS action (DESIGN §4 flow 7): the
 * key, the certificate and the PIN counter are in the SIM, so the new phone's app logs in with the
 * same certificate, a wrong PIN entered on the old phone still counts on the new one, and J-LIS's
 * registry sees nothing: no application, no certificate, no lifecycle event.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InProcessTransport } from "../card/in-process-transport.js";
import { openUicc } from "../card/uicc/uicc.js";
import { JpkiApp } from "../phone/app.js";
import { WrongPinError } from "../phone/jpki-card.js";
import { loginToRelyingParty } from "../phone/rp-login.js";
import { inProcessJlis } from "../ra/jlis-client.js";
import { openLoginSandbox, SIM_PIN } from "./rp-fixture.js";

test("a SIM moved to a new handset logs in with the same certificate; J-LIS's registry does not change", async () => {
  const sandbox = await openLoginSandbox();
  try {
    const db = sandbox.ra.authority.registry.db;
    const { url } = await sandbox.relyingParty("example-bank");
    const before = await loginToRelyingParty(sandbox.app, { rpUrl: url, pin: SIM_PIN });
    assert.equal(before.serial, sandbox.serial);
    const wrong = "0000";
    await assert.rejects(
      sandbox.app.signHash(Buffer.alloc(32), wrong),
      (error) => error instanceof WrongPinError && error.triesLeft === 2,
    );
    const rows = async () => ({
      applications: (await db.selectFrom("applications").select("id").execute()).length,
      certificates: (await db.selectFrom("certificates").select("serial").execute()).length,
      lifecycle: (await db.selectFrom("lifecycle_events").select("id").execute()).length,
      sim: (await sandbox.ra.authority.registry.getSimByIccid(sandbox.phone.sim.iccid))?.status,
    });
    const registryBefore = await rows();

    // The SIM leaves the old phone and goes into a new one: a new app, the same SIM.
    sandbox.phone.stopRelay();
    await sandbox.phone.uicc.close();
    const moved = new InProcessTransport(openUicc(sandbox.phone.sim.simState));
    const newApp = new JpkiApp(
      {
        transport: moved,
        iccid: sandbox.phone.sim.iccid,
        eid: sandbox.phone.sim.eid,
        carrier: sandbox.phone.sim.brand,
      },
      inProcessJlis(sandbox.ra.authority, () => sandbox.phone.relay),
    );
    // The PIN counter travelled with the SIM: one more wrong PIN leaves one try.
    await assert.rejects(
      newApp.signHash(Buffer.alloc(32), wrong),
      (error) => error instanceof WrongPinError && error.triesLeft === 1,
    );
    const after = await loginToRelyingParty(newApp, { rpUrl: url, pin: SIM_PIN });
    assert.equal(after.serial, sandbox.serial);
    assert.deepEqual(await newApp.certificate(SIM_PIN), sandbox.certificate);
    assert.deepEqual(await rows(), registryBefore);
    await moved.close();
  } finally {
    await sandbox.close();
  }
});
