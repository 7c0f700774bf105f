/**
 * The postal channel (DESIGN §4 flow 4): access codes, kept only as salted hashes
 * (src/ra/access-codes.ts), and the post office's restricted-delivery mail items (src/post/).
 * The new application statuses (`awaiting-code`, `referred-to-counter`) are text: no change there.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  const blob = sql.raw(postgres ? "bytea" : "blob");

  await db.schema
    .createTable("access_codes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("application_id", "text", (c) => c.notNull().references("applications.id"))
    .addColumn("salt", blob, (c) => c.notNull())
    .addColumn("code_hash", blob, (c) => c.notNull())
    .addColumn("failed_attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("expires_at", "text", (c) => c.notNull())
    .addColumn("used_at", "text")
    .addColumn("voided_at", "text")
    .addColumn("void_reason", "text")
    .execute();
  await db.schema
    .createIndex("access_codes_application")
    .on("access_codes")
    .column("application_id")
    .execute();

  await db.schema
    .createTable("mail_items")
    .addColumn("tracking_number", "text", (c) => c.primaryKey())
    .addColumn("sender", "text", (c) => c.notNull())
    .addColumn("sender_reference", "text", (c) => c.notNull())
    .addColumn("addressee_id", "text", (c) => c.notNull())
    .addColumn("addressee_name", "text", (c) => c.notNull())
    .addColumn("address", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("sealed_letter", blob)
    .addColumn("delivery_attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_failure", "text")
    .addColumn("hold_until", "text")
    .addColumn("sent_at", "text", (c) => c.notNull())
    .addColumn("delivered_at", "text")
    .addColumn("returned_at", "text")
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();
  // The return sweep reads held items by deadline; the sender reads its returns by reference.
  await db.schema.createIndex("mail_items_held").on("mail_items").columns(["status", "hold_until"]).execute();
  await db.schema
    .createIndex("mail_items_sender")
    .on("mail_items")
    .columns(["sender", "sender_reference"])
    .execute();
}
