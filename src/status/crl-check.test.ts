/** The check a signed CRL passes before it is published: each way a CRL can be wrong is refused. */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { assembleSigned, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { buildTbsCertList, CrlReason } from "../pki/crl.js";
import { bitString, sequence } from "../pki/der.js";
import { AUTH_CA_NAME } from "../pki/names.js";
import { generateTestKey, signTbs, TEST_BASE_URL, type TestKey } from "../pki/test-hierarchy.js";
import { checkSignedCrl } from "./crl-check.js";

const caKey = generateTestKey("rsa-2048");
const otherRsaKey = generateTestKey("rsa-2048");
const ecKey = generateTestKey("ec-p256");
const publicKey = (key: TestKey) => createPublicKey({ key: key.spki, format: "der", type: "spki" });

const thisUpdate = new Date("2026-11-26T00:00:00Z");
const tbsWith = (entries: number) =>
  buildTbsCertList({
    issuer: { name: AUTH_CA_NAME, spki: caKey.spki, algorithm: "rsa-2048" },
    purpose: "auth",
    baseUrl: TEST_BASE_URL,
    shard: 3,
    crlNumber: 9n,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + 86_400_000),
    announceDelta: true,
    entries: Array.from({ length: entries }, (_, i) => ({
      serial: Buffer.from(`4000000000000000000000000000000${i}`, "hex"),
      revocationDate: thisUpdate,
      reason: CrlReason.superseded,
    })),
  });
const tbs = tbsWith(2);
const der = signTbs(tbs, caKey);
const expected = { tbs, entries: 2 };

const refused = (pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === "integrity" && pattern.test(error.message);

test("a well-formed CRL signed by the CA passes, and its times and entries are read", () => {
  const checked = checkSignedCrl(der, expected, publicKey(caKey));
  assert.deepEqual(checked, {
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + 86_400_000),
    entries: 2,
  });
  const empty = tbsWith(0);
  assert.equal(
    checkSignedCrl(signTbs(empty, caKey), { tbs: empty, entries: 0 }, publicKey(caKey)).entries,
    0,
  );
});

test("a bad signature, or another CA's key, is refused", () => {
  const tampered = Buffer.from(der);
  tampered[tampered.length - 1]! ^= 1;
  assert.throws(() => checkSignedCrl(tampered, expected, publicKey(caKey)), refused(/does not verify/));
  assert.throws(() => checkSignedCrl(der, expected, publicKey(otherRsaKey)), refused(/does not verify/));
  assert.throws(
    () => checkSignedCrl(der, expected, publicKey(ecKey)),
    refused(/does not fit the CA's ec key/),
  );
});

test("a CRL that is not the one built is refused: other TBS, other entry count", () => {
  const other = tbsWith(3);
  assert.throws(
    () => checkSignedCrl(signTbs(other, caKey), expected, publicKey(caKey)),
    refused(/not the one that was built/),
  );
  assert.throws(
    () => checkSignedCrl(der, { tbs, entries: 3 }, publicKey(caKey)),
    refused(/holds 2 entries, 3 were built/),
  );
});

test("a malformed envelope is refused: trailing bytes, algorithm mismatch, partial octets", () => {
  assert.throws(
    () => checkSignedCrl(Buffer.concat([der, Buffer.from([0])]), expected, publicKey(caKey)),
    refused(/trailing bytes/),
  );
  const signature = signTbs(tbs, caKey).subarray(-256);
  const ecdsaOutside = assembleSigned(tbs, signatureAlgorithmIdentifier("ec-p256"), signature);
  assert.throws(
    () => checkSignedCrl(ecdsaOutside, expected, publicKey(caKey)),
    refused(/RFC 5280 §5\.1\.1\.2/),
  );
  const oddBits = sequence(tbs, signatureAlgorithmIdentifier("rsa-2048"), bitString(signature, 1));
  assert.throws(() => checkSignedCrl(oddBits, expected, publicKey(caKey)), refused(/whole octets/));
  assert.throws(
    () => checkSignedCrl(Buffer.from("3000", "hex"), expected, publicKey(caKey)),
    refused(/three fields/),
  );
});
