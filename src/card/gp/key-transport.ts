/**
 * Keys sent inside a secure channel (PUT KEY, the JPKI key injection): encrypted under the DEK with
 * AES-CBC and a zero ICV (GPC Amd D, sensitive data encryption with the DEK; SCP11 uses its session S-DEK the
 * same way, Amd F §3.1.2), framed as GPCS v2.3 §11.8.2.3 Tables 11-70 and 11-71 lay out.
 */
import { AES_BLOCK, aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock } from "./aes.js";

const ZERO_ICV = Buffer.alloc(AES_BLOCK);

/** AES key check value (GPCS, KCV of AES keys): the first 3 bytes of a block of '01's encrypted with the key. */
export function aesKeyCheckValue(key: Uint8Array): Buffer {
  return aesEncryptBlock(key, Buffer.alloc(AES_BLOCK, 0x01)).subarray(0, 3);
}

/**
 * Key component block: a key whose length is a whole number of blocks is encrypted as is (Table 11-71);
 * otherwise its length (one byte, below 128) precedes the key right-padded with '00' and encrypted
 * (Table 11-70).
 */
export function encryptKeyComponent(dek: Uint8Array, clearKey: Uint8Array): Buffer {
  if (clearKey.length % AES_BLOCK === 0) return aesCbcEncrypt(dek, ZERO_ICV, clearKey);
  if (clearKey.length > 127) throw new RangeError("key component too long for a one-byte length");
  const padded = Buffer.alloc(Math.ceil(clearKey.length / AES_BLOCK) * AES_BLOCK);
  padded.set(clearKey);
  return Buffer.concat([Buffer.from([clearKey.length]), aesCbcEncrypt(dek, ZERO_ICV, padded)]);
}

/** The inverse of encryptKeyComponent; undefined when the block is malformed. */
export function decryptKeyComponent(dek: Uint8Array, block: Uint8Array): Buffer | undefined {
  if (block.length % AES_BLOCK === 0) return block.length ? aesCbcDecrypt(dek, ZERO_ICV, block) : undefined;
  const length = block[0]!;
  const body = block.subarray(1);
  if (body.length % AES_BLOCK || !body.length || length > body.length) return undefined;
  return aesCbcDecrypt(dek, ZERO_ICV, body).subarray(0, length);
}
