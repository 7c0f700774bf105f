/**
 * The relying party's OCSP client against a responder that answers what each test makes it answer:
 * who may sign (the CA's delegated responder only, RFC 6960 §4.2.2.2), the signature, the nonce, the
 * times, each status, and the cache of `good` answers with its clock. The request encoder is read by
 * OpenSSL (`openssl ocsp -reqin -req_text`).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { parseCertificate } from "../pki/certificate.js";
import { CrlReason } from "../pki/crl.js";
import { bitString, explicit, sequence } from "../pki/der.js";
import {
  buildResponseData,
  type OcspCertStatus,
  OcspResponseStatus,
  ocspCertId,
  ocspErrorResponse,
  ocspResponderKeyHash,
  ocspResponse,
  parseOcspRequest,
} from "../pki/ocsp.js";
import { buildTestHierarchy, type TestKey } from "../pki/test-hierarchy.js";
import { LoginRefusedError } from "./errors.js";
import { OcspStatusChecker } from "./ocsp-client.js";
import { encodeOcspRequest } from "./ocsp-response.js";

const hierarchy = buildTestHierarchy();
const other = buildTestHierarchy();
const cert = parseCertificate(hierarchy.phoneAuth);
const issuer = parseCertificate(hierarchy.authCa);
const HOUR = 3_600_000;

interface Answer {
  status?: OcspCertStatus;
  responder?: { certificate: Buffer; key: TestKey };
  echoNonce?: boolean;
  thisUpdate?: Date;
  nextUpdate?: Date | null;
  tamper?: boolean;
  http?: number;
  raw?: Buffer;
}

describe("OcspStatusChecker", () => {
  let server: Server;
  let url: string;
  let next: Answer = {};
  let requests = 0;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        requests++;
        assert.equal(req.headers.authorization, "Bearer test-token");
        assert.equal(req.headers["content-type"], "application/ocsp-request");
        const request = parseOcspRequest(Buffer.concat(chunks));
        const a = next;
        if (a.http) {
          res.writeHead(a.http).end();
          return;
        }
        const responder = a.responder ?? { certificate: hierarchy.authOcsp, key: hierarchy.keys.ocsp };
        const now = Date.now();
        const tbs = buildResponseData({
          responderKeyHash: ocspResponderKeyHash(responder.certificate),
          producedAt: new Date(now),
          responses: [
            {
              certId: request.certIds[0]!.der,
              ...(a.status ?? { status: "good" }),
              thisUpdate: a.thisUpdate ?? new Date(now),
              ...(a.nextUpdate === null ? {} : { nextUpdate: a.nextUpdate ?? new Date(now + 24 * HOUR) }),
            },
          ],
          ...(request.nonce && a.echoNonce !== false ? { nonce: request.nonce } : {}),
        });
        const signature = sign("sha256", tbs, responder.key.privateKey);
        if (a.tamper) signature[10]! ^= 1;
        const basic = sequence(
          tbs,
          signatureAlgorithmIdentifier("rsa-2048"),
          bitString(signature),
          explicit(0, sequence(responder.certificate)),
        );
        res.writeHead(200, { "content-type": "application/ocsp-response" });
        res.end(a.raw ?? ocspResponse(basic));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ocsp`;
  });
  after(() => server.close());

  const checker = (options: Partial<ConstructorParameters<typeof OcspStatusChecker>[0]> = {}) =>
    new OcspStatusChecker({ url, token: "test-token", cacheTtlMs: 0, ...options });
  const refused = (check: string, pattern: RegExp) => (error: unknown) =>
    error instanceof LoginRefusedError && error.check === check && pattern.test(error.message);

  test("a good answer from the CA's delegated responder, nonce echoed", async () => {
    next = {};
    const result = await checker().check(cert, issuer);
    assert.deepEqual([result.status, result.source, result.nonceChecked], ["good", "responder", true]);
    const without = await checker({ nonce: false }).check(cert, issuer);
    assert.equal(without.nonceChecked, false);
  });

  test("each status", async () => {
    next = { status: { status: "revoked", revocationTime: new Date(), reason: CrlReason.certificateHold } };
    await assert.rejects(checker().check(cert, issuer), refused("status-held", /certificateHold/));
    next = { status: { status: "revoked", revocationTime: new Date(), reason: CrlReason.superseded } };
    await assert.rejects(checker().check(cert, issuer), refused("status-revoked", /superseded/));
    next = { status: { status: "unknown" } };
    await assert.rejects(checker().check(cert, issuer), refused("status-unknown", /does not know/));
  });

  test("who signed: not the CA's delegated responder, or not its signature", async () => {
    // A certificate of the CA without id-kp-OCSPSigning (the citizen's own) cannot answer.
    next = { responder: { certificate: hierarchy.phoneAuth, key: hierarchy.keys.citizen } };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /id-kp-OCSPSigning/));
    // Another CA's responder (same CA name, other key).
    next = { responder: { certificate: other.authOcsp, key: other.keys.ocsp } };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /not issued by/));
    next = { tamper: true };
    await assert.rejects(
      checker().check(cert, issuer),
      refused("status-unavailable", /signature does not verify/),
    );
  });

  test("nonce, times and transport", async () => {
    next = { echoNonce: false };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /nonce/));
    next = { thisUpdate: new Date(Date.now() + HOUR) };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /future/));
    next = { thisUpdate: new Date(Date.now() - 48 * HOUR), nextUpdate: new Date(Date.now() - 24 * HOUR) };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /stale/));
    next = { thisUpdate: new Date(Date.now() - 48 * HOUR), nextUpdate: null };
    await assert.rejects(
      checker().check(cert, issuer),
      refused("status-unavailable", /stale.*no nextUpdate/),
    );
    next = { http: 500 };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /HTTP 500/));
    next = { raw: ocspErrorResponse(OcspResponseStatus.unauthorized) };
    await assert.rejects(checker().check(cert, issuer), refused("status-unavailable", /unauthorized/));
    next = { raw: Buffer.from("not der") };
    await assert.rejects(
      checker().check(cert, issuer),
      refused("status-unavailable", /not an OCSP response/),
    );
    await assert.rejects(
      new OcspStatusChecker({ url: "http://127.0.0.1:9/ocsp", token: "t", timeoutMs: 2000 }).check(
        cert,
        issuer,
      ),
      refused("status-unavailable", /did not answer/),
    );
  });

  test("the cache keeps good answers for its lifetime on its own clock, and never a refusal", async () => {
    let now = Date.now();
    const cached = checker({ cacheTtlMs: 60_000, now: () => new Date(now) });
    next = {};
    const before = requests;
    assert.equal((await cached.check(cert, issuer)).source, "responder");
    assert.equal((await cached.check(cert, issuer)).source, "cache");
    assert.equal((await cached.check(cert, issuer, { bypassCache: true })).source, "responder");
    assert.equal(requests - before, 2);
    now += 60_001;
    next = { status: { status: "revoked", revocationTime: new Date(), reason: CrlReason.keyCompromise } };
    await assert.rejects(cached.check(cert, issuer), refused("status-revoked", /keyCompromise/));
    await assert.rejects(cached.check(cert, issuer), refused("status-revoked", /keyCompromise/));
    assert.equal(requests - before, 4, "a refusal is asked again");
    // Never beyond the answer's own nextUpdate.
    next = { nextUpdate: new Date(Date.now() + 10_000) };
    const short = checker({ cacheTtlMs: 60_000, now: () => new Date(now) });
    now = Date.now();
    await short.check(cert, issuer);
    now += 11_000;
    next = {};
    assert.equal((await short.check(cert, issuer)).source, "responder");
  });
});

test("OpenSSL reads the OCSP request: the certificate's serial and the nonce", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-rp-ocsp-"));
  try {
    const nonce = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    const file = path.join(dir, "request.der");
    writeFileSync(file, encodeOcspRequest(ocspCertId(issuer.subjectDer, issuer.spki, cert.serial), nonce));
    const text = execFileSync("openssl", ["ocsp", "-reqin", file, "-req_text"], { encoding: "utf8" });
    assert.match(text, /Hash Algorithm: sha1/);
    assert.match(text, new RegExp(`Serial Number: ${cert.serialHex.toUpperCase()}`));
    assert.match(text, /OCSP Nonce:\s*\n\s*041000112233445566778899AABBCCDDEEFF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
