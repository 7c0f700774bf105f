/**
 * The municipal counter (市区町村窓口, DESIGN §4 flows 5 and 6): the municipalities whose clerks serve
 * at a counter, the clerks (bound to one municipality, authenticated by a token of which only the
 * SHA-256 is kept) and every identity verification a clerk made, with the clerk and the municipality
 * (src/municipality/clerks.ts, src/ra/counter.ts).
 */
import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("municipalities")
    .addColumn("code", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("clerks")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("municipality_code", "text", (c) => c.notNull().references("municipalities.code"))
    .addColumn("label", "text")
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("counter_identity_checks")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("clerk_id", "text", (c) => c.notNull().references("clerks.id"))
    .addColumn("municipality_code", "text", (c) => c.notNull().references("municipalities.code"))
    .addColumn("method", "text", (c) => c.notNull())
    .addColumn("purpose", "text", (c) => c.notNull())
    .addColumn("person_id", "text", (c) => c.notNull().references("persons.id"))
    .addColumn("card_id", "text", (c) => c.notNull().references("cards.id"))
    .addColumn("signing_serial", "text")
    .addColumn("documents", "text")
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("counter_identity_checks_person")
    .on("counter_identity_checks")
    .column("person_id")
    .execute();
  await db.schema
    .createIndex("counter_identity_checks_clerk")
    .on("counter_identity_checks")
    .column("clerk_id")
    .execute();
}
