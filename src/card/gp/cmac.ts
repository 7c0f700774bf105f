/**
 * AES-CMAC (NIST SP 800-38B, RFC 4493): the MAC of GlobalPlatform SCP03 (GPC Amendment D v1.2
 * §4.1.3, "the MAC algorithm shall be CMAC") and of the SCP11 receipt (Amendment F §3.1.2).
 */
import { AES_BLOCK, aesCbcEncrypt, aesEncryptBlock } from "./aes.js";

const ZERO_BLOCK = Buffer.alloc(AES_BLOCK);
/** Rb for a 128-bit block (SP 800-38B §5.3). */
const RB = 0x87;

/** One left shift of a block by one bit, with the conditional XOR of Rb (RFC 4493 §2.3). */
function double(block: Buffer): Buffer {
  const out = Buffer.alloc(AES_BLOCK);
  for (let i = 0; i < AES_BLOCK; i++) out[i] = ((block[i]! << 1) | ((block[i + 1] ?? 0) >> 7)) & 0xff;
  if (block[0]! & 0x80) out[AES_BLOCK - 1]! ^= RB;
  return out;
}

/** The two CMAC subkeys K1 and K2 (SP 800-38B §6.1, RFC 4493 §2.3). */
export function cmacSubkeys(key: Uint8Array): { k1: Buffer; k2: Buffer } {
  const k1 = double(aesEncryptBlock(key, ZERO_BLOCK));
  return { k1, k2: double(k1) };
}

/**
 * AES-CMAC of `message` under an AES-128/192/256 key: the full 16-byte tag (SP 800-38B §6.2).
 * Computed as one CBC pass with a zero IV over the message whose last block has been XORed with K1
 * (complete block) or padded with '80 00..' and XORed with K2; the tag is the last ciphertext block.
 */
export function aesCmac(key: Uint8Array, ...message: readonly Uint8Array[]): Buffer {
  const data = message.length === 1 ? Buffer.from(message[0]!) : Buffer.concat(message);
  const { k1, k2 } = cmacSubkeys(key);
  const complete = data.length > 0 && data.length % AES_BLOCK === 0;
  const blocks = complete ? data.length / AES_BLOCK : Math.floor(data.length / AES_BLOCK) + 1;
  const input = Buffer.alloc(blocks * AES_BLOCK);
  input.set(data);
  if (!complete) input[data.length] = 0x80;
  const last = (blocks - 1) * AES_BLOCK;
  const subkey = complete ? k1 : k2;
  for (let i = 0; i < AES_BLOCK; i++) input[last + i]! ^= subkey[i]!;
  return aesCbcEncrypt(key, ZERO_BLOCK, input).subarray(last);
}
