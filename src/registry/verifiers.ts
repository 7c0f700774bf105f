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
import { isoTime } from "./db.js";
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

/** How long a token's verdict is kept: a disabled verifier is refused at most this long after. */
export const VERIFIER_CACHE_TTL_MS = 10_000;
/** Unknown tokens are remembered briefly too, so a client retrying a bad token does not reach the database. */
const UNKNOWN_TOKEN_TTL_MS = 2_000;
const MAX_CACHED_TOKENS = 10_000;

interface CachedVerdict {
  readonly verifier: Verifier | undefined;
  readonly expires: number;
}

/** One cache per database handle, keyed by token hash (never by the token itself). */
const verdicts = new WeakMap<Kysely<RegistrySchema>, Map<string, CachedVerdict>>();

function cacheOf(db: Kysely<RegistrySchema>): Map<string, CachedVerdict> {
  let cache = verdicts.get(db);
  if (!cache) {
    cache = new Map();
    verdicts.set(db, cache);
  }
  return cache;
}

/**
 * The active verifier holding `token`, or undefined. The lookup is by SHA-256 of the token, and the
 * stored hash is compared again in constant time: timing can at most reveal bits of a hash, which do
 * not lead back to a token (preimage resistance). Verdicts are cached for VERIFIER_CACHE_TTL_MS.
 */
export async function authenticateVerifier(
  db: Kysely<RegistrySchema>,
  token: string,
  now = Date.now(),
): Promise<Verifier | undefined> {
  if (!TOKEN_SHAPE.test(token)) return undefined;
  const hash = sha256Hex(Buffer.from(token, "utf8"));
  const cache = cacheOf(db);
  const cached = cache.get(hash);
  if (cached && cached.expires > now) return cached.verifier;

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
  if (cache.size >= MAX_CACHED_TOKENS) {
    // Drop the oldest entries (a Map iterates in insertion order); what matters is the bound.
    for (const key of cache.keys()) {
      cache.delete(key);
      if (cache.size < MAX_CACHED_TOKENS / 2) break;
    }
  }
  cache.set(hash, { verifier, expires: now + (verifier ? VERIFIER_CACHE_TTL_MS : UNKNOWN_TOKEN_TTL_MS) });
  return verifier;
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
