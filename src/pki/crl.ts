/**
 * The TBSCertList (RFC 5280 §5.1) of one CRL shard of one CA, complete or delta, for the CA signer's
 * `signCrl` to sign.
 *
 * Shards (docs/certificates.md, serial.shardOf): each citizen certificate names its shard's CRL in its CRL
 * distribution point, `${baseUrl}/crl/{sign|auth}/{shard}.crl` (profiles.crlUrl). The shard's CRL
 * carries a critical IssuingDistributionPoint naming that same URL, byte for byte, with
 * onlyContainsUserCerts (§5.2.5): a partitioned CRL is authoritative only for the certificates whose
 * distribution point it names (§6.3.3 (b)(2)).
 *
 * Delta CRLs (§5.2.4) are published at `${baseUrl}/crl/{sign|auth}/{shard}-delta.crl` (deltaCrlUrl).
 * Their IssuingDistributionPoint is the complete CRL's, unchanged: a delta and its base must have the
 * same scope, that is the same IDP values (§5.2.4 (b)(2)), and clients compare them (OpenSSL refuses
 * a delta whose IDP differs from its base's). The delta's own URL is given instead by FreshestCRL
 * (§5.2.6) in the complete CRL, which is also what makes clients look for a delta at all.
 *
 * Size: a shard holds up to about 200,000 entries (JPKI-FACTS §4), so the builder is linear and
 * writes the whole TBSCertList into one buffer allocated at its final size: every entry's length is
 * computed first, then every entry is written in place.
 */
import { JpkiError } from "../errors.js";
import { signatureAlgorithmIdentifier } from "./algorithms.js";
import {
  children,
  enumerated,
  explicit,
  generalizedTime,
  implicit,
  integer,
  readDer,
  sequence,
  Tag,
  x509Time,
} from "./der.js";
import { authorityKeyIdentifierExtension, crlDistributionPointExtension, extension } from "./extensions.js";
import type { CaPurpose } from "./names.js";
import {
  OID_CE_CRL_NUMBER,
  OID_CE_CRL_REASON,
  OID_CE_DELTA_CRL_INDICATOR,
  OID_CE_FRESHEST_CRL,
  OID_CE_INVALIDITY_DATE,
  OID_CE_ISSUING_DISTRIBUTION_POINT,
} from "./oids.js";
import { crlUrl, type IssuerKey } from "./profiles.js";
import { serialToHex } from "./serial.js";

/** CRLReason (RFC 5280 §5.3.1); 7 is not used. JPKI's use of each: JPKI-FACTS §3. */
export const CrlReason = {
  /** Never written in a CRL entry (§5.3.1: absent rather than unspecified); JPKI: destroyed before delivery. */
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  /** JPKI: the basic attributes changed (move, marriage, ...). */
  affiliationChanged: 3,
  /** JPKI: renewal, or issuance on a new device. */
  superseded: 4,
  /** JPKI: no longer needed. */
  cessationOfOperation: 5,
  /** 一時保留 / 一時利用停止: hold (lost card, lost phone). */
  certificateHold: 6,
  /** Delta CRLs only: a hold was released (§5.3.1). */
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type CrlReasonCode = (typeof CrlReason)[keyof typeof CrlReason];

/** One revoked (or held, or released) certificate of the shard. */
export interface RevokedCertificate {
  /** The certificate's serial as a positive big-endian magnitude (ours: 16 bytes, serial.ts). */
  readonly serial: Uint8Array;
  readonly revocationDate: Date;
  /** Absent or unspecified (0): no reasonCode, as RFC 5280 §5.3.1 recommends. */
  readonly reason?: CrlReasonCode;
  /** When the key is known or suspected to have been compromised (§5.3.2); omitted when unknown. */
  readonly invalidityDate?: Date;
}

/**
 * revokedCertificates entries already in DER (each made by encodeCrlEntry when the certificate was
 * revoked or held), concatenated in strictly increasing serial order: a complete CRL of a shard is then
 * a copy of these bytes, not a conversion per entry.
 */
export interface EncodedCrlEntries {
  readonly der: Uint8Array;
  /** How many entries `der` holds (checked as it is walked). */
  readonly count: number;
}

export interface CrlInput {
  /** The CA: its Name becomes the issuer, its key the AuthorityKeyIdentifier and signature algorithm. */
  readonly issuer: IssuerKey;
  readonly purpose: CaPurpose;
  /** Base URL the certificates were issued with (profiles.CitizenCertificateInput.baseUrl). */
  readonly baseUrl: string;
  readonly shard: number;
  /** CRLNumber (§5.2.3): one increasing sequence per shard, shared by its complete and delta CRLs. */
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  /** Required: RFC 5280 §5.1.2.5 makes conforming CAs include nextUpdate. */
  readonly nextUpdate: Date;
  /**
   * In strictly increasing serial order (the registry reads them sorted by serial): the order is
   * checked as entries are measured, which also refuses duplicates without a set of a million serials,
   * and makes the same entries give the same bytes. Either entries to encode, or entries the registry
   * keeps encoded (encodeCrlEntry), concatenated.
   */
  readonly entries: Iterable<RevokedCertificate> | EncodedCrlEntries;
  /** Delta CRL: the CRLNumber of the complete CRL it updates (DeltaCRLIndicator, §5.2.4). */
  readonly deltaOf?: bigint;
  /**
   * Complete CRL of a shard that also publishes delta CRLs: adds FreshestCRL naming deltaCrlUrl
   * (§5.2.6; not allowed in a delta CRL).
   */
  readonly announceDelta?: boolean;
}

/**
 * `${baseUrl}/crl/{sign|auth}/${shard}-delta.crl`: where the delta CRLs of a shard are published,
 * next to its complete CRL (profiles.crlUrl).
 */
export function deltaCrlUrl(baseUrl: string, purpose: CaPurpose, shard: number): string {
  return crlUrl(baseUrl, purpose, shard).replace(/\.crl$/, "-delta.crl");
}

// ---------------------------------------------------------------------------------------------
// Fixed encodings

/** `version Version OPTIONAL -- if present, MUST be v2` (§5.1.2.1): INTEGER 1. */
const VERSION_V2 = integer(1);

/** reasonCode entry extension (§5.3.1), non-critical, one per code; unspecified is never written. */
const REASON_EXTENSIONS = new Map<number, Buffer>(
  Object.values(CrlReason)
    .filter((code) => code !== CrlReason.unspecified)
    .map((code) => [code, extension(OID_CE_CRL_REASON, false, enumerated(code))]),
);

/**
 * invalidityDate entry extension (§5.3.2), non-critical, whose value is always a GeneralizedTime
 * (17 bytes): everything before the time is fixed, so it is encoded once.
 */
const INVALIDITY_DATE_TEMPLATE = extension(OID_CE_INVALIDITY_DATE, false, generalizedTime(new Date(0)));
const INVALIDITY_DATE_LENGTH = INVALIDITY_DATE_TEMPLATE.length;
const INVALIDITY_DATE_PREFIX = INVALIDITY_DATE_TEMPLATE.subarray(0, INVALIDITY_DATE_LENGTH - 17);

/**
 * The parts of the certificates' cRLDistributionPoints extension for `url`, taken from the encoder
 * that writes them into certificates (extensions.ts), so that the IDP's name is byte for byte the
 * certificates' (which clients compare, §6.3.3 (b)(2)(i)).
 */
function distributionPointParts(url: string): { extnValue: Buffer; distributionPoint: Buffer } {
  // Extension ::= SEQUENCE { extnID, extnValue } (non-critical: no BOOLEAN).
  const [, extnValue] = children(readDer(crlDistributionPointExtension(url)));
  // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint; ours has one, whose first field is
  // distributionPoint [0] DistributionPointName: the same field, same tag, as in the IDP.
  const [point] = children(readDer(extnValue!.content));
  const [distributionPoint] = children(point!);
  return { extnValue: extnValue!.content, distributionPoint: distributionPoint!.encoded };
}

/**
 * IssuingDistributionPoint (§5.2.5), critical: distributionPoint [0] naming the shard's URL, and
 * onlyContainsUserCerts [1] IMPLICIT BOOLEAN TRUE, since shards list citizen certificates only.
 */
function issuingDistributionPointExtension(url: string): Buffer {
  const onlyContainsUserCerts = implicit(1, Buffer.from([0xff])); // DER TRUE (X.690 §11.1)
  return extension(
    OID_CE_ISSUING_DISTRIBUTION_POINT,
    true,
    sequence(distributionPointParts(url).distributionPoint, onlyContainsUserCerts),
  );
}

/** FreshestCRL (§5.2.6), non-critical: the syntax of cRLDistributionPoints, naming the delta's URL. */
function freshestCrlExtension(url: string): Buffer {
  return extension(OID_CE_FRESHEST_CRL, false, distributionPointParts(url).extnValue);
}

// ---------------------------------------------------------------------------------------------
// Entries

/** Refuses a CRLNumber outside 0..MAX or longer than 20 octets (§5.2.3). */
function crlNumberValue(value: bigint, what: string): Buffer {
  if (value < 0n || value >= 1n << 159n)
    throw new JpkiError("bad-input", `${what} must be a non-negative INTEGER of at most 20 octets`);
  return integer(value);
}

/** Dates a CRL can carry: valid, years 1950 (UTCTime's first) to 9999 (GeneralizedTime's last). */
function validDate(date: Date): boolean {
  if (!(date instanceof Date)) return false;
  const year = date.getUTCFullYear();
  return year >= 1950 && year <= 9999; // NaN for an invalid Date fails both
}

function checkDate(date: Date, what: string): void {
  if (!validDate(date)) throw new JpkiError("bad-input", `${what} is not a date a CRL can carry`);
}

/** Index of the first significant byte of a serial (callers may pass leading zero bytes). */
function firstByte(serial: Uint8Array): number {
  let start = 0;
  while (start < serial.length && serial[start] === 0) start++;
  return start;
}

/** Time ::= CHOICE (§5.1.2.6): UTCTime through 2049 (15 bytes), GeneralizedTime from 2050 (17). */
function timeLength(date: Date): number {
  return date.getUTCFullYear() <= 2049 ? 15 : 17;
}

/**
 * Length of the crlEntryExtensions SEQUENCE content (0 when there is none). Always below 128, so the
 * entry and its extensions have 2-byte headers.
 */
function entryExtensionsLength(entry: RevokedCertificate): number {
  let length = 0;
  if (entry.reason) length += REASON_EXTENSIONS.get(entry.reason)!.length;
  if (entry.invalidityDate) length += INVALIDITY_DATE_LENGTH;
  return length;
}

/**
 * The encoded length of one entry: `SEQUENCE { userCertificate INTEGER, revocationDate Time,
 * crlEntryExtensions Extensions OPTIONAL }` (§5.1.2.6). At most 2 + 23 + 17 + 40 = 82 bytes.
 */
function entryLength(entry: RevokedCertificate, start: number): number {
  const serial = entry.serial;
  const integerLength = 2 + serial.length - start + (serial[start]! & 0x80 ? 1 : 0);
  const extensions = entryExtensionsLength(entry);
  return 2 + integerLength + timeLength(entry.revocationDate) + (extensions ? 2 + extensions : 0);
}

/**
 * Whether serial `a` (significant bytes from `aStart`) is below serial `b` as numbers: shorter is
 * smaller, then bytes compare. No views are made: this runs once per entry.
 */
function serialBelow(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number): boolean {
  const aLength = a.length - aStart;
  const bLength = b.length - bStart;
  if (aLength !== bLength) return aLength < bLength;
  for (let i = 0; i < aLength; i++) {
    const x = a[aStart + i]!;
    const y = b[bStart + i]!;
    if (x !== y) return x < y;
  }
  return false;
}

/**
 * What is wrong with one entry, or undefined: serial, order after the previous entry (if any), dates
 * and reason. The caller names the entry only on failure, since this runs once per entry.
 */
function entryFault(
  entry: RevokedCertificate,
  start: number,
  previous: Uint8Array | undefined,
  previousStart: number,
  delta: boolean,
): string | undefined {
  const length = entry.serial.length - start;
  if (length === 0 || length > 20) return "the serial must be positive and at most 20 octets (§4.1.2.2)";
  if (previous && !serialBelow(previous, previousStart, entry.serial, start))
    return `entries must be in strictly increasing serial order (it follows ${serialToHex(previous.subarray(previousStart))})`;
  if (!validDate(entry.revocationDate)) return "revocationDate is not a date a CRL can carry";
  if (entry.invalidityDate !== undefined && !validDate(entry.invalidityDate))
    return "invalidityDate is not a date a CRL can carry";
  if (entry.reason !== undefined && entry.reason !== 0) {
    if (!REASON_EXTENSIONS.has(entry.reason)) return `${entry.reason} is not a CRLReason (§5.3.1)`;
    if (entry.reason === CrlReason.removeFromCRL && !delta)
      return "removeFromCRL belongs in delta CRLs only (§5.3.1)";
  }
  return undefined;
}

/** Writes `value` as `width` ASCII digits at `offset`. */
function writeDigits(out: Buffer, offset: number, value: number, width: number): void {
  for (let i = offset + width - 1, n = value; i >= offset; i--, n = (n / 10) | 0) out[i] = 0x30 + (n % 10);
}

/**
 * Writes a time at `offset` exactly as der.x509Time encodes it (UTCTime through 2049, else
 * GeneralizedTime; `generalized` forces the latter), but in place: the per-entry path writes up to
 * two times, and a small Buffer for each would be most of the builder's allocations. Returns the
 * offset after it.
 */
function writeTime(out: Buffer, offset: number, date: Date, generalized: boolean): number {
  const year = date.getUTCFullYear();
  const fourDigitYear = generalized || year > 2049;
  out[offset] = fourDigitYear ? Tag.generalizedTime : Tag.utcTime;
  out[offset + 1] = fourDigitYear ? 15 : 13;
  let o = offset + 2;
  if (fourDigitYear) {
    writeDigits(out, o, year, 4);
    o += 4;
  } else {
    writeDigits(out, o, year % 100, 2);
    o += 2;
  }
  writeDigits(out, o, date.getUTCMonth() + 1, 2);
  writeDigits(out, o + 2, date.getUTCDate(), 2);
  writeDigits(out, o + 4, date.getUTCHours(), 2);
  writeDigits(out, o + 6, date.getUTCMinutes(), 2);
  writeDigits(out, o + 8, date.getUTCSeconds(), 2);
  out[o + 10] = 0x5a; // "Z"
  return o + 11;
}

/** Writes one entry at `offset` (its length from entryLength); returns the offset after it. */
function writeEntry(out: Buffer, offset: number, entry: RevokedCertificate, start: number): number {
  const serial = entry.serial;
  const pad = serial[start]! & 0x80 ? 1 : 0;
  const serialLength = serial.length - start + pad;
  const extensions = entryExtensionsLength(entry);
  let o = offset;
  out[o++] = Tag.sequence;
  out[o++] = 2 + serialLength + timeLength(entry.revocationDate) + (extensions ? 2 + extensions : 0);
  out[o++] = Tag.integer;
  out[o++] = serialLength;
  if (pad) out[o++] = 0;
  for (let i = start; i < serial.length; i++) out[o++] = serial[i]!;
  o = writeTime(out, o, entry.revocationDate, false);
  if (!extensions) return o;
  out[o++] = Tag.sequence;
  out[o++] = extensions;
  if (entry.reason) {
    const reason = REASON_EXTENSIONS.get(entry.reason)!;
    out.set(reason, o);
    o += reason.length;
  }
  if (entry.invalidityDate) {
    out.set(INVALIDITY_DATE_PREFIX, o);
    // InvalidityDate ::= GeneralizedTime, whatever the year (§5.3.2).
    o = writeTime(out, o + INVALIDITY_DATE_PREFIX.length, entry.invalidityDate, true);
  }
  return o;
}

/**
 * One revokedCertificates entry in DER (§5.1.2.6), as buildTbsCertList writes it, for the registry to
 * keep beside the certificate from its revocation or hold on. removeFromCRL is refused: it belongs in
 * deltas only, which are built from the changes.
 */
export function encodeCrlEntry(entry: RevokedCertificate): Buffer {
  const start = firstByte(entry.serial);
  const fault = entryFault(entry, start, undefined, 0, false);
  if (fault)
    throw new JpkiError("bad-input", `CRL entry ${serialToHex(entry.serial) || "(empty)"}: ${fault}`);
  const out = Buffer.allocUnsafe(entryLength(entry, start));
  writeEntry(out, 0, entry, start);
  return out;
}

/**
 * Walks pre-encoded entries: each must be `SEQUENCE { INTEGER serial, ... }` with short-form lengths
 * (an entry is at most 82 bytes) and a serial above the previous one, numerically: positive minimal
 * INTEGER contents compare by length, then bytes (X.690 §8.3.2), and as many entries as announced.
 * Throws on the first fault; nothing is allocated per entry. What is inside an entry was checked by
 * encodeCrlEntry when it was made.
 */
function checkEncodedEntries(input: EncodedCrlEntries): void {
  const der = input.der;
  let count = 0;
  let previous = -1; // offset of the previous entry's INTEGER content
  let previousLength = 0;
  for (let o = 0; o < der.length; count++) {
    const end = o + 2 + der[o + 1]!;
    const serialLength = der[o + 3]!;
    const serial = o + 4;
    if (
      o + 4 > der.length ||
      der[o] !== Tag.sequence ||
      der[o + 1]! >= 0x80 ||
      der[o + 2] !== Tag.integer ||
      serialLength === 0 ||
      serialLength > 21 ||
      serial + serialLength > end ||
      end > der.length
    )
      throw new JpkiError("bad-input", `pre-encoded CRL entry ${count + 1} is not an entry`);
    if (previous >= 0) {
      let order = previousLength - serialLength;
      for (let i = 0; order === 0 && i < serialLength; i++) order = der[previous + i]! - der[serial + i]!;
      if (order >= 0)
        throw new JpkiError(
          "bad-input",
          `pre-encoded CRL entry ${count + 1}: entries must be in strictly increasing serial order`,
        );
    }
    previous = serial;
    previousLength = serialLength;
    o = end;
  }
  if (count !== input.count)
    throw new JpkiError("bad-input", `${count} pre-encoded CRL entries were given as ${input.count}`);
}

/** Identifier and definite length (X.690 §8.1.3) of a TLV whose content is `length` bytes. */
function header(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | octets.length, ...octets]);
}

// ---------------------------------------------------------------------------------------------
// TBSCertList

/**
 * TBSCertList (RFC 5280 §5.1.2) of a shard: version v2, signature (the CA's algorithm), issuer,
 * thisUpdate, nextUpdate, revokedCertificates (absent when empty, §5.1.2.6), and crlExtensions
 * AuthorityKeyIdentifier, CRLNumber, IssuingDistributionPoint (critical), plus DeltaCRLIndicator
 * (critical) for a delta CRL or FreshestCRL for a complete CRL that announces deltas.
 */
export function buildTbsCertList(input: CrlInput): Buffer {
  const delta = input.deltaOf !== undefined;
  checkDate(input.thisUpdate, "thisUpdate");
  checkDate(input.nextUpdate, "nextUpdate");
  if (input.nextUpdate.getTime() <= input.thisUpdate.getTime())
    throw new JpkiError("bad-input", "nextUpdate must be later than thisUpdate");
  if (delta && input.announceDelta)
    throw new JpkiError("bad-input", "a delta CRL must not carry FreshestCRL (§5.2.6)");
  if (delta && input.deltaOf! >= input.crlNumber)
    throw new JpkiError("bad-input", "a delta CRL's number must be greater than its base CRL's (§5.2.4)");

  const crlExtensions = [
    authorityKeyIdentifierExtension(input.issuer.spki),
    extension(OID_CE_CRL_NUMBER, false, crlNumberValue(input.crlNumber, "CRLNumber")),
  ];
  if (delta)
    crlExtensions.push(
      extension(OID_CE_DELTA_CRL_INDICATOR, true, crlNumberValue(input.deltaOf!, "BaseCRLNumber")),
    );
  crlExtensions.push(issuingDistributionPointExtension(crlUrl(input.baseUrl, input.purpose, input.shard)));
  if (input.announceDelta)
    crlExtensions.push(freshestCrlExtension(deltaCrlUrl(input.baseUrl, input.purpose, input.shard)));

  // First pass: check and measure every entry. A one-shot iterable is kept for the second pass.
  const encoded = "der" in input.entries ? input.entries : undefined;
  const entries: readonly RevokedCertificate[] =
    encoded !== undefined
      ? []
      : Array.isArray(input.entries)
        ? input.entries
        : Array.from(input.entries as Iterable<RevokedCertificate>);
  let entriesLength = 0;
  let previous: Uint8Array | undefined;
  let previousStart = 0;
  if (encoded !== undefined) {
    checkEncodedEntries(encoded);
    entriesLength = encoded.der.length;
  }
  for (const entry of entries) {
    const start = firstByte(entry.serial);
    const fault = entryFault(entry, start, previous, previousStart, delta);
    if (fault)
      throw new JpkiError("bad-input", `CRL entry ${serialToHex(entry.serial) || "(empty)"}: ${fault}`);
    entriesLength += entryLength(entry, start);
    previous = entry.serial;
    previousStart = start;
  }

  const head = [
    VERSION_V2,
    signatureAlgorithmIdentifier(input.issuer.algorithm),
    input.issuer.name,
    x509Time(input.thisUpdate),
    x509Time(input.nextUpdate),
  ];
  const revokedHeader = entriesLength ? header(Tag.sequence, entriesLength) : Buffer.alloc(0);
  const tail = explicit(0, sequence(...crlExtensions));
  let contentLength = revokedHeader.length + entriesLength + tail.length;
  for (const part of head) contentLength += part.length;
  const tbsHeader = header(Tag.sequence, contentLength);

  // Second pass: everything written once into a buffer of the final size.
  const out = Buffer.allocUnsafe(tbsHeader.length + contentLength);
  let offset = 0;
  for (const part of [tbsHeader, ...head, revokedHeader]) {
    out.set(part, offset);
    offset += part.length;
  }
  if (encoded !== undefined) {
    out.set(encoded.der, offset);
    offset += encoded.der.length;
  }
  for (const entry of entries) offset = writeEntry(out, offset, entry, firstByte(entry.serial));
  out.set(tail, offset);
  offset += tail.length;
  if (offset !== out.length) throw new JpkiError("internal", "TBSCertList length miscomputed");
  return out;
}
