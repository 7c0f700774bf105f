/**
 * Multi-row writes for the issuance hot path, where Kysely's query builder costs more than the
 * database. Each dialect gets the form it runs cheapest:
 *
 * - SQLite: one multi-row VALUES statement per chunk. The text repeats for a given chunk size, so
 *   better-sqlite3's prepared statement is reused from db.ts's cache.
 * - PostgreSQL: one statement per call, its parameters one array per column, spread into rows by
 *   `unnest` (PostgreSQL §9.19). Its text is short and never changes, where a VALUES list of 500 rows
 *   makes the server parse, analyse and plan thousands of parameters every time. Each array is sent
 *   in PostgreSQL's binary form, so no value is turned into text on the way (node-postgres would send
 *   a JavaScript array as text, bytea as hex).
 */
import { CompiledQuery, type Kysely } from "kysely";
import { dialectOf } from "./db.js";
import type { RegistrySchema } from "./schema.js";

/** A column a bulk statement writes: its name and SQL type (PostgreSQL's arrays need the type). */
export interface BulkColumn {
  readonly name: string;
  readonly type: "text" | "bytea" | "integer" | "bigint";
}

/** A column of `type`, text unless said otherwise. */
export function column(name: string, type: BulkColumn["type"] = "text"): BulkColumn {
  return { name, type };
}

/** SQLite rows per statement: below its 32,766 parameters for up to 60 columns. */
const MAX_SQLITE_ROWS = 500;

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

/** `$1::text[], $2::bytea[], ...`: one array parameter per column, for PostgreSQL's unnest. */
function arrayParameters(columns: readonly BulkColumn[]): string {
  return columns.map((column, c) => `$${c + 1}::${column.type}[]`).join(", ");
}

/** Column `c` of `rows`. */
function valuesOf(rows: readonly (readonly unknown[])[], c: number): unknown[] {
  return rows.map((row) => row[c]);
}

/** Element type OIDs (PostgreSQL's pg_type.dat). */
const ELEMENT_OID: Record<BulkColumn["type"], number> = { text: 25, bytea: 17, integer: 23, bigint: 20 };

/**
 * The most octets an element takes in its binary send form: UTF-8 text (at most 3 per UTF-16 code
 * unit), raw bytea, big-endian int4 or int8.
 */
function elementCapacity(type: BulkColumn["type"], value: unknown): number {
  switch (type) {
    case "text":
      if (typeof value !== "string") throw new TypeError(`a text column got ${typeof value}`);
      return 3 * value.length;
    case "bytea":
      if (!(value instanceof Uint8Array)) throw new TypeError(`a bytea column got ${typeof value}`);
      return value.length;
    case "integer":
    case "bigint":
      if (!Number.isSafeInteger(value)) throw new TypeError(`an integer column got ${String(value)}`);
      return type === "integer" ? 4 : 8;
  }
}

/**
 * A column's values as a one-dimensional PostgreSQL array in binary form (array_recv in
 * src/backend/utils/adt/arrayfuncs.c): dimensions 1, has-nulls flag, element type OID, length, lower
 * bound 1, then each element as a 4-byte length (-1 for NULL) and its octets. node-postgres sends a
 * Buffer parameter in binary, and the `$n::type[]` cast tells the server how to read it.
 */
function binaryArray(type: BulkColumn["type"], values: readonly unknown[]): Buffer {
  // Indexed loops: this runs a few times per batch over hundreds of values, often before the
  // optimising compiler has seen it, and a for-of then allocates an iterator result per value.
  let capacity = 20;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    capacity += 4;
    if (value !== null && value !== undefined) capacity += elementCapacity(type, value);
  }
  // Room for the worst case, so each text is encoded in one pass, without counting its bytes first.
  const out = Buffer.allocUnsafe(capacity);
  let hasNulls = 0;
  let offset = 20;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === null || value === undefined) {
      hasNulls = 1;
      offset = out.writeInt32BE(-1, offset);
    } else if (type === "text") {
      const length = out.write(value as string, offset + 4, "utf8");
      offset = out.writeInt32BE(length, offset) + length;
    } else if (type === "bytea") {
      const bytes = value as Uint8Array;
      offset = out.writeInt32BE(bytes.length, offset);
      out.set(bytes, offset);
      offset += bytes.length;
    } else if (type === "integer") {
      offset = out.writeInt32BE(4, offset);
      offset = out.writeInt32BE(value as number, offset);
    } else {
      offset = out.writeInt32BE(8, offset);
      offset = out.writeBigInt64BE(BigInt(value as number), offset);
    }
  }
  out.writeInt32BE(1, 0);
  out.writeInt32BE(hasNulls, 4);
  out.writeInt32BE(ELEMENT_OID[type], 8);
  out.writeInt32BE(values.length, 12);
  out.writeInt32BE(1, 16);
  return out.subarray(0, offset);
}

export interface BulkInsertOptions {
  /** `on conflict (column) do nothing returning column`: the returned rows are those inserted. */
  skipConflictsOn?: string;
}

/** Inserts `rows` (values in `columns` order); returns the rows RETURNING gave, if asked. */
export async function bulkInsert(
  db: Kysely<RegistrySchema>,
  table: string,
  columns: readonly BulkColumn[],
  rows: readonly (readonly unknown[])[],
  options: BulkInsertOptions = {},
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const names = columns.map((column) => identifier(column.name)).join(", ");
  const conflict = options.skipConflictsOn
    ? ` on conflict (${identifier(options.skipConflictsOn)}) do nothing returning ${options.skipConflictsOn}`
    : "";
  if (dialectOf(db) === "postgres") {
    const text = cached(
      `postgres|${table}|${names}|${conflict}`,
      () =>
        `insert into ${identifier(table)} (${names}) select * from unnest(${arrayParameters(columns)})${conflict}`,
    );
    const arrays = columns.map((column, c) => binaryArray(column.type, valuesOf(rows, c)));
    const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, arrays));
    return result.rows;
  }
  const out: Record<string, unknown>[] = [];
  for (let start = 0; start < rows.length; start += MAX_SQLITE_ROWS) {
    const part = rows.slice(start, start + MAX_SQLITE_ROWS);
    const text = cached(`sqlite|${table}|${names}|${conflict}|${part.length}`, () => {
      const tuple = `(${columns.map(() => "?").join(", ")})`;
      return `insert into ${identifier(table)} (${names}) values ${part.map(() => tuple).join(", ")}${conflict}`;
    });
    const parameters: unknown[] = [];
    for (const row of part) for (let c = 0; c < columns.length; c++) parameters.push(row[c] ?? null);
    const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, parameters));
    out.push(...result.rows);
  }
  return out;
}

/**
 * Stores signed certificates: sets `der`, status `issued` and `updated_at` on each row still `pending`,
 * and empties its `tbs`, which the DER holds byte for byte (the registry checked it wraps the stored
 * TBS). The row then takes about 1.3 KB instead of 2.2: less for SQLite to write to its WAL, and under
 * PostgreSQL's TOAST threshold of about 2 KB, so the server does not try to compress it. Returns the
 * serials it changed.
 */
export async function bulkStoreIssued(
  db: Kysely<RegistrySchema>,
  issued: readonly { serial: string; der: Buffer }[],
  now: string,
): Promise<string[]> {
  if (issued.length === 0) return [];
  if (dialectOf(db) === "postgres") {
    const serials = issued.map((row) => row.serial);
    const ders = issued.map((row) => row.der);
    const result = await db.executeQuery<{ serial: string }>(
      CompiledQuery.raw(
        `update certificates c set der = v.der, tbs = '', status = 'issued', updated_at = $3
          from unnest($1::text[], $2::bytea[]) as v(serial, der)
          where c.serial = v.serial and c.status = 'pending' returning c.serial`,
        [binaryArray("text", serials), binaryArray("bytea", ders), now],
      ),
    );
    return result.rows.map((row) => row.serial);
  }
  const changed: string[] = [];
  for (let start = 0; start < issued.length; start += MAX_SQLITE_ROWS) {
    const part = issued.slice(start, start + MAX_SQLITE_ROWS);
    // UPDATE ... FROM a VALUES list (SQLite 3.33+): one statement for the chunk, through the primary key.
    const text = cached(`sqlite|issued|${part.length}`, () => {
      const values = part.map(() => "(?, ?)").join(", ");
      return `with v(serial, der) as (values ${values})
        update certificates set der = v.der, tbs = x'', status = 'issued', updated_at = ?
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
