import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { ageOn, birthdayIn, cardExpiryDate, caValidity, citizenCertificateValidity, ERAS, endOfJstDay, eraDate, formatDate, jstDateOf, nthBirthdayAfter, parseBirthDate, parseEraDate, shortValidity, startOfJstDay, } from "./validity.js";
const d = (text) => {
    const [year, month, day] = text.split("-").map(Number);
    return { year, month, day };
};
function previousDay(date) {
    const t = new Date(Date.UTC(date.year, date.month - 1, date.day) - 86_400_000);
    return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}
describe("Japanese era dates (JPKI-FACTS §2: EYYYYMMDD)", () => {
    test("examples in each era", () => {
        assert.equal(eraDate(d("1868-01-25")), "118680125");
        assert.equal(eraDate(d("1912-07-29")), "119120729");
        assert.equal(eraDate(d("1912-07-30")), "219120730");
        assert.equal(eraDate(d("1926-12-24")), "219261224");
        assert.equal(eraDate(d("1926-12-25")), "319261225");
        assert.equal(eraDate(d("1989-01-07")), "319890107");
        assert.equal(eraDate(d("1989-01-08")), "419890108");
        assert.equal(eraDate(d("2019-04-30")), "420190430");
        assert.equal(eraDate(d("2019-05-01")), "520190501");
    });
    test("dates before Meiji are refused", () => {
        assert.throws(() => eraDate(d("1868-01-24")), JpkiError);
        assert.throws(() => eraDate(d("1700-01-01")), JpkiError);
    });
    test("every era boundary: the day before is the previous era, the day itself the new one", () => {
        fc.assert(fc.property(fc.constantFrom(...ERAS.slice(1)), (era) => {
            const before = previousDay(era.start);
            assert.equal(eraDate(era.start)[0], String(era.digit));
            assert.equal(eraDate(before)[0], String(era.digit - 1));
            assert.deepEqual(parseEraDate(eraDate(era.start)), era.start);
            assert.deepEqual(parseEraDate(eraDate(before)), before);
        }));
    });
    test("round trip of any date since Meiji; a wrong era digit is refused", () => {
        fc.assert(fc.property(fc.date({
            min: new Date("1868-01-25T00:00:00Z"),
            max: new Date("2200-12-31T00:00:00Z"),
            noInvalidDate: true,
        }), (t) => {
            const date = { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
            const text = eraDate(date);
            assert.match(text, /^[1-5]\d{8}$/);
            assert.equal(text.slice(1), formatDate(date).replaceAll("-", ""));
            assert.deepEqual(parseEraDate(text), date);
            const wrong = `${(Number(text[0]) % 5) + 1}${text.slice(1)}`;
            assert.throws(() => parseEraDate(wrong), JpkiError);
        }));
    });
});
describe("birth date input", () => {
    const now = new Date("2025-06-15T03:00:00Z");
    test("accepts real dates", () => {
        assert.deepEqual(parseBirthDate("1990-04-01", now), d("1990-04-01"));
        assert.deepEqual(parseBirthDate("2024-02-29", now), d("2024-02-29"));
    });
    test("refuses malformed, impossible, future and pre-Meiji dates", () => {
        for (const bad of [
            "1990-4-1",
            "19900401",
            "2023-02-29",
            "1990-13-01",
            "1990-04-31",
            "2025-06-16",
            "1850-01-01",
            "",
        ])
            assert.throws(() => parseBirthDate(bad, now), JpkiError, bad);
    });
    test("'today' is the JST date: born 16 June is fine at 2025-06-15T15:00Z (00:00 JST on the 16th)", () => {
        assert.throws(() => parseBirthDate("2025-06-16", new Date("2025-06-15T14:59:59Z")), JpkiError);
        assert.deepEqual(parseBirthDate("2025-06-16", new Date("2025-06-15T15:00:00Z")), d("2025-06-16"));
    });
});
describe("JST calendar", () => {
    test("the JST date of an instant crosses midnight at 15:00 UTC", () => {
        assert.deepEqual(jstDateOf(new Date("2025-03-31T14:59:59Z")), d("2025-03-31"));
        assert.deepEqual(jstDateOf(new Date("2025-03-31T15:00:00Z")), d("2025-04-01"));
    });
    test("start and end of a JST day", () => {
        assert.equal(startOfJstDay(d("2025-04-01")).toISOString(), "2025-03-31T15:00:00.000Z");
        assert.equal(endOfJstDay(d("2025-04-01")).toISOString(), "2025-04-01T14:59:59.000Z");
    });
});
describe("birthdays (年齢計算ニ関スル法律, 民法143条)", () => {
    test("29 February falls on 28 February in common years, on 29 February in leap years", () => {
        assert.deepEqual(birthdayIn(d("2000-02-29"), 2025), d("2025-02-28"));
        assert.deepEqual(birthdayIn(d("2000-02-29"), 2028), d("2028-02-29"));
        assert.deepEqual(birthdayIn(d("2000-02-29"), 2100), d("2100-02-28"));
    });
    test("the nth birthday is strictly after the date", () => {
        const birth = d("1990-04-01");
        assert.deepEqual(nthBirthdayAfter(birth, d("2025-04-01"), 5), d("2030-04-01"));
        assert.deepEqual(nthBirthdayAfter(birth, d("2025-03-31"), 5), d("2029-04-01"));
        assert.deepEqual(nthBirthdayAfter(birth, d("2025-04-02"), 1), d("2026-04-01"));
    });
    test("a 29 February person issued on 28 February of a common year: that is the birthday", () => {
        const birth = d("2000-02-29");
        assert.deepEqual(nthBirthdayAfter(birth, d("2025-02-28"), 5), d("2030-02-28"));
        assert.deepEqual(nthBirthdayAfter(birth, d("2025-02-27"), 5), d("2029-02-28"));
        assert.deepEqual(nthBirthdayAfter(birth, d("2023-03-01"), 5), d("2028-02-29"));
        assert.deepEqual(nthBirthdayAfter(birth, d("2024-02-29"), 4), d("2028-02-29"));
    });
    test("age counts reached birthdays", () => {
        assert.equal(ageOn(d("2007-04-01"), d("2025-03-31")), 17);
        assert.equal(ageOn(d("2007-04-01"), d("2025-04-01")), 18);
        assert.equal(ageOn(d("2004-02-29"), d("2022-02-28")), 18);
    });
    test("property: the 5th birthday after a date is 4 to 5 years later and falls on a birthday", () => {
        fc.assert(fc.property(fc.date({
            min: new Date("1900-01-01T00:00:00Z"),
            max: new Date("2020-12-31T00:00:00Z"),
            noInvalidDate: true,
        }), fc.integer({ min: 0, max: 80 * 366 }), (b, offset) => {
            const birth = { year: b.getUTCFullYear(), month: b.getUTCMonth() + 1, day: b.getUTCDate() };
            const t = new Date(b.getTime() + offset * 86_400_000);
            const issued = { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
            const fifth = nthBirthdayAfter(birth, issued, 5);
            assert.deepEqual(fifth, birthdayIn(birth, fifth.year));
            assert.ok(fifth.year - issued.year === 5 || fifth.year - issued.year === 4);
            const first = nthBirthdayAfter(birth, issued, 1);
            assert.ok(formatDate(first) > formatDate(issued));
            assert.ok(formatDate(birthdayIn(birth, first.year - 1)) <= formatDate(issued));
        }));
    });
});
describe("citizen certificate validity (JPKI-FACTS §2)", () => {
    const farCard = new Date("2100-01-01T00:00:00Z");
    test("issued on the birthday: until 23:59:59 JST of the birthday 5 years later", () => {
        const v = citizenCertificateValidity(d("1990-04-01"), new Date("2025-04-01T01:00:00Z"), farCard);
        assert.equal(v.notBefore.toISOString(), "2025-04-01T01:00:00.000Z");
        assert.equal(v.notAfter.toISOString(), "2030-04-01T14:59:59.000Z");
    });
    test("issued the day before the birthday: the next day is the first birthday", () => {
        const v = citizenCertificateValidity(d("1990-04-01"), new Date("2025-03-31T01:00:00Z"), farCard);
        assert.equal(v.notAfter.toISOString(), "2029-04-01T14:59:59.000Z");
    });
    test("JST vs UTC: 2025-03-31T15:30Z is already the birthday in Japan", () => {
        const v = citizenCertificateValidity(d("1990-04-01"), new Date("2025-03-31T15:30:00Z"), farCard);
        assert.equal(v.notAfter.toISOString(), "2030-04-01T14:59:59.000Z");
        const w = citizenCertificateValidity(d("1990-04-01"), new Date("2025-03-31T14:59:59Z"), farCard);
        assert.equal(w.notAfter.toISOString(), "2029-04-01T14:59:59.000Z");
    });
    test("born 29 February: ends on 28 February of a common year, 29 February of a leap year", () => {
        const birth = d("2000-02-29");
        const common = citizenCertificateValidity(birth, new Date("2025-02-28T03:00:00Z"), farCard);
        assert.equal(common.notAfter.toISOString(), "2030-02-28T14:59:59.000Z");
        const leap = citizenCertificateValidity(birth, new Date("2023-06-01T03:00:00Z"), farCard);
        assert.equal(leap.notAfter.toISOString(), "2028-02-29T14:59:59.000Z");
    });
    test("a card expiring before the 5th birthday caps the certificate", () => {
        const cardExpiry = endOfJstDay(d("2027-01-10"));
        const v = citizenCertificateValidity(d("1990-04-01"), new Date("2025-04-01T01:00:00Z"), cardExpiry);
        assert.equal(v.notAfter.toISOString(), "2027-01-10T14:59:59.000Z");
    });
    test("an expired card yields no validity", () => {
        assert.throws(() => citizenCertificateValidity(d("1990-04-01"), new Date("2025-04-01T01:00:00Z"), new Date("2025-04-01T00:00:00Z")), JpkiError);
    });
    test("notBefore drops milliseconds (RFC 5280 times have whole seconds)", () => {
        const v = citizenCertificateValidity(d("1990-04-01"), new Date("2025-04-01T01:00:00.987Z"), farCard);
        assert.equal(v.notBefore.toISOString(), "2025-04-01T01:00:00.000Z");
    });
});
describe("card expiry and CA validity", () => {
    test("adults: 10th birthday after issuance; minors (under 18): 5th", () => {
        assert.deepEqual(cardExpiryDate(d("1990-04-01"), d("2025-04-01")), d("2035-04-01"));
        assert.deepEqual(cardExpiryDate(d("2007-04-02"), d("2025-04-01")), d("2029-04-02"));
        assert.deepEqual(cardExpiryDate(d("2007-04-01"), d("2025-04-01")), d("2035-04-01"));
    });
    test("a minor's card expiry is earlier than a 5-year certificate issued later on it", () => {
        const birth = d("2010-07-01");
        const cardExpiry = endOfJstDay(cardExpiryDate(birth, d("2024-01-10")));
        const v = citizenCertificateValidity(birth, new Date("2026-01-10T00:00:00Z"), cardExpiry);
        assert.equal(v.notAfter.toISOString(), "2028-07-01T14:59:59.000Z");
    });
    test("CA: 10 years, until 23:59:59 JST", () => {
        const v = caValidity(new Date("2025-04-01T01:02:03.400Z"));
        assert.equal(v.notBefore.toISOString(), "2025-04-01T01:02:03.000Z");
        assert.equal(v.notAfter.toISOString(), "2035-04-01T14:59:59.000Z");
    });
    test("short validity for OCSP responders", () => {
        const v = shortValidity(new Date("2025-04-01T00:00:00Z"), 7);
        assert.equal(v.notAfter.toISOString(), "2025-04-07T23:59:59.000Z");
    });
});
//# sourceMappingURL=validity.test.js.map