import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { runTool } from "../../testing/tools.js";
import { aesCmac, cmacSubkeys } from "./cmac.js";

const h = (hex: string) => Buffer.from(hex.replace(/\s+/g, ""), "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// The example messages shared by RFC 4493 §4 and NIST SP 800-38B Appendix D.
const M16 = "6bc1bee22e409f96e93d7e117393172a";
const M40 = `${M16}ae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411`;
const M64 = `${M16}ae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710`;

describe("AES-CMAC (RFC 4493, NIST SP 800-38B)", () => {
  const k128 = h("2b7e151628aed2a6abf7158809cf4f3c");

  it("derives the RFC 4493 §4 subkeys", () => {
    const { k1, k2 } = cmacSubkeys(k128);
    assert.equal(hex(k1), "fbeed618357133667c85e08f7236a8de");
    assert.equal(hex(k2), "f7ddac306ae266ccf90bc11ee46d513b");
  });

  it("matches the RFC 4493 §4 AES-128 examples 1 to 4", () => {
    assert.equal(hex(aesCmac(k128, h(""))), "bb1d6929e95937287fa37d129b756746");
    assert.equal(hex(aesCmac(k128, h(M16))), "070a16b46b4d4144f79bdd9dd04a287c");
    assert.equal(hex(aesCmac(k128, h(M40))), "dfa66747de9ae63030ca32611497c827");
    assert.equal(hex(aesCmac(k128, h(M64))), "51f0bebf7e3b9d92fc49741779363cfe");
  });

  it("matches the NIST SP 800-38B Appendix D.3 AES-256 examples", () => {
    const k256 = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    assert.equal(hex(aesCmac(k256, h(""))), "028962f61b7bf89efc6b551f4667d983");
    assert.equal(hex(aesCmac(k256, h(M16))), "28a7023f452e8f82bd4bf28d8c37c35c");
    assert.equal(hex(aesCmac(k256, h(M40))), "aaf3d8f1de5640c232f5b169b9c911e6");
    assert.equal(hex(aesCmac(k256, h(M64))), "e1992190549f6ed5696a2c056c315410");
  });

  it("treats several message parts as their concatenation", () => {
    assert.equal(hex(aesCmac(k128, h(M16), h(M40).subarray(16))), "dfa66747de9ae63030ca32611497c827");
  });

  it("agrees with OpenSSL's CMAC for random keys and lengths", () => {
    for (const keyLength of [16, 24, 32]) {
      for (const length of [0, 1, 15, 16, 17, 31, 32, 33, 100]) {
        const key = randomBytes(keyLength);
        const message = randomBytes(length);
        const result = runTool(
          "openssl",
          ["mac", "-cipher", `AES-${keyLength * 8}-CBC`, "-macopt", `hexkey:${hex(key)}`, "CMAC"],
          { input: message },
        );
        assert.equal(result.code, 0, result.stderr);
        assert.equal(hex(aesCmac(key, message)), result.stdout.trim().toLowerCase());
      }
    }
  });
});
