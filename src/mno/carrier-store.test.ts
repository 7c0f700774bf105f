/**
 * Carriers' inventories and the SIM status API: a SIM of each kind of carrier (MNO, full MVNO, light
 * MVNO on its host's SIMs) enters its issuer's inventory with an IMSI, a phone number and the
 * contract's brand, and is provisioned through its issuer's gateway; the status API answers by the
 * ICCID's issuer, never the brand; a port-out recorded by the carrier makes J-LIS refuse the SIM at
 * once, before the event has even reached J-LIS; the API over HTTP.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { createStatusService } from "../server/http.js";
import { issuerOfIccid, simStatus, subscriptionOf } from "./carrier-store.js";
import { CarrierEventOutbox } from "./event-outbox.js";

test("a SIM of each kind of carrier: inventory, provisioning through the issuer, status by issuer", async () => {
  const sandbox = await openRaSandbox();
  const service = createStatusService(sandbox.authority, { refresher: false, log: () => undefined });
  try {
    const { dir } = sandbox;
    const expected = { sakura: "sakura", tsubame: "tsubame", hibari: "sakura" } as const;
    for (const [brand, issuer] of Object.entries(expected)) {
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone(brand);
      assert.equal(issuerOfIccid(phone.sim.iccid)?.name, issuer);
      const subscription = subscriptionOf(dir, issuer, phone.sim.iccid)!;
      assert.equal(subscription.brand, brand);
      assert.equal(subscription.state, "active");
      assert.equal(subscription.eid, phone.sim.eid);
      assert.match(subscription.imsi, new RegExp(`^440${phone.sim.iccid.slice(4, 6)}\\d{10}$`));
      assert.match(subscription.msisdn, /^080\d{8}$/);
      assert.equal(subscriptionOf(dir, brand === issuer ? "kaede" : brand, phone.sim.iccid), undefined);
      assert.deepEqual(simStatus(dir, phone.sim.iccid), {
        iccid: phone.sim.iccid,
        issuer,
        brand,
        state: "active",
        active: true,
      });
      const answer = await phone
        .app()
        .applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
      assert.equal(answer.status, "delivered");
      assert.equal(phone.relay.carrier, issuer, "the issuer's gateway carried the delivery");
      assert.ok(phone.relay.relayed.length > 0);
    }

    // Sakura ports a number out: its inventory changes with the event, and J-LIS, asking sakura,
    // refuses the SIM at once, although the event has not been delivered yet.
    const citizen = await sandbox.citizen();
    const phone = await sandbox.phone("sakura");
    const outbox = CarrierEventOutbox.open(dir, "sakura");
    outbox.record("port-out", phone.sim.iccid);
    assert.equal(outbox.entries().at(-1)?.state, "pending");
    assert.equal(simStatus(dir, phone.sim.iccid)?.state, "ported-out");
    await assert.rejects(
      phone.app().applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD }),
      /is ported-out at sakura/,
    );

    const url = await service.listen(0);
    const response = await fetch(`${url}/api/mno/sims/${phone.sim.iccid}`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), simStatus(dir, phone.sim.iccid));
    assert.equal((await fetch(`${url}/api/mno/sims/8981990000000000000`)).status, 404);
  } finally {
    await service.close();
    await sandbox.close();
  }
});
