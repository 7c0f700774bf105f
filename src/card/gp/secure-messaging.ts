/**
 * GlobalPlatform SCP03 secure messaging (GPC Amendment D v1.2 §6.2.4 to §6.2.7), shared by SCP03 and
 * SCP11 (Amendment F §3.1.3 applies the same command and response protection after its own key
 * agreement). One state (session keys, MAC chaining value, encryption counter) and its two users: the
 * off-card entity that wraps commands and unwraps responses, and the card that does the reverse.
 */
import { timingSafeEqual } from "node:crypto";
import {
  type CommandApdu,
  encodeCommandApdu,
  parseCommandApdu,
  parseResponseApdu,
  responseApdu,
} from "../apdu.js";
import { CardStatusError, SW } from "../status-words.js";
import { AES_BLOCK, aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock, pad80, unpad80 } from "./aes.js";
import { aesCmac } from "./cmac.js";

/** Security level bits (Amd D §5.1, P1 of EXTERNAL AUTHENTICATE; Table 7-4). */
export const SecurityLevel = {
  none: 0x00,
  cMac: 0x01,
  /** C-DECRYPTION: command data encrypted; only together with C-MAC. */
  cDecryption: 0x02,
  rMac: 0x10,
  /** R-ENCRYPTION: response data encrypted; only together with C-DECRYPTION and R-MAC. */
  rEncryption: 0x20,
} as const;

/** True when `level` is one Amd D §5.1 allows: C-DEC needs C-MAC, R-ENC needs C-DEC and R-MAC. */
export function isValidSecurityLevel(level: number): boolean {
  if (level & ~0x33) return false;
  if (level & SecurityLevel.cDecryption && !(level & SecurityLevel.cMac)) return false;
  if (level & SecurityLevel.rEncryption && !(level & SecurityLevel.rMac && level & SecurityLevel.cDecryption))
    return false;
  return true;
}

/** EXTERNAL AUTHENTICATE: authentication of the host cryptogram failed (Amd D §7.1.2, error conditions). */
export const SW_AUTHENTICATION_FAILED = 0x6300;

/**
 * A secure channel failure: a CardStatusError, so the card's one place that turns errors into status
 * words answers it. On the host side `sw` names what the card's answer would have been.
 */
export class SecureChannelError extends CardStatusError {
  constructor(sw: number, message: string, options?: { cause?: unknown }) {
    super(sw, message);
    if (options && "cause" in options) this.cause = options.cause;
  }
}

/** S-ENC, S-MAC, S-RMAC (Amd D §6.2.1; Amd F §3.1.2 adds S-DEK, and SCP03 keeps the static DEK). */
export interface SessionKeys {
  readonly sEnc: Buffer;
  readonly sMac: Buffer;
  readonly sRmac: Buffer;
  readonly dek?: Buffer;
}

export interface SecureMessagingOptions {
  readonly keys: SessionKeys;
  readonly level: number;
  /** MAC length: 8 in S8 mode (and SCP11), 16 in S16 mode (Amd D §4.1.2). */
  readonly macLength: 8 | 16;
  /** First MAC chaining value: 16 zero bytes for SCP03 (§6.2.4), the receipt for SCP11 (Amd F §3.1.3). */
  readonly initialMacChain?: Uint8Array;
}

/** True for the status words after which a response is protected (Amd D §6.2.5: '9000', '62xx', '63xx'). */
function isProtectedStatus(sw: number): boolean {
  return sw === 0x9000 || sw >> 8 === 0x62 || sw >> 8 === 0x63;
}

/** CLA indicating GP proprietary secure messaging: b3 in the first interindustry range, b6 in the further one. */
function withSecureMessagingBit(cla: number): number {
  return cla & 0x40 ? cla | 0x20 : cla | 0x04;
}

function hasSecureMessagingBit(cla: number): boolean {
  return (cla & 0x40 ? cla & 0x20 : cla & 0x04) !== 0;
}

/**
 * The CLA over which the C-MAC is computed (Amd D §6.2.4): logical channel number set to zero and the
 * secure messaging indication set.
 */
function macCla(cla: number): number {
  return cla & 0x40 ? (cla & 0xf0) | 0x20 : (cla & 0xf0) | 0x04;
}

function splitStatus(response: Uint8Array): { data: Buffer; sw: number } {
  if (response.length < 2)
    throw new SecureChannelError(SW.WRONG_LENGTH, "response APDU shorter than SW1 SW2");
  return parseResponseApdu(response);
}

/**
 * The state both ends keep in step: MAC chaining value and encryption counter (Amd D §6.2.6: the
 * counter starts at 1 for the first command after EXTERNAL AUTHENTICATE and is incremented for every
 * command when C-DECRYPTION is on, even one without data).
 */
abstract class SecureMessagingState {
  readonly level: number;
  readonly macLength: 8 | 16;
  protected readonly keys: SessionKeys;
  protected macChain: Buffer;
  /** The encryption counter of the command being processed (0 before the first one). */
  protected counter = 0;

  constructor(options: SecureMessagingOptions) {
    if (!isValidSecurityLevel(options.level))
      throw new SecureChannelError(
        SW.WRONG_P1P2,
        `security level 0x${options.level.toString(16)} not allowed`,
      );
    this.keys = options.keys;
    this.level = options.level;
    this.macLength = options.macLength;
    this.macChain = Buffer.from(options.initialMacChain ?? Buffer.alloc(16));
  }

  /** The current MAC chaining value (the last full C-MAC, or the initial value). */
  get chainingValue(): Buffer {
    return Buffer.from(this.macChain);
  }

  /** The static or session DEK, for key transport inside the channel (PUT KEY, SCP11 key loading). */
  get dek(): Buffer | undefined {
    return this.keys.dek;
  }

  protected has(bit: number): boolean {
    return (this.level & bit) !== 0;
  }

  /** ICV for command encryption: the counter as a 16-byte block, encrypted with S-ENC (§6.2.6). */
  protected commandIcv(): Buffer {
    const block = Buffer.alloc(AES_BLOCK);
    block.writeUIntBE(this.counter, AES_BLOCK - 6, 6);
    return aesEncryptBlock(this.keys.sEnc, block);
  }

  /** ICV for response encryption: as the command's, with the first byte set to '80' (§6.2.7). */
  protected responseIcv(): Buffer {
    const block = Buffer.alloc(AES_BLOCK);
    block.writeUIntBE(this.counter, AES_BLOCK - 6, 6);
    block[0] = 0x80;
    return aesEncryptBlock(this.keys.sEnc, block);
  }

  /**
   * The C-MAC input after the chaining value: the header with the MAC CLA, Lc counting the MAC, and the
   * (possibly encrypted) data field; Le is not covered (§6.2.4).
   */
  protected macInput(apdu: CommandApdu, data: Buffer, extended: boolean): Buffer {
    const withRoom = encodeCommandApdu({
      ...apdu,
      cla: macCla(apdu.cla),
      data: Buffer.concat([data, Buffer.alloc(this.macLength)]),
      ne: undefined,
      extended,
    });
    return withRoom.subarray(0, withRoom.length - this.macLength);
  }

  /** R-MAC over chaining value || response data || SW, under S-RMAC; does not advance the chain (§6.2.5). */
  protected responseMac(data: Buffer, sw: number): Buffer {
    return aesCmac(this.keys.sRmac, this.macChain, responseApdu(sw, data)).subarray(0, this.macLength);
  }
}

/** The off-card entity's half: wraps command APDUs, unwraps response APDUs. */
export class HostSecureMessaging extends SecureMessagingState {
  /**
   * Protects a command APDU at this session's level (§6.2.4, §6.2.6). Le, when present, becomes the
   * maximum ('00'), since the MAC and padding lengthen the response beyond what the plain command asked.
   */
  wrapCommand(command: Uint8Array): Buffer {
    if (!this.has(SecurityLevel.cMac)) return Buffer.from(command);
    const apdu = parseCommandApdu(command);
    let data = apdu.data;
    if (this.has(SecurityLevel.cDecryption)) {
      this.counter++;
      if (data.length) data = aesCbcEncrypt(this.keys.sEnc, this.commandIcv(), pad80(data));
    }
    const extended = apdu.extended || data.length + this.macLength > 255;
    this.macChain = aesCmac(this.keys.sMac, this.macChain, this.macInput(apdu, data, extended));
    const ne = apdu.ne === undefined ? undefined : extended ? 65536 : 256;
    return encodeCommandApdu({
      ...apdu,
      cla: withSecureMessagingBit(apdu.cla),
      data: Buffer.concat([data, this.macChain.subarray(0, this.macLength)]),
      ne,
      extended,
    });
  }

  /**
   * Protects the commands of a script sent in one go (an OTA script), whose responses come back
   * together: each response is checked against the chaining value and counter of its own command.
   * The session continues after the last command, as if they had been sent one by one.
   */
  wrapScript(commands: readonly Uint8Array[]): {
    apdus: Buffer[];
    unwrap(index: number, response: Uint8Array): Buffer;
  } {
    const states: { macChain: Buffer; counter: number }[] = [];
    const apdus = commands.map((command) => {
      const apdu = this.wrapCommand(command);
      states.push({ macChain: this.macChain, counter: this.counter });
      return apdu;
    });
    return {
      apdus,
      unwrap: (index, response) => {
        const state = states[index];
        if (!state) throw new RangeError(`no command ${index} in the script`);
        const now = { macChain: this.macChain, counter: this.counter };
        ({ macChain: this.macChain, counter: this.counter } = state);
        try {
          return this.unwrapResponse(response);
        } finally {
          ({ macChain: this.macChain, counter: this.counter } = now);
        }
      },
    };
  }

  /**
   * Checks the R-MAC and decrypts the data of a response APDU (data || SW1 SW2), returning the plain
   * response APDU (§6.2.5, §6.2.7). Error status words carry no R-MAC and pass unchanged.
   */
  unwrapResponse(response: Uint8Array): Buffer {
    if (!this.has(SecurityLevel.rMac)) return Buffer.from(response);
    const { data, sw } = splitStatus(response);
    if (!isProtectedStatus(sw)) return Buffer.from(response);
    if (data.length < this.macLength)
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "response without its R-MAC");
    const body = data.subarray(0, data.length - this.macLength);
    const mac = data.subarray(data.length - this.macLength);
    if (!timingSafeEqual(mac, this.responseMac(body, sw)))
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "wrong R-MAC");
    let plain = body;
    if (this.has(SecurityLevel.rEncryption) && body.length) {
      if (body.length % AES_BLOCK)
        throw new SecureChannelError(SW.WRONG_DATA, "encrypted response is not whole blocks");
      const unpadded = unpad80(aesCbcDecrypt(this.keys.sEnc, this.responseIcv(), body));
      if (!unpadded) throw new SecureChannelError(SW.WRONG_DATA, "bad padding in the encrypted response");
      plain = unpadded;
    }
    return responseApdu(sw, plain);
  }
}

/** The card's half: unwraps command APDUs, wraps response APDUs. */
export class CardSecureMessaging extends SecureMessagingState {
  #open = true;

  /** False once a secure messaging error has ended the session (GPCS §10.2, secure channel termination). */
  get open(): boolean {
    return this.#open;
  }

  /** Ends the session: every later protected command is refused. */
  close(): void {
    this.#open = false;
  }

  /**
   * Verifies the C-MAC and decrypts the data of a command APDU, returning the plain command with the
   * secure messaging bit cleared. Throws SecureChannelError (6982) and closes the session on a wrong MAC,
   * a replayed command (its MAC belongs to an older chaining value) or missing secure messaging.
   */
  unwrapCommand(command: Uint8Array): Buffer {
    if (!this.#open) throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "secure channel closed");
    const apdu = parseCommandApdu(command);
    if (!this.has(SecurityLevel.cMac)) {
      if (hasSecureMessagingBit(apdu.cla))
        throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "secure messaging not expected");
      return Buffer.from(command);
    }
    const fail = (message: string, sw: number = SW.SECURITY_NOT_SATISFIED): never => {
      this.close();
      throw new SecureChannelError(sw, message);
    };
    if (!hasSecureMessagingBit(apdu.cla)) fail("command without secure messaging");
    if (apdu.data.length < this.macLength) fail("command without its C-MAC");
    const data = apdu.data.subarray(0, apdu.data.length - this.macLength);
    const mac = apdu.data.subarray(apdu.data.length - this.macLength);
    const chain = aesCmac(this.keys.sMac, this.macChain, this.macInput(apdu, data, apdu.extended));
    if (!timingSafeEqual(mac, chain.subarray(0, this.macLength))) fail("wrong C-MAC");
    this.macChain = chain;
    let plain = data;
    if (this.has(SecurityLevel.cDecryption)) {
      this.counter++;
      if (data.length) {
        if (data.length % AES_BLOCK) fail("encrypted command data is not whole blocks", SW.WRONG_DATA);
        const unpadded = unpad80(aesCbcDecrypt(this.keys.sEnc, this.commandIcv(), data));
        if (!unpadded) return fail("bad padding in the encrypted command", SW.WRONG_DATA);
        plain = unpadded;
      }
    }
    const cla = apdu.cla & 0x40 ? apdu.cla & ~0x20 : apdu.cla & ~0x04;
    // An extended wrapped command unwraps to an extended plain one, even when the host's padding and
    // MAC were what pushed it past 255 bytes: same command, other length coding (ISO/IEC 7816-4 §5.1).
    return encodeCommandApdu({ ...apdu, cla, data: plain });
  }

  /**
   * Protects a response (§6.2.5, §6.2.7): encrypts the data (R-ENC), appends the R-MAC; returns
   * data || R-MAC || SW1 SW2. Error status words go out alone, unprotected.
   */
  wrapResponse(data: Uint8Array, sw: number): Buffer {
    if (!this.#open) return responseApdu(sw);
    if (!this.has(SecurityLevel.rMac)) return responseApdu(sw, data);
    if (!isProtectedStatus(sw)) return responseApdu(sw);
    let body: Buffer = Buffer.from(data);
    if (this.has(SecurityLevel.rEncryption) && body.length)
      body = aesCbcEncrypt(this.keys.sEnc, this.responseIcv(), pad80(body));
    return responseApdu(sw, Buffer.concat([body, this.responseMac(body, sw)]));
  }
}

/**
 * What the card side of every secure channel (SCP03, SCP11) shares once authentication opened a
 * session: unwrapping commands, wrapping responses, and the session's DEK.
 */
export abstract class SecureChannelCardSide {
  protected messaging: CardSecureMessaging | undefined;

  /** True once authentication succeeded and no secure messaging error has closed the session. */
  get authenticated(): boolean {
    return this.messaging?.open === true;
  }

  protected session(): CardSecureMessaging {
    if (!this.messaging?.open)
      throw new SecureChannelError(SW.SECURITY_NOT_SATISFIED, "no authenticated secure channel");
    return this.messaging;
  }

  /** See CardSecureMessaging.unwrapCommand. */
  unwrapCommand(command: Uint8Array): Buffer {
    return this.session().unwrapCommand(command);
  }

  /**
   * See CardSecureMessaging.wrapResponse. Without a session the response goes out plain; after a secure
   * messaging error closed the session, the status word alone.
   */
  wrapResponse(data: Uint8Array, sw: number): Buffer {
    if (!this.messaging) return responseApdu(sw, data);
    return this.messaging.wrapResponse(data, sw);
  }

  /** The session's DEK (the static K-DEK in SCP03, S-DEK in SCP11), for keys sent inside the channel. */
  get dek(): Buffer | undefined {
    return this.authenticated ? this.messaging?.dek : undefined;
  }
}
