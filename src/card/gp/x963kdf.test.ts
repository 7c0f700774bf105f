import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { runTool } from "../../testing/tools.js";
import { x963KdfSha256 } from "./x963kdf.js";

const h = (hex: string) => Buffer.from(hex, "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A second, deliberately different writing: one hash input per block, built as a hex string. */
function referenceX963(zHex: string, infoHex: string, length: number): string {
  let out = "";
  for (let counter = 1; out.length < length * 2; counter++) {
    const input = zHex + counter.toString(16).padStart(8, "0") + infoHex;
    out += createHash("sha256").update(Buffer.from(input, "hex")).digest("hex");
  }
  return out.slice(0, length * 2);
}

describe("ANSI X9.63 KDF, SHA-256", () => {
  // NIST CAVS 800-135 component test vectors, ansx963_2001.rsp [SHA-256] (as quoted in the test data of
  // cryptomator/cryptolib KeyDerivationFunctionTest and of Yubico.NET.SDK Scp11X963KdfTests).
  it("matches the NIST CAVS ansx963_2001 SHA-256 vectors", () => {
    assert.equal(
      hex(x963KdfSha256(h("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08"), h(""), 16)),
      "443024c3dae66b95e6f5670601558f71",
    );
    assert.equal(
      hex(x963KdfSha256(h("96f600b73ad6ac5629577eced51743dd2c24c21b1ac83ee4"), h(""), 16)),
      "b6295162a7804f5667ba9070f82fa522",
    );
    assert.equal(
      hex(
        x963KdfSha256(
          h("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d"),
          h("75eef81aa3041e33b80971203d2c0c52"),
          128,
        ),
      ),
      "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21",
    );
    assert.equal(
      hex(
        x963KdfSha256(
          h("7e335afa4b31d772c0635c7b0e06f26fcd781df947d2990a"),
          h("d65a4812733f8cdbcdfb4b2f4c191d87"),
          128,
        ),
      ),
      "c0bd9e38a8f9de14c2acd35b2f3410c6988cf02400543631e0d6a4c1d030365acbf398115e51aaddebdc9590664210f9aa9fed770d4c57edeafa0b8c14f93300865251218c262d63dadc47dfa0e0284826793985137e0a544ec80abf2fdf5ab90bdaea66204012efe34971dc431d625cd9a329b8217cc8fd0d9f02b13f2f6b0b",
    );
  });

  it("agrees with a separately written KDF for random inputs and lengths", () => {
    for (const length of [0, 1, 16, 31, 32, 33, 80, 100]) {
      const z = randomBytes(64);
      const info = randomBytes(3);
      assert.equal(hex(x963KdfSha256(z, info, length)), referenceX963(hex(z), hex(info), length));
    }
  });

  it("agrees with OpenSSL's X963KDF for SCP11's 5 × 16 bytes with sharedInfo 3C 88 10", () => {
    const z = randomBytes(64);
    const result = runTool("openssl", [
      "kdf",
      "-keylen",
      "80",
      "-kdfopt",
      "digest:SHA256",
      "-kdfopt",
      `hexsecret:${hex(z)}`,
      "-kdfopt",
      "hexinfo:3c8810",
      "X963KDF",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      hex(x963KdfSha256(z, h("3c8810"), 80)),
      result.stdout.trim().replaceAll(":", "").toLowerCase(),
    );
  });
});
