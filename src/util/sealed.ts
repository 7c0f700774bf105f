/**
 * Secrets that wait in the database between two steps (a letter's access code until the post office
 * hands it over, an injected key until J-LIS delivers it): sealed with AES-256-GCM (NIST SP
 * 800-38D) under a key file of the data directory, bound to what they belong to (additional data),
 * so a sealed value moved to another row does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import path from "node:path";
import { JpkiError } from "../errors.js";
import { writeFileAtomic } from "./fs.js";

const KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;

/**
 * The 32-byte key in `file` (hex, mode 0600), made on first use. Made by link(2) from a finished
 * temporary file, so of two processes making it at once both end up with the one linked first.
 */
export function sealingKey(file: string): Buffer {
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

/** IV ‖ tag ‖ ciphertext of `data`, bound to `boundTo`. */
export function seal(key: Buffer, boundTo: string, data: Buffer): Buffer {
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_LENGTH });
  cipher.setAAD(Buffer.from(boundTo, "utf8"));
  const body = Buffer.concat([cipher.update(data), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Opens what `seal` made; undefined when it does not open (another key, another binding, damage). */
export function unseal(key: Buffer, boundTo: string, sealed: Buffer): Buffer | undefined {
  if (sealed.length < IV_LENGTH + TAG_LENGTH) return undefined;
  const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, IV_LENGTH), {
    authTagLength: TAG_LENGTH,
  });
  decipher.setAAD(Buffer.from(boundTo, "utf8"));
  decipher.setAuthTag(sealed.subarray(IV_LENGTH, IV_LENGTH + TAG_LENGTH));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_LENGTH + TAG_LENGTH)), decipher.final()]);
  } catch {
    return undefined;
  }
}
