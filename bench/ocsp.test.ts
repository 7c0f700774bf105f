/** The OCSP benchmark runs end to end and reports figures that hang together (not a timing assertion). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { benchOcsp, OCSP_GOAL, wrkInstalled } from "./ocsp.js";

test("bench ocsp measures `jpki-mobile start` and `openssl ocsp` on the same certificates", async () => {
  const phases: string[] = [];
  const result = await benchOcsp({
    certificates: 40,
    seconds: 0.4,
    connections: [4],
    onProgress: (phase) => phases.push(phase),
  });
  assert.equal(result.certificates, 40);
  assert.deepEqual(
    result.runs.map((r) => [r.server, r.connections, r.keepAlive]),
    [
      ["jpki-mobile", 4, true],
      ["jpki-mobile", 16, false],
      ["openssl ocsp", 16, false],
      ["openssl ocsp -multi 2", 16, false],
    ],
  );
  for (const run of result.runs) {
    assert.ok(run.answers > 0, `${run.server}: no answers`);
    assert.equal(run.errors, 0, `${run.server}: ${run.errors} answers were not successful OCSP answers`);
    assert.ok(Math.abs(run.answersPerSecond - run.answers / run.seconds) < 1e-6);
    assert.ok(run.p50Ms > 0 && run.p50Ms <= run.p99Ms);
    assert.ok(run.serverCores > 0 && run.clientCores > 0, `${run.server}: CPU was measured`);
    assert.ok(Math.abs(run.answersPerServerCore - run.answersPerSecond / run.serverCores) < 1e-6);
  }
  const ours = result.runs[0]!.answersPerSecond;
  assert.ok(Math.abs(result.ratio! - ours / result.runs[2]!.answersPerSecond) < 1e-9);
  assert.ok(Math.abs(result.ratioMulti! - ours / result.runs[3]!.answersPerSecond) < 1e-9);
  assert.ok(
    Math.abs(
      result.ratioPerServerCore! -
        result.runs[0]!.answersPerServerCore / result.runs[2]!.answersPerServerCore,
    ) < 1e-9,
  );
  assert.deepEqual(result.goal, OCSP_GOAL);
  assert.ok(phases.includes("warming up"));
  // Keep-alive loads from wrk when it is installed; one request per connection always from Node.
  const keepAliveGenerator = wrkInstalled() ? "wrk" : "node";
  assert.equal(result.generator, keepAliveGenerator);
  assert.deepEqual(
    result.runs.map((r) => r.generator),
    [keepAliveGenerator, "node", "node", "node"],
  );
  assert.equal(result.workers, 1);
  assert.ok(result.loadAverage.every((l) => l >= 0));
});

test("bench ocsp without wrk: the load generator of this process, against two workers", async () => {
  const result = await benchOcsp({
    certificates: 20,
    seconds: 0.3,
    connections: [3],
    generator: "node",
    workers: 2,
    openssl: false,
  });
  assert.equal(result.workers, 2);
  assert.deepEqual(
    result.runs.map((r) => [r.generator, r.connections, r.keepAlive]),
    [
      ["node", 3, true],
      ["node", 16, false],
    ],
  );
  for (const run of result.runs) {
    assert.ok(run.answers > 0);
    assert.equal(run.errors, 0);
  }
  assert.equal(result.ratio, undefined);
});
