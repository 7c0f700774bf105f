/**
 * The demo relying party's HTTP edge: malformed input gets a 4xx with a JSON reason, never a crash;
 * the login body parser accepts exactly the documented shape (property-based), and random requests
 * never get a 5xx or stop the server. No status server is needed: none of these reach the OCSP check.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { buildTestHierarchy } from "../pki/test-hierarchy.js";
import {
  createDemoRelyingParty,
  type DemoRelyingParty,
  MAX_DEMO_BODY_BYTES,
  parseLoginRequest,
} from "./demo-server.js";
import { exchange } from "./http-client.js";

const hierarchy = buildTestHierarchy();
const CHALLENGE_ID = "A".repeat(43);

describe("parseLoginRequest", () => {
  test("reads the documented shape, with base64 or base64url", () => {
    const certificate = hierarchy.phoneAuth;
    const signature = Buffer.alloc(256, 0xfb);
    const read = parseLoginRequest(
      JSON.stringify({
        challengeId: CHALLENGE_ID,
        certificate: certificate.toString("base64"),
        signature: signature.toString("base64url"),
        extra: "ignored",
      }),
    );
    assert.deepEqual(read, { challengeId: CHALLENGE_ID, certificate, signature });
  });

  test("anything else is refused as bad input, naming the field", () => {
    const cases: [string, RegExp][] = [
      ["", /not JSON/],
      ["{", /not JSON/],
      ["[]", /JSON object/],
      ["null", /JSON object/],
      ['"x"', /JSON object/],
      [JSON.stringify({ challengeId: "short", certificate: "AA==", signature: "AA==" }), /challengeId/],
      [JSON.stringify({ challengeId: CHALLENGE_ID, signature: "AA==" }), /certificate/],
      [
        JSON.stringify({ challengeId: CHALLENGE_ID, certificate: "AA==", signature: "not base64!" }),
        /signature/,
      ],
      [JSON.stringify({ challengeId: CHALLENGE_ID, certificate: "", signature: "AA==" }), /certificate/],
      [
        JSON.stringify({ challengeId: CHALLENGE_ID, certificate: "AA==", signature: "A".repeat(2000) }),
        /signature/,
      ],
      [JSON.stringify({ challengeId: CHALLENGE_ID, certificate: 5, signature: "AA==" }), /certificate/],
      [
        JSON.stringify({ challengeId: CHALLENGE_ID, certificate: "AA==", signature: "AA==", challenge: [] }),
        /challenge/,
      ],
    ];
    for (const [body, reason] of cases)
      assert.throws(
        () => parseLoginRequest(body),
        (error: unknown) =>
          error instanceof JpkiError && error.code === "bad-input" && reason.test(error.message),
        body,
      );
  });

  test("property: any input is either the documented shape or a bad-input refusal", () => {
    const base64ish = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b).toString("base64")),
      fc.string({ maxLength: 40 }),
    );
    const member = fc.oneof(
      base64ish,
      fc.integer(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 2 }),
    );
    const body = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            challengeId: fc.oneof(fc.constant(CHALLENGE_ID), fc.string({ maxLength: 50 }), member),
            certificate: member,
            signature: member,
            challenge: member,
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(body, (text) => {
        try {
          const read = parseLoginRequest(text);
          assert.match(read.challengeId, /^[A-Za-z0-9_-]{43}$/);
          assert.ok(read.certificate.length > 0 && read.certificate.length <= 16 * 1024);
          assert.ok(read.signature.length > 0 && read.signature.length <= 512);
        } catch (error) {
          assert.ok(error instanceof JpkiError && error.code === "bad-input", String(error));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("the demo server's HTTP errors", () => {
  let demo: DemoRelyingParty;
  let url: string;
  const logged: string[] = [];

  before(async () => {
    demo = createDemoRelyingParty({
      id: "fuzzed-bank",
      trustAnchors: [hierarchy.authCa],
      // Never reached: nothing here passes the checks before status.
      status: { url: "http://127.0.0.1:9/ocsp", token: "unused-token-unused-token" },
      log: (line) => logged.push(line),
    });
    url = await demo.listen(0);
  });
  after(() => demo.close());

  async function ask(method: "GET" | "POST", path: string, body?: string, type = "application/json") {
    const reply = await exchange(`${url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": type },
      ...(body === undefined ? {} : { body: Buffer.from(body) }),
    });
    const text = reply.body.toString();
    return { status: reply.status, json: text ? (JSON.parse(text) as Record<string, string>) : {} };
  }

  test("each refusal is a 4xx with a JSON reason", async () => {
    const cases: [Awaited<ReturnType<typeof ask>>, number, string][] = [
      [await ask("POST", "/login", "{not json"), 400, "bad-input"],
      [await ask("POST", "/login", "[1,2]"), 400, "bad-input"],
      [await ask("POST", "/login", "{}", "text/plain"), 415, "unsupported-media-type"],
      [await ask("GET", "/login"), 405, "method-not-allowed"],
      [await ask("GET", "/nowhere"), 404, "not-found"],
      [await ask("GET", "/me"), 401, "no-session"],
      [
        await ask(
          "POST",
          "/login",
          JSON.stringify({ challengeId: CHALLENGE_ID, certificate: "MAA=", signature: "AAAA" }),
        ),
        401,
        "login-refused",
      ],
    ];
    for (const [reply, status, error] of cases) {
      assert.equal(reply.status, status, JSON.stringify(reply.json));
      assert.equal(reply.json["error"], error);
      assert.ok(reply.json["reason"], "a reason is given");
    }
    const unknown = cases[6]![0];
    assert.equal(unknown.json["check"], "challenge-unknown");

    // A challenge, then a certificate that is not DER under its id.
    const challenge = await ask("POST", "/login/challenge", "{}");
    assert.equal(challenge.status, 200);
    assert.equal(challenge.json["rpId"], "fuzzed-bank");
    assert.equal(challenge.json["origin"], url);
    const notDer = await ask(
      "POST",
      "/login",
      JSON.stringify({ challengeId: challenge.json["challengeId"], certificate: "MAA=", signature: "AAAA" }),
    );
    assert.deepEqual([notDer.status, notDer.json["check"]], [401, "certificate"]);

    // Too large: refused from its Content-Length.
    const big = await ask("POST", "/login", "x".repeat(MAX_DEMO_BODY_BYTES + 1));
    assert.deepEqual([big.status, big.json["error"]], [413, "too-large"]);
    assert.deepEqual(logged, []);
  });

  test("property: random requests never get a 5xx and the server keeps answering", async () => {
    const request = fc.record({
      method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
      path: fc.oneof(
        fc.constantFrom("/", "/login", "/login/challenge", "/me", "/logout", "/login?x=1", "//login"),
        fc.webPath(),
      ),
      type: fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", ""),
      body: fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
      ),
    });
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path, type, body }) => {
        const status = await rawRequest(url, method, path.startsWith("/") ? path : `/${path}`, type, body);
        assert.ok(status >= 200 && status < 500, `${method} ${path}: ${status}`);
      }),
      { numRuns: 300 },
    );
    // Bytes that are not HTTP at all.
    await new Promise<void>((resolve) => {
      const socket = connect(Number(new URL(url).port), "127.0.0.1", () =>
        socket.end("\x00\x01 not http\r\n\r\n"),
      );
      socket.on("close", () => resolve());
      socket.on("error", () => resolve());
      socket.resume();
    });
    assert.equal((await ask("GET", "/me")).status, 401, "still answering");
    assert.deepEqual(logged, []);
  });
});

/** One request over a raw socket (any method, path and bytes), resolving with the status code. */
function rawRequest(url: string, method: string, path: string, type: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const bytes = Buffer.from(body, "latin1");
    const head = [
      `${method} ${path.replace(/[^\x21-\x7e]/g, "_")} HTTP/1.1`,
      `host: ${new URL(url).host}`,
      ...(type ? [`content-type: ${type}`] : []),
      `content-length: ${bytes.length}`,
      "connection: close",
      "",
      "",
    ].join("\r\n");
    const socket = connect(Number(new URL(url).port), "127.0.0.1", () =>
      socket.end(Buffer.concat([Buffer.from(head), bytes])),
    );
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
    });
    socket.on("end", () => {
      const match = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`no HTTP status in ${JSON.stringify(answer.slice(0, 100))}`));
    });
    socket.on("error", reject);
  });
}
