/**
 * A carrier in a process of its own (`jpki-mobile carrier serve`), J-LIS configured to reach it: the
 * certificate goes to the SIM through the carrier's gateway in the other process (the phone pulling
 * over HTTP); J-LIS asks that process whether a SIM is active (a SIM the carrier suspended is refused
 * though J-LIS's own record says active); the carrier's port-out reaches J-LIS from that process and
 * the certificate is revoked; the process answers only for its own SIMs and stops on SIGTERM.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { JpkiApp } from "../phone/app.js";
import { httpRelayAgent } from "../phone/http-jlis.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { enrolCarrierKey } from "../ra/carrier-events.js";
import { inProcessJlis } from "../ra/jlis-client.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { getCertificate } from "../registry/issuance.js";
import { createStatusService } from "../server/http.js";
import { cliArgs, firstLine } from "../testing/cli.js";
import { carrierEventPublicKey } from "./carrier-events.js";
import { carrierDatabase, setSubscriptionState } from "./carrier-store.js";
import { CarrierEventOutbox } from "./event-outbox.js";
import { remoteCarrier } from "./http-gateway.js";

test("a carrier in its own process: delivery, SIM status and events, J-LIS configured to reach it", async () => {
  const sandbox = await openRaSandbox();
  const jlis = createStatusService(sandbox.authority, { refresher: false, log: () => undefined });
  const child = spawn(
    process.execPath,
    cliArgs([
      "carrier",
      "serve",
      "--carrier",
      "kaede",
      "--data",
      sandbox.dir,
      "--port",
      "0",
      "--json",
      "--every",
      "0.2",
      "--jlis",
      await jlis.listen(0),
    ]),
    { env: process.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const stops: (() => Promise<void>)[] = [];
  try {
    const { url, carrier } = JSON.parse(await firstLine(child)) as { url: string; carrier: string };
    assert.equal(carrier, "kaede");
    const authority = {
      ...sandbox.authority,
      config: { ...sandbox.authority.config, carriers: { kaede: { url } } },
    };
    const db = authority.registry.db;
    const appOn = async (phone: Awaited<ReturnType<typeof sandbox.phone>>) => {
      phone.stopRelay();
      const agent = httpRelayAgent(url, phone.sim.iccid, phone.uicc, { waitSeconds: 1 });
      stops.push(() => agent.stop());
      return new JpkiApp(
        { transport: phone.uicc, iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand },
        inProcessJlis(authority, () => remoteCarrier(authority, "kaede")!),
      );
    };

    const citizen = await sandbox.citizen();
    const phone = await sandbox.phone("kaede");
    const answer = await (await appOn(phone)).applyOnline({
      card: citizen.card,
      signPassword: DEFAULT_SIGN_PASSWORD,
    });
    assert.equal(answer.status, "delivered");
    assert.equal(phone.relay.relayed.length, 0, "nothing went through a gateway in J-LIS's process");

    const status = await fetch(`${url}/api/mno/sims/${phone.sim.iccid}`);
    assert.deepEqual(await status.json(), {
      iccid: phone.sim.iccid,
      issuer: "kaede",
      brand: "kaede",
      state: "active",
      active: true,
    });
    const other = await sandbox.phone("sakura");
    assert.equal((await fetch(`${url}/api/mno/sims/${other.sim.iccid}`)).status, 404, "not kaede's SIM");
    assert.equal((await fetch(`${url}/healthz`)).status, 200);

    // Kaede suspends a SIM: J-LIS's own record still says active, and J-LIS refuses it, having asked.
    const suspended = await sandbox.phone("kaede");
    setSubscriptionState(carrierDatabase(sandbox.dir, "kaede"), suspended.sim.iccid, "suspended");
    await assert.rejects(
      (await appOn(suspended)).applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD }),
      /is suspended at kaede/,
    );

    // Kaede ports the first number out: the process delivers the event, J-LIS revokes.
    await enrolCarrierKey(db, "kaede", carrierEventPublicKey(sandbox.dir, "kaede"));
    CarrierEventOutbox.open(sandbox.dir, "kaede").record("port-out", phone.sim.iccid);
    let revoked = false;
    for (let i = 0; i < 100 && !revoked; i++) {
      revoked = (await getCertificate(db, answer.certificateSerial!))?.status === "revoked";
      if (!revoked) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(revoked, "the port-out reached J-LIS from the carrier's process");
  } finally {
    for (const stop of stops) await stop();
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    await jlis.close();
    await sandbox.close();
  }
});
