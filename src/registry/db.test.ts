import { strict as assert } from "node:assert";
import { test } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../testing/dialects.js";
import { dialectOf, openRegistryDatabase, toBuffer } from "./db.js";

test("a sqlite: URL and a bare path both open SQLite; other schemes are refused for PostgreSQL schemas", async () => {
  const memory = await openRegistryDatabase("sqlite::memory:");
  assert.equal(memory.dialect, "sqlite");
  await memory.close();
  await assert.rejects(
    openRegistryDatabase("postgres://127.0.0.1/test?schema=Bad-Name"),
    /invalid PostgreSQL schema/,
  );
});

test("toBuffer turns a Uint8Array view into a Buffer over the same bytes", () => {
  const bytes = new Uint8Array([1, 2, 3, 4]).subarray(1, 3);
  const buffer = toBuffer(bytes);
  assert.ok(Buffer.isBuffer(buffer));
  assert.deepEqual([...buffer], [2, 3]);
});

forEachDialect((dialect, open) => {
  test("opening migrates once; reopening finds the tables and migrates nothing", async () => {
    const handle = await open();
    assert.equal(handle.dialect, dialect);
    assert.equal(dialectOf(handle.db), dialect);
    const again = await handle.reopen();
    const migrations = await sql<{ name: string }>`select name from kysely_migration`.execute(again.db);
    assert.deepEqual(
      migrations.rows.map((r) => r.name),
      [
        "001-initial",
        "002-status",
        "003-crl-entries",
        "005-crl-entry-der",
        "006-applications",
        "007-postal",
        "008-counter",
        "009-injected-keys",
        "010-carrier-events",
        "011-ledger",
      ],
    );
    const head = await again.db.selectFrom("audit_head").selectAll().execute();
    assert.deepEqual(head, [{ id: 1, seq: 0, hash: "0".repeat(64) }]);
  });

  test("binary columns round-trip as Buffer, int8 as number", async () => {
    const { db } = await open();
    const now = new Date().toISOString();
    const tbs = Buffer.from("3000ff00", "hex");
    await db
      .insertInto("certificates")
      .values({
        serial: "01",
        issuer: "auth",
        kind: "ca",
        medium: "none",
        status: "pending",
        tbs,
        not_before: now,
        not_after: now,
        shard: 0,
        created_at: now,
        updated_at: now,
      })
      .execute();
    const row = await db.selectFrom("certificates").select(["tbs", "der"]).executeTakeFirstOrThrow();
    assert.ok(Buffer.isBuffer(row.tbs) && row.tbs.equals(tbs));
    assert.equal(row.der, null);
    const count = await db
      .selectFrom("certificates")
      .select(db.fn.countAll().as("n"))
      .executeTakeFirstOrThrow();
    assert.equal(count.n, 1);
  });

  test("foreign keys are enforced", async () => {
    const { db } = await open();
    const now = new Date().toISOString();
    await assert.rejects(
      db
        .insertInto("cards")
        .values({
          id: "c",
          person_id: "nobody",
          card_number: "1",
          issued_at: now,
          expires_at: now,
          status: "active",
          state_path: null,
          created_at: now,
          updated_at: now,
        })
        .execute(),
      /FOREIGN KEY|foreign key/,
    );
  });

  if (dialect === "sqlite")
    test("SQLite runs in WAL mode with synchronous=FULL, foreign keys on and a busy timeout", async () => {
      const { db } = await open();
      const pragma = async (name: string) =>
        Object.values((await sql.raw(`pragma ${name}`).execute(db)).rows[0] as object)[0];
      assert.equal(await pragma("journal_mode"), "wal");
      assert.equal(await pragma("synchronous"), 2);
      assert.equal(await pragma("foreign_keys"), 1);
      assert.ok(Number(await pragma("busy_timeout")) >= 1000);
    });

  if (dialect === "postgres")
    test("each schema is its own registry: tables land in the schema asked for", async () => {
      const a = await open();
      const b = await open();
      assert.notEqual(a.schema, b.schema);
      await a.db.insertInto("settings").values({ key: "k", value: "a" }).execute();
      assert.equal((await b.db.selectFrom("settings").selectAll().execute()).length, 0);
      const where = await sql<{ schema: string }>`
        select table_schema as schema from information_schema.tables where table_name = 'certificates'
        and table_schema = ${a.schema!}`.execute(a.db);
      assert.equal(where.rows.length, 1);
    });
});
