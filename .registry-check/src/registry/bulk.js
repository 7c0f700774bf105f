/**
 * Multi-row writes for the issuance hot path, one small adapter per dialect (Kysely's idea, applied
 * where its query builder costs more than the database): SQLite gets one multi-row VALUES statement
 * whose text repeats (so better-sqlite3's prepared statement is reused from db.ts's cache); PostgreSQL
 * gets one array parameter per column through unnest(), so the statement text and its plan are the
 * same for any batch size and the parameter count stays at one per column.
 */
import { CompiledQuery } from "kysely";
import { dialectOf } from "./db.js";
/** Rows per SQLite statement: below SQLite's 32,766 parameters for up to 60 columns. */
const SQLITE_ROWS = 500;
const textCache = new Map();
function cached(key, build) {
    let text = textCache.get(key);
    if (text === undefined) {
        text = build();
        if (textCache.size > 512)
            textCache.clear();
        textCache.set(key, text);
    }
    return text;
}
const identifier = (name) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name))
        throw new Error(`not a plain identifier: ${name}`);
    return name;
};
/** Inserts `rows` (values in `columns` order); returns the rows RETURNING gave, if asked. */
export async function bulkInsert(db, table, columns, rows, options = {}) {
    if (rows.length === 0)
        return [];
    const names = columns.map(([name]) => identifier(name)).join(", ");
    const conflict = options.skipConflictsOn
        ? ` on conflict (${identifier(options.skipConflictsOn)}) do nothing returning ${options.skipConflictsOn}`
        : "";
    const out = [];
    if (dialectOf(db) === "postgres") {
        const text = cached(`pg|${table}|${names}|${conflict}`, () => {
            const arrays = columns.map(([, type], i) => `$${i + 1}::${type}[]`).join(", ");
            return `insert into ${identifier(table)} (${names}) select * from unnest(${arrays})${conflict}`;
        });
        const parameters = columns.map((_, c) => rows.map((row) => row[c] ?? null));
        const result = await db.executeQuery(CompiledQuery.raw(text, parameters));
        out.push(...result.rows);
        return out;
    }
    for (let start = 0; start < rows.length; start += SQLITE_ROWS) {
        const part = rows.slice(start, start + SQLITE_ROWS);
        const text = cached(`sqlite|${table}|${names}|${conflict}|${part.length}`, () => {
            const tuple = `(${columns.map(() => "?").join(", ")})`;
            return `insert into ${identifier(table)} (${names}) values ${Array(part.length).fill(tuple).join(", ")}${conflict}`;
        });
        const parameters = [];
        for (const row of part)
            for (let c = 0; c < columns.length; c++)
                parameters.push(row[c] ?? null);
        const result = await db.executeQuery(CompiledQuery.raw(text, parameters));
        out.push(...result.rows);
    }
    return out;
}
/**
 * Stores signed certificates: sets `der`, status `issued` and `updated_at` on each row still `pending`;
 * returns the serials it changed.
 */
export async function bulkStoreIssued(db, issued, now) {
    if (issued.length === 0)
        return [];
    const changed = [];
    if (dialectOf(db) === "postgres") {
        const text = `update certificates c set der = v.der, status = 'issued', updated_at = $3
      from unnest($1::text[], $2::bytea[]) as v(serial, der)
      where c.serial = v.serial and c.status = 'pending' returning c.serial`;
        const result = await db.executeQuery(CompiledQuery.raw(text, [issued.map((i) => i.serial), issued.map((i) => i.der), now]));
        for (const row of result.rows)
            changed.push(row.serial);
        return changed;
    }
    for (let start = 0; start < issued.length; start += SQLITE_ROWS) {
        const part = issued.slice(start, start + SQLITE_ROWS);
        // UPDATE ... FROM a VALUES list (SQLite 3.33+): one statement for the chunk, through the primary key.
        const text = cached(`sqlite|issued|${part.length}`, () => {
            const values = Array(part.length).fill("(?, ?)").join(", ");
            return `with v(serial, der) as (values ${values})
        update certificates set der = v.der, status = 'issued', updated_at = ?
        from v where certificates.serial = v.serial and certificates.status = 'pending'
        returning certificates.serial`;
        });
        const parameters = [];
        for (const { serial, der } of part)
            parameters.push(serial, der);
        parameters.push(now);
        const result = await db.executeQuery(CompiledQuery.raw(text, parameters));
        for (const row of result.rows)
            changed.push(row.serial);
    }
    return changed;
}
//# sourceMappingURL=bulk.js.map