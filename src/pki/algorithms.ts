/**
 * Key and signature algorithms the project uses, and the signed-object envelope shared by
 * certificates and CRLs.
 */
import { createECDH, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { bitString, NULL, oid, sequence } from "./der.js";

/** RSA-2048 for every JPKI key (JPKI-FACTS §2); ECDSA P-256 for SIM attestation and SCP11 keys. */
export type KeyAlgorithm = "rsa-2048" | "ec-p256";

export const OID_SHA256_WITH_RSA = "1.2.840.113549.1.1.11";
export const OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

/**
 * AlgorithmIdentifier of the signature a key of this algorithm makes: sha256WithRSAEncryption with
 * NULL parameters (RFC 4055 §5), ecdsa-with-SHA256 with parameters absent (RFC 5758 §3.2).
 */
export function signatureAlgorithmIdentifier(algorithm: KeyAlgorithm): Buffer {
  return algorithm === "rsa-2048"
    ? sequence(oid(OID_SHA256_WITH_RSA), NULL)
    : sequence(oid(OID_ECDSA_WITH_SHA256));
}

/**
 * SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }: the shape of Certificate
 * (RFC 5280 §4.1), CertificateList (§5.1) and, with the same fields, BasicOCSPResponse's core.
 */
export function assembleSigned(
  tbs: Uint8Array,
  algorithmIdentifier: Uint8Array,
  signature: Uint8Array,
): Buffer {
  return sequence(tbs, algorithmIdentifier, bitString(signature));
}

/** A P-256 public key from its uncompressed point; throws when the point is malformed or off the curve. */
export function p256PublicKeyFromPoint(point: Uint8Array): KeyObject {
  if (point.length !== 65 || point[0] !== 0x04) throw new RangeError("not an uncompressed P-256 point");
  const b = Buffer.from(point);
  return createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: b.subarray(1, 33).toString("base64url"),
      y: b.subarray(33).toString("base64url"),
    },
    format: "jwk",
  });
}

/** A P-256 private key from its 32-byte scalar (how test vectors and key stores write it). */
export function p256PrivateKeyFromScalar(d: Uint8Array): KeyObject {
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(Buffer.from(d));
  const point = ecdh.getPublicKey();
  return createPrivateKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: point.subarray(1, 33).toString("base64url"),
      y: point.subarray(33).toString("base64url"),
      d: Buffer.from(d).toString("base64url"),
    },
    format: "jwk",
  });
}

/**
 * A new P-256 private key, made through ECDH rather than generateKeyPair: Node 20 can deadlock when
 * the garbage collector frees a key-generation job while a key sharing its lock is being exported
 * (seen as ~KeyGenJob waiting under ExportJWKEcKey), and this way there is no such job.
 */
export function generateP256PrivateKey(): KeyObject {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const d = ecdh.getPrivateKey();
  return p256PrivateKeyFromScalar(Buffer.concat([Buffer.alloc(32 - d.length), d]));
}
