/**
 * ANSI X9.63 key derivation function with SHA-256 (ANSI X9.63-2011 §5.6.3; SEC 1 v2 §3.6.1; NIST
 * SP 800-135 §4.1), the KDF of GlobalPlatform SCP11 (GPC Amendment F v1.4 §3.1.2 "Key Derivation"):
 * K = H(Z || counter_1) || H(Z || counter_2) || ..., counter a 32-bit big-endian integer from 1,
 * each hash also over SharedInfo; truncated to the requested length.
 */
import { createHash } from "node:crypto";

const SHA256_LENGTH = 32;

export function x963KdfSha256(z: Uint8Array, sharedInfo: Uint8Array, length: number): Buffer {
  // SP 800-135 §4.1: the output length must stay below hashLen × (2^32 − 1); far below that here.
  if (!Number.isInteger(length) || length < 0 || length > SHA256_LENGTH * 0xffff)
    throw new RangeError(`X9.63 KDF output length ${length}`);
  const counter = Buffer.alloc(4);
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * SHA256_LENGTH < length; i++) {
    counter.writeUInt32BE(i);
    blocks.push(createHash("sha256").update(z).update(counter).update(sharedInfo).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}
