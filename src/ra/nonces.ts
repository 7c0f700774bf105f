/**
 * The online channel's nonce service: the phone asks for a nonce, puts it in the application the
 * My Number card signs and in the SIM's key attestation, and the RA accepts it once, while it is
 * fresh. A replayed application (same nonce) or a stale one is refused. Nonces are stored only as
 * their SHA-256, so the table does not hold anything an attacker could submit.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { isoTime } from "../registry/db.js";
import type { RegistrySchema } from "../registry/schema.js";

/** 32 random octets: beyond guessing, within the attestation's nonce limits (8 to 64). */
export const NONCE_LENGTH = 32;
/** How long a nonce may wait for its application (default 10 minutes: reading the card, typing the password). */
export const DEFAULT_NONCE_TTL_MS = 10 * 60_000;

const hashOf = (nonce: Uint8Array) => createHash("sha256").update(nonce).digest("hex");

export interface IssuedNonce {
  readonly nonce: Buffer;
  readonly expiresAt: Date;
}

/** Hands out a new nonce, valid for `ttlMs`. */
export async function issueNonce(
  db: Kysely<RegistrySchema>,
  options: { now?: Date; ttlMs?: number } = {},
): Promise<IssuedNonce> {
  const now = options.now ?? new Date();
  const nonce = randomBytes(NONCE_LENGTH);
  const expiresAt = new Date(now.getTime() + (options.ttlMs ?? DEFAULT_NONCE_TTL_MS));
  await db
    .insertInto("application_nonces")
    .values({
      nonce_hash: hashOf(nonce),
      created_at: isoTime(now),
      expires_at: isoTime(expiresAt),
      used_at: null,
      application_id: null,
    })
    .execute();
  return { nonce, expiresAt };
}

/**
 * Uses `nonce` up for `applicationId`, inside the application's transaction: a nonce never issued,
 * already used (a replay) or expired is refused with the reason. The conditional update is the
 * single-use guarantee: of two applications racing with one nonce, one updates the row.
 */
export async function consumeNonce(
  trx: Kysely<RegistrySchema>,
  nonce: Uint8Array,
  applicationId: string,
  now: Date = new Date(),
): Promise<void> {
  const hash = hashOf(nonce);
  const result = await trx
    .updateTable("application_nonces")
    .set({ used_at: isoTime(now), application_id: applicationId })
    .where("nonce_hash", "=", hash)
    .where("used_at", "is", null)
    .where("expires_at", ">", isoTime(now))
    .executeTakeFirst();
  if (result.numUpdatedRows === 1n) return;
  const row = await trx
    .selectFrom("application_nonces")
    .select(["used_at", "application_id", "expires_at"])
    .where("nonce_hash", "=", hash)
    .executeTakeFirst();
  if (!row)
    throw new JpkiError("bad-input", "the application's nonce was not issued by this RA: ask for a new one");
  if (row.used_at !== null)
    throw new JpkiError(
      "conflict",
      `the application's nonce was already used (application ${row.application_id}): a replayed application is refused`,
    );
  throw new JpkiError("bad-input", `the application's nonce expired at ${row.expires_at}: ask for a new one`);
}

/** Deletes nonces that expired before `before` (used ones too: the application keeps its own record). */
export async function purgeExpiredNonces(
  db: Kysely<RegistrySchema>,
  before: Date = new Date(),
): Promise<number> {
  const result = await db
    .deleteFrom("application_nonces")
    .where("expires_at", "<", isoTime(before))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
