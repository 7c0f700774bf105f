/**
 * GlobalPlatform SCP03 (GPC v2.3 Amendment D v1.2): AES keys, NIST SP 800-108 KDF, mutual
 * authentication with INITIALIZE UPDATE and EXTERNAL AUTHENTICATE, then secure messaging
 * (secure-messaging.ts). The host (off-card entity) and the card are two classes sharing the crypto.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { encodeCommandApdu, parseCommandApdu, responseApdu } from "../apdu.js";
import { SW } from "../status-words.js";
import { aesCmac } from "./cmac.js";
import {
  CardSecureMessaging,
  HostSecureMessaging,
  isValidSecurityLevel,
  SecureChannelCardSide,
  SecureChannelError,
  type SessionKeys,
  SW_AUTHENTICATION_FAILED,
} from "./secure-messaging.js";

/** Data derivation constants (Amd D §4.1.5 Table 4-1). */
export const DerivationConstant = {
  cardCryptogram: 0x00,
  hostCryptogram: 0x01,
  cardChallenge: 0x02,
  sEnc: 0x04,
  sMac: 0x06,
  sRmac: 0x07,
} as const;

/** SCP identifier in the key information of INITIALIZE UPDATE's response (Amd D §7.1.1.6). */
export const SCP03 = 0x03;

/** Bits of the SCP03 "i" parameter (Amd D §5.1 Table 5-1). */
export const Scp03Option = {
  /** S16 mode: 16-byte challenges, cryptograms and MACs (S8 otherwise). */
  s16: 0x01,
  pseudoRandomCardChallenge: 0x10,
  rMacSupport: 0x20,
  rEncSupport: 0x40,
} as const;

/**
 * The SCP03 KDF (Amd D §4.1.5): NIST SP 800-108 in counter mode with AES-CMAC as PRF, the fixed input
 * laid out as label (11 bytes '00' and the derivation constant) || '00' separator || L (2 bytes, bits)
 * || i (1 byte) || context. `lengthBits` is 64, 128, 192 or 256.
 */
export function scp03Kdf(key: Uint8Array, constant: number, context: Uint8Array, lengthBits: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * 128 < lengthBits; i++) {
    const fixed = Buffer.alloc(16);
    fixed[11] = constant;
    fixed.writeUInt16BE(lengthBits, 13);
    fixed[15] = i;
    blocks.push(aesCmac(key, fixed, context));
  }
  return Buffer.concat(blocks).subarray(0, lengthBits / 8);
}

/** A static SCP03 key set (Amd D §4.1.1): K-ENC, K-MAC and K-DEK, each AES-128/192/256. */
export interface Scp03KeySet {
  readonly enc: Buffer;
  readonly mac: Buffer;
  readonly dek: Buffer;
}

/** Session keys from the static keys and context = host challenge || card challenge (Amd D §6.2.1). */
export function deriveScp03SessionKeys(keys: Scp03KeySet, context: Uint8Array): SessionKeys {
  const bits = keys.enc.length * 8;
  return {
    sEnc: scp03Kdf(keys.enc, DerivationConstant.sEnc, context, bits),
    sMac: scp03Kdf(keys.mac, DerivationConstant.sMac, context, keys.mac.length * 8),
    sRmac: scp03Kdf(keys.mac, DerivationConstant.sRmac, context, keys.mac.length * 8),
    dek: keys.dek,
  };
}

/** Card cryptogram (Amd D §6.2.2.2): KDF under S-MAC, constant '00', 64 bits (S8) or 128 (S16). */
export function scp03CardCryptogram(sMac: Uint8Array, context: Uint8Array, length: 8 | 16 = 8): Buffer {
  return scp03Kdf(sMac, DerivationConstant.cardCryptogram, context, length * 8);
}

/** Host cryptogram (Amd D §6.2.2.3): KDF under S-MAC, constant '01'. */
export function scp03HostCryptogram(sMac: Uint8Array, context: Uint8Array, length: 8 | 16 = 8): Buffer {
  return scp03Kdf(sMac, DerivationConstant.hostCryptogram, context, length * 8);
}

/**
 * Pseudo-random card challenge (Amd D §6.2.2.1): KDF under K-ENC, constant '02', context = sequence
 * counter (3 bytes) || AID of the invoking security domain.
 */
export function scp03PseudoRandomCardChallenge(
  kEnc: Uint8Array,
  sequenceCounter: number,
  aid: Uint8Array,
  length: 8 | 16 = 8,
): Buffer {
  const counter = Buffer.alloc(3);
  counter.writeUIntBE(sequenceCounter, 0, 3);
  return scp03Kdf(kEnc, DerivationConstant.cardChallenge, Buffer.concat([counter, aid]), length * 8);
}

const INS_INITIALIZE_UPDATE = 0x50;
const INS_EXTERNAL_AUTHENTICATE = 0x82;

/** The parsed INITIALIZE UPDATE response (Amd D §7.1.1.6 Table 7-3). */
export interface InitializeUpdateResponse {
  readonly keyDiversificationData: Buffer;
  readonly keyVersion: number;
  readonly scpIdentifier: number;
  readonly options: number;
  readonly cardChallenge: Buffer;
  readonly cardCryptogram: Buffer;
  readonly sequenceCounter: number | undefined;
}

export function parseInitializeUpdateResponse(data: Buffer, sLength: 8 | 16): InitializeUpdateResponse {
  const fixed = 13 + 2 * sLength;
  if (data.length !== fixed && data.length !== fixed + 3)
    throw new SecureChannelError(SW.WRONG_LENGTH, `INITIALIZE UPDATE response of ${data.length} bytes`);
  return {
    keyDiversificationData: data.subarray(0, 10),
    keyVersion: data[10]!,
    scpIdentifier: data[11]!,
    options: data[12]!,
    cardChallenge: data.subarray(13, 13 + sLength),
    cardCryptogram: data.subarray(13 + sLength, fixed),
    sequenceCounter: data.length > fixed ? data.readUIntBE(fixed, 3) : undefined,
  };
}

/** The off-card entity's side of SCP03 (Amd D §7.1.1, §7.1.2), then its secure messaging. */
export class Scp03Host {
  readonly #keys: Scp03KeySet;
  readonly #keyVersion: number;
  readonly #sLength: 8 | 16;
  #hostChallenge: Buffer | undefined;
  #context: Buffer | undefined;
  #sessionKeys: SessionKeys | undefined;
  #messaging: HostSecureMessaging | undefined;
  #card: InitializeUpdateResponse | undefined;

  /** `keyVersion` 0 asks the card for its first available key set. */
  constructor(options: { keys: Scp03KeySet; keyVersion?: number; s16?: boolean }) {
    this.#keys = options.keys;
    this.#keyVersion = options.keyVersion ?? 0;
    this.#sLength = options.s16 ? 16 : 8;
  }

  /** INITIALIZE UPDATE `80 50 KVN 00 Lc host-challenge 00` (Amd D §7.1.1). */
  initializeUpdate(hostChallenge: Uint8Array = randomBytes(this.#sLength)): Buffer {
    if (hostChallenge.length !== this.#sLength)
      throw new RangeError(`host challenge must be ${this.#sLength} bytes`);
    this.#hostChallenge = Buffer.from(hostChallenge);
    this.#context = undefined;
    this.#sessionKeys = undefined;
    this.#card = undefined;
    this.#messaging = undefined;
    return encodeCommandApdu({
      cla: 0x80,
      ins: INS_INITIALIZE_UPDATE,
      p1: this.#keyVersion,
      p2: 0x00,
      data: this.#hostChallenge,
      ne: 256,
      extended: false,
    });
  }

  /**
   * Checks the card's answer to INITIALIZE UPDATE (data || SW): derives the session keys and verifies the
   * card cryptogram, which authenticates the card (Amd D §6.2.2.2). Throws SecureChannelError otherwise.
   */
  processInitializeUpdateResponse(response: Uint8Array): InitializeUpdateResponse {
    if (!this.#hostChallenge) throw new Error("INITIALIZE UPDATE not sent");
    const buffer = Buffer.from(response);
    const sw = buffer.length >= 2 ? buffer.readUInt16BE(buffer.length - 2) : 0;
    if (sw !== SW.OK)
      throw new SecureChannelError(sw || SW.WRONG_LENGTH, `INITIALIZE UPDATE answered ${sw.toString(16)}`);
    const card = parseInitializeUpdateResponse(buffer.subarray(0, -2), this.#sLength);
    if (card.scpIdentifier !== SCP03)
      throw new SecureChannelError(SW.WRONG_DATA, `card offers SCP${card.scpIdentifier.toString(16)}`);
    const context = Buffer.concat([this.#hostChallenge, card.cardChallenge]);
    const keys = deriveScp03SessionKeys(this.#keys, context);
    const expected = scp03CardCryptogram(keys.sMac, context, this.#sLength);
    if (!timingSafeEqual(expected, card.cardCryptogram))
      throw new SecureChannelError(SW_AUTHENTICATION_FAILED, "wrong card cryptogram (wrong key set?)");
    this.#context = context;
    this.#sessionKeys = keys;
    this.#card = card;
    return card;
  }

  /**
   * EXTERNAL AUTHENTICATE `84 82 level 00 Lc host-cryptogram C-MAC` (Amd D §7.1.2): MACed, never
   * encrypted, and it does not advance the encryption counter. Opens the host's secure messaging.
   */
  externalAuthenticate(securityLevel: number): Buffer {
    if (!this.#context || !this.#sessionKeys || !this.#card)
      throw new Error("INITIALIZE UPDATE not completed");
    if (!isValidSecurityLevel(securityLevel))
      throw new RangeError(`security level 0x${securityLevel.toString(16)}`);
    if (securityLevel & 0x10 && !(this.#card.options & Scp03Option.rMacSupport))
      throw new RangeError("the card does not support R-MAC");
    if (securityLevel & 0x20 && !(this.#card.options & Scp03Option.rEncSupport))
      throw new RangeError("the card does not support R-ENC");
    const hostCryptogram = scp03HostCryptogram(this.#sessionKeys.sMac, this.#context, this.#sLength);
    // The EXTERNAL AUTHENTICATE itself is only C-MACed: wrap it with a C-MAC-only state, then carry
    // its chaining value into the session at the requested level.
    const authentication = new HostSecureMessaging({
      keys: this.#sessionKeys,
      level: 0x01,
      macLength: this.#sLength,
    });
    const command = authentication.wrapCommand(
      encodeCommandApdu({
        cla: 0x80,
        ins: INS_EXTERNAL_AUTHENTICATE,
        p1: securityLevel,
        p2: 0x00,
        data: hostCryptogram,
        extended: false,
      }),
    );
    this.#messaging = new HostSecureMessaging({
      keys: this.#sessionKeys,
      level: securityLevel,
      macLength: this.#sLength,
      initialMacChain: authentication.chainingValue,
    });
    return command;
  }

  /** Checks the answer to EXTERNAL AUTHENTICATE (plain '9000', Amd D §7.1.2.3). */
  processExternalAuthenticateResponse(response: Uint8Array): void {
    const buffer = Buffer.from(response);
    if (buffer.length !== 2 || buffer.readUInt16BE(0) !== SW.OK) {
      this.#messaging = undefined;
      throw new SecureChannelError(
        buffer.length >= 2 ? buffer.readUInt16BE(buffer.length - 2) : SW.WRONG_LENGTH,
        "EXTERNAL AUTHENTICATE refused",
      );
    }
  }

  get sessionKeys(): SessionKeys | undefined {
    return this.#sessionKeys;
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
}

/** How the card makes its challenge (Amd D §6.2.2.1). */
export type CardChallengeSource =
  | { readonly kind: "random" }
  | {
      readonly kind: "pseudo-random";
      /** AID of this security domain, part of the derivation context. */
      readonly aid: Buffer;
      /** Returns the next sequence counter value, after persisting it (one per INITIALIZE UPDATE). */
      readonly nextSequenceCounter: () => number;
    };

export interface Scp03CardOptions {
  /** The key set of a key version number; 0 asks for the first available (GPCS §E.5.1.3). */
  readonly keySet: (keyVersion: number) => { keyVersion: number; keys: Scp03KeySet } | undefined;
  /** Key diversification data, 10 bytes (Amd D Table 7-3). */
  readonly keyDiversificationData: Buffer;
  readonly cardChallenge?: CardChallengeSource;
  /** S16 mode (16-byte challenges, cryptograms and MACs); S8 otherwise. */
  readonly s16?: boolean;
  /** Whether responses may be R-MACed / R-encrypted ("i" bits b6, b7); both by default. */
  readonly rMac?: boolean;
  readonly rEnc?: boolean;
}

/**
 * The card's side of SCP03 for one security domain: answers INITIALIZE UPDATE and EXTERNAL
 * AUTHENTICATE, then unwraps commands and wraps responses. Every method answers a response APDU or
 * throws SecureChannelError carrying the status word; secure channel state is volatile (lost on reset).
 */
export class Scp03Card extends SecureChannelCardSide {
  readonly #options: Scp03CardOptions;
  readonly #sLength: 8 | 16;
  #pending: { keys: SessionKeys; context: Buffer; options: number } | undefined;

  constructor(options: Scp03CardOptions) {
    super();
    if (options.keyDiversificationData.length !== 10)
      throw new RangeError("key diversification data is 10 bytes");
    this.#options = options;
    this.#sLength = options.s16 ? 16 : 8;
  }

  /** The "i" parameter this card announces. */
  get options(): number {
    let i = this.#options.s16 ? Scp03Option.s16 : 0;
    if (this.#options.cardChallenge?.kind === "pseudo-random") i |= Scp03Option.pseudoRandomCardChallenge;
    if (this.#options.rMac !== false) i |= Scp03Option.rMacSupport;
    if (this.#options.rMac !== false && this.#options.rEnc !== false) i |= Scp03Option.rEncSupport;
    return i;
  }

  get securityLevel(): number | undefined {
    return this.authenticated ? this.messaging?.level : undefined;
  }

  /** Drops the session (card reset, SELECT of another application: GPCS §10.2, secure channel termination). */
  reset(): void {
    this.#pending = undefined;
    this.messaging = undefined;
  }

  /** INITIALIZE UPDATE (Amd D §7.1.1): returns the response APDU, key information to sequence counter. */
  processInitializeUpdate(command: Uint8Array): Buffer {
    this.reset();
    const apdu = parseCommandApdu(command);
    if (apdu.ins !== INS_INITIALIZE_UPDATE)
      throw new SecureChannelError(SW.INS_NOT_SUPPORTED, "not INITIALIZE UPDATE");
    if ((apdu.cla & 0xfc) !== 0x80)
      throw new SecureChannelError(SW.CLA_NOT_SUPPORTED, "INITIALIZE UPDATE CLA");
    if (apdu.p2 !== 0x00) throw new SecureChannelError(SW.WRONG_P1P2, "INITIALIZE UPDATE P2 must be 00");
    if (apdu.data.length !== this.#sLength)
      throw new SecureChannelError(SW.WRONG_LENGTH, `host challenge must be ${this.#sLength} bytes`);
    const found = this.#options.keySet(apdu.p1);
    if (!found) throw new SecureChannelError(SW.REFERENCE_NOT_FOUND, `no key set ${apdu.p1}`);
    const source = this.#options.cardChallenge ?? { kind: "random" };
    let sequenceCounter: Buffer | undefined;
    let cardChallenge: Buffer;
    if (source.kind === "pseudo-random") {
      const counter = source.nextSequenceCounter();
      sequenceCounter = Buffer.alloc(3);
      sequenceCounter.writeUIntBE(counter, 0, 3);
      cardChallenge = scp03PseudoRandomCardChallenge(found.keys.enc, counter, source.aid, this.#sLength);
    } else cardChallenge = randomBytes(this.#sLength);
    const context = Buffer.concat([apdu.data, cardChallenge]);
    const keys = deriveScp03SessionKeys(found.keys, context);
    this.#pending = { keys, context, options: this.options };
    return Buffer.concat([
      this.#options.keyDiversificationData,
      Buffer.from([found.keyVersion, SCP03, this.options]),
      cardChallenge,
      scp03CardCryptogram(keys.sMac, context, this.#sLength),
      sequenceCounter ?? Buffer.alloc(0),
      responseApdu(SW.OK),
    ]);
  }

  /**
   * EXTERNAL AUTHENTICATE (Amd D §7.1.2): checks the C-MAC (6982 when wrong) and the host cryptogram
   * (6300 when wrong), then opens the session at the security level in P1. Any failure ends the attempt:
   * a new INITIALIZE UPDATE is needed.
   */
  processExternalAuthenticate(command: Uint8Array): Buffer {
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) throw new SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "INITIALIZE UPDATE first");
    const apdu = parseCommandApdu(command);
    if (apdu.ins !== INS_EXTERNAL_AUTHENTICATE)
      throw new SecureChannelError(SW.INS_NOT_SUPPORTED, "not EXTERNAL AUTHENTICATE");
    if ((apdu.cla & 0xfc) !== 0x84)
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "EXTERNAL AUTHENTICATE must carry a C-MAC");
    const level = apdu.p1;
    if (!isValidSecurityLevel(level) || apdu.p2 !== 0x00)
      throw new SecureChannelError(SW.WRONG_P1P2, `security level 0x${level.toString(16)}`);
    if (
      (level & 0x10 && !(pending.options & Scp03Option.rMacSupport)) ||
      (level & 0x20 && !(pending.options & Scp03Option.rEncSupport))
    )
      throw new SecureChannelError(SW.WRONG_P1P2, "security level not supported");
    if (apdu.data.length !== 2 * this.#sLength)
      throw new SecureChannelError(SW.WRONG_LENGTH, "EXTERNAL AUTHENTICATE data length");
    const authentication = new CardSecureMessaging({
      keys: pending.keys,
      level: 0x01,
      macLength: this.#sLength,
    });
    const plain = parseCommandApdu(authentication.unwrapCommand(command));
    const expected = scp03HostCryptogram(pending.keys.sMac, pending.context, this.#sLength);
    if (!timingSafeEqual(expected, plain.data))
      throw new SecureChannelError(SW_AUTHENTICATION_FAILED, "wrong host cryptogram");
    this.messaging = new CardSecureMessaging({
      keys: pending.keys,
      level,
      macLength: this.#sLength,
      initialMacChain: authentication.chainingValue,
    });
    return responseApdu(SW.OK);
  }
}
