import assert from "node:assert/strict";
import { test } from "node:test";
import { startPeriodic } from "./periodic.js";

test("runs at start and on schedule, one run at a time; a failure is reported and the schedule goes on", async () => {
  let runs = 0;
  let inFlight = 0;
  let most = 0;
  const errors: unknown[] = [];
  const job = startPeriodic(
    async () => {
      runs++;
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (runs === 2) throw new Error("second run fails");
    },
    10,
    (error) => errors.push(error),
  );
  await Promise.all([job.runNow(), job.runNow()]);
  await new Promise((r) => setTimeout(r, 80));
  await job.stop();
  const stoppedAt = runs;
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(stoppedAt >= 3, `ran ${stoppedAt} times`);
  assert.equal(runs, stoppedAt, "no run after stop");
  assert.equal(most, 1, "never two runs at once");
  assert.equal(errors.length, 1);
});
