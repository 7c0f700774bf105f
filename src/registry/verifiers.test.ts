import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { forEachDialect } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import {
  addVerifier,
  authenticateVerifier,
  disableVerifier,
  enableVerifier,
  LookupCounter,
  listVerifiers,
  lookupCounts,
  VERIFIER_CACHE_TTL_MS,
  VERIFIER_STATUS_CHECK_MS,
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

  test("list: every verifier, oldest first, with its status and lookup totals of all days", async () => {
    const { db } = await open();
    assert.deepEqual(await listVerifiers(db), []);
    const a = await addVerifier(db, { name: "例示銀行", kind: "auth" });
    const b = await addVerifier(db, { name: "portal", kind: "both" });
    await db
      .updateTable("verifiers")
      .set({ created_at: "2026-01-01T00:00:00.000Z" })
      .where("id", "=", b.verifierId)
      .execute();
    const counter = new LookupCounter(db, { flushIntervalMs: 0 });
    counter.count(a.verifierId, "ocsp", 3);
    counter.count(a.verifierId, "crl");
    await counter.close();
    // Another day's row adds to the total.
    await db
      .insertInto("verifier_lookups")
      .values({ verifier_id: a.verifierId, day: "2020-01-01", channel: "ocsp", count: 4 })
      .execute();
    await disableVerifier(db, b.verifierId, { actor: "test" });
    const listed = await listVerifiers(db);
    assert.deepEqual(
      listed.map((v) => [v.id, v.name, v.kind, v.status, v.lookups]),
      [
        [b.verifierId, "portal", "both", "disabled", { ocsp: 0, crl: 0 }],
        [a.verifierId, "例示銀行", "auth", "active", { ocsp: 7, crl: 1 }],
      ],
    );
    assert.equal(listed[0]!.createdAt, "2026-01-01T00:00:00.000Z");
    assert.match(listed[1]!.createdAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  test("disable and enable: audited with the reason, refused at once on this handle, unknown or repeated refused", async () => {
    const { db } = await open();
    const { verifierId, token } = await addVerifier(db, { name: "bank", kind: "auth" });
    const now = Date.now();
    assert.equal((await authenticateVerifier(db, token, now))?.id, verifierId);

    assert.deepEqual(
      await disableVerifier(db, verifierId, { actor: "clerk:7", reason: " contract ended " }),
      {
        verifierId,
        name: "bank",
        from: "active",
        to: "disabled",
      },
    );
    // The verdict cached a moment ago is gone: no waiting for the cache's lifetime.
    assert.equal(await authenticateVerifier(db, token, now + 1), undefined);
    const row = await db
      .selectFrom("verifiers")
      .select("status")
      .where("id", "=", verifierId)
      .executeTakeFirstOrThrow();
    assert.equal(row.status, "disabled");

    const auditCount = async () => (await db.selectFrom("audit_log").select("seq").execute()).length;
    const before = await auditCount();
    await assert.rejects(
      disableVerifier(db, verifierId, { actor: "test" }),
      (e) =>
        e instanceof JpkiError &&
        e.code === "conflict" &&
        e.message === `cannot disable verifier ${verifierId}: it is disabled`,
    );
    for (const unknown of ["00000000-0000-0000-0000-000000000000", "", "x'; drop table verifiers; --"])
      await assert.rejects(
        enableVerifier(db, unknown, { actor: "test" }),
        (e) =>
          e instanceof JpkiError && e.code === "not-found" && e.message === `no verifier with id ${unknown}`,
      );
    assert.equal(await auditCount(), before, "a refused change is not audited");

    assert.deepEqual((await enableVerifier(db, verifierId, { actor: "clerk:7" })).to, "active");
    assert.equal((await authenticateVerifier(db, token, now + 2))?.id, verifierId);
    const audit = await db
      .selectFrom("audit_log")
      .selectAll()
      .where("subject", "=", verifierId)
      .orderBy("seq")
      .execute();
    assert.deepEqual(
      audit.map((a) => [a.action, a.actor, JSON.parse(a.details)]),
      [
        ["verifier.add", "registry", { kind: "auth", name: "bank" }],
        ["verifier.disable", "clerk:7", { from: "active", reason: "contract ended", to: "disabled" }],
        ["verifier.enable", "clerk:7", { from: "disabled", reason: null, to: "active" }],
      ],
    );
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("a status change made through another handle (another process) is seen within the status check interval", async () => {
    const database = await open();
    const { verifierId, token } = await addVerifier(database.db, { name: "bank", kind: "both" });
    const server = (await database.reopen()).db;
    const t = Date.now();
    assert.equal((await authenticateVerifier(server, token, t))?.id, verifierId);
    await disableVerifier(database.db, verifierId, { actor: "test" });
    // The bound: until the server's next status check its cached verdict stands ...
    assert.equal((await authenticateVerifier(server, token, t + 1))?.id, verifierId);
    // ... and that check (one read a second, long before VERIFIER_CACHE_TTL_MS) drops it.
    assert.ok(VERIFIER_STATUS_CHECK_MS < VERIFIER_CACHE_TTL_MS);
    assert.equal(await authenticateVerifier(server, token, t + VERIFIER_STATUS_CHECK_MS), undefined);
    await enableVerifier(database.db, verifierId, { actor: "test" });
    assert.equal(
      (await authenticateVerifier(server, token, t + 2 * VERIFIER_STATUS_CHECK_MS))?.id,
      verifierId,
    );
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
