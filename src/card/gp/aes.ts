/**
 * The AES block operations the GlobalPlatform secure channels need (FIPS 197 through Node's crypto):
 * one-block ECB for the ICV and CMAC subkeys, CBC without padding for secure-messaging data, and the
 * ISO/IEC 9797-1 method 2 padding ('80' then '00's) that GP Card Spec §B.2.3 prescribes.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

export const AES_BLOCK = 16;

function cipherName(key: Uint8Array, mode: "ecb" | "cbc"): string {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32)
    throw new RangeError(`AES key of ${key.length} bytes (16, 24 or 32 expected)`);
  return `aes-${key.length * 8}-${mode}`;
}

/** AES-CBC encryption of whole blocks (no padding added). */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  if (data.length % AES_BLOCK) throw new RangeError("AES-CBC input is not a whole number of blocks");
  const cipher = createCipheriv(cipherName(key, "cbc"), key, iv).setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** AES-CBC decryption of whole blocks (padding left in place). */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  if (data.length % AES_BLOCK) throw new RangeError("AES-CBC input is not a whole number of blocks");
  const decipher = createDecipheriv(cipherName(key, "cbc"), key, iv).setAutoPadding(false);
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

/** One AES block encrypted under `key` (ECB of a single block). */
export function aesEncryptBlock(key: Uint8Array, block: Uint8Array): Buffer {
  if (block.length !== AES_BLOCK) throw new RangeError("AES block must be 16 bytes");
  const cipher = createCipheriv(cipherName(key, "ecb"), key, null).setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

/** Pads with '80' then '00's to a whole number of blocks, always adding at least one byte (GPCS §B.2.3). */
export function pad80(data: Uint8Array): Buffer {
  const padded = Buffer.alloc((Math.floor(data.length / AES_BLOCK) + 1) * AES_BLOCK);
  padded.set(data);
  padded[data.length] = 0x80;
  return padded;
}

/** Removes '80 00..' padding; undefined when the padding is malformed (no '80' in the last block). */
export function unpad80(padded: Uint8Array): Buffer | undefined {
  let end = padded.length - 1;
  const stop = Math.max(0, padded.length - AES_BLOCK);
  while (end >= stop && padded[end] === 0x00) end--;
  if (end < stop || padded[end] !== 0x80) return undefined;
  return Buffer.from(padded.subarray(0, end));
}
