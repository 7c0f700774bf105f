/**
 * Status words (SW1 SW2) of ISO/IEC 7816-4 §5.6, with names, and the one error type that carries a
 * status word from deep inside a card to the place where the response APDU is made.
 */
import { JpkiError } from "../errors.js";

/** The status words the emulated cards answer (ISO/IEC 7816-4 §5.6, tables 5 and 6). */
export const SW = {
  /** 90 00: normal processing. */
  OK: 0x9000,
  /** 62 82: end of file reached before reading Ne bytes (warning; not sent by the JPKI-AP, see READ BINARY). */
  END_OF_FILE: 0x6282,
  /** 63 Cn: verification failed, n tries left (§11.5.6); `verifyFailed(n)` builds it. */
  VERIFY_FAILED: 0x63c0,
  /** 65 81: memory failure (the state file could not be written). */
  MEMORY_FAILURE: 0x6581,
  /** 68 81: logical channel not supported (only the basic channel is). */
  LOGICAL_CHANNEL_NOT_SUPPORTED: 0x6881,
  /** 67 00: wrong length (Lc or Le, or a malformed APDU). */
  WRONG_LENGTH: 0x6700,
  /** 69 81: command incompatible with file structure. */
  INCOMPATIBLE_FILE: 0x6981,
  /** 69 82: security status not satisfied. */
  SECURITY_NOT_SATISFIED: 0x6982,
  /** 69 83: authentication method blocked. */
  AUTH_METHOD_BLOCKED: 0x6983,
  /** 69 85: conditions of use not satisfied. */
  CONDITIONS_NOT_SATISFIED: 0x6985,
  /** 69 86: command not allowed (no current EF). */
  NO_CURRENT_EF: 0x6986,
  /** 6A 80: incorrect parameters in the command data field. */
  WRONG_DATA: 0x6a80,
  /** 6A 82: file or application not found. */
  FILE_NOT_FOUND: 0x6a82,
  /** 6A 86: incorrect parameters P1-P2. */
  WRONG_P1P2: 0x6a86,
  /** 6A 84: not enough memory space. */
  NOT_ENOUGH_MEMORY: 0x6a84,
  /** 6A 88: referenced data or reference data not found. */
  REFERENCE_NOT_FOUND: 0x6a88,
  /** 6B 00: wrong parameters P1-P2 (offset outside the EF). */
  OFFSET_OUTSIDE_EF: 0x6b00,
  /** 6D 00: instruction code not supported or invalid. */
  INS_NOT_SUPPORTED: 0x6d00,
  /** 6E 00: class not supported. */
  CLA_NOT_SUPPORTED: 0x6e00,
  /** 6F 00: no precise diagnosis (an internal fault of the emulator). */
  NO_DIAGNOSIS: 0x6f00,
} as const;

export type StatusWordName = keyof typeof SW;

const names = new Map<number, StatusWordName>(
  Object.entries(SW).map(([name, sw]) => [sw, name as StatusWordName] as const),
);

/** 63 Cn with n = tries left, capped at 15 (the low nibble, ISO/IEC 7816-4 §5.6 table 6). */
/**
 * Whether a response APDU says the card completed the command: 90 00, or 61 xx (more data waiting).
 * Anything else stops a script of commands.
 */
export function completedResponse(response: Uint8Array): boolean {
  const sw1 = response[response.length - 2];
  return response.length >= 2 && (sw1 === 0x61 || (sw1 === 0x90 && response[response.length - 1] === 0x00));
}

export function verifyFailed(triesLeft: number): number {
  return SW.VERIFY_FAILED | Math.max(0, Math.min(15, triesLeft));
}

/** The name of a status word, e.g. "WRONG_LENGTH" for 0x6700 and "VERIFY_FAILED(2)" for 0x63C2. */
export function statusWordName(sw: number): string {
  const known = names.get(sw);
  if (known) return known;
  if ((sw & 0xfff0) === SW.VERIFY_FAILED) return `VERIFY_FAILED(${sw & 0x0f})`;
  if (sw >> 8 === 0x61) return `BYTES_AVAILABLE(${sw & 0xff || 256})`;
  if (sw >> 8 === 0x6c) return `WRONG_LE(${sw & 0xff || 256})`;
  return `UNKNOWN_${sw.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Whether `sw` is a status word ISO/IEC 7816-4 §5.6 allows: 90 00, or SW1 in 61..6F except 60 (a
 * procedure byte under T=0), with SW1 = 6X meaning a warning or an error.
 */
export function isValidStatusWord(sw: number): boolean {
  if (sw === SW.OK) return true;
  const sw1 = sw >> 8;
  return sw1 >= 0x61 && sw1 <= 0x6f;
}

/** "6A82" for 0x6A82. */
export function formatStatusWord(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, "0");
}

/**
 * A command the card refuses, with the status word. Inside a card or applet it is turned into a response
 * APDU in one place (the card's `transmit`) and never leaves the card; host code (src/phone,
 * src/card/uicc/host.ts) throws it for a card's refusal it reads.
 */
export class CardStatusError extends JpkiError {
  override readonly name = "CardStatusError";
  constructor(
    readonly sw: number,
    message?: string,
  ) {
    super("bad-input", message ?? `card answered ${formatStatusWord(sw)} (${statusWordName(sw)})`);
  }
}
