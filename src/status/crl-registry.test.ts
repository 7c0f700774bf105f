/**
 * The revokedCertificates entries the registry keeps (`crl_entry`, migration 005) on both databases:
 * what the lifecycle transitions write is, byte for byte, the entry the builder makes from the row's
 * columns; a revocation changed without its entry clears it; rows revoked before the migration get
 * theirs; a shard read as the database's concatenation gives the same CRL as a shard read row by row;
 * and the builder refuses concatenated entries that are out of order, miscounted or not entries.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Migrator, sql } from "kysely";
import { JpkiError } from "../errors.js";
import {
  buildTbsCertList,
  CrlReason,
  type EncodedCrlEntries,
  encodeCrlEntry,
  type RevokedCertificate,
} from "../pki/crl.js";
import { AUTH_CA_NAME } from "../pki/names.js";
import type { IssuerKey } from "../pki/profiles.js";
import { generateTestKey, TEST_BASE_URL } from "../pki/test-hierarchy.js";
import { isoTime } from "../registry/db.js";
import { resumeCertificate, revokeCertificate, suspendCertificate } from "../registry/lifecycle.js";
import * as initial from "../registry/migrations/001-initial.js";
import * as status from "../registry/migrations/002-status.js";
import * as crlEntries from "../registry/migrations/003-crl-entries.js";
import { migrateRegistry } from "../registry/migrations/index.js";
import type { RegistrySchema } from "../registry/schema.js";
import { forEachDialect } from "../testing/dialects.js";
import { entryOf, readShardEntries } from "./crl-registry.js";

type Db = import("kysely").Kysely<RegistrySchema>;

const actor = "test";
const DAY = 86_400_000;
const authCa: IssuerKey = {
  name: AUTH_CA_NAME,
  spki: generateTestKey("rsa-2048").spki,
  algorithm: "rsa-2048",
};

/** A live phone certificate row in shard 0 of the auth CA (a CRL reads no more than these columns). */
async function addCertificate(db: Db, serial: string): Promise<void> {
  const now = Date.now();
  await db
    .insertInto("certificates")
    .values({
      serial,
      issuer: "auth",
      kind: "phone-auth",
      medium: "sim",
      status: "issued",
      tbs: Buffer.alloc(0),
      der: null,
      not_before: isoTime(new Date(now - DAY)),
      not_after: isoTime(new Date(now + 365 * DAY)),
      shard: 0,
      created_at: isoTime(new Date(now - DAY)),
      updated_at: isoTime(new Date(now - DAY)),
    })
    .execute();
}

async function rowOf(db: Db, serial: string) {
  return db.selectFrom("certificates").selectAll().where("serial", "=", serial).executeTakeFirstOrThrow();
}

/** The entry the CRL publisher makes from the row's revocation columns. */
function entryOfRow(row: Awaited<ReturnType<typeof rowOf>>): RevokedCertificate {
  return entryOf(row.serial, row.revoked_at!, row.revocation_reason, row.invalidity_date);
}

/** A TBSCertList of shard 0 with `entries`: the builder's own encoding, or the bytes it is given. */
function tbsOf(entries: RevokedCertificate[] | EncodedCrlEntries): Buffer {
  return buildTbsCertList({
    issuer: authCa,
    purpose: "auth",
    baseUrl: TEST_BASE_URL,
    shard: 0,
    crlNumber: 1n,
    thisUpdate: new Date("2026-11-26T00:00:00Z"),
    nextUpdate: new Date("2026-11-27T00:00:00Z"),
    entries,
  });
}

/** Serials in increasing order; the last begins with 0x80 or above (its INTEGER takes a leading zero). */
const SERIALS = [
  "01a2b3c4d5e6f708192a3b4c5d6e7f80",
  "10000000000000000000000000000001",
  "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
  "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
  "7fffffffffffffffffffffffffffffff",
  "80000000000000000000000000000000",
];

test("pre-encoded entries are refused out of order, miscounted, or not framed as entries", () => {
  const entry = (serial: string) =>
    encodeCrlEntry({ serial: Buffer.from(serial, "hex"), revocationDate: new Date("2026-11-20T00:00:00Z") });
  const [a, b, c] = [entry(SERIALS[0]!), entry(SERIALS[1]!), entry(SERIALS[5]!)];
  // In order, the 0x80 serial (17 INTEGER octets) last: accepted, and the same as encoding them here.
  assert.deepEqual(
    tbsOf({ der: Buffer.concat([a, b, c]), count: 3 }),
    tbsOf([SERIALS[0]!, SERIALS[1]!, SERIALS[5]!].map((s) => entryOf(s, "2026-11-20T00:00:00Z", null, null))),
  );
  const refused = (der: Buffer, count: number, why: RegExp) =>
    assert.throws(
      () => tbsOf({ der, count }),
      (e: Error) => e instanceof JpkiError && why.test(e.message),
    );
  refused(Buffer.concat([b, a]), 2, /strictly increasing serial order/);
  refused(Buffer.concat([c, a]), 2, /strictly increasing serial order/);
  refused(Buffer.concat([a, a]), 2, /strictly increasing serial order/);
  refused(Buffer.concat([a, b]), 3, /2 pre-encoded CRL entries were given as 3/);
  refused(Buffer.concat([a, b.subarray(0, 10)]), 2, /entry 2 is not an entry/);
  refused(Buffer.from("3100", "hex"), 1, /entry 1 is not an entry/);
});

forEachDialect((_dialect, open) => {
  test("the lifecycle writes each certificate's entry as the builder makes it from the row", async () => {
    const { db } = await open();
    for (const serial of SERIALS) await addCertificate(db, serial);
    const [held, compromised, unspecified, heldThenRevoked, released, highBit] = SERIALS as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const now = new Date("2026-11-20T10:11:12.345Z");
    await suspendCertificate(db, held, { actor, now });
    await revokeCertificate(db, compromised, {
      actor,
      reason: CrlReason.keyCompromise,
      invalidityDate: new Date("2026-11-19T08:00:00.999Z"),
      now,
    });
    await revokeCertificate(db, unspecified, { actor, reason: CrlReason.unspecified, now });
    await suspendCertificate(db, heldThenRevoked, { actor, now });
    await revokeCertificate(db, heldThenRevoked, {
      actor,
      reason: CrlReason.superseded,
      now: new Date(now.getTime() + DAY),
    });
    await suspendCertificate(db, released, { actor, now });
    await resumeCertificate(db, released, {
      actor,
      policies: { doubleIssuance: "one-per-medium", hold: "releasable", keyGeneration: "on-card" },
    });
    await revokeCertificate(db, highBit, { actor, reason: CrlReason.cessationOfOperation, now });

    for (const serial of [held, compromised, unspecified, heldThenRevoked, highBit]) {
      const row = await rowOf(db, serial);
      assert.ok(row.crl_entry, `${serial}: an entry was written`);
      // The entry kept equals the one the builder writes for the row's columns, inside a CRL.
      assert.deepEqual(
        tbsOf({ der: row.crl_entry, count: 1 }).toString("hex"),
        tbsOf([entryOfRow(row)]).toString("hex"),
        serial,
      );
    }
    // Spot checks against RFC 5280 §5.1.2.6 and §5.3.1: the hold keeps its date when revoked; no
    // reasonCode for unspecified; a leading zero for a serial from 0x80.
    // UTCTime 261120101112Z is 3236313132303130313131325a; reasonCode superseded is
    // 300a 0603551d15 0403 0a0104 (id-ce-cRLReasons, ENUMERATED 4).
    assert.equal(
      (await rowOf(db, heldThenRevoked)).crl_entry!.toString("hex"),
      `302f0210${"5a".repeat(16)}170d3236313132303130313131325a300c300a0603551d1504030a0104`,
    );
    assert.equal(
      (await rowOf(db, unspecified)).crl_entry!.toString("hex"),
      `30210210${"3c".repeat(16)}170d3236313132303130313131325a`,
    );
    assert.match((await rowOf(db, highBit)).crl_entry!.toString("hex"), /^30[0-9a-f]{2}0211008000/);
    // A released hold has no entry any more.
    assert.equal((await rowOf(db, released)).crl_entry, null);
  });

  test("a revocation changed without its entry clears the entry; other updates keep it", async () => {
    const { db } = await open();
    const [a, b] = SERIALS as [string, string];
    await addCertificate(db, a);
    await addCertificate(db, b);
    await revokeCertificate(db, a, { actor, reason: CrlReason.keyCompromise });
    await revokeCertificate(db, b, { actor, reason: CrlReason.keyCompromise });
    const before = (await rowOf(db, b)).crl_entry;
    await db
      .updateTable("certificates")
      .set({ revocation_reason: CrlReason.affiliationChanged })
      .where("serial", "=", a)
      .execute();
    assert.equal((await rowOf(db, a)).crl_entry, null, "a stale entry is never kept");
    // What the expiry job writes: the same revocation, another status.
    const row = await rowOf(db, b);
    await db
      .updateTable("certificates")
      .set({ status: "expired", revoked_at: row.revoked_at, revocation_reason: row.revocation_reason })
      .where("serial", "=", b)
      .execute();
    assert.deepEqual((await rowOf(db, b)).crl_entry, before);
  });

  test("a shard concatenated by the database gives the CRL a row-by-row read gives", async () => {
    const { db } = await open();
    for (const serial of SERIALS) await addCertificate(db, serial);
    for (const [i, serial] of SERIALS.entries())
      if (i % 3 === 0) await suspendCertificate(db, serial, { actor });
      else
        await revokeCertificate(db, serial, {
          actor,
          reason: i % 3 === 1 ? CrlReason.keyCompromise : CrlReason.superseded,
          ...(i % 2 ? { invalidityDate: new Date(Date.now() - DAY) } : {}),
        });

    const concatenated = await readShardEntries(db, "auth", 0, undefined);
    assert.ok("der" in concatenated, "every row has its entry: one concatenation");
    assert.equal(concatenated.count, SERIALS.length);
    // Without one row's entry (as if changed outside the lifecycle), the shard is read row by row.
    await db.updateTable("certificates").set({ crl_entry: null }).where("serial", "=", SERIALS[2]!).execute();
    const rowByRow = await readShardEntries(db, "auth", 0, undefined);
    assert.ok(Array.isArray(rowByRow));
    assert.deepEqual(
      rowByRow.map((e) => Buffer.from(e.serial).toString("hex")),
      SERIALS,
    );
    assert.deepEqual(tbsOf(concatenated).toString("hex"), tbsOf(rowByRow).toString("hex"));
    // An empty shard: no revokedCertificates at all (RFC 5280 §5.1.2.6).
    const empty = await readShardEntries(db, "auth", 1, undefined);
    assert.deepEqual(empty, { der: Buffer.alloc(0), count: 0 });
    assert.deepEqual(tbsOf(empty), tbsOf([]));
  });

  test("rows revoked before migration 005 get their entry from it", async () => {
    const opened = await open({ migrate: false });
    const { db } = opened;
    const upTo003 = new Migrator({
      db,
      provider: {
        getMigrations: async () => ({
          "001-initial": initial,
          "002-status": status,
          "003-crl-entries": crlEntries,
        }),
      },
      ...(opened.schema !== undefined ? { migrationTableSchema: opened.schema } : {}),
    });
    const { error } = await upTo003.migrateToLatest();
    assert.equal(error, undefined);
    for (const serial of SERIALS) await addCertificate(db, serial);
    // The revocation columns as the lifecycle wrote them before there was an entry.
    await db
      .updateTable("certificates")
      .set({
        status: "revoked",
        revoked_at: "2026-11-01T01:02:03.456Z",
        revocation_reason: CrlReason.keyCompromise,
        invalidity_date: "2026-10-31T00:00:00.000Z",
      })
      .where("serial", "in", SERIALS.slice(0, 4))
      .execute();
    await migrateRegistry(db, opened.schema);

    for (const serial of SERIALS.slice(0, 4)) {
      const row = await rowOf(db, serial);
      assert.ok(row.crl_entry);
      assert.deepEqual(
        tbsOf({ der: row.crl_entry, count: 1 }).toString("hex"),
        tbsOf([entryOfRow(row)]).toString("hex"),
      );
    }
    for (const serial of SERIALS.slice(4)) assert.equal((await rowOf(db, serial)).crl_entry, null);
    const shard = await readShardEntries(db, "auth", 0, undefined);
    assert.ok("der" in shard && shard.count === 4);
    // The publisher's read is one range of the index, without the table (SQLite says so).
    if (opened.dialect === "sqlite") {
      const plan = await sql<{ detail: string }>`explain query plan
        select crl_entry from certificates where issuer = 'auth' and shard = 0 and revoked_at is not null
        and status in ('revoked', 'suspended', 'expired') and kind != 'ca' order by serial`.execute(db);
      assert.match(plan.rows.map((r) => r.detail).join(" "), /COVERING INDEX certificates_revoked/);
    }
  });
});
