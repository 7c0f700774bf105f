/**
 * Migrations as code (Kysely's Migrator with an in-code provider): they ship inside the package, so
 * the compiled CLI migrates without reading a directory. Add a migration as `NNN-name.ts` and list it.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, PostgresAdapter, sql } from "kysely";
import { JpkiError } from "../../errors.js";
import type { RegistrySchema } from "../schema.js";
import * as initial from "./001-initial.js";
import * as status from "./002-status.js";
import * as crlEntries from "./003-crl-entries.js";
import * as crlEntryDer from "./005-crl-entry-der.js";
import * as applications from "./006-applications.js";
import * as postal from "./007-postal.js";
import * as counter from "./008-counter.js";
import * as injectedKeys from "./009-injected-keys.js";
import * as carrierEvents from "./010-carrier-events.js";
import * as ledger from "./011-ledger.js";

const migrations: Record<string, Migration> = {
  "001-initial": initial,
  "002-status": status,
  "003-crl-entries": crlEntries,
  "005-crl-entry-der": crlEntryDer,
  "006-applications": applications,
  "007-postal": postal,
  "008-counter": counter,
  "009-injected-keys": injectedKeys,
  "010-carrier-events": carrierEvents,
  "011-ledger": ledger,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * Brings the tables to the latest version. On PostgreSQL the migration table is looked up in the
 * schema in use: Kysely would otherwise find another schema's `kysely_migration` and skip creating its own.
 */
export async function migrateRegistry(db: Kysely<RegistrySchema>, schema?: string): Promise<void> {
  let tableSchema = schema;
  if (tableSchema === undefined && db.getExecutor().adapter instanceof PostgresAdapter) {
    const row = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
    tableSchema = row.rows[0]?.schema;
  }
  const migrator = new Migrator({
    db,
    provider,
    ...(tableSchema !== undefined ? { migrationTableSchema: tableSchema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new JpkiError("internal", `registry migration ${failed} failed: ${String(error)}`, {
      cause: error,
    });
  }
}
