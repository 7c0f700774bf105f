/**
 * Where CA private keys live. Callers see only this interface, so a PKCS#11 HSM replaces the software
 * store without touching them (the crypto provider is injected, as in PeculiarVentures' libraries).
 */
import type { KeyAlgorithm } from "../pki/algorithms.js";

export interface SigningKey {
  readonly label: string;
  readonly algorithm: KeyAlgorithm;
  /**
   * True when the signing code checks its own results: OpenSSL, which Node's crypto uses, verifies
   * every RSA-CRT result with the public exponent before returning it (the defence against fault
   * attacks). The signer then skips its own verification; a device we cannot see into (an HSM) is
   * always checked.
   */
  readonly verifiesItsSignatures?: boolean;
  /** SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), DER. */
  readonly publicKeySpki: Buffer;
  /**
   * Signs `data`: RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys, ECDSA with SHA-256 (DER Ecdsa-Sig-Value)
   * for EC keys. Throws SignerUnavailableError when the key's device cannot be reached.
   */
  sign(data: Uint8Array): Promise<Buffer>;
}

export interface KeyStore {
  readonly kind: "software" | "pkcs11";
  /** Creates a new key under `label`; refuses when one exists already. */
  generate(label: string, algorithm: KeyAlgorithm): Promise<SigningKey>;
  /** Opens an existing key; throws a JpkiError ("not-found") when there is none. */
  open(label: string): Promise<SigningKey>;
  has(label: string): Promise<boolean>;
  close(): Promise<void>;
}
