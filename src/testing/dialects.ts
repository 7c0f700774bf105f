/**
 * Runs registry tests once per SQL dialect, as Kysely's own tests do: on SQLite (a temporary file) and
 * on PostgreSQL (a fresh schema per database opened, dropped after the test).
 *
 * PostgreSQL comes from JPKI_TEST_PG (default postgres://postgres@127.0.0.1:5432/test). When it cannot
 * be reached the PostgreSQL tests are skipped with a message, except in CI (env CI set), where they fail:
 * they are never silently skipped there.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import pg from "pg";
import {
  dropPostgresSchema,
  type OpenOptions,
  openRegistryDatabase,
  type RegistryDatabase,
  type RegistryDialect,
} from "../registry/db.js";

export const postgresTestUrl = process.env["JPKI_TEST_PG"] || "postgres://postgres@127.0.0.1:5432/test";

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: postgresTestUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("select 1");
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${postgresTestUrl} is unreachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why PostgreSQL cannot be used, or undefined when it can (probed once per test file). */
const postgresProblem = await probePostgres();

/** A database made for one test; `url` opens it again (from another process too). */
export interface TestDatabase extends RegistryDatabase {
  readonly url: string;
  /** Another handle on the same database (a restart); closed with the test. */
  reopen(options?: OpenOptions): Promise<RegistryDatabase>;
}

export type OpenTestDatabase = (options?: OpenOptions) => Promise<TestDatabase>;

function dropSchema(schema: string): Promise<void> {
  return dropPostgresSchema(postgresTestUrl, schema);
}

function opener(dialect: RegistryDialect, cleanups: (() => Promise<void>)[]): OpenTestDatabase {
  return async (options = {}) => {
    let url: string;
    if (dialect === "sqlite") {
      const dir = mkdtempSync(join(tmpdir(), "jpki-registry-"));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      url = `sqlite:${join(dir, "registry.db")}`;
    } else {
      const schema = `test_${randomBytes(8).toString("hex")}`;
      cleanups.push(() => dropSchema(schema));
      const u = new URL(postgresTestUrl);
      u.searchParams.set("schema", schema);
      url = u.toString();
    }
    const track = async (o: OpenOptions) => {
      const handle = await openRegistryDatabase(url, o);
      // Handles close before the schema or directory goes (cleanups run last-in, first-out).
      cleanups.push(() => handle.close().catch(() => undefined));
      return handle;
    };
    const handle = await track(options);
    return { ...handle, close: handle.close, url, reopen: (o = {}) => track(o) };
  };
}

/**
 * Declares the tests `body` registers once per dialect, each set in a suite named after the dialect.
 * Call `open()` inside a test for a fresh, migrated database; everything opened is closed and removed
 * after each test.
 */
export function forEachDialect(body: (dialect: RegistryDialect, open: OpenTestDatabase) => void): void {
  for (const dialect of ["sqlite", "postgres"] as const) {
    if (dialect === "postgres" && postgresProblem !== undefined) {
      if (process.env["CI"]) {
        describe(dialect, () => {
          test("PostgreSQL is reachable (required in CI)", () => {
            throw new Error(postgresProblem);
          });
        });
      } else {
        describe(dialect, {
          skip: `${postgresProblem}; set JPKI_TEST_PG or start it (required in CI)`,
        }, () => {
          body(dialect, () => Promise.reject(new Error(postgresProblem)));
        });
      }
      continue;
    }
    describe(dialect, () => {
      const cleanups: (() => Promise<void>)[] = [];
      afterEach(async () => {
        while (cleanups.length > 0) await cleanups.pop()!();
      });
      body(dialect, opener(dialect, cleanups));
    });
  }
}
