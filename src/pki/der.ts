/**
 * A small DER (ITU-T X.690 §10) writer and a strict, bounded reader.
 *
 * The writer builds encodings by concatenating already-encoded children, so a profile reads like its
 * ASN.1 definition and costs one allocation per node. The reader accepts only DER: definite, minimal
 * lengths (X.690 §10.1), and refuses input deeper or larger than the caller allows, since much of
 * what it reads comes from the network.
 */

/** ASN.1 universal tags used in this project (X.680 §8.4). */
export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  enumerated: 0x0a,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

export class DerError extends Error {
  override readonly name = "DerError";
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Octets of the identifier plus the definite length (X.690 §8.1.3): short form below 128. */
function headerLength(length: number): number {
  if (length < 0x80) return 2;
  if (length < 0x100) return 3;
  if (length < 0x10000) return 4;
  if (length < 0x1000000) return 5;
  return 6;
}

/** Writes identifier and length at the start of `out`; returns the header size. */
function writeHeader(out: Buffer, tag: number, length: number): number {
  const size = headerLength(length);
  out[0] = tag;
  if (size === 2) {
    out[1] = length;
    return 2;
  }
  out[1] = 0x80 | (size - 2);
  for (let i = size - 1, n = length; i >= 2; i--, n = Math.floor(n / 256)) out[i] = n & 0xff;
  return size;
}

// The writer allocates each node once and copies the children into it: TBS certificates are built
// on the issuance hot path (profiles.ts), where a concat per header would double the cost.

/** One TLV with a single-byte identifier (low tag numbers, X.690 §8.1.2.2). */
export function tlv(tag: number, content: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(headerLength(content.length) + content.length);
  out.set(content, writeHeader(out, tag, content.length));
  return out;
}

/** A constructed TLV whose content is the concatenation of `items`, written in one allocation. */
export function constructed(tag: number, items: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const item of items) total += item.length;
  const out = Buffer.allocUnsafe(headerLength(total) + total);
  let offset = writeHeader(out, tag, total);
  for (const item of items) {
    out.set(item, offset);
    offset += item.length;
  }
  return out;
}

export function sequence(...items: Uint8Array[]): Buffer {
  return constructed(Tag.sequence, items);
}

/** SET OF: DER sorts the encoded elements (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Buffer {
  const sorted = items.length < 2 ? items : [...items].sort((a, b) => Buffer.compare(a, b));
  return constructed(Tag.set, sorted);
}

/** [n] EXPLICIT: a constructed context-specific wrapper around one encoded value. */
export function explicit(n: number, inner: Uint8Array): Buffer {
  return tlv(0xa0 | n, inner);
}

/** [n] IMPLICIT: the content of a value under a context-specific tag. */
export function implicit(n: number, content: Uint8Array, constructed = false): Buffer {
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}

/** Minimal two's-complement bytes of an integer (X.690 §8.3.2). */
export function integerBytes(value: bigint): Buffer {
  if (value === 0n) return Buffer.from([0]);
  const negative = value < 0n;
  let hex = (negative ? -value - 1n : value).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, "hex");
  if (negative) bytes = Buffer.from(bytes.map((b) => ~b & 0xff));
  const signBitSet = (bytes[0]! & 0x80) !== 0;
  if (signBitSet !== negative) bytes = Buffer.concat([Buffer.from([negative ? 0xff : 0]), bytes]);
  return bytes;
}

/**
 * INTEGER. A Buffer is read as an unsigned big-endian magnitude (serial numbers, RSA moduli) and
 * encoded minimally: leading zero bytes dropped, one added back only when the top bit is set.
 */
export function integer(value: bigint | number | Uint8Array): Buffer {
  if (typeof value === "bigint" || typeof value === "number")
    return tlv(Tag.integer, integerBytes(BigInt(value)));
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  const magnitude = value.subarray(start);
  if (magnitude.length === 0) return tlv(Tag.integer, Buffer.from([0]));
  const content = magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude;
  return tlv(Tag.integer, content);
}

export function enumerated(value: number): Buffer {
  return tlv(Tag.enumerated, integerBytes(BigInt(value)));
}

export function boolean(value: boolean): Buffer {
  return tlv(Tag.boolean, Buffer.from([value ? 0xff : 0x00]));
}

export const NULL: Buffer = Buffer.from([Tag.null, 0]);

const oidCache = new Map<string, Buffer>();

/** OBJECT IDENTIFIER from dotted form (X.690 §8.19); encodings are cached. */
export function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  const arcs = dotted.split(".").map((arc) => {
    if (!/^\d+$/.test(arc)) throw new DerError(`invalid OID ${dotted}`);
    return BigInt(arc);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n))
    throw new DerError(`invalid OID ${dotted}`);
  const body: number[] = [];
  const push = (arc: bigint) => {
    const groups = [Number(arc & 0x7fn)];
    for (let n = arc >> 7n; n > 0n; n >>= 7n) groups.unshift(Number(n & 0x7fn) | 0x80);
    body.push(...groups);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  const encoded = tlv(Tag.oid, Buffer.from(body));
  oidCache.set(dotted, encoded);
  return encoded;
}

export function octetString(content: Uint8Array): Buffer {
  return tlv(Tag.octetString, content);
}

/** BIT STRING holding whole bytes (keys, signatures) or named bits with `unusedBits` trailing zeros. */
export function bitString(content: Uint8Array, unusedBits = 0): Buffer {
  return tlv(Tag.bitString, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/**
 * A named-bit BIT STRING (KeyUsage, ReasonFlags): DER drops trailing zero bits (X.690 §11.2.2).
 * `bits` lists the bit numbers set, bit 0 being the most significant bit of the first byte.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  return bitString(bytes, 7 - (highest & 7));
}

export function utf8String(text: string): Buffer {
  return tlv(Tag.utf8String, Buffer.from(text, "utf8"));
}

const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** PrintableString (X.680 §41.4); refuses characters outside its set. */
export function printableString(text: string): Buffer {
  if (!printable.test(text)) throw new DerError(`not a PrintableString: ${JSON.stringify(text)}`);
  return tlv(Tag.printableString, Buffer.from(text, "latin1"));
}

export function ia5String(text: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new DerError(`not an IA5String: ${JSON.stringify(text)}`);
  return tlv(Tag.ia5String, Buffer.from(text, "latin1"));
}

/** Writes `value` as `width` ASCII digits at `offset`. */
function writeDigits(out: Buffer, offset: number, value: number, width: number): void {
  for (let i = offset + width - 1, n = value; i >= offset; i--, n = Math.floor(n / 10))
    out[i] = 0x30 + (n % 10);
}

/** Tag, length, then the date as digits (year of `yearWidth` digits) and "Z"; no fractions. */
function timeValue(tag: number, date: Date, yearWidth: 2 | 4): Buffer {
  const time = date.getTime();
  if (Number.isNaN(time)) throw new DerError("invalid Date");
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new DerError(`GeneralizedTime cannot hold the year ${year}`);
  const length = yearWidth + 11;
  const out = Buffer.allocUnsafe(2 + length);
  out[0] = tag;
  out[1] = length;
  writeDigits(out, 2, yearWidth === 2 ? year % 100 : year, yearWidth);
  let o = 2 + yearWidth;
  for (const part of [
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
  ]) {
    writeDigits(out, o, part, 2);
    o += 2;
  }
  out[o] = 0x5a; // "Z"
  return out;
}

/** UTCTime YYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.1), for years 1950 to 2049. */
export function utcTime(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 2049) throw new DerError(`UTCTime cannot hold the year ${year}`);
  return timeValue(Tag.utcTime, date, 2);
}

/** GeneralizedTime YYYYMMDDHHMMSSZ without fractional seconds (RFC 5280 §4.1.2.5.2). */
export function generalizedTime(date: Date): Buffer {
  return timeValue(Tag.generalizedTime, date, 4);
}

/** Time ::= CHOICE { utcTime, generalTime }: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function x509Time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  return year >= 1950 && year <= 2049 ? utcTime(date) : generalizedTime(date);
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * One decoded TLV: where it lies in the buffer it was read from. `encoded` and `content` are views
 * into that buffer, not copies, made when asked for: a structural check walks many nodes and looks
 * at the bytes of few.
 */
export class DerNode {
  constructor(
    /** The identifier octet (class, constructed bit and tag number together). */
    readonly tag: number,
    /** The buffer the TLV was read from. */
    readonly input: Buffer,
    /** Offset of the identifier octet in `input`. */
    readonly start: number,
    /** Offset of the first content octet in `input`. */
    readonly contentStart: number,
    /** Offset just past the last content octet in `input`. */
    readonly end: number,
  ) {}

  get encoded(): Buffer {
    return this.input.subarray(this.start, this.end);
  }

  get content(): Buffer {
    return this.input.subarray(this.contentStart, this.end);
  }

  /** Octets of content. */
  get length(): number {
    return this.end - this.contentStart;
  }
}

export interface ReadLimits {
  /** Nesting depth allowed below the top node (default 32). */
  maxDepth?: number;
  /** Total input size in bytes (default 1 MiB). */
  maxBytes?: number;
}

/** Reads the TLV at `offset` of `input`, which must end by `limit`. */
function readTlvWithin(input: Buffer, offset: number, limit: number): DerNode {
  if (offset + 2 > limit) throw new DerError(`truncated TLV at offset ${offset}`);
  const tag = input[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`high tag numbers are not supported (offset ${offset})`);
  let length = input[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError(`indefinite length is not DER (offset ${offset})`);
    if (count > 4) throw new DerError(`length too large (offset ${offset})`);
    if (offset + 2 + count > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + input[offset + 2 + i]!;
    if (length < 0x80 || input[offset + 2] === 0)
      throw new DerError(`non-minimal length at offset ${offset}`);
    header += count;
  }
  const end = offset + header + length;
  if (end > limit) throw new DerError(`TLV at offset ${offset} runs past the end of the input`);
  return new DerNode(tag, input, offset, offset + header, end);
}

/** Reads the TLV at `offset`; the caller decides what may follow it. */
export function readTlvAt(input: Buffer, offset: number): DerNode {
  return readTlvWithin(input, offset, input.length);
}

/** Reads exactly one TLV filling the whole input, after checking its size and nesting depth. */
export function readDer(input: Buffer, limits: ReadLimits = {}): DerNode {
  const maxBytes = limits.maxBytes ?? 1 << 20;
  if (input.length > maxBytes)
    throw new DerError(`input of ${input.length} bytes exceeds the limit of ${maxBytes}`);
  const node = readTlvAt(input, 0);
  if (node.end !== input.length) throw new DerError("trailing bytes after the DER value");
  checkDepth(node, limits.maxDepth ?? 32);
  return node;
}

function checkDepth(node: DerNode, remaining: number): void {
  if (!(node.tag & 0x20)) return;
  if (remaining <= 0) throw new DerError("DER nesting too deep");
  for (const child of children(node)) checkDepth(child, remaining - 1);
}

/** The TLVs inside a constructed node, in order. */
export function children(node: DerNode): DerNode[] {
  if (!(node.tag & 0x20)) throw new DerError(`tag 0x${node.tag.toString(16)} is not constructed`);
  const out: DerNode[] = [];
  for (let offset = node.contentStart; offset < node.end; ) {
    const child = readTlvWithin(node.input, offset, node.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) throw new DerError(`${what}: missing`);
  if (node.tag !== tag)
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`);
  return node;
}

/** INTEGER content as a bigint, refusing non-minimal encodings (X.690 §8.3.2). */
export function readInteger(node: DerNode): bigint {
  expectTag(node, Tag.integer, "INTEGER");
  const c = node.content;
  if (c.length === 0) throw new DerError("empty INTEGER");
  if (c.length > 1 && ((c[0] === 0 && !(c[1]! & 0x80)) || (c[0] === 0xff && c[1]! & 0x80)))
    throw new DerError("non-minimal INTEGER");
  let value = BigInt(`0x${c.toString("hex")}`);
  if (c[0]! & 0x80) value -= 1n << BigInt(c.length * 8);
  return value;
}

/**
 * Dotted forms of the short OIDs read so far, by their content octets: a certificate repeats a few
 * dozen, and decoding each one again costs more than finding it. Bounded by clearing, as the writer's
 * oidCache.
 */
const dottedOids = new Map<string, string>();
const CACHED_OID_OCTETS = 32;

export function readOid(node: DerNode): string {
  expectTag(node, Tag.oid, "OBJECT IDENTIFIER");
  const { input, contentStart, end } = node;
  const cacheable = end - contentStart <= CACHED_OID_OCTETS;
  const octets = cacheable ? input.toString("latin1", contentStart, end) : "";
  const known = cacheable ? dottedOids.get(octets) : undefined;
  if (known !== undefined) return known;
  const dotted = decodeOid(input, contentStart, end);
  if (cacheable) {
    if (dottedOids.size >= 4096) dottedOids.clear();
    dottedOids.set(octets, dotted);
  }
  return dotted;
}

/** Checks an OBJECT IDENTIFIER's encoding (X.690 §8.19) without decoding it. */
export function checkOid(node: DerNode): void {
  expectTag(node, Tag.oid, "OBJECT IDENTIFIER");
  checkOidOctets(node.input, node.contentStart, node.end);
}

/** Subidentifiers of 7-bit groups, the last without the 0x80 flag, none starting with 0x80 (X.690 §8.19.2). */
function checkOidOctets(input: Buffer, start: number, end: number): void {
  if (end === start || input[end - 1]! & 0x80) throw new DerError("malformed OBJECT IDENTIFIER");
  for (let i = start; i < end; i++)
    if (input[i] === 0x80 && (i === start || !(input[i - 1]! & 0x80)))
      throw new DerError("non-minimal OBJECT IDENTIFIER arc");
}

/** OBJECT IDENTIFIER content octets `input[start, end)` in dotted form (X.690 §8.19). */
function decodeOid(input: Buffer, start: number, end: number): string {
  checkOidOctets(input, start, end);
  const arcs: (number | bigint)[] = [];
  // Arcs are summed in plain numbers while they stay exact (below 2^46 before a 7-bit shift), in
  // bigint beyond: the common OIDs decode without bigint arithmetic, which is slow.
  let value: number | bigint = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i]!;
    if (typeof value === "number" && value < 2 ** 46) value = value * 128 + (byte & 0x7f);
    else value = (BigInt(value) << 7n) | BigInt(byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = arcs[0]!;
  let head: string;
  if (typeof first === "number")
    head = first < 80 ? `${Math.floor(first / 40)}.${first % 40}` : `2.${first - 80}`;
  else head = `2.${first - 80n}`;
  return arcs.length === 1 ? head : `${head}.${arcs.slice(1).join(".")}`;
}

/** The number written in ASCII digits at `input[offset, offset + width)`. */
function decimal(input: Buffer, offset: number, width: number): number {
  let value = 0;
  for (let i = offset; i < offset + width; i++) value = value * 10 + input[i]! - 0x30;
  return value;
}

/** UTCTime or GeneralizedTime in the forms RFC 5280 §4.1.2.5 allows (seconds, "Z"). */
export function readTime(node: DerNode): Date {
  let yearDigits: number;
  if (node.tag === Tag.utcTime) yearDigits = 2;
  else if (node.tag === Tag.generalizedTime) yearDigits = 4;
  else throw new DerError(`expected a time, got tag 0x${node.tag.toString(16)}`);
  // YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ, read in place: certificates are read on the issuing path.
  const { input, contentStart: at, end } = node;
  const digits = yearDigits + 10;
  let wellFormed = end - at === digits + 1 && input[end - 1] === 0x5a; // "Z"
  for (let i = at; wellFormed && i < at + digits; i++) wellFormed = input[i]! >= 0x30 && input[i]! <= 0x39;
  if (!wellFormed)
    throw new DerError(
      `malformed ${yearDigits === 2 ? "UTCTime" : "GeneralizedTime"} ${JSON.stringify(node.content.toString("latin1"))}`,
    );
  let year = decimal(input, at, yearDigits);
  if (yearDigits === 2) year += year >= 50 ? 1900 : 2000;
  const rest = at + yearDigits;
  const mo = decimal(input, rest, 2);
  const d = decimal(input, rest + 2, 2);
  const h = decimal(input, rest + 4, 2);
  const mi = decimal(input, rest + 6, 2);
  const s = decimal(input, rest + 8, 2);
  if (h > 23 || mi > 59 || s > 59)
    throw new DerError(`invalid time of day ${node.content.toString("latin1")}`);
  const date = new Date(Date.UTC(2000, mo - 1, d, h, mi, s));
  date.setUTCFullYear(year, mo - 1, d); // Date.UTC maps years 0 to 99 to 1900 to 1999
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d)
    throw new DerError(`invalid date ${node.content.toString("latin1")}`);
  return date;
}

/** Fatal on malformed UTF-8; a leading U+FEFF is kept, since it is part of the value's text. */
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Text of a UTF8String, PrintableString or IA5String. */
export function readString(node: DerNode): string {
  switch (node.tag) {
    case Tag.utf8String:
      try {
        return utf8Decoder.decode(node.content);
      } catch {
        // TextDecoder throws a TypeError; callers of the reader expect only DerError.
        throw new DerError("UTF8String: invalid UTF-8");
      }
    case Tag.printableString:
    case Tag.ia5String:
      return node.content.toString("latin1");
    default:
      throw new DerError(`expected a string, got tag 0x${node.tag.toString(16)}`);
  }
}
