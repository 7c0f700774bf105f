/**
 * The cost-sharing ledger on both databases: an online application on a light MVNO's SIM bills the
 * issuance (State → J-LIS) and the delivery over the air (J-LIS → the host MNO that issued the SIM);
 * closing the month bills the SIM space and the verifiers' status lookups once; the report sums the
 * rows and every yen paid is a yen received; rows cannot be changed or deleted; rates come from the
 * data directory's file.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { sql } from "kysely";
import { JpkiError } from "../errors.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { addVerifier, LookupCounter } from "../registry/verifiers.js";
import { forEachDialect } from "../testing/dialects.js";
import {
  amountOf,
  billingMonth,
  closeMonth,
  DEFAULT_RATES,
  ledgerReport,
  loadRates,
  previousMonth,
  RATES_FILE,
  ratesOf,
} from "./ledger.js";

forEachDialect((_dialect, open) => {
  test("issuance, delivery, SIM space and lookups are billed once to the right parties; rows are append-only", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone("hibari");
      const answer = await phone
        .app()
        .applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
      assert.equal(answer.status, "delivered");

      const month = billingMonth(new Date());
      const rows = await db.selectFrom("ledger_entries").selectAll().orderBy("kind").execute();
      assert.deepEqual(
        rows.map((r) => [r.kind, r.payer, r.payee, Number(r.quantity), Number(r.amount_yen), r.month]),
        [
          ["issuance", "state", "jlis", 1, DEFAULT_RATES.issuance.yen, month],
          // hibari sells contracts on sakura's SIMs: sakura carried the delivery.
          ["ota-delivery", "jlis", "carrier:sakura", 1, DEFAULT_RATES.otaDelivery.yen, month],
        ],
      );
      assert.equal(rows.find((r) => r.kind === "issuance")?.reference, answer.certificateSerial);

      // A bank asks 2,600 times this month.
      const bank = await addVerifier(db, { name: "bank", kind: "auth" });
      const counter = new LookupCounter(db, { flushIntervalMs: 0 });
      counter.count(bank.verifierId, "ocsp", 2500);
      counter.count(bank.verifierId, "crl", 100);
      await counter.flush();

      const rates = ratesOf(authority.dataDir);
      assert.equal(await closeMonth(db, rates, month), 2);
      assert.equal(await closeMonth(db, rates, month), 0, "closing again bills nothing twice");
      // A month in which the SIM held nothing bills no SIM space.
      assert.equal(await closeMonth(db, rates, previousMonth(new Date(Date.now() - 40 * 86_400_000))), 0);

      const report = await ledgerReport(db, month);
      const lookups = amountOf(2600, DEFAULT_RATES.statusLookup);
      assert.equal(lookups, 52);
      assert.deepEqual(
        report.settlements.map((s) => [s.payer, s.payee, s.kind, s.quantity, s.amountYen]),
        [
          ["jlis", "carrier:sakura", "ota-delivery", 1, 5],
          ["jlis", "carrier:sakura", "sim-space", 1, 10],
          ["state", "jlis", "issuance", 1, 100],
          [`verifier:${bank.verifierId}`, "jlis", "status-lookup", 2600, lookups],
        ],
      );
      assert.equal(report.totalYen, 100 + 5 + 10 + lookups);
      assert.equal(
        report.parties.reduce((sum, p) => sum + p.netYen, 0),
        0,
        "every yen paid is a yen received",
      );
      assert.deepEqual(
        report.parties.find((p) => p.party === "jlis"),
        {
          party: "jlis",
          paysYen: 15,
          receivesYen: 100 + lookups,
          netYen: 100 + lookups - 15,
        },
      );

      // The database itself refuses to change or remove a row, whoever asks.
      const count = async () => (await db.selectFrom("ledger_entries").select("id").execute()).length;
      const before = await count();
      await assert.rejects(sql`update ledger_entries set amount_yen = 0`.execute(db), /append-only/);
      await assert.rejects(sql`delete from ledger_entries`.execute(db), /append-only/);
      assert.equal(await count(), before);
      const audited = await db
        .selectFrom("audit_log")
        .select("subject")
        .where("action", "=", "ledger.entry")
        .execute();
      assert.equal(audited.length, before, "each row has its audit entry");
    } finally {
      await sandbox.close();
    }
  });
});

test("rates come from the data directory's file, each field optional; a bad file is a clear error", async () => {
  const sandbox = await openRaSandbox();
  try {
    const dir = sandbox.authority.dataDir;
    assert.deepEqual(loadRates(dir), DEFAULT_RATES);
    writeFileSync(path.join(dir, RATES_FILE), JSON.stringify({ issuance: { yen: 250, payer: "citizen" } }));
    assert.deepEqual(loadRates(dir), { ...DEFAULT_RATES, issuance: { yen: 250, per: 1, payer: "citizen" } });
    writeFileSync(path.join(dir, RATES_FILE), JSON.stringify({ statusLookup: { yen: -1 } }));
    assert.throws(
      () => loadRates(dir),
      (error) => error instanceof JpkiError && /statusLookup needs whole yen/.test(error.message),
    );
    writeFileSync(path.join(dir, RATES_FILE), JSON.stringify({ issuance: { payer: "anyone" } }));
    assert.throws(() => loadRates(dir), /issuance.payer must name a party/);
    assert.equal(previousMonth(new Date("2026-01-15T00:00:00Z")), "2025-12");
    // 2026-01-31T15:00Z is 2026-02-01 00:00 in Japan.
    assert.equal(billingMonth(new Date("2026-01-31T15:00:00Z")), "2026-02");
  } finally {
    await sandbox.close();
  }
});
