/**
 * GlobalPlatform SCP11 (GPC v2.3 Amendment F v1.4), variants a and b: ECDH P-256 key agreement between
 * the off-card entity (OCE) and the security domain (SD), ANSI X9.63 KDF, a receipt proving the card
 * holds the session keys, then SCP03 secure messaging (secure-messaging.ts) at full protection.
 *
 * - SCP11b: only the card authenticates (its static key PK.SD.ECKA, known to the host from the card's
 *   certificate); INTERNAL AUTHENTICATE `80 88`.
 * - SCP11a: mutual. The host first sends its certificate chain (PERFORM SECURITY OPERATION `80 2A`);
 *   the card validates it and takes PK.OCE.ECKA from it; MUTUAL AUTHENTICATE `80 82`.
 *
 * Certificates here are X.509 (the project's P-256 profiles) rather than the GP format of Amd F §6:
 * the card side receives the DER chain and a validator callback (host-certificate.ts offers one).
 */
import { createECDH, createPublicKey, diffieHellman, type KeyObject, timingSafeEqual } from "node:crypto";
import { p256PrivateKeyFromScalar, p256PublicKeyFromPoint } from "../../pki/algorithms.js";
import { encodeCommandApdu, parseCommandApdu, responseApdu } from "../apdu.js";
import { SW } from "../status-words.js";
import { encodeTlv, readTlvList } from "../tlv.js";
import { aesCmac } from "./cmac.js";
import {
  CardSecureMessaging,
  HostSecureMessaging,
  SecureChannelCardSide,
  SecureChannelError,
  type SessionKeys,
} from "./secure-messaging.js";
import { x963KdfSha256 } from "./x963kdf.js";

export type Scp11Variant = "a" | "b";

/** SCP identifier '11' and its "i" parameter per variant (Amd F §7.1.1: b1 = SCP11a, b1 b2 = SCP11c). */
const SCP11 = 0x11;
const SCP11_PARAMETER: Record<Scp11Variant, number> = { a: 0x01, b: 0x00 };
/** Key identifiers of the SD's SCP11 key sets (Amd F §7.1.1; yubikey-manager ScpKid). */
export const Scp11KeyId: Record<Scp11Variant, number> = { a: 0x11, b: 0x13 };

const INS_PERFORM_SECURITY_OPERATION = 0x2a;
const INS_MUTUAL_AUTHENTICATE = 0x82;
const INS_INTERNAL_AUTHENTICATE = 0x88;

/**
 * Key usage qualifier '3C' (C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION in the GPCS key usage qualifier coding), key type '88'
 * (AES), key length 16: the session parameters of the control reference template, and together the
 * KDF's SharedInfo (Amd F §3.1.2).
 */
export const SCP11_KEY_USAGE = 0x3c;
export const SCP11_KEY_TYPE_AES = 0x88;
export const SCP11_KEY_LENGTH = 16;
/** Security level implied by key usage '3C': every command and response MACed and encrypted. */
const SCP11_SECURITY_LEVEL = 0x33;

const TAG_CONTROL_REFERENCE_TEMPLATE = 0xa6;
const TAG_SCP_PARAMETERS = 0x90;
const TAG_KEY_USAGE = 0x95;
const TAG_KEY_TYPE = 0x80;
const TAG_KEY_LENGTH = 0x81;
/** Ephemeral public key, uncompressed point (ISO/IEC 7816-8 public key data object '5F49'). */
const TAG_EPHEMERAL_PUBLIC_KEY = 0x5f49;
const TAG_RECEIPT = 0x86;

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * A P-256 ECKA private key as the protocol needs it. Injected, so a key held in an HSM or in the
 * emulated card's key store can stand in for a software key.
 */
export interface EckaPrivateKey {
  /** The public key as an uncompressed point, 04 || X || Y (SEC 1 §2.3.3). */
  readonly publicPoint: Buffer;
  /** ECDH (SEC 1 §3.3.1, ECKA-DH of BSI TR-03111): the X coordinate of the shared point. */
  agree(peerPublicPoint: Uint8Array): Buffer;
}

const P256_POINT_LENGTH = 65;

/** The uncompressed point of a P-256 public (or private) key. */
export function p256PointOf(key: KeyObject): Buffer {
  const jwk = (key.type === "private" ? createPublicKey(key) : key).export({ format: "jwk" });
  if (jwk.crv !== "P-256" || !jwk.x || !jwk.y) throw new RangeError("not a P-256 key");
  return Buffer.concat([
    Buffer.from([0x04]),
    Buffer.from(jwk.x, "base64url"),
    Buffer.from(jwk.y, "base64url"),
  ]);
}

/** An EckaPrivateKey over a Node KeyObject. */
export function softwareEckaKey(privateKey: KeyObject): EckaPrivateKey {
  return {
    publicPoint: p256PointOf(privateKey),
    agree: (peer) => diffieHellman({ privateKey, publicKey: p256PublicKeyFromPoint(peer) }),
  };
}

export { p256PrivateKeyFromScalar };

/**
 * A fresh ephemeral key pair (eSK/ePK.OCE.ECKA or eSK/ePK.SD.ECKA), through ECDH: no key-generation
 * job (see generateP256PrivateKey in src/pki/algorithms.ts).
 */
export function generateEphemeralEckaKey(): EckaPrivateKey {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  return {
    publicPoint: ecdh.getPublicKey(),
    // The point is checked (length, form, on the curve) before the agreement, as for a static key.
    agree: (peer) => {
      p256PublicKeyFromPoint(peer);
      return ecdh.computeSecret(Buffer.from(peer));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Key derivation and receipt

/** What the KDF yields (Amd F §3.1.2): the receipt key, then S-ENC, S-MAC, S-RMAC, S-DEK. */
export interface Scp11Keys {
  readonly receiptKey: Buffer;
  readonly sessionKeys: SessionKeys;
}

/** SharedInfo = key usage || key type || key length (Amd F §3.1.2), '3C 88 10' here. */
export const SCP11_SHARED_INFO: Buffer = Buffer.from([SCP11_KEY_USAGE, SCP11_KEY_TYPE_AES, SCP11_KEY_LENGTH]);

/**
 * Session keys from the two shared secrets (Amd F §3.1.2): X9.63-KDF-SHA256(ShSee || ShSes, SharedInfo)
 * cut into five 16-byte keys. ShSee comes from both ephemeral keys, ShSes from the card's static key
 * and the host's static key (SCP11a) or ephemeral key (SCP11b).
 */
export function deriveScp11Keys(shSee: Uint8Array, shSes: Uint8Array): Scp11Keys {
  const n = SCP11_KEY_LENGTH;
  const material = x963KdfSha256(Buffer.concat([shSee, shSes]), SCP11_SHARED_INFO, 5 * n);
  const key = (i: number) => Buffer.from(material.subarray(i * n, (i + 1) * n));
  return { receiptKey: key(0), sessionKeys: { sEnc: key(1), sMac: key(2), sRmac: key(3), dek: key(4) } };
}

/**
 * The receipt (Amd F §3.1.2, §7.6.2.4): AES-CMAC under the receipt key over the key agreement data,
 * the command's data field (control reference template || ePK.OCE.ECKA) followed by the card's
 * ePK.SD.ECKA data object. It becomes the first MAC chaining value.
 */
export function scp11Receipt(
  receiptKey: Uint8Array,
  commandData: Uint8Array,
  cardEphemeralKeyObject: Uint8Array,
): Buffer {
  return aesCmac(receiptKey, commandData, cardEphemeralKeyObject);
}

/** Control reference template 'A6' of MUTUAL/INTERNAL AUTHENTICATE (Amd F §7.6.2.3, as yubikey-manager reads it). */
export function scp11ControlReferenceTemplate(variant: Scp11Variant): Buffer {
  return encodeTlv(TAG_CONTROL_REFERENCE_TEMPLATE, [
    encodeTlv(TAG_SCP_PARAMETERS, Buffer.from([SCP11, SCP11_PARAMETER[variant]])),
    encodeTlv(TAG_KEY_USAGE, Buffer.from([SCP11_KEY_USAGE])),
    encodeTlv(TAG_KEY_TYPE, Buffer.from([SCP11_KEY_TYPE_AES])),
    encodeTlv(TAG_KEY_LENGTH, Buffer.from([SCP11_KEY_LENGTH])),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Host (OCE)

export interface Scp11HostOptions {
  readonly variant: Scp11Variant;
  /** PK.SD.ECKA: the card's static public key, taken from its (validated) certificate. */
  readonly cardPublicKey: KeyObject | Uint8Array;
  /** KVN of the SD's SCP11 key set (P1 of the authenticate command). */
  readonly keyVersion: number;
  /** KID of the SD's key set (P2); Scp11KeyId[variant] by default. */
  readonly keyId?: number;
  /** SCP11a: SK.OCE.ECKA, the host's static key. */
  readonly hostKey?: EckaPrivateKey;
  /** SCP11a: the host's certificate chain, DER, from below the card's trusted root down to the leaf. */
  readonly hostCertificates?: readonly Buffer[];
  /** SCP11a: KVN and KID of the OCE key reference, P1 and P2 of PERFORM SECURITY OPERATION (Amd F §7.5). */
  readonly hostKeyReference?: { readonly keyVersion: number; readonly keyId: number };
  /** eSK.OCE.ECKA; a fresh key by default (tests fix it to record vectors). */
  readonly ephemeralKey?: EckaPrivateKey;
}

/** The off-card entity's side of SCP11a/b, then its secure messaging. */
export class Scp11Host {
  readonly #options: Scp11HostOptions;
  readonly #ephemeral: EckaPrivateKey;
  readonly #cardPoint: Buffer;
  #commandData: Buffer | undefined;
  #keys: Scp11Keys | undefined;
  #messaging: HostSecureMessaging | undefined;

  constructor(options: Scp11HostOptions) {
    if (options.variant === "a" && (!options.hostKey || !options.hostCertificates?.length))
      throw new RangeError("SCP11a needs the host's static key and certificate chain");
    this.#options = options;
    this.#ephemeral = options.ephemeralKey ?? generateEphemeralEckaKey();
    this.#cardPoint =
      options.cardPublicKey instanceof Uint8Array
        ? Buffer.from(options.cardPublicKey)
        : p256PointOf(options.cardPublicKey);
  }

  /**
   * SCP11a: PERFORM SECURITY OPERATION `80 2A KVN KID` commands carrying the host's certificates, one
   * each, b8 of P2 set on all but the last (Amd F §7.5). Extended length when a certificate needs it.
   */
  performSecurityOperationCommands(): Buffer[] {
    const chain = this.#options.hostCertificates ?? [];
    const reference = this.#options.hostKeyReference ?? { keyVersion: 0, keyId: 0 };
    return chain.map((certificate, i) =>
      encodeCommandApdu({
        cla: 0x80,
        ins: INS_PERFORM_SECURITY_OPERATION,
        p1: reference.keyVersion,
        p2: reference.keyId | (i < chain.length - 1 ? 0x80 : 0x00),
        data: certificate,
        extended: false,
      }),
    );
  }

  /**
   * MUTUAL AUTHENTICATE `80 82` (SCP11a) or INTERNAL AUTHENTICATE `80 88` (SCP11b) with P1 = KVN,
   * P2 = KID and data 'A6' control reference template || '5F49' ePK.OCE.ECKA (Amd F §7.6.2.3).
   */
  authenticate(): Buffer {
    const { variant } = this.#options;
    this.#commandData = Buffer.concat([
      scp11ControlReferenceTemplate(variant),
      encodeTlv(TAG_EPHEMERAL_PUBLIC_KEY, this.#ephemeral.publicPoint),
    ]);
    return encodeCommandApdu({
      cla: 0x80,
      ins: variant === "a" ? INS_MUTUAL_AUTHENTICATE : INS_INTERNAL_AUTHENTICATE,
      p1: this.#options.keyVersion,
      p2: this.#options.keyId ?? Scp11KeyId[variant],
      data: this.#commandData,
      ne: 256,
      extended: false,
    });
  }

  /**
   * Takes the card's answer ('5F49' ePK.SD.ECKA || '86' receipt || SW), derives the session keys and
   * checks the receipt, which proves the card holds SK.SD.ECKA (Amd F §7.6.2.4). Opens secure messaging
   * with the receipt as MAC chaining value.
   */
  processAuthenticateResponse(response: Uint8Array): void {
    if (!this.#commandData) throw new Error("authenticate() first");
    const buffer = Buffer.from(response);
    const sw = buffer.length >= 2 ? buffer.readUInt16BE(buffer.length - 2) : SW.WRONG_LENGTH;
    if (sw !== SW.OK) throw new SecureChannelError(sw, `SCP11 authentication answered ${sw.toString(16)}`);
    let objects: ReturnType<typeof readTlvList>;
    try {
      objects = readTlvList(buffer.subarray(0, -2));
    } catch (error) {
      throw new SecureChannelError(SW.WRONG_DATA, "malformed SCP11 authentication response", {
        cause: error,
      });
    }
    const [epk, receipt, ...rest] = objects;
    if (
      epk?.tag !== TAG_EPHEMERAL_PUBLIC_KEY ||
      receipt?.tag !== TAG_RECEIPT ||
      rest.length ||
      receipt.value.length !== 16
    )
      throw new SecureChannelError(SW.WRONG_DATA, "SCP11 response is not 5F49 || 86");
    const hostStatic = this.#options.variant === "a" ? this.#options.hostKey! : this.#ephemeral;
    let keys: Scp11Keys;
    try {
      keys = deriveScp11Keys(this.#ephemeral.agree(epk.value), hostStatic.agree(this.#cardPoint));
    } catch (error) {
      throw new SecureChannelError(SW.WRONG_DATA, "card's ephemeral key is not a P-256 point", {
        cause: error,
      });
    }
    const expected = scp11Receipt(keys.receiptKey, this.#commandData, epk.raw);
    if (!timingSafeEqual(expected, receipt.value))
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "wrong receipt");
    this.#keys = keys;
    this.#messaging = new HostSecureMessaging({
      keys: keys.sessionKeys,
      level: SCP11_SECURITY_LEVEL,
      macLength: 8,
      initialMacChain: receipt.value,
    });
  }

  get sessionKeys(): SessionKeys | undefined {
    return this.#keys?.sessionKeys;
  }

  #session(): HostSecureMessaging {
    if (!this.#messaging) throw new Error("secure channel not open");
    return this.#messaging;
  }

  wrapCommand(command: Uint8Array): Buffer {
    return this.#session().wrapCommand(command);
  }

  unwrapResponse(response: Uint8Array): Buffer {
    return this.#session().unwrapResponse(response);
  }

  wrapScript(commands: readonly Uint8Array[]) {
    return this.#session().wrapScript(commands);
  }
}

// ---------------------------------------------------------------------------------------------
// Card (SD)

/**
 * Checks the host's certificate chain (DER, in the order received: below the trusted root down to the
 * leaf) and returns the leaf's P-256 public key, PK.OCE.ECKA. Throws to reject the chain.
 */
export type HostCertificateValidator = (certificates: readonly Buffer[]) => KeyObject;

export interface Scp11CardOptions {
  /** SK.SD.ECKA, the security domain's static key (its certificate is what the host trusts). */
  readonly staticKey: EckaPrivateKey;
  /** KVN of this SCP11 key set. */
  readonly keyVersion: number;
  /** Which variants this key set serves; both by default. */
  readonly variants?: readonly Scp11Variant[];
  /** SCP11a: validates the host's certificate chain against the trusted CA (the "CA-KLOC"). */
  readonly validateHostCertificates?: HostCertificateValidator;
  /** eSK.SD.ECKA per session; fresh keys by default (tests fix them to record vectors). */
  readonly ephemeralKey?: () => EckaPrivateKey;
  /** Most certificates a chain may hold (each one a PERFORM SECURITY OPERATION). */
  readonly maxChainLength?: number;
}

/**
 * The card's side of SCP11a/b for one key set: PERFORM SECURITY OPERATION, MUTUAL or INTERNAL
 * AUTHENTICATE, then unwraps commands and wraps responses. Methods answer a response APDU or throw
 * SecureChannelError carrying the status word. State is volatile, as a secure channel session is.
 */
export class Scp11Card extends SecureChannelCardSide {
  readonly #options: Scp11CardOptions;
  #received: Buffer[] = [];
  #hostPublicKey: KeyObject | undefined;

  constructor(options: Scp11CardOptions) {
    super();
    this.#options = options;
  }

  #variant: Scp11Variant | undefined;

  /** Which variant opened the current session. */
  get variant(): Scp11Variant | undefined {
    return this.authenticated ? this.#variant : undefined;
  }

  reset(): void {
    this.#received = [];
    this.#hostPublicKey = undefined;
    this.messaging = undefined;
    this.#variant = undefined;
  }

  #serves(variant: Scp11Variant): boolean {
    return (this.#options.variants ?? ["a", "b"]).includes(variant);
  }

  /**
   * PERFORM SECURITY OPERATION (Amd F §7.5): collects the host's certificates; on the last one (b8 of
   * P2 clear) validates the chain. A rejected chain answers 6982 and leaves no host key.
   */
  processPerformSecurityOperation(command: Uint8Array): Buffer {
    const apdu = parseCommandApdu(command);
    if (apdu.ins !== INS_PERFORM_SECURITY_OPERATION)
      throw new SecureChannelError(SW.INS_NOT_SUPPORTED, "not PERFORM SECURITY OPERATION");
    if (!this.#serves("a") || !this.#options.validateHostCertificates)
      throw new SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "SCP11a not offered");
    if (!apdu.data.length) throw new SecureChannelError(SW.WRONG_LENGTH, "no certificate");
    this.messaging = undefined;
    this.#hostPublicKey = undefined;
    this.#received.push(Buffer.from(apdu.data));
    if (this.#received.length > (this.#options.maxChainLength ?? 4)) {
      this.#received = [];
      throw new SecureChannelError(SW.WRONG_DATA, "certificate chain too long");
    }
    if (apdu.p2 & 0x80) return responseApdu(SW.OK);
    const chain = this.#received;
    this.#received = [];
    let key: KeyObject;
    try {
      key = this.#options.validateHostCertificates(chain);
      p256PointOf(key);
    } catch (error) {
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "host certificate rejected", {
        cause: error,
      });
    }
    this.#hostPublicKey = key;
    return responseApdu(SW.OK);
  }

  /** MUTUAL AUTHENTICATE (SCP11a; Amd F, MUTUAL AUTHENTICATE command). */
  processMutualAuthenticate(command: Uint8Array): Buffer {
    return this.#authenticate(command, "a");
  }

  /** INTERNAL AUTHENTICATE (SCP11b; Amd F, INTERNAL AUTHENTICATE command). */
  processInternalAuthenticate(command: Uint8Array): Buffer {
    return this.#authenticate(command, "b");
  }

  #authenticate(command: Uint8Array, variant: Scp11Variant): Buffer {
    this.messaging = undefined;
    this.#variant = undefined;
    const apdu = parseCommandApdu(command);
    const ins = variant === "a" ? INS_MUTUAL_AUTHENTICATE : INS_INTERNAL_AUTHENTICATE;
    if (apdu.ins !== ins) throw new SecureChannelError(SW.INS_NOT_SUPPORTED, "unexpected INS");
    if ((apdu.cla & 0xfc) !== 0x80) throw new SecureChannelError(SW.CLA_NOT_SUPPORTED, "SCP11 CLA");
    if (!this.#serves(variant) || apdu.p1 !== this.#options.keyVersion || apdu.p2 !== Scp11KeyId[variant])
      throw new SecureChannelError(SW.REFERENCE_NOT_FOUND, "no such SCP11 key set");
    const hostStatic = variant === "a" ? this.#hostPublicKey : undefined;
    this.#hostPublicKey = undefined;
    if (variant === "a" && !hostStatic)
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "no validated host certificate");
    const ePkOce = this.#readAuthenticateData(apdu.data, variant);
    const ephemeral = (this.#options.ephemeralKey ?? generateEphemeralEckaKey)();
    let keys: Scp11Keys;
    try {
      const shSee = ephemeral.agree(ePkOce);
      const shSes = this.#options.staticKey.agree(hostStatic ? p256PointOf(hostStatic) : ePkOce);
      keys = deriveScp11Keys(shSee, shSes);
    } catch (error) {
      throw new SecureChannelError(SW.WRONG_DATA, "host's ephemeral key is not a P-256 point", {
        cause: error,
      });
    }
    const cardEpk = encodeTlv(TAG_EPHEMERAL_PUBLIC_KEY, ephemeral.publicPoint);
    const receipt = scp11Receipt(keys.receiptKey, apdu.data, cardEpk);
    this.messaging = new CardSecureMessaging({
      keys: keys.sessionKeys,
      level: SCP11_SECURITY_LEVEL,
      macLength: 8,
      initialMacChain: receipt,
    });
    this.#variant = variant;
    return Buffer.concat([cardEpk, encodeTlv(TAG_RECEIPT, receipt), responseApdu(SW.OK)]);
  }

  /** Checks 'A6' { 90 11 0x, 95 3C, 80 88, 81 10 } || '5F49' point; returns the point (6A80 otherwise). */
  #readAuthenticateData(data: Buffer, variant: Scp11Variant): Buffer {
    const wrong = (message: string) => new SecureChannelError(SW.WRONG_DATA, message);
    let objects: ReturnType<typeof readTlvList>;
    try {
      objects = readTlvList(data);
    } catch {
      throw wrong("malformed data objects");
    }
    const [crt, epk, ...rest] = objects;
    if (crt?.tag !== TAG_CONTROL_REFERENCE_TEMPLATE || epk?.tag !== TAG_EPHEMERAL_PUBLIC_KEY || rest.length)
      throw wrong("expected A6 || 5F49");
    if (!crt.raw.equals(scp11ControlReferenceTemplate(variant)))
      throw wrong("unsupported SCP11 parameters, key usage, key type or length");
    if (epk.value.length !== P256_POINT_LENGTH || epk.value[0] !== 0x04)
      throw wrong("ePK.OCE.ECKA is not a P-256 point");
    return epk.value;
  }
}
