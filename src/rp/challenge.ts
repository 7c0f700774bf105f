/**
 * The login challenge of a relying party (利用者証明検証者, DESIGN §4 flow 8): what the phone's SIM
 * signs to prove it holds the user-authentication key, bound to the relying party that asked and to
 * a time, used once.
 *
 * The bytes signed are the DER of
 *
 *   LoginChallenge ::= SEQUENCE {
 *     format     UTF8String ("jpki-mobile/rp-login-challenge/v1"),
 *     rpId       UTF8String (SIZE (1..200)),   -- the RP's registered identity
 *     origin     UTF8String (SIZE (1..200)),   -- scheme://host[:port] the phone talks to
 *     nonce      OCTET STRING (SIZE (32)),
 *     issuedAt   GeneralizedTime,              -- whole seconds, "Z" (RFC 5280 §4.1.2.5.2)
 *     expiresAt  GeneralizedTime }
 *
 * The SIM signs SHA-256 of these bytes as a DigestInfo with PKCS#1 v1.5 (RFC 8017 §8.2.1, §9.2): the
 * phone sends `30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20 ‖ SHA-256(DER)` in the JPKI
 * applet's SIGN `80 2A 00 80`, and the card pads it (JPKI-FACTS §1). The verifier checks the result
 * as RSASSA-PKCS1-v1_5 with SHA-256 over the DER. The format string keeps a login signature from
 * being read as any other object the same key might sign.
 */
import { randomBytes } from "node:crypto";
import { JpkiError } from "../errors.js";
import {
  children,
  DerError,
  expectTag,
  generalizedTime,
  octetString,
  readDer,
  readString,
  readTime,
  sequence,
  Tag,
  utf8String,
} from "../pki/der.js";

export const LOGIN_CHALLENGE_FORMAT = "jpki-mobile/rp-login-challenge/v1";
/** 256 random bits: unguessable, and never repeated in practice. */
export const NONCE_BYTES = 32;
/** Default lifetime: long enough to type a 4-digit PIN, short enough to keep relays stale. */
export const DEFAULT_CHALLENGE_TTL_MS = 2 * 60_000;
/** A challenge is a few hundred bytes; anything larger is not one. */
export const MAX_CHALLENGE_BYTES = 1024;
const MAX_IDENTITY_CHARS = 200;

/** Who asks: the relying party's registered id and the origin it serves logins from. */
export interface RelyingPartyIdentity {
  readonly id: string;
  /** `scheme://host[:port]`, as `new URL(...).origin` writes it. */
  readonly origin: string;
}

export interface LoginChallenge extends RelyingPartyIdentity {
  readonly nonce: Buffer;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** The DER above: exactly the bytes whose SHA-256 the SIM signs. */
  readonly der: Buffer;
  /** base64url of the nonce: how the RP finds the challenge again. */
  readonly challengeId: string;
}

function checkIdentityText(value: string, what: string): string {
  const length = [...value].length;
  if (length < 1 || length > MAX_IDENTITY_CHARS)
    throw new JpkiError("bad-input", `the relying party's ${what} has 1 to ${MAX_IDENTITY_CHARS} characters`);
  return value;
}

/** The origin of a URL (`https://bank.example`), refusing anything that is not http(s). */
export function originOf(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new JpkiError("bad-input", `not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new JpkiError("bad-input", `a relying party is reached over http or https, not ${parsed.protocol}`);
  return parsed.origin;
}

/** Whole seconds: GeneralizedTime here carries no fractions, so the Date must round-trip. */
function wholeSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** A new challenge for `rp`, issued at `now`, valid for `ttlMs`. */
export function createLoginChallenge(
  rp: RelyingPartyIdentity,
  options: { now?: Date; ttlMs?: number; nonce?: Buffer } = {},
): LoginChallenge {
  const issuedAt = wholeSecond(options.now ?? new Date());
  const ttlMs = options.ttlMs ?? DEFAULT_CHALLENGE_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs < 1000)
    throw new JpkiError("bad-input", "a challenge lives at least one second");
  const expiresAt = new Date(issuedAt.getTime() + Math.ceil(ttlMs / 1000) * 1000);
  const nonce = options.nonce ?? randomBytes(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new JpkiError("bad-input", `a nonce has ${NONCE_BYTES} bytes`);
  const id = checkIdentityText(rp.id, "id");
  const origin = checkIdentityText(rp.origin, "origin");
  const der = sequence(
    utf8String(LOGIN_CHALLENGE_FORMAT),
    utf8String(id),
    utf8String(origin),
    octetString(nonce),
    generalizedTime(issuedAt),
    generalizedTime(expiresAt),
  );
  return { id, origin, nonce, issuedAt, expiresAt, der, challengeId: nonce.toString("base64url") };
}

/**
 * Reads a LoginChallenge (the phone does, before it shows who asks). Throws JpkiError bad-input for
 * anything that is not exactly the structure above.
 */
export function parseLoginChallenge(der: Buffer): LoginChallenge {
  try {
    const top = expectTag(
      readDer(der, { maxBytes: MAX_CHALLENGE_BYTES, maxDepth: 1 }),
      Tag.sequence,
      "LoginChallenge",
    );
    const [format, id, origin, nonce, issuedAt, expiresAt, ...extra] = children(top);
    if (extra.length) throw new DerError("unexpected fields after expiresAt");
    if (readString(expectTag(format, Tag.utf8String, "format")) !== LOGIN_CHALLENGE_FORMAT)
      throw new DerError(`format is not ${LOGIN_CHALLENGE_FORMAT}`);
    const nonceBytes = expectTag(nonce, Tag.octetString, "nonce").content;
    if (nonceBytes.length !== NONCE_BYTES) throw new DerError(`the nonce has ${nonceBytes.length} bytes`);
    const issued = readTime(expectTag(issuedAt, Tag.generalizedTime, "issuedAt"));
    const expires = readTime(expectTag(expiresAt, Tag.generalizedTime, "expiresAt"));
    if (expires <= issued) throw new DerError("expiresAt is not after issuedAt");
    return {
      id: checkIdentityText(readString(expectTag(id, Tag.utf8String, "rpId")), "id"),
      origin: checkIdentityText(readString(expectTag(origin, Tag.utf8String, "origin")), "origin"),
      nonce: Buffer.from(nonceBytes),
      issuedAt: issued,
      expiresAt: expires,
      der: Buffer.from(top.encoded),
      challengeId: nonceBytes.toString("base64url"),
    };
  } catch (error) {
    if (error instanceof DerError)
      throw new JpkiError("bad-input", `not a login challenge: ${error.message}`, { cause: error });
    throw error;
  }
}

/** What a relying party's challenge store does: keep a challenge, and hand it out once. */
export interface ChallengeStore {
  put(challenge: LoginChallenge): void;
  /**
   * Removes and returns the challenge, or says why there is none: never issued here, or already
   * taken (a replay). A challenge is taken by its first use, whatever the outcome of that login.
   */
  take(challengeId: string, now: Date): LoginChallenge | "unknown" | "used";
}

/**
 * An in-memory store for one process, bounded: expired challenges are dropped as new ones come, and
 * used ids are remembered until their challenge would have expired, so a replay is named as one. A
 * relying party running several processes shares a store (a database table with a unique key on the
 * id and a delete-returning take) through the same interface.
 */
export class MemoryChallengeStore implements ChallengeStore {
  private readonly open = new Map<string, LoginChallenge>();
  private readonly used = new Map<string, number>();

  constructor(private readonly maxOutstanding = 100_000) {}

  put(challenge: LoginChallenge): void {
    this.prune(challenge.issuedAt.getTime());
    if (this.open.size >= this.maxOutstanding)
      throw new JpkiError("conflict", "too many login challenges outstanding: try again in a minute");
    this.open.set(challenge.challengeId, challenge);
  }

  take(challengeId: string, now: Date): LoginChallenge | "unknown" | "used" {
    const challenge = this.open.get(challengeId);
    if (challenge) {
      this.open.delete(challengeId);
      this.used.set(challengeId, challenge.expiresAt.getTime());
      return challenge;
    }
    const usedUntil = this.used.get(challengeId);
    if (usedUntil !== undefined && usedUntil >= now.getTime()) return "used";
    return "unknown";
  }

  /** Challenges issued and not yet taken (expired ones included until the next prune). */
  get outstanding(): number {
    return this.open.size;
  }

  private prune(now: number): void {
    // Maps iterate in insertion order, which is issue order: stop at the first still-live entry.
    for (const [id, challenge] of this.open) {
      if (challenge.expiresAt.getTime() >= now) break;
      this.open.delete(id);
    }
    for (const [id, until] of this.used) {
      if (until >= now) break;
      this.used.delete(id);
    }
  }
}
