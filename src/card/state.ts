/**
 * The persistent contents of a JPKI application (JPKI-AP) on an emulated card: what a real card keeps
 * in its secure memory. `citizen add` writes one per My Number card (個人番号カード); the card emulator
 * reads and updates it, and the SIM applet uses the same format.
 *
 * The file is the card's secure element: it holds private keys in clear and is written with mode 0600
 * and atomically (src/util/fs.ts), so a power cut leaves the state from before or after a command.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { JpkiError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";

export const STATE_FORMAT = "jpki-mobile/jpki-ap-state";

/** Token labels in EF 0006 (JPKI-FACTS §1). The SIM label is this project's own. */
export const TOKEN_LABEL = { myNumberCard: "JPKIAPICCTOKEN2", sim: "JPKIAPUICCTOKEN" } as const;

/** ATR of the My Number card (JPKI-FACTS §1; OpenSC's jpki driver matches it). */
export const MY_NUMBER_CARD_ATR = "3be000ff8131fe4514";

export interface PinState {
  /** SHA-256 over salt || PIN; the card compares hashes, never stores the PIN itself. */
  hash: string;
  salt: string;
  triesLeft: number;
  maxTries: number;
}

export interface JpkiApState {
  format: typeof STATE_FORMAT;
  version: 1;
  product: "my-number-card" | "sim";
  tokenLabel: string;
  /** Hex ATR the reader sees at power-on. */
  atr: string;
  /** Registry identifiers, for people and tools; the card never sends them. */
  cardId: string;
  personId: string;
  /** Elementary files by FID (hex, upper case): certificates as base64 DER. */
  files: Record<string, string>;
  /** Private keys as base64 PKCS#8 DER: "0017" user authentication, "001A" signing. */
  keys: Record<string, string>;
  /** PIN EFs: "0018" user-authentication PIN, "001B" signing password. */
  pins: Record<string, PinState>;
}

/** PIN rules (JPKI-FACTS §1): auth PIN 4 digits / 3 tries; signing password 6–16 of A-Z0-9 / 5 tries. */
export const PIN_RULES = {
  auth: { pattern: /^[0-9]{4}$/, maxTries: 3, describe: "4 digits" },
  sign: { pattern: /^[A-Z0-9]{6,16}$/, maxTries: 5, describe: "6 to 16 characters of A-Z and 0-9" },
} as const;

export function checkPin(kind: keyof typeof PIN_RULES, pin: string): void {
  const rule = PIN_RULES[kind];
  if (!rule.pattern.test(pin)) {
    const what = kind === "auth" ? "user-authentication PIN" : "signing password";
    throw new JpkiError("bad-input", `the ${what} must be ${rule.describe}`);
  }
}

export function newPinState(kind: keyof typeof PIN_RULES, pin: string): PinState {
  checkPin(kind, pin);
  const salt = randomBytes(16);
  const maxTries = PIN_RULES[kind].maxTries;
  return {
    hash: pinHash(salt, pin).toString("hex"),
    salt: salt.toString("hex"),
    triesLeft: maxTries,
    maxTries,
  };
}

function pinHash(salt: Buffer, pin: string): Buffer {
  return createHash("sha256").update(salt).update(pin, "latin1").digest();
}

/** Constant-time comparison of a presented PIN with the stored hash (no counter logic here). */
export function pinMatches(state: PinState, presented: string): boolean {
  return timingSafeEqual(pinHash(Buffer.from(state.salt, "hex"), presented), Buffer.from(state.hash, "hex"));
}

export function saveCardState(path: string, state: JpkiApState): void {
  writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

export function loadCardState(path: string): JpkiApState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new JpkiError("bad-input", `cannot read the card state file ${path}`, { cause });
  }
  const state = parsed as Partial<JpkiApState>;
  if (state.format !== STATE_FORMAT || state.version !== 1)
    throw new JpkiError(
      "bad-input",
      `${path} is not a jpki-mobile card state file (format ${STATE_FORMAT} v1)`,
    );
  return state as JpkiApState;
}
