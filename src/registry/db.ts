/**
 * Opens the registry's database: embedded SQLite (better-sqlite3) by default, PostgreSQL (pg) for
 * national scale, through the same Kysely queries. The dialect differences live here and in the
 * migrations: pragmas, BEGIN IMMEDIATE, int8 and bytea decoding, the search_path.
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from "kysely";
import pg from "pg";
import { JpkiError } from "../errors.js";
import { migrateRegistry } from "./migrations/index.js";
import type { RegistrySchema } from "./schema.js";

export type RegistryDialect = "sqlite" | "postgres";

export interface RegistryDatabase {
  readonly db: Kysely<RegistrySchema>;
  readonly dialect: RegistryDialect;
  /** PostgreSQL schema the tables live in (search_path), when one was asked for. */
  readonly schema: string | undefined;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL only: put every table in this schema (created if missing). Also `?schema=` in the URL. */
  schema?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** SQLite: how long a writer waits for another process's lock (default 10 s). */
  busyTimeoutMs?: number;
  /** Bring the tables to the latest migration (default true). */
  migrate?: boolean;
}

const schemaName = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * `postgres://` or `postgresql://` URLs open a pg Pool; anything else is SQLite: a file path, or a
 * `sqlite:` URL (`sqlite:relative.db`, `sqlite:///absolute.db`, `sqlite::memory:`).
 */
export async function openRegistryDatabase(
  url: string,
  options: OpenOptions = {},
): Promise<RegistryDatabase> {
  const handle = /^postgres(ql)?:\/\//.test(url) ? openPostgres(url, options) : openSqlite(url, options);
  const opened = await handle;
  if (options.migrate ?? true) {
    try {
      if (opened.dialect === "postgres")
        await withSchemaLock(url, "shared", () => migrateRegistry(opened.db, opened.schema));
      else await migrateRegistry(opened.db, opened.schema);
    } catch (error) {
      await opened.close();
      throw error;
    }
  }
  return opened;
}

/** Advisory lock key (any constant) guarding schema drops against migrations in progress. */
const SCHEMA_LOCK_KEY = 0x4a504b49;

/**
 * Runs `body` holding a PostgreSQL advisory lock: shared while migrating, exclusive while dropping a
 * schema. Kysely's Migrator lists the tables of every schema, and that catalog query fails when
 * another schema is dropped under it: this keeps drops (tests, benchmarks) and migrations apart.
 */
async function withSchemaLock<T>(
  url: string,
  mode: "shared" | "exclusive",
  body: () => Promise<T>,
): Promise<T> {
  const parsed = new URL(url);
  parsed.searchParams.delete("schema");
  const client = new pg.Client({ connectionString: parsed.toString() });
  await client.connect();
  try {
    await client.query(`select ${mode === "shared" ? "pg_advisory_lock_shared" : "pg_advisory_lock"}($1)`, [
      SCHEMA_LOCK_KEY,
    ]);
    return await body();
  } finally {
    await client.end();
  }
}

/** Drops a PostgreSQL schema and everything in it (test and benchmark databases), never during a migration. */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!schemaName.test(schema)) throw new JpkiError("bad-input", `not a schema name: ${schema}`);
  await withSchemaLock(url, "exclusive", async () => {
    const parsed = new URL(url);
    parsed.searchParams.delete("schema");
    const client = new pg.Client({ connectionString: parsed.toString() });
    await client.connect();
    try {
      await client.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client.end();
    }
  });
}

function sqlitePath(url: string): string {
  if (url.startsWith("sqlite://")) return url.slice("sqlite://".length) || ":memory:";
  if (url.startsWith("sqlite:")) return url.slice("sqlite:".length) || ":memory:";
  return url;
}

/**
 * Kysely's SQLite driver with BEGIN IMMEDIATE: the write lock is taken when the transaction starts, so
 * a transaction that reads before it writes cannot fail with SQLITE_BUSY half-way because another
 * process wrote in between (a deferred BEGIN cannot wait for a lock it has not asked for yet).
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
}

class RegistrySqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

/**
 * Kysely prepares every query anew; better-sqlite3 statements can be reused, and the hot issuance
 * queries repeat with the same text (same batch size), so keep the most recent ones.
 */
function withStatementCache(database: Database.Database, capacity = 256): SqliteDialectConfig["database"] {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => database.close(),
    prepare: (text: string) => {
      let statement = cache.get(text);
      if (statement) {
        cache.delete(text);
      } else {
        statement = database.prepare(text);
        if (cache.size >= capacity) cache.delete(cache.keys().next().value as string);
      }
      cache.set(text, statement);
      return statement;
    },
  };
}

async function openSqlite(url: string, options: OpenOptions): Promise<RegistryDatabase> {
  const path = sqlitePath(url);
  if (path !== ":memory:") mkdirSync(dirname(resolve(path)), { recursive: true });
  const database = new Database(path);
  // WAL lets readers run beside the one writer; synchronous=FULL makes every commit durable across a
  // power loss in WAL mode too (NORMAL would only protect against a process crash).
  database.pragma("journal_mode = WAL");
  database.pragma("synchronous = FULL");
  database.pragma("foreign_keys = ON");
  // A larger page cache (64 MiB) keeps the indexes of a big registry in memory during issuance batches.
  database.pragma("cache_size = -65536");
  database.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 10_000)}`);
  const db = new Kysely<RegistrySchema>({
    dialect: new RegistrySqliteDialect({ database: withStatementCache(database) }),
  });
  return {
    db,
    dialect: "sqlite",
    schema: undefined,
    close: () => db.destroy(),
  };
}

/** int8 (count(*), bigserial, audit sequence numbers) as a JS number; our values stay below 2^53. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new JpkiError("internal", `int8 value ${text} exceeds 2^53`);
  return value;
}

const INT8_OID = 20;

async function openPostgres(url: string, options: OpenOptions): Promise<RegistryDatabase> {
  const parsed = new URL(url);
  const schema = options.schema ?? (parsed.searchParams.get("schema") || undefined);
  parsed.searchParams.delete("schema");
  if (schema !== undefined && !schemaName.test(schema))
    throw new JpkiError("bad-input", `invalid PostgreSQL schema name ${JSON.stringify(schema)}`);
  if (schema !== undefined) {
    // The schema must exist before a pooled connection uses it in its search_path.
    const client = new pg.Client({ connectionString: parsed.toString() });
    await client.connect();
    try {
      await client.query(`create schema if not exists "${schema}"`);
    } finally {
      await client.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: parsed.toString(),
    max: options.poolSize ?? 10,
    ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {}),
    // A per-pool parser, so this module changes nothing for other users of pg in the process.
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID && format !== "binary"
          ? parseInt8
          : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
    },
  });
  const db = new Kysely<RegistrySchema>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: "postgres", schema, close: () => db.destroy() };
}

/** The dialect behind a Kysely instance or transaction. */
export function dialectOf(db: Kysely<RegistrySchema>): RegistryDialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
}

/** better-sqlite3 returns Buffer, pg returns Buffer; other drivers may give Uint8Array. */
export function toBuffer(value: Uint8Array): Buffer;
export function toBuffer(value: Uint8Array | null): Buffer | null;
export function toBuffer(value: Uint8Array | null): Buffer | null {
  if (value === null) return null;
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** ISO-8601 UTC with milliseconds: the registry's one time format. */
export function isoTime(date: Date = new Date()): string {
  return date.toISOString();
}
