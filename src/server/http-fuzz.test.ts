/**
 * Property tests of the status server's edges: the GET path decoder reads every spelling of base64 a
 * client may send and never throws, and random requests (methods, paths, headers, bodies) never get a
 * 5xx, never log an internal failure, and never stop the server.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { parseCertificate } from "../pki/certificate.js";
import { sequence } from "../pki/der.js";
import { ocspCertId } from "../pki/ocsp.js";
import { addVerifier } from "../registry/verifiers.js";
import { openOcspSandbox } from "../status/ocsp-fixture.js";
import { createStatusService, decodeOcspGetPath, type StatusService } from "./http.js";

describe("GET /ocsp/{request}: the path decoder", () => {
  const bytes = fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b));

  test("every spelling of the base64 of some bytes gives those bytes back", () => {
    fc.assert(
      fc.property(
        bytes,
        fc.constantFrom("std", "url", "unpadded", "percent", "all-percent"),
        (der, style) => {
          const base64 = der.toString("base64");
          const spelled = {
            std: base64,
            url: der.toString("base64url"),
            unpadded: base64.replace(/=+$/, ""),
            percent: encodeURIComponent(base64),
            "all-percent": [...base64]
              .map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
              .join(""),
          }[style];
          assert.deepEqual(decodeOcspGetPath(spelled), der);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("any text: a Buffer or undefined, never an exception", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 300 })),
        (text) => {
          const der = decodeOcspGetPath(text);
          assert.ok(der === undefined || (Buffer.isBuffer(der) && der.length > 0));
        },
      ),
      { numRuns: 3000 },
    );
    for (const text of ["", "a", "ab=c", "%", "%e0%a4%a", "QQ===", "Q".repeat(400_000)])
      assert.equal(decodeOcspGetPath(text), undefined, text.slice(0, 20));
  });
});

describe("random requests never get a 5xx", () => {
  let sandbox: Awaited<ReturnType<typeof openOcspSandbox>>;
  let service: StatusService;
  let port: number;
  let token: string;
  let validRequest: Buffer;
  const logged: string[] = [];

  before(async () => {
    sandbox = await openOcspSandbox();
    service = createStatusService(sandbox.authority, { refresher: false, log: (line) => logged.push(line) });
    port = Number(new URL(await service.listen(0)).port);
    token = (await addVerifier(sandbox.authority.registry.db, { name: "fuzz", kind: "both" })).token;
    const [cert] = await sandbox.issue("auth", 1);
    const ca = parseCertificate(sandbox.authority.certificates.auth);
    validRequest = sequence(
      sequence(sequence(sequence(ocspCertId(ca.subjectDer, ca.spki, Buffer.from(cert!.serial, "hex"))))),
    );
  });

  after(async () => {
    await service.close();
    await sandbox.close();
  });

  /**
   * Sends raw bytes on a fresh connection; resolves with the status code of the answer (0: none). The
   * connection is not half-closed: node:http drops a request whose client ended its side first.
   */
  function exchange(raw: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(raw));
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString("latin1");
      });
      socket.on("error", (error: NodeJS.ErrnoException) => {
        // The server may close a connection whose request it refused while we still write.
        if (error.code === "ECONNRESET" || error.code === "EPIPE")
          resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0));
        else reject(error);
      });
      socket.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
      socket.setTimeout(10_000, () =>
        reject(new Error(`no answer to ${raw.subarray(0, 80).toString("latin1")}`)),
      );
    });
  }

  const body = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }).map(({ at, byte }) => {
      const mutated = Buffer.from(validRequest);
      mutated[at % mutated.length] = byte;
      return mutated;
    }),
    fc.constant(Buffer.alloc(0)).map(() => validRequest),
  );
  const pathText = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.string({ unit: "binary", maxLength: 60 }).map((s) => encodeURIComponent(s)),
    fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b).toString("base64")),
  );
  const query = fc.option(
    fc.constantFrom("?access_token=", "?", "?x=1&access_token=%zz", "?access_token=AAAA"),
    {
      nil: undefined,
    },
  );
  /** Paths that hit each route, and random ones; only characters an HTTP request line can carry. */
  const path = fc
    .oneof(
      {
        weight: 3,
        arbitrary: fc.tuple(
          fc.constantFrom(
            "/ocsp",
            "/healthz",
            "/metrics",
            "/docs",
            "/openapi.json",
            "/crl/auth/0.crl",
            "/crl/sign/3-delta.crl",
          ),
          fc.constant(""),
          query,
        ),
      },
      {
        weight: 3,
        arbitrary: fc.tuple(
          fc.constant("/ocsp/"),
          body.map((b) => encodeURIComponent(b.toString("base64"))),
          query,
        ),
      },
      {
        weight: 2,
        arbitrary: fc.tuple(
          fc.constantFrom("/ocsp/", "/crl/auth/", "/crl/sign/", "/crl/", "/", ""),
          pathText,
          query,
        ),
      },
    )
    .map(([prefix, rest, q]) =>
      `${prefix}${rest}${q ?? ""}`.replace(/[\s\u0000-\u001f\u007f]/g, "").replace(/[^\u0021-\u00ff]/g, "_"),
    );

  test("methods, paths, headers and bodies at random", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"),
        path,
        fc.constantFrom(
          "application/ocsp-request",
          "application/ocsp-request",
          "",
          "text/plain",
          "Application/OCSP-request; x=y",
        ),
        fc.constantFrom("none", "valid", "wrong", "garbage"),
        body,
        async (method, target, type, auth, payload) => {
          const authorization = {
            none: "",
            valid: `Authorization: Bearer ${token}\r\n`,
            wrong: `Authorization: Bearer ${"A".repeat(43)}\r\n`,
            garbage: "Authorization: Basic Zm9vOmJhcg==\r\n",
          }[auth];
          const head =
            `${method} ${target.startsWith("/") ? target : `/${target}`} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n` +
            `${type ? `Content-Type: ${type}\r\n` : ""}${authorization}Content-Length: ${payload.length}\r\n\r\n`;
          const status = await exchange(Buffer.concat([Buffer.from(head, "latin1"), payload]));
          assert.ok(status >= 200 && status < 500, `${method} ${target}: ${status}`);
        },
      ),
      { numRuns: 300 },
    );
    assert.deepEqual(logged, [], "no internal failure was logged");
    assert.equal(
      await exchange(Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
      200,
    );
  });

  test("requests that are not HTTP at all are answered 400 or dropped, and the server goes on", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 400 }), async (raw) => {
        // Only line ends: blank lines before a request line are allowed (RFC 9112 §2.2), so the server
        // rightly waits for the request; that is no answer to check.
        if (raw.every((b) => b === 0x0a || b === 0x0d)) return;
        const status = await exchange(Buffer.concat([Buffer.from(raw), Buffer.from("\r\n\r\n")]));
        assert.ok(status === 0 || (status >= 400 && status < 500), String(status));
      }),
      { numRuns: 200 },
    );
    assert.equal(
      await exchange(Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
      200,
    );
    assert.deepEqual(logged, []);
  });
});
