/**
 * The carrier's events reach J-LIS exactly once although J-LIS dies during the delivery: J-LIS runs
 * as `jpki-mobile start` in a child process and is killed (SIGKILL) twice, once after it applied an
 * event but before the carrier read the answer, once with a request in flight. The carrier's outbox
 * retries; afterwards every event is applied once: one record, one SIM status change, one revocation
 * per certificate, and the audit chain is whole.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { enrolCarrierKey } from "../ra/carrier-events.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { verifyAudit } from "../registry/audit.js";
import { cliArgs, firstLine } from "../testing/cli.js";
import { carrierEventPublicKey } from "./carrier-events.js";
import { CarrierEventOutbox, type EventSender, httpEventSender } from "./event-outbox.js";
import { createSim } from "./sim-factory.js";

const EVENTS = 24;

test("events survive J-LIS being killed mid-delivery, and each is applied exactly once", async () => {
  const sandbox = await openRaSandbox();
  const { authority, dir } = sandbox;
  const db = authority.registry.db;
  // The carrier's own directory: the J-LIS process (`start`, which delivers the outboxes of its data
  // directory's carriers) must not deliver this outbox beside the test.
  const carrierDir = mkdtempSync(path.join(tmpdir(), "jpki-carrier-"));
  const outbox = CarrierEventOutbox.open(carrierDir, "sakura");
  let jlis: { child: ChildProcess; url: string; exited: Promise<void> } | undefined;

  const startJlis = async () => {
    const child = spawn(process.execPath, cliArgs(["start", "--data", dir, "--port", "0", "--json"]), {
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    const { url } = JSON.parse(await firstLine(child)) as { url: string };
    jlis = { child, url, exited };
  };
  const killJlis = async () => {
    const running = jlis;
    jlis = undefined;
    if (!running) return;
    process.kill(-running.child.pid!, "SIGKILL");
    await running.exited;
  };

  try {
    // Three citizens with certificates on sakura SIMs, and more sakura SIMs without one.
    const serials: string[] = [];
    const iccids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const citizen = await sandbox.citizen(`試験 ${i}`);
      const phone = await sandbox.phone();
      const answer = await phone
        .app()
        .applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
      assert.equal(answer.status, "delivered");
      serials.push(answer.certificateSerial!);
      iccids.push(phone.sim.iccid);
    }
    while (iccids.length < EVENTS) iccids.push((await createSim(authority, { carrier: "sakura" })).iccid);
    await enrolCarrierKey(db, "sakura", carrierEventPublicKey(carrierDir, "sakura"));
    const events = iccids.map((iccid) => outbox.record("port-out", iccid));

    await startJlis();
    let sends = 0;
    const send: EventSender = async (signed) => {
      sends++;
      const http = httpEventSender(jlis!.url);
      if (sends === 6) {
        // J-LIS applies the event, then dies before the carrier reads its answer.
        await http(signed);
        await killJlis();
        throw new Error("the answer was lost");
      }
      if (sends === 15) {
        // J-LIS dies with the request in flight: the carrier cannot know whether it was applied.
        const inFlight = http(signed);
        inFlight.catch(() => undefined); // its failure is the deliverer's to see, after the kill
        await killJlis();
        return inFlight;
      }
      return http(signed);
    };

    let duplicates = 0;
    let failed = 0;
    for (let round = 0; round < 10 && outbox.entries().some((e) => e.state === "pending"); round++) {
      if (!jlis) await startJlis();
      // As if the backoff had passed: every pending event is due (each round an hour later).
      const pass = await outbox.deliver(send, Date.now() + (round + 1) * 3_600_000);
      duplicates += pass.duplicates;
      failed += pass.failed;
      assert.equal(pass.refused, 0);
    }
    await killJlis();

    // The lost answer fails its delivery; the request in flight may have been answered before the kill.
    assert.ok(failed >= 1, `the kills made deliveries fail (${failed})`);
    assert.ok(duplicates >= 1, "the event whose answer was lost came back as a duplicate");
    const entries = outbox.entries();
    assert.deepEqual(
      entries.map((e) => e.state),
      events.map(() => "delivered"),
    );

    const recorded = await db.selectFrom("carrier_events").select(["id", "iccid"]).execute();
    assert.deepEqual(recorded.map((r) => r.id).sort(), events.map((e) => e.id).sort());
    for (const iccid of iccids) {
      const sim = (await authority.registry.getSimByIccid(iccid))!;
      assert.equal(sim.status, "ported-out");
      const changes = await db
        .selectFrom("audit_log")
        .select("seq")
        .where("action", "=", "sim.status")
        .where("subject", "=", sim.id)
        .execute();
      assert.equal(changes.length, 1, `SIM ${iccid} changed status once`);
    }
    for (const serial of serials) {
      const revocations = await db
        .selectFrom("lifecycle_events")
        .select("id")
        .where("serial", "=", serial)
        .where("event", "=", "revoke")
        .execute();
      assert.equal(revocations.length, 1, `certificate ${serial} revoked once`);
    }
    assert.deepEqual(await verifyAudit(db), []);
  } finally {
    await killJlis();
    rmSync(carrierDir, { recursive: true, force: true });
    await sandbox.close();
  }
});
