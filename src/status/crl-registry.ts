/**
 * What the CRL publisher reads from the registry and writes back: the revoked and held certificates of
 * a shard in serial order, the certificates whose status changed since a change sequence, and the
 * `crls` table (the latest complete and delta CRL of each shard). The publisher only reads certificate
 * state (DESIGN §3: `status` never changes it); the `crls` table is its own.
 */
import { type ExpressionBuilder, type Kysely, sql } from "kysely";
import type { CrlReasonCode, EncodedCrlEntries, RevokedCertificate } from "../pki/crl.js";
import type { CaPurpose } from "../pki/names.js";
import { dialectOf, toBuffer } from "../registry/db.js";
import { changeSequence } from "../registry/lifecycle.js";
import type { CrlsTable, RegistrySchema } from "../registry/schema.js";

type Db = Kysely<RegistrySchema>;

/** Events that change what a CRL says, with a held certificate's expiry (see crlEvent). */
const CRL_EVENTS = ["suspend", "resume", "revoke"];

export type CrlKind = CrlsTable["kind"];

/**
 * The registry's change sequence such that every change numbered up to it is visible: the CRLs built
 * after reading it, and the deltas that list changes numbered after it, together miss nothing.
 *
 * On SQLite writers are serialised and number their lifecycle events inside their transaction, so the
 * highest committed number is such a mark. On PostgreSQL a bigserial number is drawn when a row is
 * inserted but becomes visible at commit, so a transaction holding number 10 may commit after another
 * one's 11 has been read: a delta listing changes after 11 would then miss 10 until the next complete
 * CRL. A SHARE lock on lifecycle_events waits for every transaction that is inserting into it and
 * holds off new ones for the instant the maximum is read.
 */
export async function changeWatermark(db: Db): Promise<number> {
  if (dialectOf(db) === "sqlite") return changeSequence(db);
  return db.transaction().execute(async (trx) => {
    await sql`set local lock_timeout = '10s'`.execute(trx);
    await sql`lock table lifecycle_events in share mode`.execute(trx);
    return changeSequence(trx);
  });
}

/** Page cache of a SQLite connection while it publishes, in KiB (the connection's own is 64 MiB, db.ts). */
const PUBLISHER_CACHE_KIB = 4096;
const publishing = new WeakMap<Db, { runs: number; cacheSize: Promise<number> }>();

/**
 * Runs `body` (a publication) with a small SQLite page cache. A run reads each shard's index range once
 * and writes each shard's CRLs once, so it never finds a page in the cache again, and a cache as large
 * as the one kept for issuance only adds to the process's peak memory (up to 64 MiB more). The
 * connection's own size comes back when the last run on it ends. PostgreSQL: `body` as it is.
 */
export async function withPublisherCache<T>(db: Db, body: () => Promise<T>): Promise<T> {
  if (dialectOf(db) !== "sqlite") return body();
  let state = publishing.get(db);
  if (state === undefined) {
    const shrink = async () => {
      const { rows } = await sql<{ cache_size: number }>`pragma cache_size`.execute(db);
      await sql.raw(`pragma cache_size = -${PUBLISHER_CACHE_KIB}`).execute(db);
      return Number(rows[0]!.cache_size);
    };
    state = { runs: 0, cacheSize: shrink() };
    publishing.set(db, state);
  }
  state.runs++;
  try {
    await state.cacheSize;
    return await body();
  } finally {
    if (--state.runs === 0) {
      publishing.delete(db);
      const size = await state.cacheSize.catch(() => undefined);
      if (size !== undefined) await sql.raw(`pragma cache_size = ${Math.trunc(size)}`).execute(db);
    }
  }
}

/** Serial order: 32 lower-case hex digits, so byte order is numeric order ("C" collation on PostgreSQL). */
function serialOrder(db: Db) {
  return dialectOf(db) === "postgres" ? sql`serial collate "C"` : sql`serial`;
}

/**
 * A registry row's revocation as a CRL entry. Every entry has the same shape (absent fields undefined),
 * which keeps the builder's per-entry code monomorphic; a hold's reason is certificateHold already.
 * The lifecycle transitions make `crl_entry` from the same columns the same way (lifecycle.ts).
 */
export function entryOf(
  serial: string,
  revokedAt: string,
  reason: number | null,
  invalidityDate: string | null,
): RevokedCertificate {
  return {
    serial: Buffer.from(serial, "hex"),
    revocationDate: new Date(revokedAt),
    reason: (reason ?? undefined) as CrlReasonCode | undefined,
    invalidityDate: invalidityDate === null ? undefined : new Date(invalidityDate),
  };
}

/** Lifecycle events that change what a CRL says: a hold, its release, a revocation, a held certificate's expiry. */
function crlEvent(eb: ExpressionBuilder<RegistrySchema, "lifecycle_events">) {
  return eb.or([
    eb("event", "in", CRL_EVENTS),
    eb.and([eb("event", "=", "expire"), eb("from_status", "=", "suspended")]),
  ]);
}

/**
 * Which entries a shard's complete CRL keeps, given the previous complete CRL: entries whose
 * certificate expired before `after` (that CRL's thisUpdate) go, unless it changed status in the
 * change sequence window (changedAfter, upTo].
 */
export interface Retention {
  readonly after: string;
  readonly changedAfter: number;
  readonly upTo: number;
}

/**
 * The rows of a shard's complete CRL: every held certificate, and every revoked one (or held one that
 * expired while held), but, given `retention`, not one whose notAfter is before the previous complete
 * CRL's thisUpdate: that CRL was issued beyond its validity and listed it, so RFC 5280 §3.3 lets the
 * entry go; unless it changed status since that CRL's change sequence (revoked after its notAfter, or
 * a change that CRL did not see yet), then it is listed once more. CA certificates are left out: the
 * shard's IDP says onlyContainsUserCerts (§5.2.5). One range of the partial index certificates_revoked
 * (migrations 003, 005), which holds every column read here but the fallback's.
 */
function shardRows(db: Db, issuer: CaPurpose, shard: number, retention: Retention | undefined) {
  let query = db
    .selectFrom("certificates")
    .where("issuer", "=", issuer)
    .where("shard", "=", shard)
    .where("revoked_at", "is not", null)
    .where("status", "in", ["revoked", "suspended", "expired"])
    .where("kind", "!=", "ca");
  if (retention !== undefined)
    query = query.where((eb) =>
      eb.or([
        eb("status", "=", "suspended"),
        eb("not_after", ">=", retention.after),
        eb.exists(
          eb
            .selectFrom("lifecycle_events")
            .select(sql`1`.as("changed"))
            .whereRef("lifecycle_events.serial", "=", "certificates.serial")
            .where("lifecycle_events.id", ">", retention.changedAfter)
            .where("lifecycle_events.id", "<=", retention.upTo)
            .where(crlEvent),
        ),
      ]),
    );
  return query;
}

/**
 * The entries of a shard's complete CRL (see shardRows) in increasing serial order, as the DER the
 * lifecycle wrote for each (`crl_entry`), concatenated by the database in one query: no row reaches
 * JavaScript. The aggregate takes its input in the order of the ordered subquery: SQLite keeps that
 * order on purpose (its query flattener leaves an ORDER BY subquery of an aggregate alone, for
 * group_concat), PostgreSQL does so for a plain sorted subquery; the builder checks the order anyway
 * and refuses entries out of order. group_concat keeps a BLOB's bytes (it reads them as text without
 * conversion in a UTF-8 database) and the cast gives them back as a BLOB.
 *
 * Rows without `crl_entry` (revoked outside the lifecycle transitions, or whose revocation was changed
 * without it: a trigger clears it then, migration 005) make the shard read row by row and encoded here.
 */
export async function readShardEntries(
  db: Db,
  issuer: CaPurpose,
  shard: number,
  retention: Retention | undefined,
): Promise<EncodedCrlEntries | RevokedCertificate[]> {
  const rows = shardRows(db, issuer, shard, retention).select("crl_entry").orderBy(serialOrder(db));
  const concat =
    dialectOf(db) === "postgres"
      ? sql<Buffer | null>`string_agg(crl_entry, ''::bytea)`
      : sql<Buffer | null>`cast(group_concat(crl_entry, '') as blob)`;
  const shardEntries = await db
    .selectFrom(rows.as("entries"))
    .select([
      sql<number>`count(*)`.as("count"),
      sql<number>`count(crl_entry)`.as("encoded"),
      concat.as("der"),
    ])
    .executeTakeFirstOrThrow();
  const count = Number(shardEntries.count);
  if (Number(shardEntries.encoded) === count)
    return { der: shardEntries.der === null ? Buffer.alloc(0) : toBuffer(shardEntries.der), count };

  const rowByRow = await shardRows(db, issuer, shard, retention)
    .select(["serial", "revoked_at", "revocation_reason", "invalidity_date"])
    .orderBy(serialOrder(db))
    .execute();
  return rowByRow.map((row) =>
    entryOf(row.serial, row.revoked_at!, row.revocation_reason, row.invalidity_date),
  );
}

/** A certificate whose CRL status changed in a window of the change sequence, as it stands now. */
export interface CertificateChange {
  readonly serial: string;
  /** Its last change in the window (a lifecycle event id). */
  readonly lastChange: number;
  /** When its hold was last released in the window, if it was (for removeFromCRL). */
  readonly releasedAt: string | undefined;
  /** Its entry now, or undefined when it is good again (its hold was released). */
  readonly entry: RevokedCertificate | undefined;
}

const EVENT_PAGE = 10_000;
const SERIAL_BATCH = 500;

/**
 * Certificates of `issuers` whose CRL status changed in the change sequence window (after, upTo], grouped
 * by `${issuer}/${shard}`, each group in increasing serial order. Events are read by id range (the
 * primary key), then the certificates by serial, so the cost is the window's, whatever the registry's size.
 * A held certificate that expires is a change too: it must stay on one more complete CRL (RFC 5280 §3.3).
 */
export async function readChanges(
  db: Db,
  issuers: readonly CaPurpose[],
  after: number,
  upTo: number,
): Promise<Map<string, CertificateChange[]>> {
  const bySerial = new Map<string, { lastChange: number; releasedAt: string | undefined }>();
  for (let from = after; from < upTo; ) {
    const events = await db
      .selectFrom("lifecycle_events")
      .select(["id", "serial", "event", "at"])
      .where("id", ">", from)
      .where("id", "<=", upTo)
      .where(crlEvent)
      .orderBy("id")
      .limit(EVENT_PAGE)
      .execute();
    for (const event of events) {
      const id = Number(event.id);
      const seen = bySerial.get(event.serial);
      const releasedAt = event.event === "resume" ? event.at : seen?.releasedAt;
      bySerial.set(event.serial, { lastChange: id, releasedAt });
    }
    if (events.length < EVENT_PAGE) break;
    from = Number(events.at(-1)!.id);
  }

  const groups = new Map<string, CertificateChange[]>();
  const serials = [...bySerial.keys()];
  for (let i = 0; i < serials.length; i += SERIAL_BATCH) {
    const rows = await db
      .selectFrom("certificates")
      .select(["serial", "issuer", "shard", "revoked_at", "revocation_reason", "invalidity_date"])
      .where("serial", "in", serials.slice(i, i + SERIAL_BATCH))
      .where("issuer", "in", issuers)
      .where("kind", "!=", "ca")
      .execute();
    for (const row of rows) {
      const key = shardKey(row.issuer as CaPurpose, row.shard);
      const change = bySerial.get(row.serial)!;
      const group = groups.get(key) ?? [];
      groups.set(key, group);
      group.push({
        serial: row.serial,
        ...change,
        entry:
          row.revoked_at === null
            ? undefined
            : entryOf(row.serial, row.revoked_at, row.revocation_reason, row.invalidity_date),
      });
    }
  }
  for (const group of groups.values()) group.sort((a, b) => (a.serial < b.serial ? -1 : 1));
  return groups;
}

export function shardKey(issuer: CaPurpose, shard: number): string {
  return `${issuer}/${shard}`;
}

/** A published CRL as the `crls` table describes it, without its bytes. */
export interface PublishedCrlInfo {
  readonly crlNumber: number;
  readonly baseCrlNumber: number | null;
  readonly changeSequence: number;
  readonly thisUpdate: string;
  readonly nextUpdate: string;
  readonly entries: number;
  readonly bytes: number;
}

export interface PublishedShard {
  full?: PublishedCrlInfo;
  delta?: PublishedCrlInfo;
}

/** What is published for every shard of `issuers`, by shardKey. */
export async function readPublishedShards(
  db: Db,
  issuers: readonly CaPurpose[],
): Promise<Map<string, PublishedShard>> {
  const rows = await db
    .selectFrom("crls")
    .select([
      "issuer",
      "shard",
      "kind",
      "crl_number",
      "base_crl_number",
      "change_sequence",
      "this_update",
      "next_update",
      "entries",
      sql<number>`length(der)`.as("bytes"),
    ])
    .where("issuer", "in", issuers)
    .execute();
  const shards = new Map<string, PublishedShard>();
  for (const row of rows) {
    const key = shardKey(row.issuer as CaPurpose, row.shard);
    const shard = shards.get(key) ?? {};
    shard[row.kind] = {
      crlNumber: Number(row.crl_number),
      baseCrlNumber: row.base_crl_number === null ? null : Number(row.base_crl_number),
      changeSequence: Number(row.change_sequence),
      thisUpdate: row.this_update,
      nextUpdate: row.next_update,
      entries: row.entries,
      bytes: Number(row.bytes),
    };
    shards.set(key, shard);
  }
  return shards;
}

export type CrlRow = CrlsTable;

/** Key of the PostgreSQL advisory lock that serialises publishers of one shard. */
const CRL_LOCK_CLASS = 0x43524c; // "CRL"
const ISSUER_LOCK_INDEX: Record<CaPurpose, number> = { sign: 1, auth: 2 };

/**
 * Replaces a shard's CRLs with `rows` (its complete and delta CRL, or its delta alone) in one
 * transaction, so a reader never sees a delta whose base is not the complete CRL beside it. Another
 * publisher (a second `status` process) may have published the shard since `previousNumber`, its
 * highest CRL number, was read: then nothing is written and false is returned, since its CRLs are as
 * good as these and CRL numbers must not be reused for other content (RFC 5280 §5.2.3).
 */
export async function replaceShardCrls(
  db: Db,
  issuer: CaPurpose,
  shard: number,
  previousNumber: number,
  rows: readonly CrlRow[],
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    // SQLite's transactions take the write lock as they begin (db.ts); PostgreSQL needs a lock that
    // also covers a shard with no row yet.
    if (dialectOf(trx) === "postgres")
      await sql`select pg_advisory_xact_lock(${CRL_LOCK_CLASS}, ${ISSUER_LOCK_INDEX[issuer] * 65_536 + shard})`.execute(
        trx,
      );
    const current = await trx
      .selectFrom("crls")
      .select(sql<number | null>`max(crl_number)`.as("number"))
      .where("issuer", "=", issuer)
      .where("shard", "=", shard)
      .executeTakeFirst();
    if (Number(current?.number ?? 0) !== previousNumber) return false;
    for (const row of rows)
      await trx
        .insertInto("crls")
        .values(row)
        .onConflict((oc) =>
          oc.columns(["issuer", "shard", "kind"]).doUpdateSet((eb) => ({
            crl_number: eb.ref("excluded.crl_number"),
            base_crl_number: eb.ref("excluded.base_crl_number"),
            change_sequence: eb.ref("excluded.change_sequence"),
            this_update: eb.ref("excluded.this_update"),
            next_update: eb.ref("excluded.next_update"),
            entries: eb.ref("excluded.entries"),
            der: eb.ref("excluded.der"),
          })),
        )
        .execute();
    return true;
  });
}

/** One published CRL with its bytes, as an HTTP server or `crl publish --out` serves it. */
export interface PublishedCrl extends PublishedCrlInfo {
  readonly issuer: CaPurpose;
  readonly shard: number;
  readonly kind: CrlKind;
  readonly der: Buffer;
}

export async function readPublishedCrl(
  db: Db,
  issuer: CaPurpose,
  shard: number,
  kind: CrlKind,
): Promise<PublishedCrl | undefined> {
  const row = await db
    .selectFrom("crls")
    .selectAll()
    .where("issuer", "=", issuer)
    .where("shard", "=", shard)
    .where("kind", "=", kind)
    .executeTakeFirst();
  if (!row) return undefined;
  const der = toBuffer(row.der);
  return {
    issuer,
    shard,
    kind,
    crlNumber: Number(row.crl_number),
    baseCrlNumber: row.base_crl_number === null ? null : Number(row.base_crl_number),
    changeSequence: Number(row.change_sequence),
    thisUpdate: row.this_update,
    nextUpdate: row.next_update,
    entries: row.entries,
    bytes: der.length,
    der,
  };
}
