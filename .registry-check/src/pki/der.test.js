import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { children, DerError, generalizedTime, readDer, readInteger, readOid, readString, readTime, sequence, setOf, tlv, utcTime, x509Time, } from "./der.js";
/** The textbook encoding (X.690 §8.1.3), written independently of der.ts's single-allocation writer. */
function referenceTlv(tag, content) {
    const n = content.length;
    let length;
    if (n < 0x80)
        length = [n];
    else {
        const bytes = [];
        for (let v = n; v > 0; v = Math.floor(v / 256))
            bytes.unshift(v % 256);
        length = [0x80 | bytes.length, ...bytes];
    }
    return Buffer.concat([Buffer.from([tag, ...length]), content]);
}
describe("DER writer", () => {
    test("length forms at their boundaries (X.690 §8.1.3.4, §8.1.3.5)", () => {
        for (const [n, header] of [
            [0, "0400"],
            [127, "047f"],
            [128, "048180"],
            [255, "0481ff"],
            [256, "04820100"],
            [65535, "0482ffff"],
            [65536, "0483010000"],
        ]) {
            const out = tlv(0x04, Buffer.alloc(n, 0xab));
            assert.equal(out.subarray(0, header.length / 2).toString("hex"), header);
            assert.equal(out.length, header.length / 2 + n);
        }
    });
    test("tlv, sequence and setOf agree with the textbook encoding", () => {
        fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (items) => {
            const concat = Buffer.concat(items);
            assert.deepEqual(tlv(0x04, concat), referenceTlv(0x04, concat));
            assert.deepEqual(sequence(...items), referenceTlv(0x30, concat));
            const sorted = Buffer.concat([...items].sort(Buffer.compare));
            assert.deepEqual(setOf(...items), referenceTlv(0x31, sorted));
        }));
    });
    test("times (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050", () => {
        assert.equal(utcTime(new Date("2025-04-01T14:59:59Z")).toString("hex"), "170d3235303430313134353935395a");
        assert.equal(generalizedTime(new Date("2050-01-01T00:00:00Z")).toString("hex"), "180f32303530303130313030303030305a");
        assert.equal(x509Time(new Date("2049-12-31T23:59:59Z"))[0], 0x17);
        assert.equal(x509Time(new Date("2050-01-01T00:00:00Z"))[0], 0x18);
        assert.equal(x509Time(new Date("1949-12-31T23:59:59Z"))[0], 0x18);
        assert.throws(() => utcTime(new Date("2050-01-01T00:00:00Z")), DerError);
        assert.throws(() => x509Time(new Date(Number.NaN)), DerError);
    });
    test("times round trip through the reader, to the second", () => {
        fc.assert(fc.property(fc.date({
            min: new Date("0001-01-01T00:00:00Z"),
            max: new Date("9999-12-31T23:59:59Z"),
            noInvalidDate: true,
        }), (date) => {
            const whole = new Date(Math.floor(date.getTime() / 1000) * 1000);
            assert.equal(readTime(readDer(x509Time(date))).getTime(), whole.getTime());
        }));
    });
});
/** Walks every node and reads each primitive the ways a parser might, as an attacker would make it. */
function walk(node, depth = 0) {
    if (node.tag & 0x20) {
        for (const child of children(node))
            walk(child, depth + 1);
        return;
    }
    for (const read of [readInteger, readOid, readString, readTime]) {
        try {
            read(node);
        }
        catch (error) {
            if (!(error instanceof DerError))
                throw error;
        }
    }
}
function onlyDerErrors(input, limits) {
    try {
        walk(readDer(input, limits));
    }
    catch (error) {
        if (!(error instanceof DerError))
            throw error;
    }
}
describe("DER reader on hostile input", () => {
    test("random bytes: parses or throws DerError, nothing else", () => {
        fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => onlyDerErrors(Buffer.from(bytes))), {
            numRuns: 5000,
        });
    });
    test("mutated valid encodings: parses or throws DerError", () => {
        const valid = sequence(tlv(0x02, Buffer.from([1, 2, 3])), tlv(0x06, Buffer.from("2a864886f70d01010b", "hex")), sequence(tlv(0x0c, Buffer.from("公的", "utf8")), tlv(0x17, Buffer.from("250401145959Z"))), tlv(0xa3, sequence(tlv(0x01, Buffer.from([0xff])))));
        fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 4,
        }), fc.nat(valid.length), (edits, cut) => {
            const mutated = Buffer.from(valid);
            for (const [at, value] of edits)
                mutated[at] = value;
            onlyDerErrors(mutated);
            onlyDerErrors(mutated.subarray(0, cut));
        }), { numRuns: 5000 });
    });
    test("maxDepth: nesting beyond the limit is refused with DerError", () => {
        fc.assert(fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 40 }), (depth, maxDepth) => {
            let node = tlv(0x05, Buffer.alloc(0));
            for (let i = 0; i < depth; i++)
                node = sequence(node);
            if (depth > maxDepth)
                assert.throws(() => readDer(node, { maxDepth }), DerError);
            else
                assert.doesNotThrow(() => readDer(node, { maxDepth }));
        }));
    });
    test("deep nesting far beyond the stack is refused, not a RangeError", () => {
        const depth = 100_000;
        // Header bytes 30 80 would be indefinite; build it with 4-byte lengths from the inside out.
        const parts = [];
        let length = 2;
        for (let i = 0; i < depth; i++) {
            const header = Buffer.from([0x30, 0x84, 0, 0, 0, 0]);
            header.writeUInt32BE(length, 2);
            parts.push(header);
            length += 6;
        }
        const input = Buffer.concat([...parts.reverse(), Buffer.from([0x05, 0x00])]);
        assert.throws(() => readDer(input, { maxBytes: input.length }), DerError);
    });
    test("maxBytes: larger input is refused before parsing", () => {
        const big = tlv(0x04, Buffer.alloc(2000));
        assert.throws(() => readDer(big, { maxBytes: 1000 }), DerError);
        assert.doesNotThrow(() => readDer(big, { maxBytes: big.length }));
        fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (bytes, maxBytes) => {
            if (bytes.length > maxBytes)
                assert.throws(() => readDer(Buffer.from(bytes), { maxBytes }), DerError);
        }));
    });
});
//# sourceMappingURL=der.test.js.map