/**
 * The audit chain. Every state change appends entries in the same transaction as the change, so
 * either both are committed or neither (fail closed). Each entry's hash covers the previous hash and
 * an unambiguous encoding of the entry; the head row (last seq and hash) is locked by every writer,
 * which serializes appends across connections and processes.
 *
 * The chain is tamper-evident against anyone who edits some rows; someone able to rewrite the whole
 * tail and the head is caught only by comparing the head with a copy kept elsewhere (`auditHead`).
 */
import * as crypto from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { type BulkColumn, bulkInsert, column } from "./bulk.js";
import { dialectOf, isoTime } from "./db.js";
import { AUDIT_GENESIS_HASH } from "./migrations/001-initial.js";
import type { AuditRow, RegistrySchema } from "./schema.js";

export { AUDIT_GENESIS_HASH };

export interface AuditEntry {
  /** Who: `cli`, `ra`, `clerk:<id>`, `system:recovery`, ... */
  actor: string;
  /** What: `person.add`, `certificate.pending`, `certificate.issued`, ... */
  action: string;
  /** On what: a person id, a serial, a setting key. */
  subject: string;
  details?: Record<string, unknown>;
}

export interface AuditHead {
  seq: number;
  hash: string;
}

/** JSON with object keys sorted at every level and bytes as hex, so equal details hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(isCanonical(value) ? value : normalise(value));
}

/**
 * A plain object whose keys are in order and whose values are strings, numbers, booleans, null or
 * undefined is its own canonical form. The registry writes the details of its frequent entries so,
 * which spares two audit entries per certificate the copy and the sort.
 */
function isCanonical(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    // normalise drops an own "__proto__" (assigning it sets a prototype): leave that case to it.
    if ((i > 0 && keys[i]! <= keys[i - 1]!) || keys[i] === "__proto__") return false;
    const v = (value as Record<string, unknown>)[keys[i]!];
    const type = typeof v;
    if (v !== null && type !== "undefined" && type !== "string" && type !== "number" && type !== "boolean")
      return false;
  }
  return true;
}

function normalise(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = normalise(v);
    }
    return out;
  }
  return value;
}

/**
 * Hex SHA-256 of `data`. crypto.hash (Node 20.12 and later) hashes in one call without a Hash object,
 * about twice as fast on the short inputs hashed for every certificate; older Node uses createHash.
 */
export const sha256Hex: (data: Uint8Array) => string =
  typeof crypto.hash === "function"
    ? (data) => crypto.hash("sha256", data, "hex")
    : (data) => crypto.createHash("sha256").update(data).digest("hex");

const DOMAIN = Buffer.from("jpki-mobile audit v1\0", "latin1");

/** Where auditHash lays out its input, grown on demand: one hash update per entry and no allocation. */
let hashInput = Buffer.allocUnsafe(4096);

/** Writes `text` as a 4-byte big-endian length and its UTF-8 bytes at `offset`; returns the end. */
function writeLengthPrefixed(out: Buffer, offset: number, text: string): number {
  const length = out.write(text, offset + 4, "utf8");
  out.writeUInt32BE(length, offset);
  return offset + 4 + length;
}

/**
 * SHA-256 over: a domain label, the previous hash (32 bytes), the sequence number (8 bytes,
 * big-endian), then at, actor, action, subject and details, each as a 4-byte length and UTF-8 bytes.
 * Length prefixes make the encoding unambiguous (no two entries share one); the sequence number binds
 * each entry to its position.
 */
export function auditHash(
  prevHash: string,
  row: Pick<AuditRow, "seq" | "at" | "actor" | "action" | "subject" | "details">,
): string {
  const { at, actor, action, subject, details } = row;
  // The previous hash's hex is read as Buffer.from(text, "hex") reads it: a tampered one may be any
  // text. Then the sequence number and five length-prefixed fields.
  const size =
    DOMAIN.length +
    (prevHash.length >>> 1) +
    8 +
    5 * 4 +
    Buffer.byteLength(at) +
    Buffer.byteLength(actor) +
    Buffer.byteLength(action) +
    Buffer.byteLength(subject) +
    Buffer.byteLength(details);
  if (hashInput.length < size) hashInput = Buffer.allocUnsafe(Math.max(size, 2 * hashInput.length));
  const out = hashInput;
  let offset = DOMAIN.copy(out, 0);
  offset += out.write(prevHash, offset, "hex");
  offset = out.writeBigUInt64BE(BigInt(row.seq), offset);
  offset = writeLengthPrefixed(out, offset, at);
  offset = writeLengthPrefixed(out, offset, actor);
  offset = writeLengthPrefixed(out, offset, action);
  offset = writeLengthPrefixed(out, offset, subject);
  offset = writeLengthPrefixed(out, offset, details);
  return sha256Hex(out.subarray(0, offset));
}

const AUDIT_COLUMNS: readonly BulkColumn[] = [
  column("seq", "bigint"),
  column("at"),
  column("actor"),
  column("action"),
  column("subject"),
  column("details"),
  column("prev_hash"),
  column("hash"),
];

/**
 * Appends entries inside the caller's transaction and returns their sequence numbers. Throws (and so
 * aborts the caller's change) if the entries cannot be written.
 */
export async function appendAudit(
  trx: Kysely<RegistrySchema>,
  entries: AuditEntry | readonly AuditEntry[],
): Promise<number[]> {
  if (!trx.isTransaction)
    throw new JpkiError("internal", "appendAudit must run inside the transaction of the change it records");
  const list = Array.isArray(entries) ? (entries as readonly AuditEntry[]) : [entries as AuditEntry];
  if (list.length === 0) return [];
  let query = trx.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1);
  // SQLite: BEGIN IMMEDIATE already holds the database's write lock. PostgreSQL: lock the head row.
  if (dialectOf(trx) === "postgres") query = query.forUpdate();
  const head = await query.executeTakeFirst();
  if (!head) throw new JpkiError("integrity", "the audit head row is missing");
  const at = isoTime();
  let prev = head.hash;
  let seq = head.seq;
  const rows: AuditRow[] = list.map((entry) => {
    seq += 1;
    const row = {
      seq,
      at,
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      details: canonicalJson(entry.details ?? {}),
      prev_hash: prev,
      hash: "",
    };
    row.hash = auditHash(prev, row);
    prev = row.hash;
    return row;
  });
  await bulkInsert(
    trx,
    "audit_log",
    AUDIT_COLUMNS,
    rows.map((r) => [r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash, r.hash]),
  );
  const updated = await trx
    .updateTable("audit_head")
    .set({ seq, hash: prev })
    .where("id", "=", 1)
    .where("seq", "=", head.seq)
    .executeTakeFirst();
  if (updated.numUpdatedRows !== 1n)
    throw new JpkiError("integrity", "the audit head moved during an append");
  return rows.map((r) => r.seq);
}

export async function auditHead(db: Kysely<RegistrySchema>): Promise<AuditHead> {
  const head = await db
    .selectFrom("audit_head")
    .select(["seq", "hash"])
    .where("id", "=", 1)
    .executeTakeFirst();
  if (!head) throw new JpkiError("integrity", "the audit head row is missing");
  return head;
}

export type AuditFindingKind = "modified" | "deleted" | "inserted" | "reordered";

export interface AuditFinding {
  /** The entry's sequence number: where it is stored, or for `deleted`, where it is missing. */
  seq: number;
  kind: AuditFindingKind;
  message: string;
}

const PAGE = 5000;

/**
 * Checks the whole chain and the head. An empty list means intact. A first pass streams the log and
 * only checks each link; when something is wrong, a second pass works out what happened to which
 * entry.
 */
export async function verifyAudit(db: Kysely<RegistrySchema>): Promise<AuditFinding[]> {
  const head = await auditHead(db);
  if (await chainIsIntact(db, head)) return [];
  // The slow path holds the whole log in memory: fine for the registry's sizes, and only on tampering.
  const rows = await db.selectFrom("audit_log").selectAll().orderBy("seq").execute();
  return diagnoseAuditChain(rows, head);
}

async function chainIsIntact(db: Kysely<RegistrySchema>, head: AuditHead): Promise<boolean> {
  let expected = 1;
  let prev = AUDIT_GENESIS_HASH;
  for (;;) {
    const page = await db
      .selectFrom("audit_log")
      .selectAll()
      .where("seq", ">=", expected)
      .orderBy("seq")
      .limit(PAGE)
      .execute();
    for (const row of page) {
      if (row.seq !== expected || row.prev_hash !== prev || auditHash(prev, row) !== row.hash) return false;
      prev = row.hash;
      expected += 1;
    }
    if (page.length < PAGE) break;
  }
  const smaller = await db.selectFrom("audit_log").select("seq").where("seq", "<", 1).limit(1).execute();
  return smaller.length === 0 && expected - 1 === head.seq && prev === head.hash;
}

/**
 * Works out what happened, using the two facts each entry carries about its place: its hash covers its
 * own sequence number (a moved entry verifies only at its original position) and the previous entry's
 * hash (which entry came before it).
 */
export function diagnoseAuditChain(all: readonly AuditRow[], head: AuditHead): AuditFinding[] {
  const findings: AuditFinding[] = [];
  const report = (seq: number, kind: AuditFindingKind, message: string) => {
    if (!findings.some((f) => f.seq === seq && f.kind === kind)) findings.push({ seq, kind, message });
  };

  const byHash = new Map<string, AuditRow>();
  for (const row of all) byHash.set(row.hash, row);

  // The position at which each entry's hash verifies: its own, the one after its predecessor's, or
  // none (its content was changed).
  const original = new Map<AuditRow, number | null>();
  const resolving = new Set<AuditRow>();
  const originalSeq = (row: AuditRow): number | null => {
    const known = original.get(row);
    if (known !== undefined) return known;
    if (auditHash(row.prev_hash, row) === row.hash) {
      original.set(row, row.seq);
      return row.seq;
    }
    if (resolving.has(row)) return null;
    resolving.add(row);
    const candidates = new Set<number>();
    if (row.prev_hash === AUDIT_GENESIS_HASH) candidates.add(1);
    const predecessor = byHash.get(row.prev_hash);
    const predecessorSeq = predecessor ? originalSeq(predecessor) : null;
    if (predecessorSeq !== null) candidates.add(predecessorSeq + 1);
    candidates.add(row.seq - 1);
    candidates.add(row.seq + 1);
    let found: number | null = null;
    for (const seq of candidates)
      if (seq >= 1 && auditHash(row.prev_hash, { ...row, seq }) === row.hash) {
        found = seq;
        break;
      }
    resolving.delete(row);
    original.set(row, found);
    return found;
  };

  // Past the head (or before the start), unless it is an entry renumbered there by an insertion.
  const rows: AuditRow[] = [];
  for (const row of all) {
    const position = row.seq > head.seq || row.seq < 1 ? originalSeq(row) : row.seq;
    if (position === null || position > head.seq || position < 1)
      report(row.seq, "inserted", `entry ${row.seq} lies outside the chain (head is at ${head.seq})`);
    else rows.push(row);
  }

  const modified = new Set<AuditRow>();
  const atPosition = new Map<number, AuditRow[]>();
  for (const row of rows) {
    const seq = originalSeq(row);
    if (seq === null) {
      modified.add(row);
      report(row.seq, "modified", `entry ${row.seq} does not match its hash`);
    }
    const position = seq ?? row.seq;
    const list = atPosition.get(position) ?? [];
    list.push(row);
    atPosition.set(position, list);
  }

  // Two entries claiming one position: the one no later entry (nor the head) was chained to was inserted.
  const chainedTo = new Set<string>([head.hash]);
  for (const row of rows) chainedTo.add(row.prev_hash);
  const inserted = new Set<AuditRow>();
  for (const list of atPosition.values()) {
    if (list.length < 2) continue;
    for (const row of list)
      if (!chainedTo.has(row.hash)) {
        inserted.add(row);
        report(row.seq, "inserted", `entry ${row.seq} was not part of the chain`);
      }
  }

  const deleted: number[] = [];
  for (let seq = 1; seq <= head.seq; seq++)
    if (!atPosition.has(seq)) {
      deleted.push(seq);
      report(seq, "deleted", `entry ${seq} is missing`);
    }

  // An entry whose hash verifies but is not the one its successor (or the head) was chained to has been
  // rewritten with a fresh hash.
  const genuine = (position: number) => (atPosition.get(position) ?? []).filter((r) => !inserted.has(r));
  for (const row of rows) {
    if (inserted.has(row) || modified.has(row)) continue;
    const position = original.get(row)!;
    if (position === 1) {
      if (row.prev_hash !== AUDIT_GENESIS_HASH)
        report(row.seq, "modified", "the first entry is not chained to the start");
      continue;
    }
    const before = genuine(position - 1);
    if (before.length > 0 && !before.some((r) => r.hash === row.prev_hash))
      for (const r of before)
        report(r.seq, "modified", `entry ${r.seq} is not the entry ${row.seq} was chained to`);
  }
  const last = genuine(head.seq);
  if (last.length > 0 && !last.some((r) => r.hash === head.hash))
    for (const r of last) report(r.seq, "modified", `entry ${r.seq} does not match the audit head`);

  // An entry verifying at another position was moved, unless inserted or deleted entries before it
  // shifted it by exactly their number (then it was renumbered, and the insertion or deletion is named).
  const insertedSeqs = [...inserted].map((r) => r.seq);
  for (const row of rows) {
    const position = original.get(row);
    if (position === null || position === undefined || position === row.seq || inserted.has(row)) continue;
    const shift = insertedSeqs.filter((s) => s < row.seq).length - deleted.filter((s) => s < position).length;
    if (row.seq - position !== shift)
      report(row.seq, "reordered", `entry ${row.seq} belongs at position ${position}`);
  }

  return findings.sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
}
