import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { forEachDialect } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import {
  addVerifier,
  authenticateVerifier,
  LookupCounter,
  lookupCounts,
  VERIFIER_CACHE_TTL_MS,
  verifierMayAsk,
} from "./verifiers.js";

test("a verifier asks about the CAs it is registered for", () => {
  const v = (kind: "auth" | "sign" | "both") => ({ id: "v", name: "n", kind });
  assert.deepEqual(
    (["auth", "sign", "both"] as const).map((kind) =>
      (["auth", "sign", "sim-maker"] as const).map((issuer) => verifierMayAsk(v(kind), issuer)),
    ),
    [
      [true, false, false],
      [false, true, false],
      [true, true, false],
    ],
  );
});

forEachDialect((_dialect, open) => {
  test("registration: a 256-bit base64url token, only its SHA-256 stored, audited without it", async () => {
    const { db } = await open();
    const { verifierId, token } = await addVerifier(db, { name: " 例示銀行 ", kind: "auth", actor: "test" });
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token, "base64url").length, 32);
    const row = await db
      .selectFrom("verifiers")
      .selectAll()
      .where("id", "=", verifierId)
      .executeTakeFirstOrThrow();
    assert.deepEqual(
      { name: row.name, kind: row.kind, status: row.status },
      { name: "例示銀行", kind: "auth", status: "active" },
    );
    assert.equal(row.token_hash, createHash("sha256").update(token).digest("hex"));
    assert.ok(!JSON.stringify(row).includes(token));
    const audit = await db.selectFrom("audit_log").selectAll().where("subject", "=", verifierId).execute();
    assert.deepEqual(
      audit.map((a) => [a.action, a.actor]),
      [["verifier.add", "test"]],
    );
    assert.ok(!audit[0]!.details.includes(token) && !audit[0]!.details.includes(row.token_hash));
    assert.deepEqual(await verifyAudit(db), []);
    const second = await addVerifier(db, { name: "other", kind: "both" });
    assert.notEqual(second.token, token);
    for (const bad of [
      { name: "", kind: "auth" },
      { name: "x".repeat(201), kind: "auth" },
      { name: "x", kind: "crl" },
    ])
      await assert.rejects(
        addVerifier(db, bad as never),
        (e) => e instanceof JpkiError && e.code === "bad-input",
      );
  });

  test("authentication: the right token only; a disabled verifier is refused once the cache expires", async () => {
    const { db } = await open();
    const { verifierId, token } = await addVerifier(db, { name: "bank", kind: "sign" });
    const now = Date.now();
    assert.deepEqual(await authenticateVerifier(db, token, now), {
      id: verifierId,
      name: "bank",
      kind: "sign",
    });
    const flipped = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    for (const wrong of [flipped, "", "short", `${token} `, token.slice(1), "ä".repeat(43), "x".repeat(300)])
      assert.equal(await authenticateVerifier(db, wrong, now), undefined, JSON.stringify(wrong));

    await db.updateTable("verifiers").set({ status: "disabled" }).where("id", "=", verifierId).execute();
    // Within the cache's lifetime the verdict stands (the price of not reading the database per request) ...
    assert.equal((await authenticateVerifier(db, token, now + 1000))?.id, verifierId);
    // ... and after it, the database is read again.
    assert.equal(await authenticateVerifier(db, token, now + VERIFIER_CACHE_TTL_MS + 1), undefined);
    // A new handle on the database (another process) has no cache at all.
    const other = await open();
    assert.equal(await authenticateVerifier(other.db, token), undefined);
  });

  test("lookup counts: per verifier, Japan day and channel, added up across counters", async () => {
    const { db } = await open();
    const a = await addVerifier(db, { name: "a", kind: "both" });
    const b = await addVerifier(db, { name: "b", kind: "auth" });
    let now = new Date("2026-03-31T14:59:59.500Z"); // 23:59:59.5 JST on 31 March
    const counter = new LookupCounter(db, { flushIntervalMs: 0, now: () => now });
    counter.count(a.verifierId, "ocsp");
    counter.count(a.verifierId, "ocsp", 3);
    counter.count(a.verifierId, "crl");
    now = new Date("2026-03-31T15:00:00.000Z"); // midnight JST: 1 April
    counter.count(a.verifierId, "ocsp");
    counter.count(b.verifierId, "ocsp", 2);
    assert.equal(counter.unwritten, 8);
    await counter.flush();
    assert.equal(counter.unwritten, 0);
    // A second server process counting into the same rows.
    const second = new LookupCounter(db, { flushIntervalMs: 0, now: () => now });
    second.count(b.verifierId, "ocsp", 5);
    await second.close();
    counter.count(a.verifierId, "ocsp");
    await counter.close();
    const rows = (await lookupCounts(db)).map((r) => [
      r.verifierId === a.verifierId ? "a" : "b",
      r.day,
      r.channel,
      r.count,
    ]);
    assert.deepEqual(
      rows.sort((x, y) => String(x).localeCompare(String(y))),
      [
        ["a", "2026-03-31", "crl", 1],
        ["a", "2026-03-31", "ocsp", 4],
        ["a", "2026-04-01", "ocsp", 2],
        ["b", "2026-04-01", "ocsp", 7],
      ],
    );
    assert.deepEqual(
      (await lookupCounts(db, { verifierId: b.verifierId, day: "2026-04-01" })).map((r) => r.count),
      [7],
    );
    assert.throws(() => counter.count(a.verifierId, "ocsp"), /closed/);
  });

  test("a failed flush keeps its counts for the next one; close() writes what is left", async () => {
    const { db } = await open();
    const counter = new LookupCounter(db, { flushIntervalMs: 0 });
    // Counts for a verifier the database does not know (yet) break the foreign key: the flush fails.
    counter.count("not-yet-registered", "ocsp", 2);
    await assert.rejects(counter.flush());
    assert.equal(counter.unwritten, 2);
    counter.count("not-yet-registered", "ocsp");
    await db
      .insertInto("verifiers")
      .values({
        id: "not-yet-registered",
        name: "late",
        kind: "auth",
        token_hash: "00",
        status: "active",
        created_at: "2026-01-01T00:00:00.000Z",
      })
      .execute();
    await counter.close();
    assert.deepEqual(
      (await lookupCounts(db)).map((r) => r.count),
      [3],
    );
  });

  test("the periodic flush writes without being asked", async () => {
    const { db } = await open();
    const { verifierId } = await addVerifier(db, { name: "a", kind: "auth" });
    const counter = new LookupCounter(db, { flushIntervalMs: 20 });
    try {
      counter.count(verifierId, "crl", 4);
      for (let i = 0; i < 100 && (await lookupCounts(db)).length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        (await lookupCounts(db)).map((r) => [r.channel, r.count]),
        [["crl", 4]],
      );
    } finally {
      await counter.close();
    }
  });
});
