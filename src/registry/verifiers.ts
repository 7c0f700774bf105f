/**
 * Registered verifiers (署名検証者 / 利用者証明検証者, JPKI-FACTS §3): the only parties given
 * revocation information, by OCSP or CRL (DESIGN §4 flow 8). Each holds a bearer token shown once at
 * registration; the registry keeps only its SHA-256. Every lookup is counted per verifier, Japan
 * day and channel: the fee basis the ledger bills.
 *
 * Counting is on the hot path of every answer, so counts gather in memory and are written in one
 * transaction per flush (every second by default, and at shutdown). A clean shutdown loses nothing;
 * a crash (SIGKILL, power loss) loses the counts of at most the last flush interval. A flush either
 * commits whole or is retried whole; a commit whose acknowledgement is lost (the connection drops
 * after COMMIT) is retried and counted twice, which needs a database failure at that exact moment.
 */
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { formatDate, jstDateOf, startOfJstDay } from "../pki/validity.js";
import { appendAudit, sha256Hex } from "./audit.js";
import { dialectOf, isoTime } from "./db.js";
import type { CertificateIssuer, RegistrySchema, VerifiersTable } from "./schema.js";

export type VerifierKind = VerifiersTable["kind"];
export const verifierKinds: readonly VerifierKind[] = ["auth", "sign", "both"];

/** Where a lookup came from: an OCSP answer, or a CRL download. */
export type LookupChannel = "ocsp" | "crl";

/** A registered, active verifier, as authentication returns it. */
export interface Verifier {
  readonly id: string;
  readonly name: string;
  /** Whose certificates' status it may ask: user-authentication, signing, or both. */
  readonly kind: VerifierKind;
}

/** Random bytes of a token: 256 bits, written as 43 base64url characters. */
const TOKEN_BYTES = 32;
/** What a token can look like; anything else is refused before it is hashed or looked up. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,256}$/;
const MAX_NAME = 200;

/**
 * Registers a verifier and returns its token, which is not stored and cannot be shown again. The
 * registration is audited in the same transaction (without the token or its hash).
 */
export async function addVerifier(
  db: Kysely<RegistrySchema>,
  input: { name: string; kind: VerifierKind; actor?: string },
): Promise<{ verifierId: string; token: string }> {
  const name = input.name.trim();
  if (name === "" || [...name].length > MAX_NAME)
    throw new JpkiError("bad-input", `a verifier's name has 1 to ${MAX_NAME} characters`);
  if (!verifierKinds.includes(input.kind))
    throw new JpkiError(
      "bad-input",
      `a verifier's kind is one of ${verifierKinds.join(", ")}: ${input.kind}`,
    );
  const verifierId = randomUUID();
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("verifiers")
      .values({
        id: verifierId,
        name,
        kind: input.kind,
        token_hash: sha256Hex(Buffer.from(token, "utf8")),
        status: "active",
        created_at: isoTime(),
      })
      .execute();
    await appendAudit(trx, {
      actor: input.actor ?? "registry",
      action: "verifier.add",
      subject: verifierId,
      details: { kind: input.kind, name },
    });
  });
  return { verifierId, token };
}

/** Whether a verifier may ask about certificates of the `issuer` CA. */
export function verifierMayAsk(verifier: Verifier, issuer: CertificateIssuer): boolean {
  return verifier.kind === "both" ? issuer === "auth" || issuer === "sign" : verifier.kind === issuer;
}

// ---------------------------------------------------------------------------------------------
// Authentication

/** How long a token's verdict is kept, at most: the bound when nothing signals a status change. */
export const VERIFIER_CACHE_TTL_MS = 10_000;
/**
 * How often a process asks whether any verifier was disabled or enabled since (by any process): one
 * primary-key read a second, not one per request. A change made through this process's handle
 * clears its cache at once; one made elsewhere reaches it within this interval.
 */
export const VERIFIER_STATUS_CHECK_MS = 1_000;
/** Unknown tokens are remembered briefly too, so a client retrying a bad token does not reach the database. */
const UNKNOWN_TOKEN_TTL_MS = 2_000;
const MAX_CACHED_TOKENS = 10_000;
/** A settings row given a new value by every disable and enable, in the same transaction. */
export const VERIFIER_STATUS_SETTING = "verifiers.statusGeneration";

interface CachedVerdict {
  readonly verifier: Verifier | undefined;
  readonly expires: number;
}

interface VerdictCache {
  readonly verdicts: Map<string, CachedVerdict>;
  /** The status generation last read, and when the read started. */
  generation: string | undefined;
  checkedAt: number;
  checking: Promise<void> | undefined;
  /** Bumped at every clear: a verdict read across a clear may predate the change and is not kept. */
  epoch: number;
}

/** One cache per database handle, keyed by token hash (never by the token itself). */
const caches = new WeakMap<Kysely<RegistrySchema>, VerdictCache>();

function cacheOf(db: Kysely<RegistrySchema>): VerdictCache {
  let cache = caches.get(db);
  if (!cache) {
    cache = {
      verdicts: new Map(),
      generation: undefined,
      checkedAt: Number.NEGATIVE_INFINITY,
      checking: undefined,
      epoch: 0,
    };
    caches.set(db, cache);
  }
  return cache;
}

function clearVerdicts(cache: VerdictCache): void {
  cache.verdicts.clear();
  cache.epoch += 1;
}

/**
 * Reads the status generation (one request at a time does); a new one clears the cached verdicts.
 * A failed read is tried again at the next interval: meanwhile cached verdicts serve until their TTL,
 * as they did before the check existed, and a cache miss reads the database (and reports its failure).
 */
function checkStatusChanges(db: Kysely<RegistrySchema>, cache: VerdictCache, now: number): Promise<void> {
  cache.checking ??= (async () => {
    try {
      const row = await db
        .selectFrom("settings")
        .select("value")
        .where("key", "=", VERIFIER_STATUS_SETTING)
        .executeTakeFirst();
      if (row?.value !== cache.generation) {
        clearVerdicts(cache);
        cache.generation = row?.value;
      }
    } catch {
      // Kept for the next interval (see above).
    } finally {
      cache.checkedAt = now;
      cache.checking = undefined;
    }
  })();
  return cache.checking;
}

/**
 * The active verifier holding `token`, or undefined. The lookup is by SHA-256 of the token, and the
 * stored hash is compared again in constant time: timing can at most reveal bits of a hash, which do
 * not lead back to a token (preimage resistance). Verdicts are cached for VERIFIER_CACHE_TTL_MS, and
 * dropped when a verifier's status changes (VERIFIER_STATUS_CHECK_MS).
 */
export async function authenticateVerifier(
  db: Kysely<RegistrySchema>,
  token: string,
  now = Date.now(),
): Promise<Verifier | undefined> {
  if (!TOKEN_SHAPE.test(token)) return undefined;
  const hash = sha256Hex(Buffer.from(token, "utf8"));
  const cache = cacheOf(db);
  if (now - cache.checkedAt >= VERIFIER_STATUS_CHECK_MS) await checkStatusChanges(db, cache, now);
  const cached = cache.verdicts.get(hash);
  if (cached && cached.expires > now) return cached.verifier;

  const epoch = cache.epoch;
  const row = await db
    .selectFrom("verifiers")
    .select(["id", "name", "kind", "status", "token_hash"])
    .where("token_hash", "=", hash)
    .executeTakeFirst();
  const verifier =
    row &&
    row.status === "active" &&
    timingSafeEqual(Buffer.from(row.token_hash, "hex"), Buffer.from(hash, "hex"))
      ? { id: row.id, name: row.name, kind: row.kind }
      : undefined;
  if (cache.epoch !== epoch) return verifier;
  const verdicts = cache.verdicts;
  if (verdicts.size >= MAX_CACHED_TOKENS) {
    // Drop the oldest entries (a Map iterates in insertion order); what matters is the bound.
    for (const key of verdicts.keys()) {
      verdicts.delete(key);
      if (verdicts.size < MAX_CACHED_TOKENS / 2) break;
    }
  }
  verdicts.set(hash, { verifier, expires: now + (verifier ? VERIFIER_CACHE_TTL_MS : UNKNOWN_TOKEN_TTL_MS) });
  return verifier;
}

// ---------------------------------------------------------------------------------------------
// Management

export type VerifierStatus = VerifiersTable["status"];

/** A registered verifier as `verifier list` shows it, with its lookups of all days. */
export interface VerifierRecord {
  id: string;
  name: string;
  kind: VerifierKind;
  status: VerifierStatus;
  createdAt: string;
  lookups: Record<LookupChannel, number>;
}

/** Every registered verifier, oldest first, with its lookup totals per channel. */
export async function listVerifiers(db: Kysely<RegistrySchema>): Promise<VerifierRecord[]> {
  const rows = await db
    .selectFrom("verifiers")
    .select(["id", "name", "kind", "status", "created_at"])
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  const totals = await db
    .selectFrom("verifier_lookups")
    .select(["verifier_id", "channel", (eb) => eb.fn.sum<number | string>("count").as("total")])
    .groupBy(["verifier_id", "channel"])
    .execute();
  const lookupsOf = new Map<string, Record<LookupChannel, number>>();
  for (const t of totals) {
    const lookups = lookupsOf.get(t.verifier_id) ?? { ocsp: 0, crl: 0 };
    // PostgreSQL's sum of a bigint is numeric, read as text.
    lookups[t.channel] = Number(t.total);
    lookupsOf.set(t.verifier_id, lookups);
  }
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    kind: r.kind,
    status: r.status,
    createdAt: r.created_at,
    lookups: lookupsOf.get(r.id) ?? { ocsp: 0, crl: 0 },
  }));
}

export interface VerifierStatusChange {
  verifierId: string;
  name: string;
  from: VerifierStatus;
  to: VerifierStatus;
}

/**
 * Disables a verifier: its token is refused from then on (by this handle at once, by other
 * processes within VERIFIER_STATUS_CHECK_MS). Its lookup counts stay, for the ledger.
 */
export function disableVerifier(
  db: Kysely<RegistrySchema>,
  verifierId: string,
  options: { actor: string; reason?: string },
): Promise<VerifierStatusChange> {
  return setVerifierStatus(db, verifierId, "disabled", options);
}

/** Enables a disabled verifier again, with the token it had. */
export function enableVerifier(
  db: Kysely<RegistrySchema>,
  verifierId: string,
  options: { actor: string; reason?: string },
): Promise<VerifierStatusChange> {
  return setVerifierStatus(db, verifierId, "active", options);
}

/**
 * Changes the row, the status generation (which tells every server process to drop its cached
 * verdicts) and the audit chain in one transaction. A verifier already in the wanted status is
 * refused, as an illegal certificate transition is: nothing changes, nothing is audited.
 */
async function setVerifierStatus(
  db: Kysely<RegistrySchema>,
  verifierId: string,
  to: VerifierStatus,
  options: { actor: string; reason?: string },
): Promise<VerifierStatusChange> {
  const action = to === "disabled" ? "disable" : "enable";
  const reason = options.reason?.trim() || null;
  const change = await db.transaction().execute(async (trx) => {
    let query = trx.selectFrom("verifiers").select(["id", "name", "status"]).where("id", "=", verifierId);
    if (dialectOf(trx) === "postgres") query = query.forUpdate();
    const row = await query.executeTakeFirst();
    if (!row) throw new JpkiError("not-found", `no verifier with id ${verifierId}`);
    if (row.status === to)
      throw new JpkiError("conflict", `cannot ${action} verifier ${row.id}: it is ${row.status}`);
    await trx.updateTable("verifiers").set({ status: to }).where("id", "=", row.id).execute();
    const generation = randomUUID();
    await trx
      .insertInto("settings")
      .values({ key: VERIFIER_STATUS_SETTING, value: generation })
      .onConflict((oc) => oc.column("key").doUpdateSet({ value: generation }))
      .execute();
    await appendAudit(trx, {
      actor: options.actor,
      action: `verifier.${action}`,
      subject: row.id,
      details: { from: row.status, reason, to },
    });
    return { verifierId: row.id, name: row.name, from: row.status, to };
  });
  // After the commit: a request reading the row before it would otherwise cache the old verdict again.
  clearVerdicts(cacheOf(db));
  return change;
}

// ---------------------------------------------------------------------------------------------
// Lookup counts

export interface LookupCounterOptions {
  /** How often counts are written (default 1 s): what a crash can lose. */
  flushIntervalMs?: number;
  /** Called when a periodic flush fails; the counts are kept and retried at the next flush. */
  onError?: (error: unknown) => void;
  now?: () => Date;
}

/** One count row of `verifier_lookups`. */
export interface LookupCount {
  verifierId: string;
  /** YYYY-MM-DD, Japan time. */
  day: string;
  channel: LookupChannel;
  count: number;
}

const KEY_SEPARATOR = "\u0000";

/**
 * Counts lookups in memory and adds them to `verifier_lookups` at each flush (an upsert adding to the
 * stored count, so several server processes can count into the same rows).
 */
export class LookupCounter {
  private pending = new Map<string, number>();
  private readonly timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly now: () => Date;
  /** The current Japan day and when it ends, so counting does not format a date each time. */
  private day = "";
  private dayEnds = 0;

  constructor(
    private readonly db: Kysely<RegistrySchema>,
    options: LookupCounterOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    const interval = options.flushIntervalMs ?? 1000;
    if (interval > 0) {
      this.timer = setInterval(() => {
        this.flush().catch((error) => options.onError?.(error));
      }, interval);
      this.timer.unref();
    }
  }

  /** Counts `n` lookups by `verifierId` on `channel` now. */
  count(verifierId: string, channel: LookupChannel, n = 1): void {
    if (this.closed) throw new JpkiError("internal", "the lookup counter is closed");
    const now = this.now().getTime();
    if (now >= this.dayEnds || now < this.dayEnds - 86_400_000) {
      const date = jstDateOf(new Date(now));
      this.day = formatDate(date);
      this.dayEnds = startOfJstDay(date).getTime() + 86_400_000;
    }
    const key = `${verifierId}${KEY_SEPARATOR}${this.day}${KEY_SEPARATOR}${channel}`;
    this.pending.set(key, (this.pending.get(key) ?? 0) + n);
  }

  /** Lookups counted and not yet written. */
  get unwritten(): number {
    let total = 0;
    for (const n of this.pending.values()) total += n;
    return total;
  }

  /** Writes the counts gathered so far; flushes run one at a time. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.write());
    // A failed flush must not block the next one; the failure reaches this caller only.
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const rows = [...batch].map(([key, count]) => {
      const [verifier_id, day, channel] = key.split(KEY_SEPARATOR) as [string, string, LookupChannel];
      return { verifier_id, day, channel, count };
    });
    try {
      await this.db.transaction().execute(async (trx) => {
        // Bounded statements: 4 parameters a row stays far below either database's limit.
        for (let i = 0; i < rows.length; i += 500)
          await trx
            .insertInto("verifier_lookups")
            .values(rows.slice(i, i + 500))
            .onConflict((oc) =>
              oc.columns(["verifier_id", "day", "channel"]).doUpdateSet((eb) => ({
                count: eb("verifier_lookups.count", "+", eb.ref("excluded.count")),
              })),
            )
            .execute();
      });
    } catch (error) {
      // Put the counts back for the next flush.
      for (const [key, n] of batch) this.pending.set(key, (this.pending.get(key) ?? 0) + n);
      throw error;
    }
  }

  /** Stops the timer and writes what is left (a clean shutdown loses no count). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    // Counts made while the last flush ran are written by another round.
    do await this.flush();
    while (this.pending.size > 0);
    this.closed = true;
  }
}

/** Stored lookup counts, optionally of one verifier, ordered by day, verifier and channel. */
export async function lookupCounts(
  db: Kysely<RegistrySchema>,
  filter: { verifierId?: string; day?: string } = {},
): Promise<LookupCount[]> {
  let query = db.selectFrom("verifier_lookups").selectAll();
  if (filter.verifierId !== undefined) query = query.where("verifier_id", "=", filter.verifierId);
  if (filter.day !== undefined) query = query.where("day", "=", filter.day);
  const rows = await query.orderBy("day").orderBy("verifier_id").orderBy("channel").execute();
  return rows.map((r) => ({
    verifierId: r.verifier_id,
    day: r.day,
    channel: r.channel,
    count: Number(r.count),
  }));
}
