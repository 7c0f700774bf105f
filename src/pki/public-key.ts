/**
 * Public keys read from a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), fast.
 *
 * OpenSSL 3 reads an SPKI through its generic decoder chain, which costs about 130 µs for an RSA
 * key and 150 µs for a P-256 key on this project's machines: more than checking a signature with the
 * key (30 µs for RSA-2048). Every application J-LIS examines brings two keys it has never seen (the
 * card's and the SIM's), so reading them that way would cost a third of the examination. The two
 * encodings the project issues and receives are read here directly: rsaEncryption with NULL
 * parameters (RFC 3279 §2.3.1) from its RSAPublicKey (PKCS #1, 4 µs), and id-ecPublicKey on P-256
 * with an uncompressed point (RFC 5480 §2.2) from its coordinates (JWK, which checks the point lies on
 * the curve). Any other SPKI goes to OpenSSL's reader, so what is accepted does not change.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { p256PublicKeyFromPoint } from "./algorithms.js";
import { children, expectTag, readDer, readInteger, Tag } from "./der.js";

/** 30 0d 06 09 2a864886f70d010101 05 00: rsaEncryption, NULL parameters. */
const RSA_ALGORITHM = Buffer.from("300d06092a864886f70d0101010500", "hex");
/** 30 13 06 07 2a8648ce3d0201 06 08 2a8648ce3d030107: id-ecPublicKey on prime256v1. */
const P256_ALGORITHM = Buffer.from("301306072a8648ce3d020106082a8648ce3d030107", "hex");

/**
 * The public key in `spki` (DER). Throws as createPublicKey does on a key OpenSSL cannot read, and on
 * any encoding that is not DER.
 */
export function publicKeyFromSpki(spki: Buffer): KeyObject {
  return fastPath(spki) ?? createPublicKey({ key: spki, format: "der", type: "spki" });
}

function fastPath(spki: Buffer): KeyObject | undefined {
  let algorithm: Buffer;
  let bits: Buffer;
  try {
    const [algorithmNode, keyNode, extra] = children(expectTag(readDer(spki), Tag.sequence, "SPKI"));
    if (extra || !algorithmNode || keyNode?.tag !== Tag.bitString) return undefined;
    algorithm = algorithmNode.encoded;
    bits = keyNode.content;
  } catch {
    return undefined;
  }
  if (bits[0] !== 0) return undefined;
  const key = bits.subarray(1);
  if (algorithm.equals(RSA_ALGORITHM) && isRsaPublicKey(key))
    return createPublicKey({ key, format: "der", type: "pkcs1" });
  if (algorithm.equals(P256_ALGORITHM) && key.length === 65 && key[0] === 0x04)
    return p256PublicKeyFromPoint(key);
  return undefined;
}

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1), in DER. */
function isRsaPublicKey(key: Buffer): boolean {
  try {
    const [modulus, exponent, extra] = children(expectTag(readDer(key), Tag.sequence, "RSAPublicKey"));
    return (
      !extra &&
      readInteger(expectTag(modulus, Tag.integer, "modulus")) > 0n &&
      readInteger(expectTag(exponent, Tag.integer, "publicExponent")) > 0n
    );
  } catch {
    return false;
  }
}
