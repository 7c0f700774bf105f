/**
 * The OCSP codec against real clients: requests made by OpenSSL, GnuTLS and NSS are read; answers
 * built here and signed by the CA signer's OcspSigner are checked by `openssl ocsp`, `ocsptool` (also
 * over HTTP, as a live client with a nonce) and NSS `ocspclnt`. Random and mutated requests must
 * only ever be refused as malformedRequest.
 */
import * as assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { createHash, sign } from "node:crypto";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import fc from "fast-check";
import type { SigningKey } from "../ca/keystore.js";
import { OcspSigner } from "../ca/signer.js";
import { JpkiError } from "../errors.js";
import { createNssDb, nssTrustRoot, runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { parseCertificate } from "./certificate.js";
import { CrlReason, type CrlReasonCode } from "./crl.js";
import { explicit, generalizedTime, integer, NULL, octetString, oid, sequence } from "./der.js";
import { extension } from "./extensions.js";
import {
  buildResponseData,
  MalformedOcspRequestError,
  OCSP_REQUEST_LIMITS,
  type OcspCertStatus,
  type OcspErrorStatus,
  type OcspRequest,
  OcspResponseStatus,
  ocspCertId,
  ocspErrorResponse,
  ocspResponderKeyHash,
  ocspResponse,
  parseOcspRequest,
} from "./ocsp.js";
import { OID_PKIX_OCSP_NONCE, OID_SHA1, OID_SHA256 } from "./oids.js";
import { pemEncode } from "./pem.js";
import { cardAuthenticationCertificateTbs } from "./profiles.js";
import { randomSerial } from "./serial.js";
import { buildTestHierarchy, signTbs, TEST_BASE_URL, type TestKey } from "./test-hierarchy.js";

const execFileAsync = promisify(execFile);

const now = new Date();
now.setUTCMilliseconds(0);
const h = buildTestHierarchy(now);
const minutes = (n: number) => new Date(now.getTime() + n * 60_000);

/** A user-authentication certificate of the test auth CA. */
function authCertificate(): { serial: Buffer; der: Buffer } {
  const serial = randomSerial();
  const tbs = cardAuthenticationCertificateTbs({
    serial,
    issuer: h.authIssuer,
    subjectSpki: h.keys.citizen.spki,
    validity: { notBefore: minutes(-60), notAfter: minutes(365 * 24 * 60) },
    baseUrl: TEST_BASE_URL,
    shard: 0,
  });
  return { serial, der: signTbs(tbs, h.keys.authCa) };
}

const good = authCertificate();
const revoked = authCertificate();
const held = authCertificate();
const unknown = authCertificate(); // issued by the CA's key, but absent from "the registry" below

/** What the registry would say about each serial; anything else is unknown. */
const registry = new Map<string, OcspCertStatus>([
  [good.serial.toString("hex"), { status: "good" }],
  [
    revoked.serial.toString("hex"),
    { status: "revoked", revocationTime: minutes(-30), reason: CrlReason.keyCompromise },
  ],
  [
    held.serial.toString("hex"),
    { status: "revoked", revocationTime: minutes(-20), reason: CrlReason.certificateHold },
  ],
]);

/** A SigningKey over a test key, as the software key store makes them. */
function signingKeyOf(key: TestKey, label: string): SigningKey {
  return {
    label,
    algorithm: key.algorithm,
    publicKeySpki: key.spki,
    sign: async (data) => sign("sha256", data, key.privateKey),
  };
}

const responder = new OcspSigner(signingKeyOf(h.keys.ocsp, "auth-ocsp"), h.authOcsp, h.authCa);
const responderKeyHash = ocspResponderKeyHash(h.authOcsp);

/** The responder's work for one request: status of each CertID, signed, wrapped. */
async function answer(request: OcspRequest, nonce: Buffer | null = request.nonce ?? null): Promise<Buffer> {
  const tbs = buildResponseData({
    responderKeyHash,
    producedAt: now,
    responses: request.certIds.map((certId) => ({
      certId: certId.der,
      ...(registry.get(certId.serialHex) ?? { status: "unknown" }),
      thisUpdate: now,
      nextUpdate: minutes(60),
    })),
    ...(nonce ? { nonce } : {}),
  });
  return ocspResponse(await responder.signOcsp(tbs));
}

const sha = (algorithm: "sha1" | "sha256", data: Buffer) => createHash(algorithm).update(data).digest();
const authCa = parseCertificate(h.authCa);

/** Runs `fn` with the CA, responder and certificates written as PEM files in a temporary directory. */
function withFiles<T>(fn: (dir: string, path: (name: string) => string) => T): T {
  return withTempDir((dir) => {
    writeCertificate(dir, "ca", h.authCa);
    writeCertificate(dir, "responder", h.authOcsp);
    for (const [name, cert] of Object.entries({ good, revoked, held, unknown }))
      writeCertificate(dir, name, cert.der);
    writeFileSync(
      join(dir, "responder.key"),
      h.keys.ocsp.privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    return fn(dir, (name) => join(dir, name));
  });
}

/** Runs a tool whose stdout is binary (runTool decodes it as UTF-8). */
function runToolBinary(command: string, args: string[]): Buffer {
  const result = spawnSync(command, args, { timeout: 60_000 });
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `${command} ${args.join(" ")}: ${result.stderr.toString()}`);
  return result.stdout;
}

function tool(command: string, args: string[]): string {
  const result = runTool(command, args);
  assert.equal(result.code, 0, `${command} ${args.join(" ")}: ${result.stdout}${result.stderr}`);
  return result.stdout + result.stderr;
}

/** `openssl ocsp` request: `-issuer ca -cert ...`, DER read back. */
function opensslRequest(dir: string, certs: string[], extra: string[] = []): Buffer {
  const out = join(dir, "req.der");
  tool("openssl", [
    "ocsp",
    "-issuer",
    join(dir, "ca.pem"),
    ...extra,
    ...certs.flatMap((c) => ["-cert", join(dir, `${c}.pem`)]),
    "-reqout",
    out,
  ]);
  return readFileSync(out);
}

describe("OCSP requests from real clients", () => {
  const expectedCertId = (serial: Buffer, hash: "sha1" | "sha256" = "sha1") => ({
    hashAlgorithm: hash === "sha1" ? OID_SHA1 : OID_SHA256,
    issuerNameHash: sha(hash, authCa.subjectDer),
    issuerKeyHash: sha(hash, authCa.subjectPublicKey),
    serial,
    serialHex: serial.toString("hex"),
    der: ocspCertId(authCa.subjectDer, authCa.spki, serial, hash),
  });
  test("openssl ocsp -no_nonce: one SHA-1 CertID, byte for byte the one ocspCertId builds", () => {
    withFiles((dir) => {
      const request = parseOcspRequest(opensslRequest(dir, ["good"], ["-no_nonce"]));
      assert.deepEqual(request.certIds, [expectedCertId(good.serial)]);
      assert.equal(request.nonce, undefined);
      assert.equal(request.signed, false);
    });
  });

  test("openssl ocsp with a nonce and several -cert: every CertID in order, and the nonce", () => {
    withFiles((dir) => {
      const der = opensslRequest(dir, ["good", "revoked", "held", "unknown"]);
      const request = parseOcspRequest(der);
      assert.deepEqual(
        request.certIds,
        [good, revoked, held, unknown].map((c) => expectedCertId(c.serial)),
      );
      // OpenSSL's own reading of the nonce it wrote (RFC 8954: an OCTET STRING inside extnValue).
      const text = tool("openssl", ["ocsp", "-reqin", join(dir, "req.der"), "-req_text", "-noverify"]);
      const printed = /OCSP Nonce: \n\s+0410([0-9A-F]+)/.exec(text);
      assert.ok(printed, text);
      assert.equal(request.nonce?.toString("hex").toUpperCase(), printed[1]);
      assert.equal(request.nonce?.length, 16);
    });
  });

  test("openssl ocsp -sha256: SHA-256 CertID", () => {
    withFiles((dir) => {
      const request = parseOcspRequest(opensslRequest(dir, ["good"], ["-sha256", "-no_nonce"]));
      assert.deepEqual(request.certIds, [expectedCertId(good.serial, "sha256")]);
    });
  });

  test("openssl ocsp -signer: a signed request with requestorName is read, and reported signed", () => {
    withFiles((dir, path) => {
      const request = parseOcspRequest(
        opensslRequest(dir, ["good"], ["-signer", path("responder.pem"), "-signkey", path("responder.key")]),
      );
      assert.equal(request.signed, true);
      assert.deepEqual(request.certIds, [expectedCertId(good.serial)]);
      assert.ok(request.nonce);
    });
  });

  test("GnuTLS ocsptool --generate-request: the same CertID as OpenSSL's", () => {
    withFiles((_dir, path) => {
      tool("ocsptool", [
        "--generate-request",
        "--load-issuer",
        path("ca.pem"),
        "--load-cert",
        path("revoked.pem"),
        "--outfile",
        path("req.der"),
      ]);
      const request = parseOcspRequest(readFileSync(path("req.der")));
      assert.deepEqual(request.certIds, [expectedCertId(revoked.serial)]);
      assert.equal(request.signed, false);
    });
  });

  test("NSS ocspclnt -r, also with the service locator extension (-L)", () => {
    withFiles((dir, path) => {
      const db = createNssDb(dir);
      nssTrustRoot(db, h.authCa, "auth-ca");
      for (const locator of [false, true]) {
        const result = runToolBinary("ocspclnt", [
          "-r",
          path("held.der"),
          "-d",
          db,
          ...(locator ? ["-L"] : []),
        ]);
        const request = parseOcspRequest(result);
        assert.deepEqual(request.certIds, [expectedCertId(held.serial)]);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile input

/** A request built with our writer: optional version, the CertIDs, optional request extensions. */
function request(options: { certIds?: Buffer[]; extensions?: Buffer[]; version?: Buffer } = {}): Buffer {
  const certIds = options.certIds ?? [ocspCertId(authCa.subjectDer, authCa.spki, good.serial)];
  const tbs = [
    ...(options.version ? [explicit(0, options.version)] : []),
    sequence(...certIds.map((id) => sequence(id))),
    ...(options.extensions ? [explicit(2, sequence(...options.extensions))] : []),
  ];
  return sequence(sequence(...tbs));
}

const nonceExtension = (nonce: Buffer, critical = false) =>
  extension(OID_PKIX_OCSP_NONCE, critical, octetString(nonce));

function assertMalformed(der: Buffer, pattern?: RegExp): void {
  assert.throws(
    () => parseOcspRequest(der),
    (e: unknown) =>
      e instanceof MalformedOcspRequestError &&
      e.ocspStatus === OcspResponseStatus.malformedRequest &&
      (!pattern || pattern.test(e.message)),
  );
}

describe("OCSP requests: hostile input is refused as malformedRequest", () => {
  test("the smallest valid request, written as RFC 6960's ASN.1 reads, is accepted", () => {
    // OCSPRequest { TBSRequest { requestList { Request { CertID { sha1 NULL, hash, hash, 1 } } } } }
    const certId = sequence(
      sequence(oid(OID_SHA1), NULL),
      octetString(Buffer.alloc(20)),
      octetString(Buffer.alloc(20)),
      integer(1),
    );
    const expected = [
      "3042", // OCSPRequest
      "3040", // tbsRequest
      "303e", // requestList
      "303c", // Request
      "303a", // reqCert CertID
      "300906052b0e03021a0500", // hashAlgorithm sha1, NULL
      `0414${"00".repeat(20)}`, // issuerNameHash
      `0414${"00".repeat(20)}`, // issuerKeyHash
      "020101", // serialNumber 1
    ].join("");
    assert.equal(request({ certIds: [certId] }).toString("hex"), expected);
    assert.equal(parseOcspRequest(request({ certIds: [certId] })).certIds[0]?.serialHex, "01");
  });

  test("nonce: 1 to 32 octets echoed; 0, 33 or not an OCTET STRING refused (RFC 8954 §2.1)", () => {
    for (const length of [1, 16, 32])
      assert.equal(
        parseOcspRequest(request({ extensions: [nonceExtension(Buffer.alloc(length, 7))] })).nonce?.length,
        length,
      );
    assertMalformed(request({ extensions: [nonceExtension(Buffer.alloc(0))] }), /nonce of 0/);
    assertMalformed(request({ extensions: [nonceExtension(Buffer.alloc(33, 7))] }), /nonce of 33/);
    // The raw nonce in extnValue without its OCTET STRING (seen from old clients) is not RFC 8954.
    assertMalformed(request({ extensions: [extension(OID_PKIX_OCSP_NONCE, false, Buffer.alloc(16, 0x30))] }));
    // Critical is allowed for an extension we implement.
    assert.ok(parseOcspRequest(request({ extensions: [nonceExtension(Buffer.alloc(16, 7), true)] })).nonce);
  });

  test("extensions: unknown ones ignored unless critical (RFC 6960 §4.4); no duplicates", () => {
    const other = (critical: boolean) => extension("1.2.3.4", critical, NULL);
    assert.equal(parseOcspRequest(request({ extensions: [other(false)] })).nonce, undefined);
    assertMalformed(request({ extensions: [other(true)] }), /unknown critical/);
    const nonce = nonceExtension(Buffer.alloc(16, 1));
    assertMalformed(request({ extensions: [nonce, nonce] }), /twice/);
  });

  test("CertID: serial positive, minimal, at most 20 octets; known hashes of their length", () => {
    const certId = (serial: Buffer, hash = OID_SHA1, length = 20) =>
      sequence(
        sequence(oid(hash)),
        octetString(Buffer.alloc(length)),
        octetString(Buffer.alloc(length)),
        serial,
      );
    assert.equal(
      parseOcspRequest(request({ certIds: [certId(Buffer.from("020200ff", "hex"))] })).certIds[0]?.serialHex,
      "ff",
    );
    assertMalformed(request({ certIds: [certId(Buffer.from("0202007f", "hex"))] }), /non-minimal/);
    assertMalformed(request({ certIds: [certId(Buffer.from("020180", "hex"))] }), /positive/); // -128
    assertMalformed(request({ certIds: [certId(Buffer.from("020100", "hex"))] }), /positive/);
    assertMalformed(request({ certIds: [certId(integer(Buffer.alloc(21, 1)))] }), /20 octets/);
    assertMalformed(request({ certIds: [certId(integer(1), OID_SHA256, 20)] }), /not a hash/);
    // Another hash algorithm is read (the responder answers unauthorized for what it cannot match).
    assert.equal(
      parseOcspRequest(request({ certIds: [certId(integer(1), "2.16.840.1.101.3.4.2.2", 48)] })).certIds[0]
        ?.hashAlgorithm,
      "2.16.840.1.101.3.4.2.2",
    );
  });

  test("requestList: 1 to 64 CertIDs", () => {
    const id = ocspCertId(authCa.subjectDer, authCa.spki, good.serial);
    assert.equal(parseOcspRequest(request({ certIds: Array(64).fill(id) })).certIds.length, 64);
    assertMalformed(request({ certIds: Array(65).fill(id) }), /more than 64/);
    assertMalformed(request({ certIds: [] }), /empty/);
  });

  test("version: an explicit v1 is tolerated, anything else refused; DER only", () => {
    assert.ok(parseOcspRequest(request({ version: integer(0) })));
    assertMalformed(request({ version: integer(1) }), /v1/);
    const valid = request();
    assertMalformed(Buffer.concat([valid, Buffer.from([0])]), /trailing/);
    // The same request with an indefinite-length outer SEQUENCE (BER, not DER).
    assertMalformed(
      Buffer.concat([Buffer.from([0x30, 0x80]), valid.subarray(2), Buffer.from([0, 0])]),
      /indefinite/,
    );
  });

  test("huge and deep inputs are refused before any decoding, quickly", () => {
    const huge = Buffer.concat([
      Buffer.from([0x30, 0x83, 0x01, 0x00, 0x01]),
      Buffer.alloc(OCSP_REQUEST_LIMITS.maxBytes),
    ]);
    let deep = Buffer.alloc(0);
    for (let i = 0; i < 5000; i++)
      deep = Buffer.concat([Buffer.from([0x30, 0x82, deep.length >> 8, deep.length & 0xff]), deep]);
    assert.ok(deep.length <= OCSP_REQUEST_LIMITS.maxBytes);
    const started = performance.now();
    assertMalformed(huge, /exceeds/);
    assertMalformed(deep, /too deep/);
    assert.ok(performance.now() - started < 100, "refused in well under 100 ms");
  });

  test("random bytes never throw anything but MalformedOcspRequestError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          parseOcspRequest(Buffer.from(bytes));
        } catch (error) {
          assert.ok(error instanceof MalformedOcspRequestError, String(error));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("mutated real requests never throw anything but MalformedOcspRequestError", () => {
    const seeds = withFiles((dir, path) => [
      opensslRequest(dir, ["good", "revoked"]),
      opensslRequest(dir, ["good"], ["-signer", path("responder.pem"), "-signkey", path("responder.key")]),
      request({ extensions: [nonceExtension(Buffer.alloc(32, 9)), extension("1.2.3.4", false, NULL)] }),
    ]);
    const mutation = fc.record({
      seed: fc.constantFrom(...seeds),
      edits: fc.array(
        fc.record({
          kind: fc.constantFrom("set", "insert", "delete", "truncate"),
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    let accepted = 0;
    fc.assert(
      fc.property(mutation, ({ seed, edits }) => {
        let bytes = Buffer.from(seed);
        for (const { kind, at, byte } of edits) {
          const i = at % Math.max(bytes.length, 1);
          if (kind === "set") bytes[i] = byte;
          else if (kind === "insert")
            bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)]);
          else if (kind === "delete") bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
          else bytes = bytes.subarray(0, i);
        }
        try {
          parseOcspRequest(bytes);
          accepted++;
        } catch (error) {
          assert.ok(error instanceof MalformedOcspRequestError, String(error));
        }
      }),
      { numRuns: 3000 },
    );
    // Some mutations keep a valid request (a changed hash or nonce byte): the property saw both sides.
    assert.ok(accepted > 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Answers

/** An openssl request for the four certificates with a nonce, and our signed answer to it. */
async function answeredRequest() {
  const requestDer = withFiles((dir) => opensslRequest(dir, ["good", "revoked", "held", "unknown"]));
  const parsed = parseOcspRequest(requestDer);
  return { requestDer, parsed, response: await answer(parsed) };
}

/** `openssl ocsp -respin` with the request (-reqin, so the nonce is checked) or with -cert names. */
function opensslCheck(response: Buffer, args: (path: (name: string) => string) => string[]) {
  return withFiles((_dir, path) => {
    writeFileSync(path("resp.der"), response);
    return runTool("openssl", [
      "ocsp",
      "-respin",
      path("resp.der"),
      "-CAfile",
      path("ca.pem"),
      "-no-CApath",
      "-no-CAstore",
      ...args(path),
    ]);
  });
}

describe("OCSP answers checked by OpenSSL, GnuTLS and NSS", async () => {
  const { requestDer, parsed, response } = await answeredRequest();
  const fourCerts = (path: (name: string) => string) =>
    ["good", "revoked", "held", "unknown"].flatMap((n) => ["-cert", path(`${n}.pem`)]);

  test("openssl ocsp -reqin: the signature and the echoed nonce verify; statuses and reasons as given", () => {
    const result = opensslCheck(response, (path) => {
      writeFileSync(path("req.der"), requestDer);
      return ["-reqin", path("req.der"), "-resp_text"];
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stderr, /Response verify OK/);
    assert.doesNotMatch(result.stderr, /nonce/i);
    const text = result.stdout;
    assert.match(text, /OCSP Response Status: successful \(0x0\)/);
    assert.match(text, /Response Type: Basic OCSP Response/);
    assert.match(text, new RegExp(`Responder Id: ${responderKeyHash.toString("hex").toUpperCase()}`));
    assert.match(text, new RegExp(`OCSP Nonce: \\n\\s+0410${parsed.nonce!.toString("hex").toUpperCase()}`));
    const statuses = [
      ...text.matchAll(/Cert Status: (\w+)(?:\n\s+Revocation Time: [^\n]+\n\s+Revocation Reason: (\w+))?/g),
    ].map((m) => `${m[1]}${m[2] ? `/${m[2]}` : ""}`);
    assert.deepEqual(statuses, ["good", "revoked/keyCompromise", "revoked/certificateHold", "unknown"]);
  });

  test("openssl ocsp -cert: each certificate good, revoked with reason, held, or unknown", () => {
    const result = opensslCheck(response, (path) => [
      "-issuer",
      path("ca.pem"),
      "-no_nonce",
      ...fourCerts(path),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stderr, /Response verify OK/);
    const out = result.stdout;
    assert.match(out, /good\.pem: good\n\s+This Update: .+\n\s+Next Update: /);
    assert.match(out, /revoked\.pem: revoked\n(\s+.+\n)*?\s+Reason: keyCompromise\n\s+Revocation Time: /);
    assert.match(out, /held\.pem: revoked\n(\s+.+\n)*?\s+Reason: certificateHold\n/);
    assert.match(out, /unknown\.pem: unknown\n/);
  });

  test("openssl ocsp notices a wrong or missing nonce, and a tampered answer", async () => {
    const wrong = await answer(parsed, Buffer.alloc(16, 0xaa));
    const check = (der: Buffer) =>
      opensslCheck(der, (path) => {
        writeFileSync(path("req.der"), requestDer);
        return ["-reqin", path("req.der")];
      });
    const mismatch = check(wrong);
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /Nonce Verify error/);
    const withoutNonce = check(await answer(parsed, null));
    assert.equal(withoutNonce.code, 0);
    assert.match(withoutNonce.stderr, /WARNING: no nonce in response/);
    const tampered = Buffer.from(response);
    const producedAt = tampered.indexOf(generalizedTime(now)); // producedAt comes before thisUpdate
    tampered[producedAt + 5]! ^= 1; // the last digit of its year
    const refused = check(tampered);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Response Verify Failure/i);
  });

  test("a SHA-256 CertID is echoed as received, and OpenSSL matches it to its certificate", async () => {
    const der = withFiles((dir) => opensslRequest(dir, ["revoked"], ["-sha256"]));
    const sha256Answer = await answer(parseOcspRequest(der));
    const result = opensslCheck(sha256Answer, (path) => {
      writeFileSync(path("req.der"), der);
      return ["-reqin", path("req.der"), "-resp_text"];
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /Hash Algorithm: sha256\n[\s\S]*Cert Status: revoked\n\s+Revocation Time: .+\n\s+Revocation Reason: keyCompromise/,
    );
  });

  test("GnuTLS ocsptool reads the answer (-j) and verifies it against the CA (-e)", () => {
    withFiles((_dir, path) => {
      writeFileSync(path("resp.der"), response);
      const info = tool("ocsptool", ["--response-info", "--infile", path("resp.der")]);
      assert.match(info, /Response Status: Successful/);
      assert.match(info, new RegExp(`Responder Key ID: ${responderKeyHash.toString("hex")}`));
      assert.deepEqual(
        [...info.matchAll(/Certificate Status: (\w+)/g)].map((m) => m[1]),
        ["good", "revoked", "revoked", "unknown"],
      );
      assert.match(info, new RegExp(`Nonce: ${parsed.nonce!.toString("hex")}`));
      const verified = tool("ocsptool", [
        "--verify-response",
        "--load-trust",
        path("ca.pem"),
        "--infile",
        path("resp.der"),
      ]);
      assert.match(verified, /Verifying OCSP Response: Success/);
    });
  });

  test("NSS ocspclnt -P reads the answer and verifies its signature", () => {
    withFiles((dir, path) => {
      const db = createNssDb(dir);
      nssTrustRoot(db, h.authCa, "auth-ca");
      writeFileSync(path("resp.der"), response);
      // ocspclnt reads the answer from stdin, and only from a file (a pipe has no length for it).
      const result = spawnSync("ocspclnt", ["-P", "-d", db], {
        stdio: [openSync(path("resp.der"), "r"), "pipe", "pipe"],
      });
      const text = result.stdout.toString();
      assert.equal(result.status, 0, text + result.stderr.toString());
      assert.match(text, /Response Status: successful/);
      assert.deepEqual(
        [
          ...text.matchAll(
            /Status: (Cert is good|Cert has been revoked|Cert is unknown to responder)\.(?:\n\s+Revocation Time: .+\n\s+Revocation Reason:\n\s+(\d+))?/g,
          ),
        ].map((m) => `${m[1]}${m[2] ? `/${m[2]}` : ""}`),
        [
          "Cert is good",
          "Cert has been revoked/01",
          "Cert has been revoked/06",
          "Cert is unknown to responder",
        ],
      );
      assert.match(text, /OCSP Nonce Extension/);
      assert.match(text, /Signature verification succeeded\.\n\s+Signer: "CN=OCSP Responder,/);
    });
  });

  test("error answers: the status alone, unsigned (RFC 6960 §2.3), read by OpenSSL", () => {
    const expected: [OcspErrorStatus, string, string][] = [
      [OcspResponseStatus.malformedRequest, "30030a0101", "malformedrequest"],
      [OcspResponseStatus.internalError, "30030a0102", "internalerror"],
      [OcspResponseStatus.tryLater, "30030a0103", "trylater"],
      [OcspResponseStatus.sigRequired, "30030a0105", "sigrequired"],
      [OcspResponseStatus.unauthorized, "30030a0106", "unauthorized"],
    ];
    withFiles((_dir, path) => {
      for (const [status, hex, name] of expected) {
        assert.equal(ocspErrorResponse(status).toString("hex"), hex);
        writeFileSync(path("err.der"), ocspErrorResponse(status));
        const result = runTool("openssl", ["ocsp", "-respin", path("err.der"), "-noverify"]);
        assert.match(result.stdout + result.stderr, new RegExp(`Responder Error: ${name} \\(${status}\\)`));
      }
    });
    assert.throws(() => ocspErrorResponse(0 as OcspErrorStatus), JpkiError);
    assert.throws(() => ocspErrorResponse(4 as OcspErrorStatus), JpkiError);
  });

  test("GnuTLS ocsptool --ask: a live client with a nonce gets and verifies our answers over HTTP", async () => {
    let nonceOverride: Buffer | undefined; // set to answer with another nonce than the client's
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", async () => {
        let body: Buffer;
        try {
          const request = parseOcspRequest(Buffer.concat(chunks));
          body = await answer(request, nonceOverride ?? request.nonce ?? null);
        } catch (error) {
          body = ocspErrorResponse(
            error instanceof MalformedOcspRequestError ? error.ocspStatus : OcspResponseStatus.internalError,
          );
        }
        res.writeHead(200, { "content-type": "application/ocsp-response" }).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ocsp`;
    const dir = await mkdtemp(join(tmpdir(), "jpki-ocsp-"));
    try {
      await writeFile(join(dir, "ca.pem"), pemEncode(h.authCa));
      const ask = async (cert: { der: Buffer }) => {
        await writeFile(join(dir, "cert.pem"), pemEncode(cert.der));
        const args = [
          `--ask=${url}`,
          "--load-issuer",
          join(dir, "ca.pem"),
          "--load-cert",
          join(dir, "cert.pem"),
          "--load-trust",
          join(dir, "ca.pem"),
          "--nonce",
        ];
        try {
          const { stdout, stderr } = await execFileAsync("ocsptool", args, { timeout: 30_000 });
          return { code: 0, out: stdout + stderr };
        } catch (error) {
          const e = error as { code: number; stdout: string; stderr: string };
          return { code: e.code, out: e.stdout + e.stderr };
        }
      };
      const goodAnswer = await ask(good);
      assert.equal(goodAnswer.code, 0, goodAnswer.out);
      assert.match(goodAnswer.out, /Nonce: [0-9a-f]+/);
      assert.match(goodAnswer.out, /Certificate Status: good/);
      assert.match(goodAnswer.out, /Verifying OCSP Response: Success/);
      const revokedAnswer = await ask(revoked);
      assert.equal(revokedAnswer.code, 0, revokedAnswer.out);
      assert.match(revokedAnswer.out, /Certificate Status: revoked/);
      assert.match(revokedAnswer.out, /Verifying OCSP Response: Success/);
      // The client checks the echo: another nonce is refused.
      nonceOverride = Buffer.alloc(23, 0x5a);
      const replayed = await ask(good);
      assert.notEqual(replayed.code, 0);
      assert.match(replayed.out, /nonce in the response doesn't match/);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("OCSP answers: what the builders refuse", () => {
  const certId = ocspCertId(authCa.subjectDer, authCa.spki, good.serial);
  const base = { responderKeyHash, producedAt: now };
  const single = { certId, thisUpdate: now, nextUpdate: minutes(60) };
  const refuses = (build: () => Buffer, pattern: RegExp) =>
    assert.throws(build, (e: unknown) => e instanceof JpkiError && pattern.test(e.message));

  test("reasons an answer cannot give, bad dates, and malformed inputs", () => {
    refuses(
      () =>
        buildResponseData({
          ...base,
          responses: [{ ...single, status: "revoked", revocationTime: now, reason: CrlReason.removeFromCRL }],
        }),
      /not a revocation reason/,
    );
    refuses(
      () =>
        buildResponseData({
          ...base,
          responses: [{ ...single, status: "revoked", revocationTime: now, reason: 7 as never }],
        }),
      /not a revocation reason/,
    );
    refuses(
      () =>
        buildResponseData({ ...base, responses: [{ ...single, status: "good", nextUpdate: minutes(-1) }] }),
      /nextUpdate/,
    );
    refuses(
      () =>
        buildResponseData({
          ...base,
          responses: [{ ...single, status: "good", certId: certId.subarray(1) }],
        }),
      /one CertID/,
    );
    refuses(() => buildResponseData({ ...base, responses: [] }), /at least one/);
    refuses(
      () =>
        buildResponseData({
          ...base,
          responderKeyHash: Buffer.alloc(32),
          responses: [{ ...single, status: "good" }],
        }),
      /SHA-1/,
    );
    refuses(
      () =>
        buildResponseData({ ...base, nonce: Buffer.alloc(33), responses: [{ ...single, status: "good" }] }),
      /nonce/,
    );
  });

  test("unspecified is left out of RevokedInfo; the other reasons are written [0] EXPLICIT", () => {
    const revokedInfo = (reason?: CrlReasonCode) =>
      buildResponseData({
        ...base,
        responses: [
          { ...single, status: "revoked", revocationTime: now, ...(reason === undefined ? {} : { reason }) },
        ],
      });
    const time = generalizedTime(now).toString("hex");
    // revoked [1] IMPLICIT RevokedInfo { revocationTime } (RFC 6960 §4.2.1)
    assert.ok(revokedInfo().toString("hex").includes(`a111${time}`));
    assert.ok(revokedInfo(CrlReason.unspecified).toString("hex").includes(`a111${time}`));
    // ... { revocationTime, revocationReason [0] EXPLICIT CRLReason certificateHold (6) }
    assert.ok(revokedInfo(CrlReason.certificateHold).toString("hex").includes(`a116${time}a0030a0106`));
  });
});
