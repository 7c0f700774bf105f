/** The demo story, step by step: every step does what it should, and the refusals are refusals. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { runDemo } from "./story.js";

test("every step of the story does what it should; refusals are refusals", async () => {
  const seen: number[] = [];
  const result = await runDemo({ onStep: (_step, index) => seen.push(index) });
  assert.ok(
    result.ok,
    result.steps
      .filter((s) => !s.ok)
      .map((s) => `${s.title}: ${s.outcome}`)
      .join("\n"),
  );
  assert.deepEqual(
    seen,
    result.steps.map((_s, i) => i + 1),
  );
  const refusals = result.steps.filter((s) => /refused/.test(s.title));
  assert.ok(refusals.length >= 2);
  for (const s of refusals) assert.match(s.outcome, /^refused: /, s.title);
  const outcomeOf = (title: RegExp) => result.steps.find((s) => title.test(s.title))?.outcome ?? "";
  assert.match(outcomeOf(/swapped without E asking/), /SIM swapped; certificate [0-9a-f]{32} revoked/);
  assert.match(outcomeOf(/refuses a login with E's old SIM/), /^refused: .*revoked/);
  assert.match(outcomeOf(/ledger/), /state pays ¥500/);
  assert.ok(!existsSync(result.dataDir), "the temporary data directory is removed");
});
