/**
 * ISO/IEC 7816-4 §5.1 command and response APDUs: the four cases, with short (1-byte) and extended
 * (3-byte Lc, 2- or 3-byte Le) length fields. Decoding a malformed command throws a CardStatusError
 * carrying 67 00 (wrong length), the word a card answers to it.
 */
import { CardStatusError, SW } from "./status-words.js";

/** A decoded command APDU. */
export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** The command data field (empty for cases 1 and 2). */
  data: Buffer;
  /** Ne, the maximum number of response bytes expected; undefined when there is no Le field (cases 1, 3). */
  ne: number | undefined;
  /** Whether the length fields were extended (ISO/IEC 7816-4 §5.1: Lc/Le on 3 or 2 bytes). */
  extended: boolean;
}

/** ISO/IEC 7816-4 §5.1 case number: 1 no data/no Le, 2 Le only, 3 data only, 4 data and Le. */
export function apduCase(command: CommandApdu): 1 | 2 | 3 | 4 {
  const hasData = command.data.length > 0;
  if (command.ne === undefined) return hasData ? 3 : 1;
  return hasData ? 4 : 2;
}

function wrongLength(why: string): CardStatusError {
  return new CardStatusError(SW.WRONG_LENGTH, `malformed command APDU: ${why}`);
}

/**
 * Decodes a command APDU (ISO/IEC 7816-3 §12.1.3 case table). Short Le 00 means 256 and extended Le
 * 00 00 means 65536; a short Lc of 00 introduces the extended form.
 */
export function parseCommandApdu(bytes: Uint8Array): CommandApdu {
  if (bytes.length < 4) throw wrongLength(`${bytes.length} bytes, the header needs 4`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const header = { cla: b[0]!, ins: b[1]!, p1: b[2]!, p2: b[3]! };
  const body = b.length - 4;
  if (body === 0) return { ...header, data: Buffer.alloc(0), ne: undefined, extended: false }; // case 1
  const b5 = b[4]!;
  if (body === 1) return { ...header, data: Buffer.alloc(0), ne: b5 || 256, extended: false }; // case 2S
  if (b5 !== 0) {
    const lc = b5;
    const data = Buffer.from(b.subarray(5, 5 + lc));
    if (body === 1 + lc) return { ...header, data, ne: undefined, extended: false }; // case 3S
    if (body === 2 + lc) return { ...header, data, ne: b[5 + lc]! || 256, extended: false }; // case 4S
    throw wrongLength(`Lc ${lc} does not match a body of ${body} bytes`);
  }
  // b5 = 00 and more than one byte follows: extended lengths.
  if (body === 3) return { ...header, data: Buffer.alloc(0), ne: b.readUInt16BE(5) || 65536, extended: true }; // case 2E
  if (body < 3) throw wrongLength("truncated extended length");
  const lc = b.readUInt16BE(5);
  if (lc === 0) throw wrongLength("extended Lc of 0");
  const data = Buffer.from(b.subarray(7, 7 + lc));
  if (body === 3 + lc) return { ...header, data, ne: undefined, extended: true }; // case 3E
  if (body === 5 + lc) return { ...header, data, ne: b.readUInt16BE(7 + lc) || 65536, extended: true }; // case 4E
  throw wrongLength(`extended Lc ${lc} does not match a body of ${body} bytes`);
}

export interface CommandApduInit {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  /** Ne; 256 is encoded as short Le 00, 65536 as extended 00 00. */
  ne?: number;
  /** Force extended lengths even when short ones would do. */
  extended?: boolean;
}

/** Encodes a command APDU, choosing short lengths when Nc ≤ 255 and Ne ≤ 256 unless `extended` is set. */
export function encodeCommandApdu(init: CommandApduInit): Buffer {
  const data = Buffer.from(init.data ?? []);
  const ne = init.ne;
  if (data.length > 65535) throw new RangeError(`Nc ${data.length} exceeds 65535`);
  if (ne !== undefined && (!Number.isInteger(ne) || ne < 1 || ne > 65536))
    throw new RangeError(`Ne ${ne} is outside 1..65536`);
  for (const [name, v] of Object.entries({ cla: init.cla, ins: init.ins, p1: init.p1, p2: init.p2 }))
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${name} ${v} is not a byte`);
  const extended = init.extended || data.length > 255 || (ne !== undefined && ne > 256);
  const parts: Buffer[] = [Buffer.from([init.cla, init.ins, init.p1, init.p2])];
  if (!extended) {
    if (data.length > 0) parts.push(Buffer.from([data.length]), data);
    if (ne !== undefined) parts.push(Buffer.from([ne & 0xff]));
  } else {
    if (data.length > 0) parts.push(Buffer.from([0, data.length >> 8, data.length & 0xff]), data);
    if (ne !== undefined) {
      const le = Buffer.from([(ne >> 8) & 0xff, ne & 0xff]);
      // Case 2E carries a leading 00 before Le; case 4E does not (Lc already introduced the form).
      parts.push(data.length > 0 ? le : Buffer.concat([Buffer.from([0]), le]));
    }
  }
  return Buffer.concat(parts);
}

/** A response APDU: data || SW1 SW2 (ISO/IEC 7816-4 §5.1). */
export function responseApdu(sw: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(data.length + 2);
  out.set(data, 0);
  out.writeUInt16BE(sw, data.length);
  return out;
}

export interface ResponseApdu {
  data: Buffer;
  sw: number;
}

export function parseResponseApdu(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2)
    throw new RangeError(`a response APDU needs 2 bytes of status word, got ${bytes.length}`);
  const b = Buffer.from(bytes);
  return { data: b.subarray(0, b.length - 2), sw: b.readUInt16BE(b.length - 2) };
}

/** Parses hex with optional spaces ("00 A4 04 0C"), as the spec writes APDUs. */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new RangeError(`not hex bytes: ${text}`);
  return Buffer.from(clean, "hex");
}
