import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { publicKeyFromSpki } from "./public-key.js";

const spkiOf = (key: KeyObject): Buffer => key.export({ type: "spki", format: "der" });
const generic = (spki: Buffer): KeyObject => createPublicKey({ key: spki, format: "der", type: "spki" });

/** What OpenSSL's own SPKI reader makes of `spki`: the key re-encoded, or undefined if it refuses. */
function openssl(spki: Buffer): Buffer | undefined {
  try {
    return spkiOf(generic(spki));
  } catch {
    return undefined;
  }
}

function ours(spki: Buffer): Buffer | undefined {
  try {
    return spkiOf(publicKeyFromSpki(spki));
  } catch {
    return undefined;
  }
}

const keys = [
  generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey,
  generateKeyPairSync("rsa", { modulusLength: 1024, publicExponent: 3 }).publicKey,
  generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey,
  generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey,
  generateKeyPairSync("ed25519").publicKey,
];

describe("publicKeyFromSpki", () => {
  it("reads every key as OpenSSL does (RSA and P-256 directly, others through OpenSSL)", () => {
    for (const key of keys) {
      const spki = spkiOf(key);
      const read = publicKeyFromSpki(spki);
      assert.ok(read.equals(key), `${key.asymmetricKeyType} key differs`);
      assert.deepEqual(spkiOf(read), spki);
    }
  });

  it("refuses a P-256 point off the curve, as OpenSSL does", () => {
    const spki = spkiOf(keys[2]!);
    const off = Buffer.from(spki);
    off[off.length - 1]! ^= 0x01;
    assert.equal(openssl(off), undefined);
    assert.throws(() => publicKeyFromSpki(off));
  });

  it("accepts exactly the SPKIs OpenSSL accepts, and reads them as the same key (mutated encodings)", () => {
    const seeds = keys.map(spkiOf);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: seeds.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.option(fc.integer({ min: -3, max: 3 }), { nil: undefined }),
        (which, edits, resize) => {
          const seed = seeds[which]!;
          let spki = Buffer.from(seed);
          for (const [at, value] of edits) spki[at % spki.length] = value;
          if (resize !== undefined)
            spki =
              resize < 0
                ? spki.subarray(0, spki.length + resize)
                : Buffer.concat([spki, Buffer.alloc(resize, 0x41)]);
          const expected = openssl(spki);
          const actual = ours(spki);
          // Never another key, never a key OpenSSL refuses, never a refusal of a key OpenSSL reads.
          assert.deepEqual(actual, expected);
          return true;
        },
      ),
      { numRuns: 3000 },
    );
  });
});
