/**
 * What carriers tell J-LIS about their SIMs (DESIGN §4 flow 7, src/ra/carrier-events.ts): each
 * carrier's event-signing public key, enrolled once, and every event J-LIS applied, keyed by the
 * carrier's own event id so that an event delivered twice is applied once.
 */
import { type Kysely, PostgresAdapter } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against the database as it was, not the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  const blob = db.getExecutor().adapter instanceof PostgresAdapter ? "bytea" : "blob";
  await db.schema
    .createTable("carrier_keys")
    .addColumn("carrier", "text", (c) => c.primaryKey())
    .addColumn("public_key", blob, (c) => c.notNull())
    .addColumn("enrolled_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("carrier_events")
    .addColumn("carrier", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("iccid", "text", (c) => c.notNull())
    .addColumn("occurred_at", "text", (c) => c.notNull())
    .addColumn("received_at", "text", (c) => c.notNull())
    /** The signed event as the carrier sent it, and its signature: evidence of who said what. */
    .addColumn("event", blob, (c) => c.notNull())
    .addColumn("signature", blob, (c) => c.notNull())
    /** What J-LIS did (JSON: the SIM's new status, the certificates revoked). */
    .addColumn("outcome", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("carrier_events_pk", ["carrier", "id"])
    .execute();
  await db.schema.createIndex("carrier_events_iccid").on("carrier_events").column("iccid").execute();
}
