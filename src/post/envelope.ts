/**
 * The envelope of a restricted-delivery letter. On paper the letter travels sealed and only the
 * addressee opens it; in the sandbox the letter waits in the mail table between the sender's and the
 * post office's processes, so it is sealed with AES-256-GCM (NIST SP 800-38D) under a key of the data
 * directory, bound to the item's tracking number (additional data), and the sealed bytes are erased
 * at handover or return. A letter's secret (an access code) is then never in the database in clear.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import path from "node:path";
import { JpkiError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";

const KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;

/** Where the data directory keeps the envelope key (mode 0600). */
export function envelopeKeyPath(dataDir: string): string {
  return path.join(dataDir, "post", "envelope.key");
}

/**
 * The data directory's envelope key, made on first use. Made by link(2) from a finished temporary
 * file, so of two processes making it at once both end up with the one that was linked first.
 */
export function envelopeKey(dataDir: string): Buffer {
  const file = envelopeKeyPath(dataDir);
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const temporary = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    writeFileAtomic(temporary, `${randomBytes(KEY_LENGTH).toString("hex")}\n`, 0o600);
    try {
      linkSync(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      unlinkSync(temporary);
    }
  }
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "hex");
  if (key.length !== KEY_LENGTH) throw new JpkiError("integrity", `${file} does not hold a 32-byte key`);
  return key;
}

/** IV ‖ tag ‖ ciphertext of `letter`, bound to `trackingNumber`. */
export function sealLetter(key: Buffer, trackingNumber: string, letter: Buffer): Buffer {
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_LENGTH });
  cipher.setAAD(Buffer.from(trackingNumber, "utf8"));
  const body = Buffer.concat([cipher.update(letter), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Opens a sealed letter; a letter sealed under another key or for another item is refused. */
export function openLetter(key: Buffer, trackingNumber: string, sealed: Buffer): Buffer {
  if (sealed.length < IV_LENGTH + TAG_LENGTH)
    throw new JpkiError("integrity", `the letter of mail ${trackingNumber} is damaged`);
  const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, IV_LENGTH), {
    authTagLength: TAG_LENGTH,
  });
  decipher.setAAD(Buffer.from(trackingNumber, "utf8"));
  decipher.setAuthTag(sealed.subarray(IV_LENGTH, IV_LENGTH + TAG_LENGTH));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_LENGTH + TAG_LENGTH)), decipher.final()]);
  } catch (error) {
    throw new JpkiError(
      "integrity",
      `the letter of mail ${trackingNumber} does not open with this data directory's envelope key (${envelopeKeyPathHint})`,
      { cause: error },
    );
  }
}

const envelopeKeyPathHint = "post/envelope.key: was it replaced?";
