import { strict as assert } from "node:assert";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { CrlReason } from "../pki/crl.js";
import { forEachDialect, type TestDatabase } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import { getCertificate, issueCertificates } from "./issuance.js";
import {
  changeSequence,
  DEFAULT_POLICIES,
  doubleIssuanceHooks,
  effectiveStatus,
  expireCertificates,
  type Policies,
  readPolicies,
  resumeCertificate,
  revokeCardCertificates,
  revokeCertificate,
  revokeForAttributeChange,
  suspendCertificate,
} from "./lifecycle.js";
import { Registry } from "./registry.js";
import type { CertificateKind } from "./schema.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";

const key = await generateTestKey();
const signer = rsaSigner(key);
const actor = "test";
const conflict = (e: unknown) => e instanceof JpkiError && e.code === "conflict";

/** A person with a card (auth + sign certificates) and a phone auth certificate linked to the card's. */
async function personWithCertificates(db: TestDatabase["db"], notAfter = new Date("2031-01-01T00:00:00Z")) {
  const registry = new Registry(db);
  const person = await registry.addPerson({
    name: "山田 花子",
    sex: "female",
    birthDate: "1985-07-01",
    address: "東京都千代田区",
  });
  const card = await registry.addCard({
    personId: person.id,
    cardNumber: randomUUID(),
    issuedAt: new Date("2026-01-01T00:00:00Z"),
    expiresAt: new Date("2036-01-01T00:00:00Z"),
  });
  const issue = async (kind: CertificateKind, extra: Parameters<typeof testRequest>[1] = {}) => {
    const [result] = await issueCertificates(db, { auth: signer, sign: signer }, [
      testRequest(key, {
        kind,
        issuer: kind.endsWith("sign") ? "sign" : "auth",
        medium: kind.startsWith("phone") ? "sim" : "card",
        personId: person.id,
        cardId: kind.startsWith("card") ? card.id : null,
        notAfter,
        ...extra,
      }),
    ]);
    assert.ok(result?.ok);
    return result.serial;
  };
  const cardAuth = await issue("card-auth");
  const cardSign = await issue("card-sign");
  const phoneAuth = await issue("phone-auth", { parentSerial: cardAuth });
  const phoneSign = await issue("phone-sign", { parentSerial: cardAuth });
  return { person, card, cardAuth, cardSign, phoneAuth, phoneSign };
}

const status = async (db: TestDatabase["db"], serial: string) => (await getCertificate(db, serial))?.status;

test("policies: defaults, and unknown values refused", () => {
  assert.deepEqual(readPolicies(undefined), DEFAULT_POLICIES);
  assert.deepEqual(readPolicies({ hold: "final" }), { ...DEFAULT_POLICIES, hold: "final" });
  assert.throws(() => readPolicies({ doubleIssuance: "two" }), /doubleIssuance must be one of/);
});

test("a certificate past its notAfter is expired on read, whatever the row says", () => {
  const row = { status: "issued" as const, not_after: "2026-01-01T00:00:00.000Z" };
  assert.equal(effectiveStatus(row, new Date("2025-12-31T23:59:59Z")), "issued");
  assert.equal(effectiveStatus(row, new Date("2026-01-01T00:00:01Z")), "expired");
  assert.equal(effectiveStatus({ ...row, status: "revoked" }, new Date("2030-01-01T00:00:00Z")), "revoked");
});

forEachDialect((_dialect, open) => {
  test("suspend, resume, revoke: each transition recorded, illegal ones refused", async () => {
    const { db } = await open();
    const { cardAuth, phoneAuth } = await personWithCertificates(db);
    const before = await changeSequence(db);
    const held = await suspendCertificate(db, phoneAuth, { actor, note: "lost phone (hotline)" });
    assert.deepEqual([held.from, held.to], ["issued", "suspended"]);
    assert.ok(held.changeSequence > before);
    const row = await getCertificate(db, phoneAuth);
    assert.equal(row?.revocationReason, CrlReason.certificateHold);
    await assert.rejects(suspendCertificate(db, phoneAuth, { actor }), conflict);
    await resumeCertificate(db, phoneAuth, { actor, policies: DEFAULT_POLICIES });
    assert.equal(await status(db, phoneAuth), "issued");
    assert.equal((await getCertificate(db, phoneAuth))?.revokedAt, null);
    await assert.rejects(resumeCertificate(db, phoneAuth, { actor, policies: DEFAULT_POLICIES }), conflict);
    // A card certificate's hold is final (JPKI-FACTS §3), and so is any hold under hold = final.
    await suspendCertificate(db, cardAuth, { actor });
    await assert.rejects(
      resumeCertificate(db, cardAuth, { actor, policies: DEFAULT_POLICIES }),
      /hold is final/,
    );
    await suspendCertificate(db, phoneAuth, { actor });
    await assert.rejects(
      resumeCertificate(db, phoneAuth, { actor, policies: { ...DEFAULT_POLICIES, hold: "final" } }),
      /hold policy is final/,
    );
    // Revoking a held certificate keeps the hold's date; nothing follows a revocation.
    const heldAt = (await getCertificate(db, phoneAuth))?.revokedAt;
    await revokeCertificate(db, phoneAuth, { actor, reason: CrlReason.keyCompromise });
    const revoked = await getCertificate(db, phoneAuth);
    assert.deepEqual(
      [revoked?.status, revoked?.revocationReason, revoked?.revokedAt],
      ["revoked", 1, heldAt],
    );
    await assert.rejects(revokeCertificate(db, phoneAuth, { actor, reason: CrlReason.superseded }), conflict);
    await assert.rejects(suspendCertificate(db, phoneAuth, { actor }), conflict);
    await assert.rejects(
      revokeCertificate(db, cardAuth, { actor, reason: CrlReason.certificateHold }),
      /not a revocation/,
    );
    await assert.rejects(suspendCertificate(db, "00", { actor }), /no certificate/);
    const events = await db
      .selectFrom("lifecycle_events")
      .select("event")
      .where("serial", "=", phoneAuth)
      .orderBy("id")
      .execute();
    assert.deepEqual(
      events.map((e) => e.event),
      ["issued", "suspend", "resume", "suspend", "revoke"],
    );
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("cascades: a lost card revokes the phone's certificates; an address change only signing ones", async () => {
    const { db } = await open();
    const a = await personWithCertificates(db);
    const changed = await revokeForAttributeChange(db, a.person.id, { actor, note: "moved" });
    assert.deepEqual(changed.map((r) => r.serial).sort(), [a.cardSign, a.phoneSign].sort());
    assert.deepEqual(
      [await status(db, a.cardAuth), await status(db, a.phoneAuth)],
      ["issued", "issued"],
      "user-authentication certificates survive an address change",
    );
    assert.equal((await getCertificate(db, a.cardSign))?.revocationReason, CrlReason.affiliationChanged);
    const b = await personWithCertificates(db);
    const lost = await revokeCardCertificates(db, b.card.id, { actor, reason: CrlReason.keyCompromise });
    assert.deepEqual(
      lost.map((r) => r.serial).sort(),
      [b.cardAuth, b.cardSign, b.phoneAuth, b.phoneSign].sort(),
    );
    // The other person's certificates are untouched.
    assert.equal(await status(db, a.cardAuth), "issued");
  });

  test("the expiry job expires live certificates past notAfter, and only those", async () => {
    const { db } = await open();
    const old = await personWithCertificates(db, new Date("2026-06-01T00:00:00Z"));
    const current = await personWithCertificates(db);
    await revokeCertificate(db, old.cardSign, { actor, reason: CrlReason.keyCompromise });
    const expired = await expireCertificates(db, { actor, now: new Date("2026-07-01T00:00:00Z"), batch: 2 });
    assert.equal(expired, 3, "card auth, phone auth and phone sign; the revoked one stays revoked");
    assert.deepEqual(
      [await status(db, old.cardAuth), await status(db, old.cardSign), await status(db, current.cardAuth)],
      ["expired", "revoked", "issued"],
    );
    await assert.rejects(suspendCertificate(db, old.phoneAuth, { actor }), conflict);
  });

  test("random sequences of operations keep the state machine's invariants", async () => {
    const { db } = await open();
    const { cardAuth, phoneAuth, phoneSign } = await personWithCertificates(db);
    const serials = [cardAuth, phoneAuth, phoneSign];
    const policies: Policies[] = [DEFAULT_POLICIES, { ...DEFAULT_POLICIES, hold: "final" }];
    const operation = fc.record({
      serial: fc.constantFrom(...serials),
      action: fc.constantFrom("suspend", "resume", "revoke"),
      policy: fc.constantFrom(...policies),
      reason: fc.constantFrom(CrlReason.keyCompromise, CrlReason.superseded, CrlReason.cessationOfOperation),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 12 }), async (operations) => {
        for (const op of operations) {
          const before = await getCertificate(db, op.serial);
          const attempt =
            op.action === "suspend"
              ? suspendCertificate(db, op.serial, { actor })
              : op.action === "resume"
                ? resumeCertificate(db, op.serial, { actor, policies: op.policy })
                : revokeCertificate(db, op.serial, { actor, reason: op.reason });
          const outcome = await attempt.then(
            () => "done" as const,
            (error: unknown) => {
              if (!conflict(error)) throw error;
              return "refused" as const;
            },
          );
          const after = await getCertificate(db, op.serial);
          if (outcome === "refused") assert.deepEqual(after, before, "a refused operation changes nothing");
          // Invariants after every step.
          assert.ok(before && after);
          if (before.status === "revoked") assert.equal(outcome, "refused", "revoked is final");
          if (after.status === "suspended") assert.equal(after.revocationReason, CrlReason.certificateHold);
          if (after.status === "issued") assert.equal(after.revokedAt, null);
          if (after.status === "revoked") assert.ok(after.revokedAt && after.revocationReason !== null);
        }
      }),
      { numRuns: 25 },
    );
    assert.deepEqual(await verifyAudit(db), []);
  });
});

forEachDialect((_dialect, open) => {
  /** N phone-auth issuances for one person at once, through the policy's hooks. */
  async function race(db: TestDatabase["db"], policies: Policies, n: number) {
    const registry = new Registry(db);
    const person = await registry.addPerson({
      name: "並行 太郎",
      sex: "male",
      birthDate: "1990-04-01",
      address: "大阪府",
    });
    const hooks = doubleIssuanceHooks(policies, actor);
    const outcomes = await Promise.allSettled(
      Array.from({ length: n }, () =>
        issueCertificates(
          db,
          { auth: signer },
          [testRequest(key, { kind: "phone-auth", medium: "sim", personId: person.id })],
          { actor, ...hooks },
        ),
      ),
    );
    const rows = await db
      .selectFrom("certificates")
      .select(["serial", "status", "revocation_reason"])
      .where("person_id", "=", person.id)
      .execute();
    return { outcomes, rows };
  }

  test("one-per-medium: 50 concurrent phone issuances end with one valid certificate, the rest superseded", async () => {
    const { db } = await open();
    const { outcomes, rows } = await race(db, DEFAULT_POLICIES, 50);
    assert.ok(
      outcomes.every((o) => o.status === "fulfilled" && o.value[0]?.ok),
      "every issuance succeeded",
    );
    assert.equal(rows.length, 50, "none lost");
    assert.equal(rows.filter((r) => r.status === "issued").length, 1);
    const superseded = rows.filter((r) => r.status === "revoked");
    assert.equal(superseded.length, 49);
    assert.ok(superseded.every((r) => r.revocation_reason === CrlReason.superseded));
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("strict: 50 concurrent phone issuances end with one valid certificate, the rest refused", async () => {
    const { db } = await open();
    const { outcomes, rows } = await race(db, { ...DEFAULT_POLICIES, doubleIssuance: "strict" }, 50);
    const fulfilled = outcomes.filter((o) => o.status === "fulfilled");
    const refused = outcomes.filter((o) => o.status === "rejected" && conflict(o.reason));
    assert.equal(fulfilled.length, 1);
    assert.equal(refused.length, 49, "every other one refused with a conflict, nothing else");
    assert.deepEqual(
      rows.map((r) => r.status),
      ["issued"],
      "refused issuances left no row",
    );
  });
});
