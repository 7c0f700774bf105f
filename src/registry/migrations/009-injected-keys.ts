/**
 * Keys J-LIS made for a SIM (`keyGeneration = injected`, src/ra/injected-keys.ts), sealed, kept only
 * from the issuance until the delivery to the SIM.
 */
import { type Kysely, PostgresAdapter } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const blob = db.getExecutor().adapter instanceof PostgresAdapter ? "bytea" : "blob";
  await db.schema
    .createTable("injected_keys")
    .addColumn("application_id", "text", (c) => c.primaryKey().references("applications.id"))
    .addColumn("sealed_key", blob, (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .execute();
}
