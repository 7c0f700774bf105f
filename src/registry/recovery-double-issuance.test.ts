/**
 * Recovery and the double-issuance policy: a phone certificate finished by
 * `recoverInterruptedIssuances` after a crash is subject to `one-per-medium` as one issued without a
 * crash, and the latest application wins, whichever of them was stored last.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { SignerUnavailableError } from "../errors.js";
import { CrlReason } from "../pki/crl.js";
import { forEachDialect, type TestDatabase } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import { type CertificateSigner, issueCertificates, recoverInterruptedIssuances } from "./issuance.js";
import { DEFAULT_POLICIES, doubleIssuanceHooks, type Policies } from "./lifecycle.js";
import { Registry } from "./registry.js";
import type { CertificateKind } from "./schema.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";

const key = await generateTestKey();
const signer = rsaSigner(key);
const actor = "test";

/** A signer whose device is gone: issuance leaves the row pending, as a crash after step 1 does. */
const unavailable: CertificateSigner = {
  issue: async () => {
    throw new SignerUnavailableError("HSM session lost");
  },
};

type Db = TestDatabase["db"];

async function person(db: Db): Promise<string> {
  const registry = new Registry(db);
  return (
    await registry.addPerson({ name: "復旧 花子", sex: "female", birthDate: "1988-02-29", address: "福岡県" })
  ).id;
}

/**
 * Applies for a phone certificate through the policy's hooks, as the RA does; `at` is written as the
 * application time (the pending row's created_at), so the order does not rest on the clock's resolution.
 */
async function apply(
  db: Db,
  personId: string,
  at: string,
  options: { kind?: CertificateKind; signers?: CertificateSigner; policies?: Policies } = {},
): Promise<string> {
  const kind = options.kind ?? "phone-auth";
  const [result] = await issueCertificates(
    db,
    { auth: options.signers ?? signer, sign: options.signers ?? signer },
    [testRequest(key, { kind, issuer: kind === "phone-sign" ? "sign" : "auth", medium: "sim", personId })],
    { actor, ...doubleIssuanceHooks(options.policies ?? DEFAULT_POLICIES, actor) },
  );
  assert.ok(result);
  await db.updateTable("certificates").set({ created_at: at }).where("serial", "=", result.serial).execute();
  return result.serial;
}

async function statusOf(db: Db, serial: string) {
  const row = await db
    .selectFrom("certificates")
    .select(["status", "revocation_reason"])
    .where("serial", "=", serial)
    .executeTakeFirstOrThrow();
  return [row.status, row.revocation_reason];
}

async function eventsOf(db: Db, serial: string) {
  const rows = await db
    .selectFrom("lifecycle_events")
    .select(["event", "reason", "actor"])
    .where("serial", "=", serial)
    .orderBy("id")
    .execute();
  return rows.map((r) => [r.event, r.reason, r.actor]);
}

forEachDialect((_dialect, open) => {
  test("one-per-medium: a recovered phone certificate supersedes the person's older live one", async () => {
    const { db } = await open();
    const personId = await person(db);
    const older = await apply(db, personId, "2026-11-01T00:00:00.000Z");
    const pending = await apply(db, personId, "2026-11-02T00:00:00.000Z", { signers: unavailable });
    assert.deepEqual(await statusOf(db, pending), ["pending", null]);
    assert.deepEqual(await statusOf(db, older), ["issued", null], "a pending row supersedes nothing");

    const report = await recoverInterruptedIssuances(db, { auth: signer }, { policies: DEFAULT_POLICIES });
    assert.deepEqual(report.issued, [pending]);
    assert.deepEqual(await statusOf(db, pending), ["issued", null]);
    assert.deepEqual(await statusOf(db, older), ["revoked", CrlReason.superseded]);
    assert.deepEqual(await eventsOf(db, older), [
      ["issued", null, actor],
      ["revoke", `${CrlReason.superseded} superseded by ${pending}`, "system:recovery"],
    ]);
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("one-per-medium: a recovered phone certificate overtaken by a later application is itself superseded", async () => {
    const { db } = await open();
    const personId = await person(db);
    const pending = await apply(db, personId, "2026-11-01T00:00:00.000Z", { signers: unavailable });
    const newer = await apply(db, personId, "2026-11-02T00:00:00.000Z");
    // A card's user-authentication certificate is another medium: never superseded by a phone's.
    const [card] = await issueCertificates(db, { auth: signer }, [testRequest(key, { personId })]);
    assert.ok(card?.ok);

    const report = await recoverInterruptedIssuances(db, { auth: signer }, { policies: DEFAULT_POLICIES });
    assert.deepEqual(report.issued, [pending]);
    assert.deepEqual(await statusOf(db, newer), ["issued", null], "the latest application stays valid");
    assert.deepEqual(await statusOf(db, pending), ["revoked", CrlReason.superseded]);
    assert.deepEqual(await statusOf(db, card.serial), ["issued", null]);
    // Stored, then superseded right after, in the transaction that stored it.
    assert.deepEqual(await eventsOf(db, pending), [
      ["recovered", null, "system:recovery"],
      ["revoke", `${CrlReason.superseded} superseded by ${newer}`, "system:recovery"],
    ]);
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("one-per-medium: several recovered at once and an older live one leave the latest application only", async () => {
    const { db } = await open();
    const personId = await person(db);
    const older = await apply(db, personId, "2026-11-01T00:00:00.000Z");
    const first = await apply(db, personId, "2026-11-02T00:00:00.000Z", { signers: unavailable });
    const latest = await apply(db, personId, "2026-11-03T00:00:00.000Z", { signers: unavailable });
    const sign = await apply(db, personId, "2026-11-01T00:00:00.000Z", {
      kind: "phone-sign",
      signers: unavailable,
    });

    const report = await recoverInterruptedIssuances(
      db,
      { auth: signer, sign: signer },
      { policies: DEFAULT_POLICIES },
    );
    assert.deepEqual(report.issued.sort(), [first, latest, sign].sort());
    assert.deepEqual(await statusOf(db, latest), ["issued", null]);
    assert.deepEqual(await statusOf(db, first), ["revoked", CrlReason.superseded]);
    assert.deepEqual(await statusOf(db, older), ["revoked", CrlReason.superseded]);
    assert.deepEqual(await statusOf(db, sign), ["issued", null], "another kind is another certificate");
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("strict: recovery supersedes nothing (the pending row was checked when it was stored)", async () => {
    const { db } = await open();
    const personId = await person(db);
    const policies: Policies = { ...DEFAULT_POLICIES, doubleIssuance: "strict" };
    // Signing certificates are outside strict's one-per-person rule, so two may be live.
    const older = await apply(db, personId, "2026-11-01T00:00:00.000Z", { kind: "phone-sign", policies });
    const pending = await apply(db, personId, "2026-11-02T00:00:00.000Z", {
      kind: "phone-sign",
      signers: unavailable,
      policies,
    });
    const report = await recoverInterruptedIssuances(db, { sign: signer }, { policies });
    assert.deepEqual(report.issued, [pending]);
    assert.deepEqual(await statusOf(db, older), ["issued", null]);
    assert.deepEqual(await statusOf(db, pending), ["issued", null]);
    assert.deepEqual(await verifyAudit(db), []);
  });
});
