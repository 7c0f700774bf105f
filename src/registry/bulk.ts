/**
 * Multi-row writes for the issuance hot path, where Kysely's query builder costs more than the
 * database: one multi-row VALUES statement per chunk on both dialects (only the parameter markers
 * differ). The statement text repeats for a given chunk size, so better-sqlite3's prepared statement
 * is reused from db.ts's cache; on PostgreSQL each bytea travels as its own binary parameter (an
 * array parameter would be sent as hex text).
 */
import { CompiledQuery, type Kysely } from "kysely";
import { dialectOf } from "./db.js";
import type { RegistrySchema } from "./schema.js";

/** Rows per statement: below SQLite's 32,766 parameters (and PostgreSQL's 65,535) for up to 60 columns. */
const MAX_ROWS = 500;

/** The n-th (0-based) parameter marker: `?` for SQLite, `$n+1` for PostgreSQL. */
function placeholder(postgres: boolean, n: number): string {
  return postgres ? `$${n + 1}` : "?";
}

const textCache = new Map<string, string>();

function cached(key: string, build: () => string): string {
  let text = textCache.get(key);
  if (text === undefined) {
    text = build();
    if (textCache.size > 512) textCache.clear();
    textCache.set(key, text);
  }
  return text;
}

const identifier = (name: string) => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain identifier: ${name}`);
  return name;
};

export interface BulkInsertOptions {
  /** `on conflict (column) do nothing returning column`: the returned rows are those inserted. */
  skipConflictsOn?: string;
}

/** Inserts `rows` (values in `columns` order); returns the rows RETURNING gave, if asked. */
export async function bulkInsert(
  db: Kysely<RegistrySchema>,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  options: BulkInsertOptions = {},
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const names = columns.map(identifier).join(", ");
  const conflict = options.skipConflictsOn
    ? ` on conflict (${identifier(options.skipConflictsOn)}) do nothing returning ${options.skipConflictsOn}`
    : "";
  const out: Record<string, unknown>[] = [];
  const postgres = dialectOf(db) === "postgres";
  for (let start = 0; start < rows.length; start += MAX_ROWS) {
    const part = rows.slice(start, start + MAX_ROWS);
    const text = cached(`${postgres}|${table}|${names}|${conflict}|${part.length}`, () => {
      const tuples = part.map(
        (_, r) => `(${columns.map((_, c) => placeholder(postgres, r * columns.length + c)).join(", ")})`,
      );
      return `insert into ${identifier(table)} (${names}) values ${tuples.join(", ")}${conflict}`;
    });
    const parameters: unknown[] = [];
    for (const row of part) for (let c = 0; c < columns.length; c++) parameters.push(row[c] ?? null);
    const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, parameters));
    out.push(...result.rows);
  }
  return out;
}

/**
 * Stores signed certificates: sets `der`, status `issued` and `updated_at` on each row still `pending`;
 * returns the serials it changed.
 */
export async function bulkStoreIssued(
  db: Kysely<RegistrySchema>,
  issued: readonly { serial: string; der: Buffer }[],
  now: string,
): Promise<string[]> {
  if (issued.length === 0) return [];
  const changed: string[] = [];
  const postgres = dialectOf(db) === "postgres";
  for (let start = 0; start < issued.length; start += MAX_ROWS) {
    const part = issued.slice(start, start + MAX_ROWS);
    // UPDATE ... FROM a VALUES list (SQLite 3.33+, PostgreSQL): one statement for the chunk, through
    // the primary key. Each DER is its own parameter, which PostgreSQL's driver sends in binary.
    const text = cached(`${postgres}|issued|${part.length}`, () => {
      const values = part
        .map((_, r) =>
          postgres && r === 0
            ? `(${placeholder(true, 0)}::text, ${placeholder(true, 1)}::bytea)`
            : `(${placeholder(postgres, 2 * r)}, ${placeholder(postgres, 2 * r + 1)})`,
        )
        .join(", ");
      const nowMarker = placeholder(postgres, 2 * part.length);
      return postgres
        ? `update certificates c set der = v.der, status = 'issued', updated_at = ${nowMarker}
            from (values ${values}) as v(serial, der)
            where c.serial = v.serial and c.status = 'pending' returning c.serial`
        : `with v(serial, der) as (values ${values})
            update certificates set der = v.der, status = 'issued', updated_at = ${nowMarker}
            from v where certificates.serial = v.serial and certificates.status = 'pending'
            returning certificates.serial`;
    });
    const parameters: unknown[] = [];
    for (const { serial, der } of part) parameters.push(serial, der);
    parameters.push(now);
    const result = await db.executeQuery<{ serial: string }>(CompiledQuery.raw(text, parameters));
    for (const row of result.rows) changed.push(row.serial);
  }
  return changed;
}
