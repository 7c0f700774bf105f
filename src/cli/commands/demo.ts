/**
 * `demo`: the main job, the whole story on a fresh temporary data directory (src/demo/story.ts),
 * every step printed with its outcome; exit 0 only when every step did what it should.
 */
import { runDemo } from "../../demo/story.js";
import type { Command } from "../command.js";
import { JSON_HELP, jsonOption } from "./options.js";

export const demoCommand: Command = {
  name: "demo",
  summary: "the whole story, every party in one process, each step checked (the main job)",
  help: `
Usage: jpki-mobile demo [--keep] [--json]

Runs the story of the sandbox on a fresh temporary data directory, every party in this process:
citizen A applies online and gets the certificate over the air (a light MVNO's SIM), logs in to a
demo bank; loses the phone: suspended, the login refused; resumed, logs in again. Citizen B applies
by post and completes with the access code of the restricted-delivery letter. Citizen C lives away
from the address of record: the letter comes back and the city counter completes the application,
the phone tapped on its terminal. Forged and replayed applications are refused. A moves to another
carrier with a new SIM (the new certificate supersedes the old one; the old carrier's port-out finds
nothing left) and logs in with the new phone, and the bank finds A's account through the link
query A agreed to; citizen E, on a full MVNO, has the SIM swapped without
asking: the carrier reports it, the certificate is revoked at once and the bank refuses E. The
month's ledger (who pays whom) is printed, and the audit log is checked.
Each step prints ✓ when its outcome is the expected one (a refusal, for the refusals); the command
exits 0 only when every step did.

  --keep          keep the data directory (its path is printed) to look at afterwards
${JSON_HELP}
`,
  options: { ...jsonOption, keep: { type: "boolean" } },
  async run(values) {
    const json = values.json === true;
    const result = await runDemo({
      keep: values.keep === true,
      onStep: (step, index) => {
        if (!json)
          process.stdout.write(
            `${step.ok ? "✓" : "✗"} ${String(index).padStart(2)}. ${step.title}\n      ${step.outcome} (${step.ms} ms)\n`,
          );
      },
    });
    if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      process.stdout.write(
        `\n${result.ok ? "Every step did what it should." : "Some steps did not do what they should (✗ above)."}${values.keep ? ` Data: ${result.dataDir}` : ""}\n`,
      );
    return result.ok ? 0 : 1;
  },
};
