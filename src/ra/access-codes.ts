/**
 * Access codes of the postal channel (アクセスコード, DESIGN §4 flow 4): J-LIS prints one in the
 * restricted-delivery letter; entered in the JPKI app with the SIM's attestation, it completes the
 * application. They live with the RA, not the post office: the post carries a sealed letter and never
 * needs the code, while the RA is the party that checks it.
 *
 * Format: 16 characters of Crockford's base32 in groups of four, `7KQ2-M9XD-3F8A-W1PC`: 15 random
 * characters (75 bits) and a Luhn mod 32 check character, which catches every single mistyped
 * character and most swaps of neighbours before anything is counted against the code. Read as typed:
 * any case, full-width characters (an IME's), spaces and any dash; O read as 0, I and L as 1.
 *
 * Limits: one use; expires (default 14 days); void after 5 wrong attempts (counted by one
 * conditional UPDATE, so concurrent wrong tries all count and none passes the limit); voided when the
 * letter comes back. Stored only as HMAC-SHA256 under a per-code random salt, compared with
 * timingSafeEqual. 5 guesses at 2^-75 each leave an attacker nothing to hope for, and a stolen table
 * gives no code back: 2^75 HMACs per code.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { appendAudit } from "../registry/audit.js";
import { isoTime, toBuffer } from "../registry/db.js";
import type { AccessCodesTable, RegistrySchema } from "../registry/schema.js";
import { CROCKFORD } from "./applications.js";

/** Wrong attempts after which a code is void (the 6th try is refused, even with the right code). */
export const ACCESS_CODE_MAX_ATTEMPTS = 5;
/** How long a code is valid (default 14 days: the mail's way there, its holding period, and time to enter it). */
export const DEFAULT_ACCESS_CODE_TTL_MS = 14 * 24 * 3600_000;

const RANDOM_CHARACTERS = 15;
const LENGTH = RANDOM_CHARACTERS + 1;
const SALT_LENGTH = 16;

const symbolValue = (character: string): number => CROCKFORD.indexOf(character);

/**
 * The Luhn mod N check character (N = 32) of `data`: doubling every second value from the right
 * detects any single substitution and any swap of adjacent characters but 0↔Z (values 0 and 31).
 */
export function accessCodeCheckCharacter(data: string): string {
  let sum = 0;
  let factor = 2;
  for (let i = data.length - 1; i >= 0; i--) {
    const addend = factor * symbolValue(data[i]!);
    sum += Math.floor(addend / 32) + (addend % 32);
    factor = factor === 2 ? 1 : 2;
  }
  return CROCKFORD[(32 - (sum % 32)) % 32]!;
}

const format = (characters: string) => characters.match(/.{4}/g)!.join("-");

/** A new random access code in its printed form. */
export function newAccessCode(): string {
  // 15 characters from 10 random octets (80 bits, 75 used): no modulo bias, each character 5 bits.
  let value = BigInt(`0x${randomBytes(10).toString("hex")}`);
  let data = "";
  for (let i = 0; i < RANDOM_CHARACTERS; i++) {
    data += CROCKFORD[Number(value & 31n)];
    value >>= 5n;
  }
  return format(data + accessCodeCheckCharacter(data));
}

/**
 * Reads an access code as a person may type it and returns its printed form, or refuses it as a
 * typing mistake (wrong length, a character not in the code's alphabet, a wrong check character):
 * such an input is refused before the code is looked at, so it never counts as an attempt.
 */
export function parseAccessCode(text: string): string {
  const characters = text
    .normalize("NFKC")
    .toUpperCase()
    .replace(/[\s\-‐-―−ーｰ]/g, "")
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1");
  const mistake = (why: string): never => {
    throw new JpkiError(
      "bad-input",
      `that is not an access code (${why}): type the 16 characters printed in the letter, e.g. 7KQ2-M9XD-3F8A-W1PC; this did not count as an attempt`,
    );
  };
  if (characters.length !== LENGTH) mistake(`${characters.length} characters instead of ${LENGTH}`);
  for (const character of characters)
    if (symbolValue(character) < 0) mistake(`${JSON.stringify(character)} is not one of its characters`);
  if (accessCodeCheckCharacter(characters.slice(0, -1)) !== characters.slice(-1))
    mistake("a character is mistyped");
  return format(characters);
}

const hashOf = (salt: Buffer, code: string) => createHmac("sha256", salt).update(code, "utf8").digest();

export interface IssuedAccessCode {
  readonly id: string;
  /** The printed form: goes into the letter, and nowhere else. */
  readonly code: string;
  readonly expiresAt: Date;
}

/** Makes the access code of `applicationId` inside the caller's transaction; only its hash is stored. */
export async function issueAccessCode(
  trx: Kysely<RegistrySchema>,
  options: { applicationId: string; actor: string; now?: Date; ttlMs?: number },
): Promise<IssuedAccessCode> {
  const now = options.now ?? new Date();
  const ttlMs = options.ttlMs ?? DEFAULT_ACCESS_CODE_TTL_MS;
  if (!(ttlMs > 0)) throw new JpkiError("bad-input", "an access code's lifetime must be positive");
  const code = newAccessCode();
  const salt = randomBytes(SALT_LENGTH);
  const expiresAt = new Date(now.getTime() + ttlMs);
  const row: AccessCodesTable = {
    id: randomUUID(),
    application_id: options.applicationId,
    salt,
    code_hash: hashOf(salt, code),
    failed_attempts: 0,
    created_at: isoTime(now),
    expires_at: isoTime(expiresAt),
    used_at: null,
    voided_at: null,
    void_reason: null,
  };
  await trx.insertInto("access_codes").values(row).execute();
  await appendAudit(trx, {
    actor: options.actor,
    action: "access-code.issued",
    subject: options.applicationId,
    details: { codeId: row.id, expiresAt: row.expires_at },
  });
  return { id: row.id, code, expiresAt };
}

type Unusable = { readonly kind: "used" | "voided" | "attempts" | "expired"; readonly error: JpkiError };

/** Why a code cannot be used now, or undefined when it can. */
function unusable(row: AccessCodesTable, now: Date): Unusable | undefined {
  const next = "make a new postal request, or apply at the municipal counter";
  if (row.used_at !== null)
    return {
      kind: "used",
      error: new JpkiError(
        "conflict",
        `this access code was already used (${row.used_at}): a code works once`,
      ),
    };
  if (row.voided_at !== null)
    return {
      kind: "voided",
      error: new JpkiError("forbidden", `this access code is void (${row.void_reason ?? "voided"}): ${next}`),
    };
  if (row.failed_attempts >= ACCESS_CODE_MAX_ATTEMPTS)
    return {
      kind: "attempts",
      error: new JpkiError(
        "forbidden",
        `this access code is void after ${ACCESS_CODE_MAX_ATTEMPTS} wrong attempts: ${next}`,
      ),
    };
  if (row.expires_at <= isoTime(now))
    return {
      kind: "expired",
      error: new JpkiError("forbidden", `this access code expired at ${row.expires_at}: ${next}`),
    };
  return undefined;
}

const changedMeanwhile = () => new JpkiError("conflict", "the access code changed meanwhile: try again");

/** The latest code of an application (a re-sent letter replaces the earlier code). */
async function currentCode(
  db: Kysely<RegistrySchema>,
  applicationId: string,
): Promise<AccessCodesTable | undefined> {
  return db
    .selectFrom("access_codes")
    .selectAll()
    .where("application_id", "=", applicationId)
    .orderBy("created_at", "desc")
    .orderBy("id")
    .executeTakeFirst();
}

export interface CheckOptions {
  readonly applicationId: string;
  /** As typed: parsed here (a typing mistake is refused without counting). */
  readonly code: string;
  readonly actor: string;
  readonly now?: Date;
  /**
   * Runs in the transaction of the wrong attempt that voids the code, or when an attempt finds the
   * code expired, so the application moves with it (the postal channel fails it there).
   */
  readonly onVoid?: (trx: Kysely<RegistrySchema>, reason: string) => Promise<void>;
}

/**
 * Checks `code` against the application's access code without using it up (useAccessCode does, in
 * the transaction that verifies the application). Returns the code's id. A wrong code is counted,
 * and audited, in its own transaction before the refusal is thrown.
 */
export async function checkAccessCode(db: Kysely<RegistrySchema>, options: CheckOptions): Promise<string> {
  const now = options.now ?? new Date();
  const typed = parseAccessCode(options.code);
  const row = await currentCode(db, options.applicationId);
  if (!row) throw new JpkiError("not-found", `application ${options.applicationId} has no access code`);
  const refusal = unusable(row, now);
  if (refusal) {
    // An expired code is found out by the attempt that meets it: the application moves with it.
    const onVoid = options.onVoid;
    if (refusal.kind === "expired" && onVoid)
      await db.transaction().execute((trx) => onVoid(trx, `the access code expired at ${row.expires_at}`));
    throw refusal.error;
  }
  if (timingSafeEqual(hashOf(toBuffer(row.salt), typed), toBuffer(row.code_hash))) return row.id;

  // Wrong. The conditional increment is the limit: of any number of concurrent wrong attempts, at most
  // the ones that find fewer than the maximum count, and the one reaching it voids the code.
  const left = await db.transaction().execute(async (trx) => {
    const counted = await trx
      .updateTable("access_codes")
      .set((eb) => ({ failed_attempts: eb("failed_attempts", "+", 1) }))
      .where("id", "=", row.id)
      .where("failed_attempts", "<", ACCESS_CODE_MAX_ATTEMPTS)
      .where("used_at", "is", null)
      .where("voided_at", "is", null)
      .executeTakeFirst();
    if (counted.numUpdatedRows !== 1n) {
      // Another attempt used or voided the code meanwhile: its state is the answer.
      const changed = await trx
        .selectFrom("access_codes")
        .selectAll()
        .where("id", "=", row.id)
        .executeTakeFirst();
      throw unusable(changed!, now)?.error ?? changedMeanwhile();
    }
    const { failed_attempts } = await trx
      .selectFrom("access_codes")
      .select("failed_attempts")
      .where("id", "=", row.id)
      .executeTakeFirstOrThrow();
    const voided = failed_attempts >= ACCESS_CODE_MAX_ATTEMPTS;
    await appendAudit(trx, {
      actor: options.actor,
      action: voided ? "access-code.void" : "access-code.wrong",
      subject: options.applicationId,
      details: { codeId: row.id, failedAttempts: failed_attempts },
    });
    if (voided && options.onVoid)
      await options.onVoid(trx, `the access code is void after ${ACCESS_CODE_MAX_ATTEMPTS} wrong attempts`);
    return ACCESS_CODE_MAX_ATTEMPTS - failed_attempts;
  });
  throw new JpkiError(
    "forbidden",
    left > 0
      ? `wrong access code for application ${options.applicationId}: ${left} attempt${left === 1 ? "" : "s"} left before it is void`
      : `wrong access code for application ${options.applicationId}: it is now void after ${ACCESS_CODE_MAX_ATTEMPTS} wrong attempts; make a new postal request, or apply at the municipal counter`,
  );
}

/**
 * Uses code `id` up inside the caller's transaction (the one that verifies the application): the
 * conditional update is the one-time guarantee, and re-checks what may have changed since the check
 * (a concurrent use, the limit reached by concurrent wrong tries, expiry).
 */
export async function useAccessCode(
  trx: Kysely<RegistrySchema>,
  id: string,
  options: { actor: string; now?: Date },
): Promise<void> {
  const now = options.now ?? new Date();
  const result = await trx
    .updateTable("access_codes")
    .set({ used_at: isoTime(now) })
    .where("id", "=", id)
    .where("used_at", "is", null)
    .where("voided_at", "is", null)
    .where("failed_attempts", "<", ACCESS_CODE_MAX_ATTEMPTS)
    .where("expires_at", ">", isoTime(now))
    .executeTakeFirst();
  const row = await trx.selectFrom("access_codes").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) throw new JpkiError("not-found", "no such access code");
  if (result.numUpdatedRows !== 1n) throw unusable(row, now)?.error ?? changedMeanwhile();
  await appendAudit(trx, {
    actor: options.actor,
    action: "access-code.used",
    subject: row.application_id,
    details: { codeId: id },
  });
}

/** Voids every live code of `applicationId` inside the caller's transaction (the letter came back). */
export async function voidAccessCodes(
  trx: Kysely<RegistrySchema>,
  applicationId: string,
  options: { actor: string; reason: string; now?: Date },
): Promise<number> {
  const result = await trx
    .updateTable("access_codes")
    .set({ voided_at: isoTime(options.now), void_reason: options.reason })
    .where("application_id", "=", applicationId)
    .where("used_at", "is", null)
    .where("voided_at", "is", null)
    .executeTakeFirst();
  const count = Number(result.numUpdatedRows);
  if (count > 0)
    await appendAudit(trx, {
      actor: options.actor,
      action: "access-code.void",
      subject: applicationId,
      details: { reason: options.reason },
    });
  return count;
}
