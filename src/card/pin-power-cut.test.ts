/**
 * Power cuts during VERIFY (issue 3, "State and power"): a child process sends wrong PINs in a loop and
 * is killed (SIGKILL, the nearest thing to pulling the card out) at random moments. After each cut the
 * state file parses, and the PIN counter is never above what the answered attempts allow: a try is
 * spent and written before the comparison, so no kill ever gives one back.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { makeCardStateFile } from "./card-fixture.js";
import { loadCardState } from "./state.js";

const here = fileURLToPath(import.meta.url);
/** The child next to this file, .ts under tsx and .js once compiled. */
const childScript = path.join(path.dirname(here), `pin-power-cut.child${path.extname(here)}`);
/** Node flags of this process (e.g. `--import tsx`), without the test runner's own. */
const nodeFlags = process.execArgv.filter((flag) => !flag.startsWith("--test"));

interface Round {
  sent: number;
  answered: number;
  signal: NodeJS.Signals | null;
}

function runAndKill(statePath: string, delayMs: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, childScript, statePath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      if (timer === undefined && out.includes("ready\n"))
        timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      err += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (!out.includes("ready\n"))
        return reject(new Error(`the child did not start (code ${code}): ${err}`));
      const lines = out.split("\n");
      resolve({
        sent: lines.filter((l) => l === "sent").length,
        answered: lines.filter((l) => l.startsWith("answered 63c")).length,
        signal,
      });
    });
  });
}

test("SIGKILL at random moments during wrong-PIN VERIFYs never gives a try back", async () => {
  // Many tries, so that a loop runs long enough to be cut mid-command; the card logic is the same.
  const fixture = await makeCardStateFile({
    edit: (state) => {
      state.pins["0018"] = { ...state.pins["0018"]!, triesLeft: 100_000, maxTries: 100_000 };
    },
  });
  try {
    let killed = 0;
    let cutBetween = 0;
    let answered = 0;
    for (let round = 0; round < 8; round++) {
      const before = loadCardState(fixture.statePath).pins["0018"]!.triesLeft;
      const result = await runAndKill(fixture.statePath, randomInt(5, 120));
      const state = loadCardState(fixture.statePath); // parses: never a torn file
      const after = state.pins["0018"]!.triesLeft;
      if (result.signal === "SIGKILL") killed++;
      if (result.sent > result.answered) cutBetween++;
      // Every answered wrong PIN spent a try; an attempt cut before its write spent none or one.
      assert.ok(
        after <= before - result.answered,
        `round ${round}: ${after} > ${before} - ${result.answered}`,
      );
      assert.ok(after >= before - result.sent, `round ${round}: ${after} < ${before} - ${result.sent}`);
      answered += result.answered;
    }
    assert.equal(killed, 8, "every round ended with the power cut");
    assert.ok(answered > 0, "the children got answers before the cuts");
    assert.ok(cutBetween >= 1, "at least one cut fell between sending and answering");
  } finally {
    fixture.cleanup();
  }
});
