/**
 * The login challenge's bytes, written out as hex so they can be held against docs/relying-party.md,
 * read by OpenSSL's ASN.1 parser (an independent DER reader), and the store's single use.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { createLoginChallenge, MemoryChallengeStore, parseLoginChallenge } from "./challenge.js";

const EXAMPLE_HEX = [
  "30818b", // SEQUENCE, 139 bytes
  "0c21", // UTF8String format
  Buffer.from("jpki-mobile/rp-login-challenge/v1").toString("hex"),
  "0c0c", // UTF8String rpId
  Buffer.from("example-bank").toString("hex"),
  "0c14", // UTF8String origin
  Buffer.from("https://bank.example").toString("hex"),
  "0420", // OCTET STRING nonce, 32 bytes
  "ab".repeat(32),
  "180f", // GeneralizedTime issuedAt
  Buffer.from("20261126010203Z").toString("hex"),
  "180f", // GeneralizedTime expiresAt
  Buffer.from("20261126010403Z").toString("hex"),
].join("");

const example = () =>
  createLoginChallenge(
    { id: "example-bank", origin: "https://bank.example" },
    { now: new Date("2026-11-26T01:02:03.456Z"), nonce: Buffer.alloc(32, 0xab) },
  );

test("the challenge's DER, byte for byte, and read back", () => {
  const challenge = example();
  assert.equal(challenge.der.toString("hex"), EXAMPLE_HEX);
  assert.equal(challenge.challengeId, Buffer.alloc(32, 0xab).toString("base64url"));
  const read = parseLoginChallenge(challenge.der);
  assert.deepEqual(
    [read.id, read.origin, read.issuedAt.toISOString(), read.expiresAt.toISOString(), read.challengeId],
    [
      "example-bank",
      "https://bank.example",
      "2026-11-26T01:02:03.000Z",
      "2026-11-26T01:04:03.000Z",
      challenge.challengeId,
    ],
  );
});

test("OpenSSL's ASN.1 parser reads the same fields", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-rp-challenge-"));
  try {
    const file = path.join(dir, "challenge.der");
    writeFileSync(file, example().der);
    const text = execFileSync("openssl", ["asn1parse", "-inform", "DER", "-in", file], { encoding: "utf8" });
    assert.match(text, /UTF8STRING\s+:jpki-mobile\/rp-login-challenge\/v1/);
    assert.match(text, /UTF8STRING\s+:example-bank/);
    assert.match(text, /UTF8STRING\s+:https:\/\/bank\.example/);
    assert.match(text, /OCTET STRING\s+\[HEX DUMP\]:(AB){32}/);
    assert.match(text, /GENERALIZEDTIME\s+:20261126010203Z[\s\S]*GENERALIZEDTIME\s+:20261126010403Z/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("anything else is not a challenge", () => {
  const der = example().der;
  const otherFormat = Buffer.from(der);
  otherFormat[otherFormat.indexOf("v1") + 1] = 0x32; // ".../v2"
  for (const bytes of [
    Buffer.alloc(0),
    der.subarray(0, 50),
    Buffer.concat([der, Buffer.from([0])]),
    otherFormat,
  ])
    assert.throws(
      () => parseLoginChallenge(bytes),
      (error: unknown) => error instanceof JpkiError && /not a login challenge/.test(error.message),
    );
});

test("the store hands a challenge out once, and names a replay", () => {
  const store = new MemoryChallengeStore();
  const challenge = createLoginChallenge({ id: "rp", origin: "https://rp.example" });
  store.put(challenge);
  const now = new Date();
  assert.equal(store.take(challenge.challengeId, now), challenge);
  assert.equal(store.take(challenge.challengeId, now), "used");
  assert.equal(store.take("B".repeat(43), now), "unknown");
  // Expired challenges leave the store as new ones come.
  const old = createLoginChallenge(
    { id: "rp", origin: "https://rp.example" },
    { now: new Date(Date.now() - 10 * 60_000) },
  );
  store.put(old);
  store.put(createLoginChallenge({ id: "rp", origin: "https://rp.example" }));
  assert.equal(store.outstanding, 1);
});
