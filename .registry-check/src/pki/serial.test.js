import * as assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { integer, readDer, readInteger } from "./der.js";
import { randomSerial, SERIAL_BYTES, serialFromHex, serialToHex, shardOf } from "./serial.js";
test("random serials: positive, 16 content bytes, minimal DER (RFC 5280 §4.1.2.2, X.690 §8.3.2)", () => {
    const seen = new Set();
    for (let i = 0; i < 2000; i++) {
        const serial = randomSerial();
        assert.equal(serial.length, SERIAL_BYTES);
        assert.ok(serial[0] >= 0x01 && serial[0] <= 0x7f);
        const encoded = integer(serial);
        assert.equal(encoded.subarray(0, 2).toString("hex"), "0210");
        assert.ok(readInteger(readDer(encoded)) > 0n);
        seen.add(serialToHex(serial));
    }
    assert.equal(seen.size, 2000);
});
test("random serials carry at least 64 random bits: every bit below the top one varies", () => {
    let or = Buffer.alloc(SERIAL_BYTES);
    let and = Buffer.alloc(SERIAL_BYTES, 0xff);
    for (let i = 0; i < 500; i++) {
        const s = randomSerial();
        or = Buffer.from(or.map((b, j) => b | s[j]));
        and = Buffer.from(and.map((b, j) => b & s[j]));
    }
    assert.equal(or.toString("hex"), `7f${"ff".repeat(15)}`);
    assert.equal(and.toString("hex"), "00".repeat(16));
});
test("hex forms", () => {
    assert.equal(serialToHex(Buffer.from("0102abcdef", "hex")), "0102abcdef");
    assert.equal(serialFromHex("0x01:02:AB:cd:EF").toString("hex"), "0102abcdef");
    assert.equal(serialFromHex("00000abc").toString("hex"), "0abc");
    assert.equal(serialFromHex("abc").toString("hex"), "0abc");
    for (const bad of ["", "xyz", "00", "0", "01".repeat(21)])
        assert.throws(() => serialFromHex(bad), JpkiError, bad);
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (bytes) => {
        fc.pre(bytes[0] !== 0);
        assert.deepEqual(serialFromHex(serialToHex(bytes)), Buffer.from(bytes));
    }));
});
test("shardOf is deterministic, in range, and spreads random serials", () => {
    const serial = Buffer.from("7f000000000000000000000000000103", "hex");
    assert.equal(shardOf(serial, 16), 0x103 % 16);
    assert.equal(shardOf(serial, 1), 0);
    assert.throws(() => shardOf(serial, 0), RangeError);
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) {
        const shard = shardOf(randomSerial(), 8);
        counts[shard] = counts[shard] + 1;
    }
    for (const c of counts)
        assert.ok(c > 800 && c < 1200, `unbalanced shards: ${counts}`);
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 100_000 }), (s, n) => {
        const shard = shardOf(s, n);
        assert.ok(Number.isInteger(shard) && shard >= 0 && shard < n);
        assert.equal(shard, shardOf(Buffer.from(s), n));
    }));
});
//# sourceMappingURL=serial.test.js.map