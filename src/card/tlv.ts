/**
 * BER-TLV helpers (ISO/IEC 7816-4 §5.2, ITU-T X.690 §8.1): tags of one or more bytes, definite lengths
 * in short or long form. Indefinite lengths (80) are refused: neither 7816-4 data objects nor DER use
 * them.
 */
import { JpkiError } from "../errors.js";

export interface Tlv {
  /** The tag as an unsigned number of its bytes (e.g. 0x5F2D, 0x30). */
  tag: number;
  /** Whether bit 6 of the first tag byte is set (a constructed data object). */
  constructed: boolean;
  value: Buffer;
  /** The whole encoding (tag, length and value). */
  raw: Buffer;
}

function malformed(why: string): JpkiError {
  return new JpkiError("bad-input", `malformed BER-TLV: ${why}`);
}

/** Decodes the one data object that starts at `offset`; returns it and the offset after it. */
export function readTlv(bytes: Uint8Array, offset = 0): { tlv: Tlv; next: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let i = offset;
  const first = b[i++];
  if (first === undefined) throw malformed("no tag");
  let tag = first;
  if ((first & 0x1f) === 0x1f) {
    // X.690 §8.1.2.4: subsequent tag bytes have bit 8 set except the last.
    for (;;) {
      const next = b[i++];
      if (next === undefined) throw malformed("truncated tag");
      tag = tag * 256 + next;
      if (tag > 0xffffffff) throw malformed("tag longer than 4 bytes");
      if ((next & 0x80) === 0) break;
    }
  }
  const lengthByte = b[i++];
  if (lengthByte === undefined) throw malformed("no length");
  let length = lengthByte;
  if (lengthByte === 0x80) throw malformed("indefinite length");
  if (lengthByte > 0x80) {
    const count = lengthByte & 0x7f;
    if (count > 4) throw malformed(`length on ${count} bytes`);
    length = 0;
    for (let k = 0; k < count; k++) {
      const next = b[i++];
      if (next === undefined) throw malformed("truncated length");
      length = length * 256 + next;
    }
  }
  if (i + length > b.length) throw malformed(`value of ${length} bytes overruns the buffer`);
  const value = Buffer.from(b.subarray(i, i + length));
  return {
    tlv: { tag, constructed: (first & 0x20) !== 0, value, raw: Buffer.from(b.subarray(offset, i + length)) },
    next: i + length,
  };
}

/** Decodes a sequence of data objects filling `bytes` exactly. */
export function readTlvList(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const { tlv, next } = readTlv(bytes, offset);
    out.push(tlv);
    offset = next;
  }
  return out;
}

/** The encoded length field (X.690 §8.1.3: short form below 128, else 81/82/83/84 + bytes). */
export function encodeLength(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff)
    throw new RangeError(`length ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let v = length; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function encodeTag(tag: number): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new RangeError(`tag ${tag}`);
  const bytes: number[] = [];
  for (let v = tag; v > 0 || bytes.length === 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from(bytes);
}

/** Encodes one data object; `value` may be a list of already encoded children. */
export function encodeTlv(tag: number, value: Uint8Array | readonly Uint8Array[]): Buffer {
  const body =
    value instanceof Uint8Array ? Buffer.from(value) : Buffer.concat(value.map((v) => Buffer.from(v)));
  return Buffer.concat([encodeTag(tag), encodeLength(body.length), body]);
}

/** The first data object with `tag` among `list`, or undefined. */
export function findTlv(list: readonly Tlv[], tag: number): Tlv | undefined {
  return list.find((t) => t.tag === tag);
}
