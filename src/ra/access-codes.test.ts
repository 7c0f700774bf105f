/**
 * The access code's form, property-based (fast-check): every code J-LIS prints reads back as itself
 * however a person types it (case, spaces, dashes, full width, O/I/L), every single mistyped
 * character and every swap of neighbours but 0↔Z is caught by the check character, and any input is
 * either a printed code or a bad-input refusal, never something else.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { accessCodeCheckCharacter, newAccessCode, parseAccessCode } from "./access-codes.js";
import { CROCKFORD } from "./applications.js";

const PRINTED = /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/;

/** A printed code from 15 arbitrary characters of the alphabet and their check character. */
const codes = fc.array(fc.constantFrom(...CROCKFORD), { minLength: 15, maxLength: 15 }).map((chars) => {
  const data = chars.join("");
  return (data + accessCodeCheckCharacter(data)).match(/.{4}/g)!.join("-");
});

const isMistake = (error: unknown) =>
  error instanceof JpkiError &&
  error.code === "bad-input" &&
  /did not count as an attempt/.test(error.message);

const toFullWidth = (s: string) =>
  s.replace(/[0-9A-Za-z-]/g, (c) => (c === "-" ? "－" : String.fromCharCode(c.charCodeAt(0) + 0xfee0)));

test("new codes are printed as 4 groups of 4 and read back as themselves; 2000 are all different", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const code = newAccessCode();
    assert.match(code, PRINTED);
    assert.equal(parseAccessCode(code), code);
    seen.add(code);
  }
  assert.equal(seen.size, 2000);
});

test("a code reads the same however it is typed: case, spacing, dashes, full width, O for 0, I and L for 1", () => {
  fc.assert(
    fc.property(
      codes,
      fc.constantFrom("", " ", "-", "  ", " - ", "ー"),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom("I", "L", "i", "l"),
      (code, separator, lower, fullWidth, lookAlikes, one) => {
        let typed = code.split("-").join(separator);
        if (lookAlikes) typed = typed.replace(/0/g, "O").replace(/1/g, one);
        if (lower) typed = typed.toLowerCase();
        if (fullWidth) typed = toFullWidth(typed);
        assert.equal(parseAccessCode(` ${typed}\n`), code);
      },
    ),
    { numRuns: 2000 },
  );
});

test("any single mistyped character is a typing mistake, refused without counting as an attempt", () => {
  fc.assert(
    fc.property(codes, fc.nat(15), fc.constantFrom(...CROCKFORD), (code, position, replacement) => {
      const characters = code.replace(/-/g, "").split("");
      fc.pre(characters[position] !== replacement);
      characters[position] = replacement;
      assert.throws(() => parseAccessCode(characters.join("")), isMistake);
    }),
    { numRuns: 3000 },
  );
});

test("two neighbours swapped are caught, except 0 and Z (Luhn mod 32's one blind pair)", () => {
  fc.assert(
    fc.property(codes, fc.nat(14), (code, position) => {
      const characters = code.replace(/-/g, "").split("");
      const [a, b] = [characters[position]!, characters[position + 1]!];
      fc.pre(a !== b && !(new Set([a, b]).has("0") && new Set([a, b]).has("Z")));
      characters[position] = b;
      characters[position + 1] = a;
      assert.throws(() => parseAccessCode(characters.join("")), isMistake);
    }),
    { numRuns: 3000 },
  );
});

test("any input is either a printed code (and reads back as itself) or a bad-input refusal", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 24 })),
      (text) => {
        let parsed: string;
        try {
          parsed = parseAccessCode(text);
        } catch (error) {
          assert.ok(isMistake(error), String(error));
          return;
        }
        assert.match(parsed, PRINTED);
        assert.equal(parseAccessCode(parsed), parsed);
      },
    ),
    { numRuns: 5000 },
  );
});

test("wrong lengths and characters outside the alphabet say what is wrong", () => {
  assert.throws(() => parseAccessCode("7KQ2-M9XD-3F8A"), /12 characters instead of 16/);
  assert.throws(() => parseAccessCode("7KQ2-M9XD-3F8A-W1PU"), /"U" is not one of its characters/);
  assert.throws(() => parseAccessCode(""), /0 characters instead of 16/);
});
