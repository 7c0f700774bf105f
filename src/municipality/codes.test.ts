/**
 * Local government codes against published ones, and the parser's properties: every well-formed code
 * reads back, a wrong check digit or a prefecture's code is refused, and nothing else is accepted.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import {
  addressInMunicipality,
  municipalityCheckDigit,
  parseMunicipalityCode,
  parseMunicipalityName,
} from "./codes.js";

test("check digits of published codes (総務省 全国地方公共団体コード)", () => {
  // 千代田区, 新宿区 (remainder 0), 品川区 (remainder 10), 渋谷区 (remainder 1), 札幌市, 横浜市, 大阪市, 那覇市.
  for (const code of ["131016", "131041", "131091", "131130", "011002", "141003", "271004", "472018"])
    assert.equal(parseMunicipalityCode(code), code);
  assert.equal(parseMunicipalityCode("１３１０１６"), "131016", "full-width digits");
  assert.equal(parseMunicipalityCode(" 13101-6 "), "131016");
  assert.throws(() => parseMunicipalityCode("131017"), /check digit should be 6/);
  assert.throws(() => parseMunicipalityCode("130001"), /prefecture's code/);
  assert.throws(() => parseMunicipalityCode("481009"), /01 to 47/);
  assert.throws(() => parseMunicipalityCode("13101"), /6 digits/);
});

const fiveDigits = fc
  .tuple(fc.integer({ min: 1, max: 47 }), fc.integer({ min: 1, max: 999 }))
  .map(([p, m]) => `${String(p).padStart(2, "0")}${String(m).padStart(3, "0")}`);

test("property: a code with its check digit reads back; any other last digit is refused", () => {
  fc.assert(
    fc.property(fiveDigits, fc.integer({ min: 1, max: 9 }), (five, shift) => {
      const check = municipalityCheckDigit(five);
      assert.equal(parseMunicipalityCode(`${five}${check}`), `${five}${check}`);
      assert.throws(() => parseMunicipalityCode(`${five}${(check + shift) % 10}`), JpkiError);
    }),
  );
});

test("property: any text either reads as a valid 6-digit code or is refused with a JpkiError", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^\d{5,7}$/)), (text) => {
      try {
        const code = parseMunicipalityCode(text);
        assert.match(code, /^\d{6}$/);
        assert.equal(Number(code[5]), municipalityCheckDigit(code.slice(0, 5)));
      } catch (error) {
        assert.ok(error instanceof JpkiError && error.code === "bad-input", String(error));
      }
    }),
  );
});

test("municipality names compare with addresses of record", () => {
  const name = parseMunicipalityName("東京都 千代田区");
  assert.equal(name, "東京都千代田区");
  assert.ok(addressInMunicipality("東京都千代田区霞が関二丁目1番2号", name));
  assert.ok(!addressInMunicipality("東京都中央区銀座1-1", name));
  assert.ok(addressInMunicipality("北海道札幌市中央区北1条西2丁目", parseMunicipalityName("北海道札幌市")));
  assert.throws(() => parseMunicipalityName("千代田区"), /with its prefecture/);
});
