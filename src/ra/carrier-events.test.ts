/**
 * Carrier events at J-LIS, on both databases: a port-out or a swap revokes the SIM's certificate at
 * once (cessationOfOperation) and the SIM can no longer apply; a repeated delivery changes nothing;
 * an event that is forged, unsigned by an enrolled carrier, or about another carrier's SIM is refused
 * and leaves no trace; malformed bodies get a bad-input refusal and write nothing.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import {
  type CarrierEvent,
  carrierEventKey,
  carrierEventPublicKey,
  type SignedCarrierEvent,
  signCarrierEvent,
} from "../mno/carrier-events.js";
import { CarrierEventOutbox } from "../mno/event-outbox.js";
import { CrlReason } from "../pki/crl.js";
import { getCertificate } from "../registry/issuance.js";
import { forEachDialect } from "../testing/dialects.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { enrolCarrierKey, inProcessEventSender, receiveCarrierEvent } from "./carrier-events.js";
import { openRaSandbox, type RaSandbox } from "./ra-fixture.js";

async function provisioned(sandbox: RaSandbox, carrier = "sakura") {
  const citizen = await sandbox.citizen();
  const phone = await sandbox.phone(carrier);
  const answer = await phone.app().applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
  assert.equal(answer.status, "delivered");
  return { citizen, phone, serial: answer.certificateSerial! };
}

async function counts(sandbox: RaSandbox) {
  const db = sandbox.authority.registry.db;
  const events = await db
    .selectFrom("carrier_events")
    .select(db.fn.countAll<number>().as("n"))
    .executeTakeFirst();
  const revocations = await db
    .selectFrom("lifecycle_events")
    .select(db.fn.countAll<number>().as("n"))
    .where("event", "=", "revoke")
    .executeTakeFirst();
  return { events: Number(events!.n), revocations: Number(revocations!.n) };
}

const refusedWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === code && pattern.test(error.message);

forEachDialect((_dialect, open) => {
  test("a port-out revokes the SIM's certificate at once; the event delivered again changes nothing", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    const outbox = CarrierEventOutbox.open(sandbox.dir, "sakura");
    try {
      const { authority, dir } = sandbox;
      const { citizen, phone, serial } = await provisioned(sandbox);
      await enrolCarrierKey(authority.registry.db, "sakura", carrierEventPublicKey(dir, "sakura"));
      // Enrolling the same key again is fine; another key for the carrier is not.
      await enrolCarrierKey(authority.registry.db, "sakura", carrierEventPublicKey(dir, "sakura"));
      await assert.rejects(
        enrolCarrierKey(authority.registry.db, "sakura", carrierEventPublicKey(dir, "kaede")),
        refusedWith("conflict", /another event key/),
      );

      const event = outbox.record("port-out", phone.sim.iccid);
      const before = await counts(sandbox);
      const pass = await outbox.deliver(inProcessEventSender(authority));
      assert.deepEqual(pass, { delivered: 1, duplicates: 0, failed: 0, refused: 0 });
      const certificate = await getCertificate(authority.registry.db, serial);
      assert.equal(certificate?.status, "revoked");
      assert.equal(certificate?.revocationReason, CrlReason.cessationOfOperation);
      assert.equal((await authority.registry.getSimByIccid(phone.sim.iccid))?.status, "ported-out");
      assert.deepEqual(await counts(sandbox), {
        events: before.events + 1,
        revocations: before.revocations + 1,
      });

      // The same signed event again (an answer lost on the way back): acknowledged, applied once.
      const [entry] = outbox.entries();
      assert.equal(entry?.state, "delivered");
      assert.equal(entry?.event.id, event.id);
      const signed = signCarrierEvent(event, carrierEventKey(dir, "sakura"));
      const again = await receiveCarrierEvent(authority, signed);
      assert.equal(again.applied, false);
      assert.deepEqual(again.outcome, { simStatus: "ported-out", revoked: [serial] });
      assert.deepEqual(await counts(sandbox), {
        events: before.events + 1,
        revocations: before.revocations + 1,
      });
      // Same id, other content: not the same event.
      await assert.rejects(
        receiveCarrierEvent(
          authority,
          signCarrierEvent({ ...event, kind: "sim-deactivated" }, carrierEventKey(dir, "sakura")),
        ),
        refusedWith("conflict", /with other content/),
      );

      // The SIM is gone from its holder: it cannot carry a new application.
      await assert.rejects(
        phone.app().applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD }),
        refusedWith("forbidden", /is ported-out at its carrier/),
      );
    } finally {
      await sandbox.close();
    }
  });

  test("only an enrolled carrier that speaks for the SIM is heard; a light MVNO speaks for its host's SIMs", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    try {
      const { authority, dir } = sandbox;
      const db = authority.registry.db;
      const { phone, serial } = await provisioned(sandbox);
      for (const carrier of ["sakura", "kaede", "hibari"])
        await enrolCarrierKey(db, carrier, carrierEventPublicKey(dir, carrier));
      const about = (
        carrier: string,
        extra: Partial<Pick<CarrierEvent, "kind" | "requestedBySubscriber">> = {},
      ): CarrierEvent => ({
        id: randomUUID(),
        carrier,
        kind: "sim-deactivated" as const,
        iccid: phone.sim.iccid,
        occurredAt: new Date().toISOString(),
        ...extra,
      });
      const before = await counts(sandbox);

      // Another MNO about sakura's SIM, with its own key.
      await assert.rejects(
        receiveCarrierEvent(authority, signCarrierEvent(about("kaede"), carrierEventKey(dir, "kaede"))),
        refusedWith("forbidden", /was issued by sakura; kaede cannot report on it/),
      );
      // Sakura's name, kaede's key.
      await assert.rejects(
        receiveCarrierEvent(authority, signCarrierEvent(about("sakura"), carrierEventKey(dir, "kaede"))),
        refusedWith("forbidden", /not signed by carrier sakura's enrolled key/),
      );
      // A carrier that never enrolled.
      await assert.rejects(
        receiveCarrierEvent(authority, signCarrierEvent(about("tsubame"), carrierEventKey(dir, "tsubame"))),
        refusedWith("forbidden", /tsubame is not enrolled/),
      );
      // Signed, then changed: the kind, then the SIM.
      const signed = signCarrierEvent(about("sakura"), carrierEventKey(dir, "sakura"));
      const tampered = (change: (event: Record<string, unknown>) => void): SignedCarrierEvent => {
        const event = JSON.parse(Buffer.from(signed.event, "base64").toString("utf8")) as Record<
          string,
          unknown
        >;
        change(event);
        const sorted = Object.fromEntries(Object.entries(event).sort(([a], [b]) => (a < b ? -1 : 1)));
        return { ...signed, event: Buffer.from(JSON.stringify(sorted)).toString("base64") };
      };
      await assert.rejects(
        receiveCarrierEvent(
          authority,
          tampered((e) => {
            e["kind"] = "port-out";
          }),
        ),
        refusedWith("forbidden", /not signed/),
      );
      const other = await sandbox.phone();
      await assert.rejects(
        receiveCarrierEvent(
          authority,
          tampered((e) => {
            e["iccid"] = other.sim.iccid;
          }),
        ),
        refusedWith("forbidden", /not signed/),
      );
      assert.deepEqual(await counts(sandbox), before);
      assert.equal((await getCertificate(db, serial))?.status, "issued");

      // The light MVNO on sakura's SIMs reports a swap the subscriber did not ask for: revoked at once.
      const fraud = await receiveCarrierEvent(
        authority,
        signCarrierEvent(
          { ...about("hibari"), kind: "sim-swap", requestedBySubscriber: false },
          carrierEventKey(dir, "hibari"),
        ),
      );
      assert.deepEqual(fraud.outcome, { simStatus: "swapped", revoked: [serial] });
      assert.equal((await getCertificate(db, serial))?.revocationReason, CrlReason.cessationOfOperation);
      const audit = await db
        .selectFrom("audit_log")
        .select("details")
        .where("action", "=", "carrier.event")
        .where("subject", "=", phone.sim.iccid)
        .execute();
      assert.equal(audit.length, 1);
      assert.equal((JSON.parse(audit[0]!.details) as { fraud: boolean }).fraud, true);
    } finally {
      await sandbox.close();
    }
  });
});

test("malformed or mutated carrier events are refused as bad input or forbidden, and write nothing", async () => {
  const sandbox = await openRaSandbox();
  try {
    const { authority, dir } = sandbox;
    const phone = await sandbox.phone();
    await enrolCarrierKey(authority.registry.db, "sakura", carrierEventPublicKey(dir, "sakura"));
    const good = signCarrierEvent(
      {
        id: randomUUID(),
        carrier: "sakura",
        kind: "port-out",
        iccid: phone.sim.iccid,
        occurredAt: new Date().toISOString(),
      },
      carrierEventKey(dir, "sakura"),
    );
    const base = await counts(sandbox);
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({
        event: fc.base64String({ maxLength: 400 }),
        signature: fc.base64String({ maxLength: 100 }),
      }),
      // The good event with a few bytes of its JSON or signature changed.
      fc
        .tuple(
          fc.boolean(),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        )
        .map(([inEvent, edits]) => {
          const field = inEvent ? "event" : "signature";
          const bytes = Buffer.from(good[field], "base64");
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          return { ...good, [field]: bytes.toString("base64") };
        }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (candidate) => {
        try {
          await receiveCarrierEvent(authority, candidate);
        } catch (error) {
          assert.ok(error instanceof JpkiError, String(error));
          assert.ok(["bad-input", "forbidden"].includes(error.code), `${error.code}: ${error.message}`);
          return;
        }
        // Only the untouched event may pass (an edit that wrote the same byte back).
        assert.deepEqual(candidate, good);
      }),
      { numRuns: 400 },
    );
    const after = await counts(sandbox);
    assert.ok(after.events - base.events <= 1);
  } finally {
    await sandbox.close();
  }
});
