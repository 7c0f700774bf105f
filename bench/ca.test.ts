/** The benchmark runs end to end and reports figures that hang together (not a timing assertion). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { postgresTestUrl } from "../src/testing/dialects.js";
import { benchCa } from "./ca.js";

test("bench ca issues through the registry on both databases and reports consistent figures", async () => {
  const progress: number[] = [];
  const result = await benchCa({
    count: 60,
    batch: 25,
    opensslSeconds: 1,
    postgresUrl: postgresTestUrl,
    onProgress: (_label, done) => progress.push(done),
  });
  assert.equal(result.opensslMeasurements.length, 3, "before, between and after the two databases");
  assert.ok(result.opensslMeasurements.every((rate) => rate > 0));
  assert.deepEqual(
    result.runs.map((r) => [r.database, r.certificates]),
    [
      ["sqlite", 60],
      ["postgres", 60],
    ],
  );
  // Each run is compared with the mean of the OpenSSL measurements just before and after it.
  result.runs.forEach((run, i) => {
    const around = (result.opensslMeasurements[i]! + result.opensslMeasurements[i + 1]!) / 2;
    assert.ok(Math.abs(run.opensslRsa2048SignsPerSecond - around) < 1e-9);
  });
  for (const run of result.runs) {
    assert.ok(run.certificatesPerSecond > 0 && run.cores > 0);
    const expected = run.certificatesPerSecond / run.cores / run.opensslRsa2048SignsPerSecond;
    assert.ok(Math.abs(run.ratioPerCore - expected) < 1e-9);
  }
  // Progress counts each database's certificates once, batch by batch, ending at the total.
  const sqliteProgress = progress.slice(0, 3);
  assert.equal(sqliteProgress[2], 60);
  assert.ok(sqliteProgress.every((n, i) => i === 0 || n > sqliteProgress[i - 1]!));
});
