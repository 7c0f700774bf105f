import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { runTool } from "../testing/tools.js";
import {
  apduCase,
  encodeCommandApdu,
  hex,
  parseCommandApdu,
  parseResponseApdu,
  responseApdu,
} from "./apdu.js";
import {
  CardStatusError,
  formatStatusWord,
  isValidStatusWord,
  SW,
  statusWordName,
  verifyFailed,
} from "./status-words.js";
import { encodeLength, encodeTlv, findTlv, readTlv, readTlvList } from "./tlv.js";

function swOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CardStatusError);
    return formatStatusWord(error.sw);
  }
  return "no error";
}

test("the four cases, short lengths (ISO/IEC 7816-3 §12.1.3)", () => {
  const case1 = parseCommandApdu(hex("00 20 00 80"));
  assert.deepEqual([apduCase(case1), case1.ne, case1.data.length], [1, undefined, 0]);
  const case2 = parseCommandApdu(hex("00 B0 00 00 00"));
  assert.deepEqual([apduCase(case2), case2.ne], [2, 256]);
  assert.equal(parseCommandApdu(hex("00 B0 01 00 04")).ne, 4);
  const case3 = parseCommandApdu(hex("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"));
  assert.deepEqual(
    [apduCase(case3), case3.p1, case3.p2, case3.data.toString("hex")],
    [3, 4, 12, "d392f000260100000001"],
  );
  const case4 = parseCommandApdu(hex("80 2A 00 80 02 AB CD 00"));
  assert.deepEqual(
    [apduCase(case4), case4.cla, case4.ins, case4.ne, case4.extended],
    [4, 0x80, 0x2a, 256, false],
  );
});

test("the four cases, extended lengths", () => {
  const case2 = parseCommandApdu(hex("00 B0 00 00 00 01 00"));
  assert.deepEqual([apduCase(case2), case2.ne, case2.extended], [2, 256, true]);
  assert.equal(parseCommandApdu(hex("00 B0 00 00 00 00 00")).ne, 65536);
  const data = Buffer.alloc(300, 7);
  const case3 = parseCommandApdu(Buffer.concat([hex("00 DA 00 00 00 01 2C"), data]));
  assert.deepEqual([apduCase(case3), case3.data.length], [3, 300]);
  const case4 = parseCommandApdu(Buffer.concat([hex("00 2A 9E 9A 00 01 2C"), data, hex("00 00")]));
  assert.deepEqual([apduCase(case4), case4.ne], [4, 65536]);
});

test("malformed lengths are 67 00", () => {
  for (const bad of [
    "",
    "00",
    "00 A4 04",
    "00 A4 04 0C 0A D3",
    "00 A4 04 0C 02 01 02 03 04",
    "00 B0 00 00 00 01",
    "00 B0 00 00 00 00 00 00",
    "00 DA 00 00 00 00 00 01",
    "00 DA 00 00 00 00 02 01",
  ])
    assert.equal(
      swOf(() => parseCommandApdu(hex(bad))),
      "6700",
      bad,
    );
});

test("encode is the inverse of parse, short and extended (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.record({
        cla: fc.integer({ min: 0, max: 255 }),
        ins: fc.integer({ min: 0, max: 255 }),
        p1: fc.integer({ min: 0, max: 255 }),
        p2: fc.integer({ min: 0, max: 255 }),
        data: fc.uint8Array({ maxLength: 400 }),
        ne: fc.option(fc.integer({ min: 1, max: 65536 }), { nil: undefined }),
        extended: fc.boolean(),
      }),
      (init) => {
        const parsed = parseCommandApdu(encodeCommandApdu(init));
        assert.deepEqual(
          [parsed.cla, parsed.ins, parsed.p1, parsed.p2],
          [init.cla, init.ins, init.p1, init.p2],
        );
        assert.deepEqual(new Uint8Array(parsed.data), init.data);
        assert.equal(parsed.ne, init.ne);
        const hasLengths = init.data.length > 0 || init.ne !== undefined; // case 1 has no length field
        assert.equal(
          parsed.extended,
          hasLengths && (init.extended || init.data.length > 255 || (init.ne ?? 0) > 256),
        );
      },
    ),
  );
  assert.equal(encodeCommandApdu({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 }).toString("hex"), "00b0000000");
  assert.equal(
    encodeCommandApdu({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536 }).toString("hex"),
    "00b00000000000",
  );
  assert.throws(() => encodeCommandApdu({ cla: 256, ins: 0, p1: 0, p2: 0 }), RangeError);
});

test("response APDUs and status words", () => {
  assert.equal(responseApdu(SW.OK, hex("30 82")).toString("hex"), "30829000");
  assert.deepEqual(parseResponseApdu(hex("01 02 63 C2")), { data: hex("01 02"), sw: 0x63c2 });
  assert.throws(() => parseResponseApdu(hex("90")), RangeError);
  assert.equal(verifyFailed(3), 0x63c3);
  assert.equal(verifyFailed(0), 0x63c0);
  assert.equal(verifyFailed(99), 0x63cf);
  assert.equal(statusWordName(0x6700), "WRONG_LENGTH");
  assert.equal(statusWordName(0x63c1), "VERIFY_FAILED(1)");
  assert.equal(statusWordName(0x6983), "AUTH_METHOD_BLOCKED");
  assert.ok(isValidStatusWord(0x9000) && isValidStatusWord(0x6a82) && isValidStatusWord(0x63c0));
  assert.ok(!isValidStatusWord(0x9001) && !isValidStatusWord(0x6000) && !isValidStatusWord(0x7000));
  for (const sw of Object.values(SW)) assert.ok(isValidStatusWord(sw), formatStatusWord(sw));
});

test("BER-TLV: short and long lengths, multi-byte tags, nesting; OpenSSL parses what we encode", () => {
  assert.equal(encodeLength(0x7f).toString("hex"), "7f");
  assert.equal(encodeLength(0x80).toString("hex"), "8180");
  assert.equal(encodeLength(0x1234).toString("hex"), "821234");
  const inner = encodeTlv(0x04, Buffer.alloc(300, 0xaa));
  const outer = encodeTlv(0x30, [encodeTlv(0x02, hex("01")), inner]);
  assert.equal(outer.subarray(0, 4).toString("hex"), "30820133");
  const { tlv, next } = readTlv(outer);
  assert.equal(next, outer.length);
  assert.equal(tlv.tag, 0x30);
  assert.ok(tlv.constructed);
  const children = readTlvList(tlv.value);
  assert.deepEqual(
    children.map((c) => [c.tag, c.value.length]),
    [
      [0x02, 1],
      [0x04, 300],
    ],
  );
  assert.deepEqual(findTlv(children, 0x04)?.raw, inner);
  const dump = runTool("openssl", ["asn1parse", "-inform", "DER"], { input: outer });
  assert.equal(dump.code, 0, dump.stderr);
  assert.match(dump.stdout, /l= 307 cons: SEQUENCE/);
  assert.match(dump.stdout, /INTEGER\s+:01/);
  assert.match(dump.stdout, /l= 300 prim: OCTET STRING/);
  // Two-byte tag (ISO/IEC 7816-4 5F2D "language preference"), and the 7F49 public-key template.
  assert.deepEqual(readTlv(hex("5F 2D 02 6A 61")).tlv.tag, 0x5f2d);
  assert.deepEqual(readTlv(hex("7F 49 03 81 01 03")).tlv.constructed, true);
  for (const bad of ["", "30", "30 80 00 00", "30 05 01", "1F", "30 85 01 02 03 04 05"])
    assert.throws(() => readTlv(hex(bad)), /malformed BER-TLV/, bad);
});
