/** The CRL benchmark runs end to end on both databases and reports figures that hang together (not a timing assertion). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { postgresTestUrl } from "../src/testing/dialects.js";
import { benchCrl, type CrlBenchPhase } from "./crl.js";

test("bench crl publishes N entries through the registry and OpenSSL signs the same N", async () => {
  const phases: [CrlBenchPhase, number, number][] = [];
  const result = await benchCrl({
    entries: 2500,
    shards: 4,
    postgresUrl: postgresTestUrl,
    onProgress: (phase, done, total) => phases.push([phase, done, total]),
  });
  assert.deepEqual(
    result.runs.map((r) => r.database),
    ["sqlite", "postgres"],
  );
  for (const run of result.runs) {
    // Both sides handled every entry: ours in 4 complete CRLs (and 4 empty deltas), OpenSSL's in one.
    assert.deepEqual([run.ours.entries, run.ours.crls, run.openssl.entries], [2500, 8, 2500]);
    // The same entries in the same encoding, give or take per-CRL headers and OpenSSL's hold
    // instructions: the sizes are close.
    assert.ok(
      Math.abs(run.ours.bytes - run.openssl.bytes) / run.openssl.bytes < 0.2,
      `${run.ours.bytes} vs ${run.openssl.bytes}`,
    );
    assert.ok(run.ours.seconds > 0 && run.openssl.gencrl.seconds > 0 && run.openssl.verify.seconds > 0);
    assert.ok(Math.abs(run.speedup - run.openssl.seconds / run.ours.seconds) < 1e-9);
    assert.ok(Math.abs(run.openssl.seconds - run.openssl.gencrl.seconds - run.openssl.verify.seconds) < 1e-9);
    assert.ok(run.ours.peakRssBytes! > 20e6, "a Node process's resident memory");
    if (result.memoryUnavailable === null) {
      assert.equal(
        run.openssl.peakRssBytes,
        Math.max(run.openssl.gencrl.peakRssBytes!, run.openssl.verify.peakRssBytes!),
      );
      assert.ok(Math.abs(run.memoryRatio! - run.ours.peakRssBytes! / run.openssl.peakRssBytes!) < 1e-9);
    } else assert.equal(run.memoryRatio, null);
  }
  // Progress: the registry filled to N, then the two sides, for each database.
  const ends = phases.filter(([, done, total]) => done === total).map(([phase, done]) => [phase, done]);
  assert.deepEqual(ends, [
    ["filling the registry", 2500],
    ["publishing", 2],
    ["filling the registry", 2500],
    ["publishing", 2],
  ]);
});

test("bench crl refuses the options of other benchmarks, and --entries must be a positive integer", async () => {
  const stderr = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    assert.equal(await main(["bench", "crl", "--entries", "0"]), 2);
    assert.equal(await main(["bench", "crl", "--batch", "10"]), 2);
    assert.equal(await main(["bench", "ca", "--entries", "10"]), 2);
  } finally {
    process.stderr.write = stderr;
  }
});
