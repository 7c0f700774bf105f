/**
 * The JSON APIs under /api at random (fast-check): any method, any of their paths with known and
 * unknown identifiers, any body (random bytes, random JSON, objects with the fields the APIs read,
 * holding random values), with and without a verifier's token. Every answer is 2xx to 4xx with a
 * JSON body, never a 5xx, nothing is logged as an internal failure, and the registry's audit chain
 * stays whole. (Routes that wait for a phone, key generation and delivery, are left out.)
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { openRaSandbox, type RaSandbox } from "../ra/ra-fixture.js";
import { addVerifier } from "../registry/verifiers.js";
import { createStatusService, type StatusService } from "./http.js";

let sandbox: RaSandbox;
let service: StatusService;
let url: string;
let token: string;
let iccid: string;
const logged: string[] = [];

before(async () => {
  sandbox = await openRaSandbox();
  service = createStatusService(sandbox.authority, { refresher: false, log: (line) => logged.push(line) });
  url = await service.listen(0);
  token = (await addVerifier(sandbox.authority.registry.db, { name: "fuzz", kind: "auth" })).token;
  iccid = (await sandbox.phone()).sim.iccid;
});

after(async () => {
  await service.close();
  await sandbox.close();
});

/** Hex text: what serials and ids look like. */
const hexText = (minLength: number, maxLength: number) =>
  fc.uint8Array({ minLength, maxLength }).map((b) => Buffer.from(b).toString("hex"));
const anyText = fc.oneof(fc.string({ maxLength: 40 }), fc.base64String({ maxLength: 60 }), hexText(0, 20));
const anyValue = fc.oneof(
  anyText,
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(anyText, { maxLength: 4 }),
);

test("the JSON APIs answer any request with 2xx to 4xx and a JSON reason, and log no failure", async () => {
  const id = fc.oneof(
    fc.constant(iccid),
    fc.constant("8981900000000000001"),
    hexText(1, 20),
    fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)),
  );
  const path = fc.oneof(
    fc.constantFrom(
      "/api/ra/nonces",
      "/api/ra/carrier-events",
      "/api/ra/links",
      "/api/ra/applications",
      "/api/support/compatibility",
      "/api/mno/scripts",
      "/api/",
      "/api/mno",
    ),
    id.map((x) => `/api/mno/sims/${x}`),
    id.map((x) => `/api/mno/scripts/${x}`),
    id.map((x) => `/api/ra/applications/${x}`),
    fc.tuple(id, id).map(([a, b]) => `/api/mno/relay/${a}/${b}`),
    id.map((x) => `/api/mno/relay/${x}`),
  );
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
    fc
      .record(
        {
          iccid: fc.oneof(fc.constant(iccid), anyValue),
          id: anyValue,
          commands: fc.oneof(fc.array(fc.base64String({ maxLength: 40 }), { maxLength: 3 }), anyValue),
          responses: fc.oneof(fc.array(fc.base64String({ maxLength: 40 }), { maxLength: 3 }), anyValue),
          serial: anyValue,
          event: anyValue,
          signature: anyValue,
          nonce: anyValue,
        },
        { requiredKeys: [] },
      )
      .map((o) => Buffer.from(JSON.stringify(o))),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("GET", "POST", "POST", "PUT", "DELETE"),
      path,
      fc.constantFrom("application/json", "application/cms", "text/plain"),
      fc.boolean(),
      body,
      async (method, target, type, withToken, payload) => {
        const response = await fetch(`${url}${target}`, {
          method,
          headers: { "content-type": type, ...(withToken ? { authorization: `Bearer ${token}` } : {}) },
          ...(method === "GET" ? {} : { body: payload }),
        });
        const text = await response.text();
        assert.ok(
          response.status >= 200 && response.status < 500,
          `${method} ${target}: ${response.status} ${text}`,
        );
        if (response.status >= 400) assert.ok(typeof JSON.parse(text).reason === "string", text);
      },
    ),
    { numRuns: 400 },
  );
  assert.deepEqual(
    logged.filter((line) => /failed/.test(line)),
    [],
  );
  assert.deepEqual(await sandbox.authority.registry.verifyAudit(), []);
});
