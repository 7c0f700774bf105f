/**
 * Revocation status services: registered verifiers and their lookup counts (the fee basis), the
 * latest CRL of each shard, and pre-signed OCSP answers.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const blob = postgres ? "bytea" : "blob";
  const int8 = postgres ? "bigint" : "integer";

  await db.schema
    .createTable("verifiers")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("verifier_lookups")
    .addColumn("verifier_id", "text", (c) => c.notNull().references("verifiers.id"))
    .addColumn("day", "text", (c) => c.notNull())
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("count", sql.raw(int8), (c) => c.notNull())
    .addPrimaryKeyConstraint("verifier_lookups_pk", ["verifier_id", "day", "channel"])
    .execute();

  await db.schema
    .createTable("crls")
    .addColumn("issuer", "text", (c) => c.notNull())
    .addColumn("shard", "integer", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("crl_number", sql.raw(int8), (c) => c.notNull())
    .addColumn("base_crl_number", sql.raw(int8))
    .addColumn("change_sequence", sql.raw(int8), (c) => c.notNull())
    .addColumn("this_update", "text", (c) => c.notNull())
    .addColumn("next_update", "text", (c) => c.notNull())
    .addColumn("entries", "integer", (c) => c.notNull())
    .addColumn("der", sql.raw(blob), (c) => c.notNull())
    .addPrimaryKeyConstraint("crls_pk", ["issuer", "shard", "kind"])
    .execute();

  await db.schema
    .createTable("ocsp_responses")
    .addColumn("serial", "text", (c) => c.primaryKey().references("certificates.serial"))
    .addColumn("issuer", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("change_sequence", sql.raw(int8), (c) => c.notNull())
    .addColumn("produced_at", "text", (c) => c.notNull())
    .addColumn("next_update", "text", (c) => c.notNull())
    .addColumn("der", sql.raw(blob), (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("ocsp_responses_next_update")
    .on("ocsp_responses")
    .column("next_update")
    .execute();
}
