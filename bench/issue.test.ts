/**
 * `bench issue` at a small size, through the command line's code: the figures are there and make
 * sense (every application issued, the latency without the SIM's key generation); no speed is
 * asserted (benchmarks measure, tests check).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runIssueBench } from "./issue.js";

test("bench issue runs end to end at a small size and reports coherent figures", async () => {
  const phases = new Set<string>();
  const result = await runIssueBench({
    applications: 12,
    citizens: 3,
    concurrency: 6,
    latencySamples: 2,
    opensslSeconds: 1,
    onProgress: (phase) => phases.add(phase),
  });
  assert.equal(result.applications, 12);
  assert.ok(result.applicationsPerSecond > 0 && result.seconds > 0);
  assert.ok(result.opensslRsa2048SignsPerSecond > 0);
  assert.equal(result.latency.samples, 2);
  assert.ok(result.latency.medianMs > 0 && result.latency.keyGenerationMedianMs > 0);
  assert.ok(phases.has("applications examined and issued"));
  assert.ok(phases.has("complete applications with OTA delivery"));
});
