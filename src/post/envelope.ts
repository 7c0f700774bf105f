/**
 * The envelope of a restricted-delivery letter. On paper the letter travels sealed and only the
 * addressee opens it; in the sandbox the letter waits in the mail table between the sender's and the
 * post office's processes, so it is sealed with AES-256-GCM (NIST SP 800-38D) under a key of the data
 * directory, bound to the item's tracking number (additional data), and the sealed bytes are erased
 * at handover or return. A letter's secret (an access code) is then never in the database in clear.
 */
import path from "node:path";
import { JpkiError } from "../errors.js";
import { seal, sealingKey, unseal } from "../util/sealed.js";

/** Where the data directory keeps the envelope key (mode 0600). */
export function envelopeKeyPath(dataDir: string): string {
  return path.join(dataDir, "post", "envelope.key");
}

/** The data directory's envelope key, made on first use. */
export function envelopeKey(dataDir: string): Buffer {
  return sealingKey(envelopeKeyPath(dataDir));
}

/** IV ‖ tag ‖ ciphertext of `letter`, bound to `trackingNumber`. */
export function sealLetter(key: Buffer, trackingNumber: string, letter: Buffer): Buffer {
  return seal(key, trackingNumber, letter);
}

/** Opens a sealed letter; a letter sealed under another key or for another item is refused. */
export function openLetter(key: Buffer, trackingNumber: string, sealed: Buffer): Buffer {
  const letter = unseal(key, trackingNumber, sealed);
  if (!letter)
    throw new JpkiError(
      "integrity",
      `the letter of mail ${trackingNumber} does not open with this data directory's envelope key (post/envelope.key: was it replaced?)`,
    );
  return letter;
}
