/**
 * Applications for smartphone certificates (src/ra): one row per application with its number and
 * current status, its status history, and the single-use nonces the online channel hands out.
 */
import { type Kysely, PostgresAdapter } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;

  await db.schema
    .createTable("applications")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("person_id", "text", (c) => c.references("persons.id"))
    .addColumn("iccid", "text")
    .addColumn("certificate_serial", "text", (c) => c.references("certificates.serial"))
    .addColumn("failure_reason", "text")
    .addColumn("evidence", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("applications_person").on("applications").column("person_id").execute();

  await db.schema
    .createTable("application_events")
    .addColumn("id", postgres ? "bigserial" : "integer", (c) =>
      postgres ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn("application_id", "text", (c) => c.notNull().references("applications.id"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("application_events_application")
    .on("application_events")
    .column("application_id")
    .execute();

  await db.schema
    .createTable("application_nonces")
    .addColumn("nonce_hash", "text", (c) => c.primaryKey())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("expires_at", "text", (c) => c.notNull())
    .addColumn("used_at", "text")
    .addColumn("application_id", "text")
    .execute();
}
