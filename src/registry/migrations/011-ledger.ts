/**
 * The cost-sharing ledger (src/ledger): one row per billable event, with the party that pays and the
 * party that is paid, the rate it was priced at and the amount. `source` names the event the row
 * bills (an issuance's serial, a delivery's application, a month's SIM space), so recording it twice
 * is impossible. Rows are append-only: triggers refuse any UPDATE or DELETE, whichever code runs it.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ledger_entries")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("source", "text", (c) => c.notNull().unique())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("payer", "text", (c) => c.notNull())
    .addColumn("payee", "text", (c) => c.notNull())
    .addColumn("quantity", "integer", (c) => c.notNull())
    .addColumn("rate_yen", "integer", (c) => c.notNull())
    .addColumn("rate_per", "integer", (c) => c.notNull())
    .addColumn("amount_yen", "integer", (c) => c.notNull())
    /** Billing month, YYYY-MM in Japan time. */
    .addColumn("month", "text", (c) => c.notNull())
    .addColumn("at", "text", (c) => c.notNull())
    .addColumn("reference", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("ledger_entries_month")
    .on("ledger_entries")
    .columns(["month", "kind"])
    .execute();
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`create function ledger_entries_append_only() returns trigger language plpgsql as $$
      begin raise exception 'ledger entries are append-only'; end $$`.execute(db);
    await sql`create trigger ledger_entries_append_only before update or delete on ledger_entries
      for each row execute function ledger_entries_append_only()`.execute(db);
  } else {
    for (const operation of ["update", "delete"])
      await sql`${sql.raw(`create trigger ledger_entries_no_${operation} before ${operation} on ledger_entries
        begin select raise(abort, 'ledger entries are append-only'); end`)}`.execute(db);
  }
}
