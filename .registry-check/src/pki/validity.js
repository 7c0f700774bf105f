/**
 * Dates of the JPKI profiles: Japanese era birth dates, birthdays, and validity periods.
 *
 * Every calendar decision is made in JST (UTC+9, no daylight saving since 1952): a certificate issued
 * at 2025-03-31T16:00Z is issued on 1 April in Japan, and its last day ends at 23:59:59 JST.
 */
import { JpkiError } from "../errors.js";
const JST_OFFSET_MS = 9 * 3600 * 1000;
function isLeapYear(year) {
    return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
function daysInMonth(year, month) {
    return month === 2 ? (isLeapYear(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}
/** Orders calendar dates: negative, zero or positive. */
export function compareDates(a, b) {
    return a.year - b.year || a.month - b.month || a.day - b.day;
}
/** `YYYY-MM-DD`. */
export function formatDate(date) {
    return `${String(date.year).padStart(4, "0")}-${String(date.month).padStart(2, "0")}-${String(date.day).padStart(2, "0")}`;
}
/** The JST calendar date of an instant. */
export function jstDateOf(instant) {
    const shifted = new Date(instant.getTime() + JST_OFFSET_MS);
    return { year: shifted.getUTCFullYear(), month: shifted.getUTCMonth() + 1, day: shifted.getUTCDate() };
}
/** 00:00:00 JST of a calendar date. */
export function startOfJstDay(date) {
    return new Date(utcMidnight(date) - JST_OFFSET_MS);
}
/** 23:59:59 JST of a calendar date: a certificate's last second on its final day. */
export function endOfJstDay(date) {
    return new Date(utcMidnight(date) - JST_OFFSET_MS + 86_399_000);
}
function utcMidnight(date) {
    const d = new Date(0);
    d.setUTCFullYear(date.year, date.month - 1, date.day);
    return d.getTime();
}
/** Era digits of the JPKI birth date (JPKI-FACTS §2): 1 Meiji, 2 Taisho, 3 Showa, 4 Heisei, 5 Reiwa. */
export const ERAS = [
    { digit: 1, name: "明治 Meiji", start: { year: 1868, month: 1, day: 25 } },
    { digit: 2, name: "大正 Taisho", start: { year: 1912, month: 7, day: 30 } },
    { digit: 3, name: "昭和 Showa", start: { year: 1926, month: 12, day: 25 } },
    { digit: 4, name: "平成 Heisei", start: { year: 1989, month: 1, day: 8 } },
    { digit: 5, name: "令和 Reiwa", start: { year: 2019, month: 5, day: 1 } },
];
/** The era a date falls in; throws for dates before Meiji. */
export function eraOf(date) {
    for (let i = ERAS.length - 1; i >= 0; i--) {
        const era = ERAS[i];
        if (compareDates(date, era.start) >= 0)
            return era;
    }
    throw new JpkiError("bad-input", `${formatDate(date)} is before the Meiji era (1868-01-25)`);
}
/**
 * Birth date as the signing certificate's SubjectAltName carries it: `EYYYYMMDD`, the era digit and
 * then the Gregorian date (JPKI-FACTS §2), e.g. 1990-04-01 → `419900401`.
 */
export function eraDate(date) {
    const era = eraOf(date);
    return `${era.digit}${formatDate(date).replaceAll("-", "")}`;
}
/** Reads `EYYYYMMDD` back, checking that the era digit is the right one for the date. */
export function parseEraDate(text) {
    const match = /^([1-5])(\d{4})(\d{2})(\d{2})$/.exec(text);
    if (!match)
        throw new JpkiError("bad-input", `not an EYYYYMMDD date: ${text}`);
    const date = checkedDate(Number(match[2]), Number(match[3]), Number(match[4]), text);
    if (eraOf(date).digit !== Number(match[1]))
        throw new JpkiError("bad-input", `wrong era digit in ${text}`);
    return date;
}
function checkedDate(year, month, day, text) {
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month))
        throw new JpkiError("bad-input", `not a calendar date: ${text}`);
    return { year, month, day };
}
/**
 * A birth date typed as `YYYY-MM-DD`: a real calendar date (no 2023-02-29), not after today in JST,
 * and inside an era the JPKI format can write.
 */
export function parseBirthDate(text, now = new Date()) {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    if (!match)
        throw new JpkiError("bad-input", `birth date must be YYYY-MM-DD: ${JSON.stringify(text)}`);
    const date = checkedDate(Number(match[1]), Number(match[2]), Number(match[3]), text);
    if (compareDates(date, jstDateOf(now)) > 0)
        throw new JpkiError("bad-input", `birth date ${text} is in the future`);
    eraOf(date);
    return date;
}
// ---------------------------------------------------------------------------------------------
// Birthdays and ages
/**
 * The birthday of `birth` in `year`. A 29 February birthday falls on 28 February in a common year:
 * under 年齢計算ニ関スル法律 ages are counted by 民法143条, whose proviso ends a period that has no
 * corresponding day at the end of the month, i.e. at the end of 28 February. The card's and the
 * certificates' expiry for such a person is 28 February (the last day of the month) likewise.
 */
export function birthdayIn(birth, year) {
    if (birth.month === 2 && birth.day === 29 && !isLeapYear(year))
        return { year, month: 2, day: 28 };
    return { year, month: birth.month, day: birth.day };
}
/**
 * The `n`th birthday strictly after `date`: issued on a birthday, the first one counted is the next
 * year's (so the 5th is exactly 5 years later); issued the day before, the next day is the first.
 */
export function nthBirthdayAfter(birth, date, n) {
    if (!Number.isInteger(n) || n < 1)
        throw new RangeError(`n must be a positive integer: ${n}`);
    const firstYear = compareDates(birthdayIn(birth, date.year), date) > 0 ? date.year : date.year + 1;
    return birthdayIn(birth, firstYear + n - 1);
}
/** Age in whole years on `date` (counted in birthdays reached, as above). */
export function ageOn(birth, date) {
    const age = date.year - birth.year;
    return compareDates(birthdayIn(birth, date.year), date) > 0 ? age - 1 : age;
}
/** Adult age in Japan since 2022-04-01 (民法4条 as amended in 2018). */
export const AGE_OF_MAJORITY = 18;
/**
 * Expiry date of a My Number card issued on `issued`: the 10th birthday after issuance for a holder
 * aged 18 or more at issuance, the 5th for a minor (the 総務省 ordinance on the card, with the age of
 * majority at 18 since 2022). The card is valid through that day (JST).
 */
export function cardExpiryDate(birth, issued) {
    return nthBirthdayAfter(birth, issued, ageOn(birth, issued) >= AGE_OF_MAJORITY ? 10 : 5);
}
/** Truncates to whole seconds: certificate times carry no fractions (RFC 5280 §4.1.2.5). */
export function wholeSeconds(instant) {
    return new Date(Math.floor(instant.getTime() / 1000) * 1000);
}
/**
 * Validity of a citizen's certificate (card or smartphone; JPKI-FACTS §2): from the issuance instant
 * until 23:59:59 JST of the 5th birthday after the JST issuance date, or until the card's expiry if that
 * comes first. `cardExpiry` is an instant (e.g. the card certificate's notAfter, or endOfJstDay of
 * cardExpiryDate), so a smartphone certificate never outlives the card's.
 */
export function citizenCertificateValidity(birth, issuedAt, cardExpiry) {
    const notBefore = wholeSeconds(issuedAt);
    const fifthBirthday = endOfJstDay(nthBirthdayAfter(birth, jstDateOf(issuedAt), 5));
    const notAfter = cardExpiry.getTime() < fifthBirthday.getTime() ? wholeSeconds(cardExpiry) : fifthBirthday;
    if (notAfter.getTime() <= notBefore.getTime())
        throw new JpkiError("bad-input", "the card has expired: no certificate can be issued on it");
    return { notBefore, notAfter };
}
/** Adds years to a JST calendar date; 29 February becomes 28 February in a common year. */
function addYears(date, years) {
    return birthdayIn(date, date.year + years);
}
/** The CAs' lifetime (JPKI-FACTS §2). */
export const CA_VALIDITY_YEARS = 10;
/** Root CA validity: from now until 23:59:59 JST of the same JST date 10 years later. */
export function caValidity(issuedAt, years = CA_VALIDITY_YEARS) {
    const notBefore = wholeSeconds(issuedAt);
    return { notBefore, notAfter: endOfJstDay(addYears(jstDateOf(issuedAt), years)) };
}
/**
 * A short validity (OCSP responder certificates, RFC 6960 §4.2.2.2.1: a short lifetime stands in for
 * revocation checking under id-pkix-ocsp-nocheck): `days` days from now, minus one second.
 */
export function shortValidity(issuedAt, days) {
    if (!(days > 0))
        throw new RangeError(`days must be positive: ${days}`);
    const notBefore = wholeSeconds(issuedAt);
    return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000 - 1000) };
}
//# sourceMappingURL=validity.js.map