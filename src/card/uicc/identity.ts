/**
 * A SIM's identity: the ICCID (ITU-T E.118), whose issuer identification number names the carrier
 * that issued the SIM (the credential is routed by it, never by the brand on the contract), and the
 * EID of the eUICC (GSMA SGP.29).
 */
import { randomInt } from "node:crypto";
import { JpkiError } from "../../errors.js";

/** E.118: major industry identifier 89 (telecommunications), then the country code (Japan: 81). */
const ICCID_PREFIX = "8981";

/** Luhn check digit (ISO/IEC 7812-1 Annex B) over a string of digits. */
export function luhnCheckDigit(digits: string): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    // Doubling starts from the rightmost digit of the payload (the check digit will follow it).
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

const randomDigits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join("");

/**
 * A new 19-digit ICCID: 89, 81, the carrier's 2-digit issuer identifier, 12 digits of account number,
 * then the Luhn check digit.
 */
export function newIccid(issuerNumber: string): string {
  if (!/^\d{2}$/.test(issuerNumber))
    throw new JpkiError("bad-input", `an issuer identifier is 2 digits: ${issuerNumber}`);
  const body = `${ICCID_PREFIX}${issuerNumber}${randomDigits(12)}`;
  return body + luhnCheckDigit(body);
}

/** Whether `iccid` is 19 digits starting 8981 with a valid Luhn check digit. */
export function isValidIccid(iccid: string): boolean {
  return /^8981\d{15}$/.test(iccid) && luhnCheckDigit(iccid.slice(0, -1)) === iccid.slice(-1);
}

/** The 2-digit issuer identifier of a valid ICCID: which carrier issued the SIM. */
export function iccidIssuerNumber(iccid: string): string {
  if (!isValidIccid(iccid)) throw new JpkiError("bad-input", `not a valid ICCID: ${iccid}`);
  return iccid.slice(4, 6);
}

/**
 * EF ICCID (ETSI TS 102 221 §13.2): 10 bytes of BCD with the nibbles of each byte swapped, the last
 * digit padded with F.
 */
export function iccidFileContent(iccid: string): Buffer {
  const digits = iccid.padEnd(20, "F");
  const out = Buffer.alloc(10);
  for (let i = 0; i < 10; i++) out[i] = Number.parseInt(digits[2 * i + 1]! + digits[2 * i]!, 16);
  return out;
}

/** The inverse of iccidFileContent. */
export function iccidFromFileContent(content: Uint8Array): string {
  let digits = "";
  for (const byte of content) digits += (byte & 0x0f).toString(16) + (byte >> 4).toString(16);
  return digits.replace(/f+$/i, "");
}

/** 97 − (n·100 mod 97), over a decimal string too long for a number (ISO/IEC 7064 MOD 97-10). */
function mod97(digits: string): number {
  let rest = 0;
  for (const d of digits) rest = (rest * 10 + Number(d)) % 97;
  return rest;
}

/**
 * A new 32-digit EID (SGP.29): 89, the country code 081 (Japan), a 3-digit maker identifier, 10 digits
 * the maker uses as it likes (zeros here), 12 digits of individual number, and 2 check digits making
 * the whole number ≡ 1 (mod 97).
 */
export function newEid(makerNumber = "999"): string {
  if (!/^\d{3}$/.test(makerNumber))
    throw new JpkiError("bad-input", `a maker identifier is 3 digits: ${makerNumber}`);
  const body = `89081${makerNumber}${"0".repeat(10)}${randomDigits(12)}`;
  const check = 98 - mod97(`${body}00`);
  return body + String(check).padStart(2, "0");
}

/** Whether `eid` is 32 digits starting 89 whose check digits hold. */
export function isValidEid(eid: string): boolean {
  return /^89\d{30}$/.test(eid) && mod97(eid) === 1;
}

/** The EID as the eUICC sends it (tag 5A, 16 bytes of packed BCD, SGP.22 GetEUICCData). */
export function eidBytes(eid: string): Buffer {
  return Buffer.from(eid, "hex");
}
