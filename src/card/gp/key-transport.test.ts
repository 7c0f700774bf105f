import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aesKeyCheckValue, decryptKeyComponent, encryptKeyComponent } from "./key-transport.js";

const h = (hex: string) => Buffer.from(hex, "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("key transport under the DEK", () => {
  it("gives the key check values of osmocom/pysim SCP03_KCV_Test", () => {
    assert.equal(hex(aesKeyCheckValue(h("000102030405060708090a0b0c0d0e0f"))), "c35280");
    assert.equal(hex(aesKeyCheckValue(h("101112131415161718191a1b1c1d1e1f"))), "013808");
    assert.equal(hex(aesKeyCheckValue(h("202122232425262728292a2b2c2d2e2f"))), "840de5");
  });

  it("frames whole-block keys bare and other lengths with their length (GPCS Tables 11-70, 11-71)", () => {
    const dek = h("202122232425262728292a2b2c2d2e2f");
    for (let length = 1; length <= 48; length++) {
      const key = Buffer.from(Array.from({ length }, (_, i) => i));
      const block = encryptKeyComponent(dek, key);
      if (length % 16) {
        assert.equal(block[0], length);
        assert.equal((block.length - 1) % 16, 0);
      } else assert.equal(block.length, length);
      assert.equal(hex(decryptKeyComponent(dek, block)!), hex(key));
    }
  });
});
