/**
 * Local government codes (全国地方公共団体コード, JIS X 0401 for the prefecture and the ministry's
 * municipality numbers): 2 digits of prefecture (01 Hokkaido to 47 Okinawa), 3 of municipality, and a
 * check digit. The check digit is the last digit of 11 − (Σ digitᵢ × weightᵢ mod 11) with weights
 * 6, 5, 4, 3, 2 (総務省「全国地方公共団体コード」の検査数字): 13101 (千代田区) → 131016, 13113 (渋谷区)
 * → 131130. A code whose municipality part is 000 names a prefecture, which runs no counter.
 */
import { JpkiError } from "../errors.js";

const WEIGHTS = [6, 5, 4, 3, 2] as const;

/** The check digit of a 5-digit prefecture-and-municipality number. */
export function municipalityCheckDigit(fiveDigits: string): number {
  if (!/^\d{5}$/.test(fiveDigits))
    throw new RangeError(`expected 5 digits, got ${JSON.stringify(fiveDigits)}`);
  let sum = 0;
  for (let i = 0; i < 5; i++) sum += Number(fiveDigits[i]) * WEIGHTS[i]!;
  return (11 - (sum % 11)) % 10;
}

/**
 * Reads a municipality's code as a clerk types it (full-width digits and spaces or hyphens are fine)
 * and returns its 6 digits; refuses anything else with what is wrong.
 */
export function parseMunicipalityCode(text: string): string {
  const digits = text.normalize("NFKC").replace(/[\s-]/g, "");
  const bad = (why: string): never => {
    throw new JpkiError(
      "bad-input",
      `${JSON.stringify(text)} is not a municipality code (全国地方公共団体コード, 6 digits such as 131016): ${why}`,
    );
  };
  if (!/^\d{6}$/.test(digits)) bad("it must have 6 digits");
  const prefecture = Number(digits.slice(0, 2));
  if (prefecture < 1 || prefecture > 47) bad("the first two digits name a prefecture, 01 to 47");
  if (digits.slice(2, 5) === "000") bad("it is a prefecture's code, not a municipality's");
  const check = municipalityCheckDigit(digits.slice(0, 5));
  if (Number(digits[5]) !== check) bad(`the check digit should be ${check}: check the code`);
  return digits;
}

/** Longest municipality name accepted (the longest real one is far shorter). */
const MAX_NAME = 60;

/**
 * A municipality's full name, prefecture first (東京都千代田区, 神奈川県横浜市中区): normalised (NFKC,
 * no spaces) so that it compares with an address of record, which starts with it.
 */
export function parseMunicipalityName(text: string): string {
  const name = text.normalize("NFKC").replace(/\s/g, "");
  if (name === "" || [...name].length > MAX_NAME)
    throw new JpkiError("bad-input", `a municipality's name has 1 to ${MAX_NAME} characters`);
  if (!/^.{2,4}[都道府県]/u.test(name))
    throw new JpkiError(
      "bad-input",
      `write the municipality's full name with its prefecture, as addresses start (e.g. 東京都千代田区): ${JSON.stringify(text)}`,
    );
  return name;
}

/** Whether `address` (an address of record) lies in the municipality named `name` (parseMunicipalityName). */
export function addressInMunicipality(address: string, name: string): boolean {
  return address.normalize("NFKC").replace(/\s/g, "").startsWith(name);
}
