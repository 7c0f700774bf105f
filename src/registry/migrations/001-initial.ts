/**
 * The registry's first tables: people, cards, SIMs, certificates, their lifecycle events, the
 * hash-chained audit log with its head row, and settings.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely";

/** Hash of the (empty) chain before the first audit entry. */
export const AUDIT_GENESIS_HASH = "0".repeat(64);

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const blob = postgres ? "bytea" : "blob";
  const int8 = postgres ? "bigint" : "integer";

  await db.schema
    .createTable("persons")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("sex", "text", (c) => c.notNull())
    .addColumn("birth_date", "text", (c) => c.notNull())
    .addColumn("address", "text", (c) => c.notNull())
    .addColumn("residence", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("cards")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("person_id", "text", (c) => c.notNull().references("persons.id"))
    .addColumn("card_number", "text", (c) => c.notNull().unique())
    .addColumn("issued_at", "text", (c) => c.notNull())
    .addColumn("expires_at", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("state_path", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("cards_person").on("cards").column("person_id").execute();

  await db.schema
    .createTable("sims")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("iccid", "text", (c) => c.notNull().unique())
    .addColumn("eid", "text")
    .addColumn("carrier", "text")
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("certificates")
    .addColumn("serial", "text", (c) => c.primaryKey())
    .addColumn("issuer", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("medium", "text", (c) => c.notNull())
    .addColumn("person_id", "text", (c) => c.references("persons.id"))
    .addColumn("card_id", "text", (c) => c.references("cards.id"))
    .addColumn("sim_id", "text", (c) => c.references("sims.id"))
    .addColumn("parent_serial", "text", (c) => c.references("certificates.serial"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("tbs", sql.raw(blob), (c) => c.notNull())
    .addColumn("der", sql.raw(blob))
    .addColumn("not_before", "text", (c) => c.notNull())
    .addColumn("not_after", "text", (c) => c.notNull())
    .addColumn("shard", "integer", (c) => c.notNull())
    .addColumn("failure_reason", "text")
    .addColumn("revoked_at", "text")
    .addColumn("revocation_reason", "integer")
    .addColumn("invalidity_date", "text")
    .addColumn("crl_entry", sql.raw(blob))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();
  // Recovery scans pending rows; the lifecycle and CRL writer walk (issuer, shard, status); expiry walks
  // not_after; double-issuance checks and cascades go by person, card, SIM and parent.
  // Partial: only rows in flight are indexed, however many million certificates are issued; recovery
  // walks them in serial order.
  await db.schema
    .createIndex("certificates_pending")
    .on("certificates")
    .column("serial")
    .where(sql.ref("status"), "=", "pending")
    .execute();
  await db.schema
    .createIndex("certificates_shard")
    .on("certificates")
    .columns(["issuer", "shard", "status"])
    .execute();
  await db.schema.createIndex("certificates_not_after").on("certificates").column("not_after").execute();
  // Links are sparse (a card certificate has no SIM, few have a parent): partial indexes skip the NULLs.
  await db.schema
    .createIndex("certificates_person")
    .on("certificates")
    .columns(["person_id", "kind"])
    .where(sql.ref("person_id"), "is not", null)
    .execute();
  for (const column of ["card_id", "sim_id", "parent_serial"] as const)
    await db.schema
      .createIndex(`certificates_${column.replace("_id", "").replace("_serial", "")}`)
      .on("certificates")
      .column(column)
      .where(sql.ref(column), "is not", null)
      .execute();

  await db.schema
    .createTable("lifecycle_events")
    .addColumn("id", postgres ? "bigserial" : "integer", (c) =>
      postgres ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn("serial", "text", (c) => c.notNull().references("certificates.serial"))
    .addColumn("event", "text", (c) => c.notNull())
    .addColumn("from_status", "text")
    .addColumn("to_status", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("lifecycle_events_serial").on("lifecycle_events").column("serial").execute();

  await db.schema
    .createTable("audit_log")
    .addColumn("seq", sql.raw(int8), (c) => c.primaryKey())
    .addColumn("at", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("details", "text", (c) => c.notNull())
    .addColumn("prev_hash", "text", (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("audit_log_subject").on("audit_log").column("subject").execute();

  await db.schema
    .createTable("audit_head")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("seq", sql.raw(int8), (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull())
    .execute();
  await db.insertInto("audit_head").values({ id: 1, seq: 0, hash: AUDIT_GENESIS_HASH }).execute();

  await db.schema
    .createTable("settings")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("value", "text", (c) => c.notNull())
    .execute();
}
