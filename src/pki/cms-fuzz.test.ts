/**
 * verifySignedData on hostile input (fast-check): random bytes and random mutations of a valid
 * application only ever end in InvalidSignedDataError, and a mutated message never verifies to
 * anything other than the original.
 *
 * Two parts of a SignedData are not covered by its signature (RFC 5652 §5.4 signs the attributes
 * only): the embedded certificates, beyond the signer's issuer, serial number and key, and the
 * signatureAlgorithm identifier (rsaEncryption and sha256WithRSAEncryption name the same signature
 * here). A change there may still verify; what it verifies to must then be the original content,
 * content type, signing time and signer key. The certificate's own bytes are the chain check's business.
 */
import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { parseCertificate } from "./certificate.js";
import {
  buildSignedData,
  InvalidSignedDataError,
  softwareDigestInfoSigner,
  type VerifiedSignedData,
  verifySignedData,
} from "./cms.js";
import { children, type DerNode, readDer } from "./der.js";
import { buildTestHierarchy } from "./test-hierarchy.js";

const h = buildTestHierarchy();
const content = Buffer.from('{"application":"smartphone JPKI","nonce":"8f3a"}');
const valid = await buildSignedData({
  content,
  signerCertificate: h.cardSign,
  certificates: [h.signCa],
  signingTime: new Date("2026-11-25T09:30:00Z"),
  sign: softwareDigestInfoSigner(h.keys.citizen.privateKey),
});
const original = verifySignedData(valid);

/** Where the certificates field and the signatureAlgorithm lie in `valid`: [start, end). */
const uncovered: [number, number][] = (() => {
  const signedData = children(children(children(readDer(valid))[1]!)[0]!);
  const certificates = signedData.find((node) => node.tag === 0xa0)!;
  const signerInfo = children(children(signedData.at(-1)!)[0]!);
  const signatureAlgorithm: DerNode = signerInfo[4]!;
  return [
    [certificates.start, certificates.end],
    [signatureAlgorithm.start, signatureAlgorithm.end],
  ];
})();

const signerIdentity = (der: Buffer) => {
  const cert = parseCertificate(der);
  return { issuer: cert.issuerDer, serial: cert.serial, spki: cert.spki };
};

/** Runs the verifier: the result, or undefined after the typed error; any other throw fails the test. */
function attempt(der: Buffer): VerifiedSignedData | undefined {
  try {
    return verifySignedData(der);
  } catch (error) {
    if (error instanceof InvalidSignedDataError) return undefined;
    throw error;
  }
}

type Mutation =
  | { kind: "replace"; at: number; value: number }
  | { kind: "insert"; at: number; value: number }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number };

const position = fc.integer({ min: 0, max: valid.length - 1 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
);

function mutate(m: Mutation): Buffer {
  switch (m.kind) {
    case "replace": {
      const out = Buffer.from(valid);
      out[m.at] = m.value === valid[m.at] ? m.value ^ 0xff : m.value;
      return out;
    }
    case "insert":
      return Buffer.concat([valid.subarray(0, m.at), Buffer.from([m.value]), valid.subarray(m.at)]);
    case "delete":
      return Buffer.concat([valid.subarray(0, m.at), valid.subarray(m.at + m.count)]);
    case "truncate":
      return valid.subarray(0, m.at);
  }
}

describe("verifySignedData under fuzzing", () => {
  test("random bytes: only the typed error, never a verified message", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        assert.equal(attempt(Buffer.from(bytes)), undefined);
      }),
      { numRuns: 2000 },
    );
  });

  test("random bytes behind a valid header: only the typed error", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: valid.length - 1 }),
        fc.uint8Array({ maxLength: 4096 }),
        (cut, tail) => {
          const candidate = Buffer.concat([valid.subarray(0, cut), tail]);
          // A tail that happens to be the cut-off bytes rebuilds the valid message itself.
          if (candidate.equals(valid)) return;
          assert.equal(attempt(candidate), undefined);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("mutations of a valid message: the typed error, or (outside the signed part) the original again", () => {
    fc.assert(
      fc.property(mutation, (m) => {
        const result = attempt(mutate(m));
        if (!result) return;
        const inUncovered = uncovered.some(([start, end]) => m.at >= start && m.at < end);
        assert.ok(m.kind === "replace" && inUncovered, `a ${m.kind} at ${m.at} still verifies`);
        assert.deepEqual(result.content, original.content);
        assert.equal(result.contentType, original.contentType);
        assert.deepEqual(result.signingTime, original.signingTime);
        assert.deepEqual(
          signerIdentity(result.signerCertificate),
          signerIdentity(original.signerCertificate),
        );
      }),
      { numRuns: 3000 },
    );
  });

  test("every single-byte change in the signed part and the content is refused", () => {
    // Exhaustive over positions (one random value each): the header, version, digest algorithms,
    // content, signer identifier, signed attributes and signature.
    const outside = (at: number) => !uncovered.some(([start, end]) => at >= start && at < end);
    for (let at = 0; at < valid.length; at++) {
      if (!outside(at)) continue;
      const value = (valid[at]! + 1 + ((at * 37) % 255)) & 0xff;
      assert.equal(
        attempt(mutate({ kind: "replace", at, value })),
        undefined,
        `byte ${at} changed still verifies`,
      );
    }
  });
});
