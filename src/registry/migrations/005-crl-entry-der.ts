/**
 * Each revoked or held certificate keeps its revokedCertificates entry in DER (`crl_entry`, written by
 * the lifecycle transitions), so a shard's complete CRL is the database's concatenation of those
 * entries in serial order rather than a conversion per row (docs/crl.md).
 *
 * - The publisher's index certificates_revoked (migration 003) carries `crl_entry` instead of the
 *   reason and invalidity date it is made from: a shard is still one range of the index, in order.
 * - Rows revoked before this migration get their entry, made as the lifecycle makes it.
 * - PostgreSQL compresses stored CRLs with LZ4.
 * - A guard: an update that changes a row's revocation (revoked_at, revocation_reason,
 *   invalidity_date) without writing its entry sets the entry to NULL, and the publisher encodes such
 *   rows from their columns. A stale entry is never published, whichever code path changed the row.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely";
import { type CrlReasonCode, encodeCrlEntry } from "../../pki/crl.js";

const FILL_BATCH = 1000;

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await sql`drop index certificates_revoked`.execute(db);
  if (postgres) {
    await sql`create index certificates_revoked on certificates (issuer, shard, serial collate "C")
      include (status, kind, not_after, crl_entry)
      where revoked_at is not null`.execute(db);
    await sql`create function certificates_crl_entry_stale() returns trigger language plpgsql as $$
      begin
        if new.crl_entry is not distinct from old.crl_entry
          and (new.revoked_at, new.revocation_reason, new.invalidity_date)
            is distinct from (old.revoked_at, old.revocation_reason, old.invalidity_date) then
          new.crl_entry := null;
        end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger certificates_crl_entry_stale
      before update of revoked_at, revocation_reason, invalidity_date on certificates
      for each row execute function certificates_crl_entry_stale()`.execute(db);
    // Stored CRLs (up to ~10 MB a shard) compressed with LZ4 rather than pglz, which took most of the
    // time of storing them; a server built without LZ4 keeps pglz.
    await sql`do $$ begin
        alter table crls alter column der set compression lz4;
      exception when feature_not_supported then null;
      end $$`.execute(db);
  } else {
    // SQLite reads from the index only when it holds every column the query names, the predicate's
    // revoked_at included (PostgreSQL does not need it: INCLUDE has the rest).
    await sql`create index certificates_revoked on certificates
      (issuer, shard, serial, status, kind, not_after, revoked_at, crl_entry)
      where revoked_at is not null`.execute(db);
    await sql`create trigger certificates_crl_entry_stale
      after update of revoked_at, revocation_reason, invalidity_date on certificates
      for each row when new.crl_entry is not null and new.crl_entry is old.crl_entry
        and (new.revoked_at is not old.revoked_at or new.revocation_reason is not old.revocation_reason
          or new.invalidity_date is not old.invalidity_date)
      begin update certificates set crl_entry = null where serial = new.serial; end`.execute(db);
  }

  for (let after = ""; ; ) {
    const rows = await db
      .selectFrom("certificates")
      .select(["serial", "revoked_at", "revocation_reason", "invalidity_date"])
      .where("revoked_at", "is not", null)
      .where("crl_entry", "is", null)
      .where("serial", ">", after)
      .orderBy("serial")
      .limit(FILL_BATCH)
      .execute();
    for (const row of rows)
      await db
        .updateTable("certificates")
        .set({
          crl_entry: encodeCrlEntry({
            serial: Buffer.from(row.serial, "hex"),
            revocationDate: new Date(row.revoked_at),
            reason: (row.revocation_reason ?? undefined) as CrlReasonCode | undefined,
            invalidityDate: row.invalidity_date === null ? undefined : new Date(row.invalidity_date),
          }),
        })
        .where("serial", "=", row.serial)
        .execute();
    if (rows.length < FILL_BATCH) return;
    after = rows.at(-1)!.serial;
  }
}
