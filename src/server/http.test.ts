/**
 * The status server over HTTP, asked by real clients: `openssl ocsp` (POST, with and without nonce,
 * several certificates per request), GnuTLS `ocsptool --ask` and NSS `ocspclnt` (token in the query),
 * and raw HTTP for the GET form, caching headers, refusals and hostile input. Certificates are issued
 * by a fresh `ca init` through the registry and change status through lifecycle.ts.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { parseCertificate } from "../pki/certificate.js";
import { CrlReason } from "../pki/crl.js";
import { children, readDer, sequence } from "../pki/der.js";
import { ocspCertId } from "../pki/ocsp.js";
import { openRegistryDatabase, type RegistryDialect } from "../registry/db.js";
import {
  DEFAULT_POLICIES,
  resumeCertificate,
  revokeCertificate,
  suspendCertificate,
} from "../registry/lifecycle.js";
import { addVerifier, lookupCounts } from "../registry/verifiers.js";
import { publishCrls } from "../status/crl.js";
import { openOcspSandbox } from "../status/ocsp-fixture.js";
import { forEachDialect, type OpenTestDatabase } from "../testing/dialects.js";
import { createNssDb, runToolAsync } from "../testing/tools.js";
import { createStatusService } from "./http.js";

const actor = "test";

/** A tool's exit status and its output (stdout then stderr), run without blocking the server under test. */
async function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  const result = await runToolAsync(command, args);
  return { code: result.code, out: result.stdout + result.stderr };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function fetchRaw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? "GET", headers: options.headers, agent: options.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The statuses `openssl ocsp` prints per certificate: `good`, `revoked/<reason>`, `unknown`. */
function opensslStatuses(out: string): string[] {
  // Each certificate: "<file>.pem: <status>", then tab-indented lines, one of them "Reason: <reason>".
  return [...out.matchAll(/^\S+\.pem: (good|revoked|unknown)\n((?:\t.*\n?)*)/gm)].map((m) => {
    const reason = /\tReason: (\w+)/.exec(m[2] ?? "")?.[1];
    return `${m[1]}${reason ? `/${reason}` : ""}`;
  });
}

/**
 * The certStatus of the only SingleResponse of an OCSPResponse: its tag is [0] good, [1] revoked,
 * [2] unknown (RFC 6960 §4.2.1).
 */
function certStatusOf(ocspResponse: Buffer): "good" | "revoked" | "unknown" {
  const top = children(readDer(ocspResponse));
  const responseBytes = children(children(top[1]!)[0]!);
  const basic = readDer(responseBytes[1]!.content);
  const tbs = children(children(basic)[0]!);
  const responses = tbs.find((node, i) => i > 0 && node.tag === 0x30 && children(node)[0]?.tag === 0x30)!;
  const tag = children(children(responses)[0]!)[1]!.tag;
  return tag === 0x80 ? "good" : tag === 0xa1 ? "revoked" : "unknown";
}

/** The server over a fresh authority with certificates in every state, and two verifiers. */
async function serverOn(dialect: RegistryDialect, open: OpenTestDatabase) {
  const database = await open({ migrate: false });
  await database.close();
  const sandbox = await openOcspSandbox(dialect === "postgres" ? database.url : undefined);
  const { authority } = sandbox;
  const db = authority.registry.db;
  const logged: string[] = [];
  const service = createStatusService(authority, {
    refresher: { pollIntervalMs: 50 },
    lookupFlushIntervalMs: 0,
    log: (line) => logged.push(line),
  });
  const url = await service.listen(0);
  const citizen = await sandbox.citizen("山田 太郎");
  const [revoked, held, released] = await sandbox.issue("auth", 3, "sim");
  const unregistered = await sandbox.unregistered();
  await revokeCertificate(db, revoked!.serial, { actor, reason: CrlReason.keyCompromise });
  await suspendCertificate(db, held!.serial, { actor });
  await suspendCertificate(db, released!.serial, { actor });
  const both = await addVerifier(db, { name: "bank", kind: "both" });
  const authOnly = await addVerifier(db, { name: "portal", kind: "auth" });
  const files = {
    authCa: sandbox.pem("auth-ca", authority.certificates.auth),
    signCa: sandbox.pem("sign-ca", authority.certificates.sign),
    simMakerCa: sandbox.pem("sim-maker-ca", authority.certificates.simMaker),
    good: sandbox.pem("good", citizen.auth),
    signing: sandbox.pem("signing", citizen.sign),
    revoked: sandbox.pem("revoked", revoked!.der),
    held: sandbox.pem("held", held!.der),
    released: sandbox.pem("released", released!.der),
    unknown: sandbox.pem("unknown", unregistered.der),
  };
  /** `openssl ocsp` against the server with a verifier's token (or none). */
  const openssl = (certs: string[], extra: string[] = [], token: string | null = both.token) =>
    run("openssl", [
      "ocsp",
      "-issuer",
      files.authCa,
      ...certs.flatMap((c) => ["-cert", c]),
      "-url",
      `${url}/ocsp`,
      ...(token === null ? [] : ["-header", `Authorization=Bearer ${token}`]),
      "-CAfile",
      files.authCa,
      "-no-CApath",
      "-no-CAstore",
      ...extra,
    ]);
  const ca = parseCertificate(authority.certificates.auth);
  /** A single-certificate request without nonce, as RFC 5019 clients send it (RFC 6960 §4.1.1). */
  const requestFor = (serial: string) =>
    sequence(sequence(sequence(sequence(ocspCertId(ca.subjectDer, ca.spki, Buffer.from(serial, "hex"))))));
  return {
    sandbox,
    authority,
    db,
    service,
    url,
    citizen,
    revoked: revoked!,
    held: held!,
    released: released!,
    unregistered,
    both,
    authOnly,
    files,
    openssl,
    requestFor,
    logged,
    async close() {
      try {
        await service.close();
      } finally {
        await sandbox.close();
      }
    },
  };
}

forEachDialect((dialect, open) => {
  test("openssl ocsp: good, revoked, held, released, unknown; with and without nonce; several per request", async () => {
    const s = await serverOn(dialect, open);
    try {
      const f = s.files;
      const all = await s.openssl([f.good, f.revoked, f.held, f.released, f.unknown]);
      assert.equal(all.code, 0, all.out);
      assert.match(all.out, /Response verify OK/);
      assert.doesNotMatch(all.out, /WARNING: no nonce/); // the nonce was echoed and checked
      assert.deepEqual(opensslStatuses(all.out), [
        "good",
        "revoked/keyCompromise",
        "revoked/certificateHold",
        "revoked/certificateHold",
        "unknown",
      ]);
      for (const [file, expected] of [
        [f.good, "good"],
        [f.revoked, "revoked/keyCompromise"],
        [f.held, "revoked/certificateHold"],
        [f.unknown, "unknown"],
      ] as const) {
        for (const nonce of [[], ["-no_nonce"]]) {
          const one = await s.openssl([file], nonce);
          assert.equal(one.code, 0, one.out);
          assert.match(one.out, /Response verify OK/);
          assert.deepEqual(opensslStatuses(one.out), [expected], `${file} ${nonce.join("")}`);
        }
      }
      // A released hold (一時利用停止 lifted): good again, pre-signed or not.
      await resumeCertificate(s.db, s.released.serial, { actor, policies: DEFAULT_POLICIES });
      for (const nonce of [[], ["-no_nonce"]])
        assert.deepEqual(opensslStatuses((await s.openssl([f.released], nonce)).out), ["good"]);
      // Every certificate answered counted one lookup for the verifier, on the OCSP channel.
      await s.service.lookups.flush();
      assert.deepEqual(
        (await lookupCounts(s.db, { verifierId: s.both.verifierId })).map((r) => [r.channel, r.count]),
        [["ocsp", 5 + 8 + 2]],
      );
    } finally {
      await s.close();
    }
  });

  test("GET /ocsp/{request}: cacheable answers with ETag, 304, private with a query token; OpenSSL reads them", async () => {
    const s = await serverOn(dialect, open);
    try {
      const der = s.requestFor(s.citizen.authSerial);
      const auth = { authorization: `Bearer ${s.both.token}` };
      const encodings = [
        encodeURIComponent(der.toString("base64")),
        der.toString("base64"), // '/' and '+' left as they are
        der.toString("base64url"),
      ];
      const replies = [];
      for (const encoded of encodings)
        replies.push(await fetchRaw(`${s.url}/ocsp/${encoded}`, { headers: auth }));
      const [first] = replies;
      for (const reply of replies) {
        assert.equal(reply.status, 200);
        assert.equal(reply.headers["content-type"], "application/ocsp-response");
        assert.ok(reply.body.equals(first!.body), "the same pre-signed answer whatever the spelling");
      }
      const cacheControl = String(first!.headers["cache-control"]);
      const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)?.[1]);
      assert.match(cacheControl, /^public, no-transform, must-revalidate, max-age=\d+$/);
      assert.ok(maxAge > 23 * 3600 && maxAge <= 24 * 3600, cacheControl);
      assert.match(String(first!.headers.etag), /^"[A-Za-z0-9_-]{24}"$/);
      assert.equal(first!.headers.vary, "Authorization");
      assert.ok(!Number.isNaN(Date.parse(String(first!.headers["last-modified"]))));
      assert.ok(Date.parse(String(first!.headers.expires)) > Date.now());

      // The body is a valid signed answer for the certificate.
      const respFile = join(s.sandbox.dir, "get.der");
      writeFileSync(respFile, first!.body);
      const read = await run("openssl", [
        "ocsp",
        "-respin",
        respFile,
        "-issuer",
        s.files.authCa,
        "-cert",
        s.files.good,
        "-no_nonce",
        "-CAfile",
        s.files.authCa,
        "-no-CApath",
        "-no-CAstore",
      ]);
      assert.equal(read.code, 0, read.out);
      assert.match(read.out, /Response verify OK/);
      assert.deepEqual(opensslStatuses(read.out), ["good"]);

      const notModified = await fetchRaw(`${s.url}/ocsp/${encodings[0]}`, {
        headers: { ...auth, "if-none-match": String(first!.headers.etag) },
      });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.body.length, 0);
      const queryToken = await fetchRaw(`${s.url}/ocsp/${encodings[0]}?access_token=${s.both.token}`);
      assert.equal(queryToken.status, 200);
      assert.match(String(queryToken.headers["cache-control"]), /^private, /);
      assert.ok(queryToken.body.equals(first!.body));
      // POST answers are not cacheable; nor are errors.
      const post = await fetchRaw(`${s.url}/ocsp`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/ocsp-request" },
        body: der,
      });
      assert.equal(post.headers["cache-control"], "no-store");
      assert.ok(post.body.equals(first!.body));
      const refused = await fetchRaw(`${s.url}/ocsp/${encodings[0]}`);
      assert.equal(refused.headers["cache-control"], "no-store");
      assert.equal(refused.body.toString("hex"), "30030a0106");
    } finally {
      await s.close();
    }
  });

  test("GnuTLS ocsptool --ask and NSS ocspclnt agree with OpenSSL (token in the query)", async () => {
    const s = await serverOn(dialect, open);
    try {
      const ocspUrl = `${s.url}/ocsp?access_token=${s.both.token}`;
      const gnutls = async (cert: string) =>
        run("ocsptool", [
          `--ask=${ocspUrl}`,
          "--load-issuer",
          s.files.authCa,
          "--load-cert",
          cert,
          "--load-trust",
          s.files.authCa,
          "--nonce",
        ]);
      for (const [cert, status] of [
        [s.files.good, "good"],
        [s.files.revoked, "revoked"],
        [s.files.held, "revoked"],
        [s.files.unknown, "unknown"],
      ] as const) {
        const answer = await gnutls(cert);
        assert.match(answer.out, new RegExp(`Certificate Status: ${status}`), answer.out);
        assert.match(answer.out, /Nonce: [0-9a-f]+/);
        assert.match(answer.out, /Verifying OCSP Response: Success/);
      }

      const db = createNssDb(s.sandbox.dir);
      const add = (nickname: string, file: string, trust: string) =>
        run("certutil", ["-A", "-d", db, "-n", nickname, "-t", trust, "-a", "-i", file]);
      await add("auth-ca", s.files.authCa, "CT,C,C");
      for (const name of ["good", "revoked", "held", "unknown"] as const)
        await add(name, s.files[name], ",,");
      const nss = (nickname: string, url = ocspUrl) =>
        run("ocspclnt", ["-S", nickname, "-d", db, "-l", url, "-t", "auth-ca"]);
      // NSS checks the answer's signature and the certificate's status: good passes, the rest fail.
      assert.match((await nss("good")).out, /Check of certificate "good" succeeded/);
      for (const name of ["revoked", "held"])
        assert.match((await nss(name)).out, /failed.\s+Reason:\s+Peer's Certificate has been revoked/);
      assert.match((await nss("unknown")).out, /The OCSP server has no status for the certificate/);
      // Without the token NSS gets, and reports, the refusal.
      assert.match((await nss("good", `${s.url}/ocsp`)).out, /refused this request as unauthorized/);
    } finally {
      await s.close();
    }
  });

  test("unauthorized: no token, a wrong one, a CA the verifier is not registered for, another issuer", async () => {
    const s = await serverOn(dialect, open);
    try {
      const unauthorized = (out: string) => assert.match(out, /Responder Error: unauthorized \(6\)/, out);
      unauthorized((await s.openssl([s.files.good], [], null)).out);
      unauthorized((await s.openssl([s.files.good], [], `${s.both.token.slice(0, -2)}xx`)).out);
      unauthorized((await s.openssl([s.files.good], [], "not a token at all")).out);
      const signingCert = (token: string) =>
        run("openssl", [
          "ocsp",
          "-issuer",
          s.files.signCa,
          "-cert",
          s.files.signing,
          "-url",
          `${s.url}/ocsp`,
          "-header",
          `Authorization=Bearer ${token}`,
          "-CAfile",
          s.files.signCa,
        ]);
      unauthorized((await signingCert(s.authOnly.token)).out);
      assert.deepEqual(opensslStatuses((await signingCert(s.both.token)).out), ["good"]);
      // The auth-only verifier still gets its own CA's answers.
      assert.deepEqual(opensslStatuses((await s.openssl([s.files.good], [], s.authOnly.token)).out), [
        "good",
      ]);
      // A CertID naming the SIM maker's CA: not ours to answer (RFC 5019 §2.2.3).
      const foreign = await run("openssl", [
        "ocsp",
        "-issuer",
        s.files.simMakerCa,
        "-cert",
        s.files.good,
        "-url",
        `${s.url}/ocsp`,
        "-header",
        `Authorization=Bearer ${s.both.token}`,
      ]);
      unauthorized(foreign.out);
      // Refusals are not lookups.
      await s.service.lookups.flush();
      const counted = await lookupCounts(s.db);
      assert.deepEqual(
        counted.map((r) => [r.verifierId === s.both.verifierId ? "both" : "auth", r.count]).sort(),
        [
          ["auth", 1],
          ["both", 1],
        ],
      );
    } finally {
      await s.close();
    }
  });

  test("hostile input: malformed requests, oversized bodies (refused unread), wrong methods and types", async () => {
    const s = await serverOn(dialect, open);
    try {
      const auth = { authorization: `Bearer ${s.both.token}`, "content-type": "application/ocsp-request" };
      const post = (body: Buffer, headers: Record<string, string> = auth) =>
        fetchRaw(`${s.url}/ocsp`, { method: "POST", headers, body });
      for (const body of [
        Buffer.alloc(0),
        Buffer.from("hello"),
        Buffer.from("3003020101", "hex"),
        s.requestFor(s.citizen.authSerial).subarray(0, 40),
      ]) {
        const reply = await post(body);
        assert.equal(reply.status, 200);
        assert.equal(
          reply.body.toString("hex"),
          "30030a0101",
          `malformedRequest for ${body.toString("hex")}`,
        );
      }
      for (const path of ["%zz", "!!!!", "QUJD", "a", encodeURIComponent("=AAAA")]) {
        const reply = await fetchRaw(`${s.url}/ocsp/${path}`, { headers: auth });
        assert.equal(reply.body.toString("hex"), "30030a0101", path);
      }
      assert.equal(
        (await post(s.requestFor(s.citizen.authSerial), { ...auth, "content-type": "text/plain" })).status,
        415,
      );
      assert.equal((await fetchRaw(`${s.url}/ocsp`, { headers: auth })).status, 405);
      const missing = await fetchRaw(`${s.url}/nothing/here`);
      assert.equal(missing.status, 404);
      assert.deepEqual(Object.keys(JSON.parse(missing.body.toString())), ["error", "reason"]);

      // 100 MB announced, 1 KiB sent: the answer comes at once, before the body (it is never read).
      const oversized = await new Promise<string>((resolve, reject) => {
        const port = new URL(s.url).port;
        const socket = connect(Number(port), "127.0.0.1", () => {
          socket.write(
            `POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`,
          );
          socket.write(Buffer.alloc(1024));
        });
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString("latin1");
          if (text.includes("\r\n\r\n")) {
            socket.destroy();
            resolve(text);
          }
        });
        socket.on("error", reject);
        setTimeout(() => reject(new Error(`no answer to an oversized body: ${text}`)), 5000).unref();
      });
      assert.match(oversized, /^HTTP\/1\.1 413 /);
      assert.match(oversized, /connection: close/i);
      // A chunked body is cut as soon as it passes 64 KiB.
      const chunked = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${s.url}/ocsp`, { method: "POST", headers: auth }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", () => undefined); // the server may close while we still write
        req.write(Buffer.alloc(40_000));
        req.write(Buffer.alloc(40_000));
        setTimeout(() => reject(new Error("no answer to an oversized chunked body")), 5000).unref();
      });
      assert.equal(chunked, 413);
      // Still serving.
      assert.equal((await fetchRaw(`${s.url}/healthz`)).status, 200);
      assert.deepEqual(s.logged, []);
    } finally {
      await s.close();
    }
  });

  test("a cached good is never served after a revocation, also when the two race", async () => {
    const s = await serverOn(dialect, open);
    // Revocations come through another handle on the database, as from another process.
    const other = await openRegistryDatabase(s.sandbox.registryUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    try {
      const certs = await s.sandbox.issue("auth", 24);
      const auth = { authorization: `Bearer ${s.both.token}` };
      const ask = async (serial: string, method: "GET" | "POST") => {
        const der = s.requestFor(serial);
        const reply =
          method === "GET"
            ? await fetchRaw(`${s.url}/ocsp/${encodeURIComponent(der.toString("base64"))}`, {
                headers: auth,
                agent,
              })
            : await fetchRaw(`${s.url}/ocsp`, {
                method: "POST",
                headers: { ...auth, "content-type": "application/ocsp-request" },
                body: der,
                agent,
              });
        assert.equal(reply.status, 200);
        return certStatusOf(reply.body);
      };
      // Revoke, then at once ask, many times: every answer after the commit says revoked.
      for (const cert of certs.slice(0, 12)) {
        assert.equal(await ask(cert.serial, "GET"), "good");
        assert.equal(await ask(cert.serial, "GET"), "good"); // now in memory
        await revokeCertificate(other.db, cert.serial, { actor, reason: CrlReason.keyCompromise });
        for (let i = 0; i < 5; i++) {
          assert.equal(await ask(cert.serial, "GET"), "revoked", `GET ${cert.serial} after its revocation`);
          assert.equal(await ask(cert.serial, "POST"), "revoked", `POST ${cert.serial} after its revocation`);
        }
      }
      // Race: queries stream while the revocation commits; those sent after it returned must say revoked.
      for (const cert of certs.slice(12)) {
        await ask(cert.serial, "GET");
        let revokedAt = Number.POSITIVE_INFINITY;
        const answers: { sent: number; status: string }[] = [];
        const stream = (async () => {
          for (let i = 0; i < 30; i++) {
            const sent = performance.now();
            answers.push({ sent, status: await ask(cert.serial, i % 2 ? "POST" : "GET") });
          }
        })();
        await new Promise((r) => setTimeout(r, 5));
        await suspendCertificate(other.db, cert.serial, { actor });
        revokedAt = performance.now();
        await stream;
        for (const a of answers)
          if (a.sent > revokedAt)
            assert.equal(a.status, "revoked", `a query sent after the hold got ${a.status}`);
        assert.equal(await ask(cert.serial, "GET"), "revoked");
      }
    } finally {
      agent.destroy();
      await other.close();
      await s.close();
    }
  });

  test("CRLs for registered verifiers; /healthz, /metrics, /openapi.json and /docs", async () => {
    const s = await serverOn(dialect, open);
    try {
      await publishCrls(s.authority);
      const shard = (
        await s.db
          .selectFrom("certificates")
          .select("shard")
          .where("serial", "=", s.revoked.serial)
          .executeTakeFirstOrThrow()
      ).shard;
      const crlUrl = `${s.url}/crl/auth/${shard}.crl`;
      assert.equal((await fetchRaw(crlUrl)).status, 401);
      const signOnly = await addVerifier(s.db, { name: "signer", kind: "sign" });
      assert.equal(
        (await fetchRaw(crlUrl, { headers: { authorization: `Bearer ${signOnly.token}` } })).status,
        403,
      );
      const crl = await fetchRaw(crlUrl, { headers: { authorization: `Bearer ${s.authOnly.token}` } });
      assert.equal(crl.status, 200);
      assert.equal(crl.headers["content-type"], "application/pkix-crl");
      assert.match(
        String(crl.headers["cache-control"]),
        /^public, no-transform, must-revalidate, max-age=\d+$/,
      );
      const crlFile = join(s.sandbox.dir, "shard.crl");
      writeFileSync(crlFile, crl.body);
      const text = await run("openssl", ["crl", "-inform", "DER", "-in", crlFile, "-noout", "-text"]);
      assert.match(text.out, new RegExp(`Serial Number: ${s.revoked.serial.toUpperCase()}`));
      const again = await fetchRaw(crlUrl, {
        headers: { authorization: `Bearer ${s.authOnly.token}`, "if-none-match": String(crl.headers.etag) },
      });
      assert.equal(again.status, 304);
      assert.equal(
        (await fetchRaw(`${s.url}/crl/auth/${shard}-delta.crl?access_token=${s.authOnly.token}`)).status,
        200,
      );
      assert.equal(
        (await fetchRaw(`${s.url}/crl/auth/99999.crl?access_token=${s.authOnly.token}`)).status,
        404,
      );
      assert.equal((await fetchRaw(`${s.url}/crl/other/1.crl`)).status, 404);
      await s.service.lookups.flush();
      assert.deepEqual(
        (await lookupCounts(s.db, { verifierId: s.authOnly.verifierId })).map((r) => [r.channel, r.count]),
        [["crl", 3]],
      );

      const health = await fetchRaw(`${s.url}/healthz`);
      assert.equal(health.status, 200);
      const healthJson = JSON.parse(health.body.toString());
      assert.equal(healthJson.status, "ok");
      assert.equal(healthJson.database.reachable, true);
      assert.deepEqual(
        healthJson.signers.map((x: { issuer: string; loaded: boolean }) => [x.issuer, x.loaded]),
        [
          ["auth", true],
          ["sign", true],
        ],
      );

      await s.openssl([s.files.good, s.files.revoked]);
      await s.openssl([s.files.held], ["-no_nonce"]);
      const metrics = (await fetchRaw(`${s.url}/metrics`)).body.toString();
      assert.match(metrics, /^# TYPE jpki_http_requests_total counter$/m);
      assert.match(metrics, /^jpki_http_requests_total\{route="ocsp_post",code="200"\} 2$/m);
      assert.match(metrics, /^jpki_ocsp_responses_total\{status="successful"\} 2$/m);
      assert.match(metrics, /^jpki_ocsp_cert_statuses_total\{status="held"\} 1$/m);
      assert.match(metrics, /^jpki_ocsp_cache_total\{result="(hit|miss)"\} 1$/m);
      assert.match(metrics, /^jpki_http_request_duration_seconds_bucket\{route="ocsp_post",le="\+Inf"\} 2$/m);
      assert.match(metrics, /^jpki_verifier_lookups_total\{channel="crl"\} 3$/m);
      // Every sample line is `name{labels} number` (the exposition format).
      for (const line of metrics.trim().split("\n"))
        assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[0-9.e+-]+)$/, line);

      const openapi = JSON.parse((await fetchRaw(`${s.url}/openapi.json`)).body.toString());
      assert.equal(openapi.openapi, "3.1.0");
      for (const path of [
        "/ocsp",
        "/ocsp/{request}",
        "/crl/{ca}/{shard}.crl",
        "/crl/{ca}/{shard}-delta.crl",
        "/healthz",
        "/metrics",
      ])
        assert.ok(openapi.paths[path], path);
      const docs = await fetchRaw(`${s.url}/docs`);
      assert.match(String(docs.headers["content-type"]), /^text\/html/);
      assert.match(String(docs.headers["content-security-policy"]), /default-src 'none'/);
      assert.match(docs.body.toString(), /<code>\/ocsp\/\{request\}<\/code>/);
      assert.doesNotMatch(docs.body.toString(), /<script|https?:\/\//);
    } finally {
      await s.close();
    }
  });
});
