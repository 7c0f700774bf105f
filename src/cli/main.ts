/**
 * `jpki-mobile`: the command line. Commands are thin: they parse arguments, call the roles, and
 * print; the work lives in the roles (src/ca, src/registry, ...).
 */
import { JpkiError } from "../errors.js";
import { type Command, parseCommandArgs, UsageError } from "./command.js";
import { applicationShow, applyCommand } from "./commands/apply.js";
import { postalApplyCommands } from "./commands/apply-postal.js";
import { auditVerify } from "./commands/audit.js";
import { benchCommand } from "./commands/bench.js";
import { caExport, caInit } from "./commands/ca.js";
import { cardServe, simCreate, simServe } from "./commands/card.js";
import { carrierCommands } from "./commands/carrier.js";
import { certList, certShow } from "./commands/cert.js";
import { citizenAdd } from "./commands/citizen.js";
import {
  clerkAdd,
  clerkDisable,
  clerkEnable,
  clerkList,
  counterApply,
  counterUnblockPin,
} from "./commands/counter.js";
import { crlPublish } from "./commands/crl.js";
import { demoCommand } from "./commands/demo.js";
import { ledgerCommands } from "./commands/ledger.js";
import { resumeCommand, revokeCommand, suspendCommand } from "./commands/lifecycle.js";
import { postCommands } from "./commands/post.js";
import { loginCommand, rpServe } from "./commands/rp.js";
import { startCommand } from "./commands/start.js";
import { verifierAdd, verifierDisable, verifierEnable, verifierList } from "./commands/verifier.js";

export const commands: readonly Command[] = [
  caInit,
  caExport,
  citizenAdd,
  applyCommand,
  ...postalApplyCommands,
  applicationShow,
  ...postCommands,
  cardServe,
  simCreate,
  simServe,
  ...carrierCommands,
  ...ledgerCommands,
  certList,
  certShow,
  suspendCommand,
  resumeCommand,
  revokeCommand,
  crlPublish,
  auditVerify,
  verifierAdd,
  verifierList,
  verifierDisable,
  verifierEnable,
  clerkAdd,
  clerkList,
  clerkDisable,
  clerkEnable,
  counterApply,
  counterUnblockPin,
  startCommand,
  rpServe,
  loginCommand,
  demoCommand,
  benchCommand,
];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "jpki-mobile: smartphone JPKI sandbox (My Number card, SIM, J-LIS CA and registry)",
    "",
    "Usage: jpki-mobile <command> [options]   (every command takes --help)",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Documentation: README.md and docs/ in the project folder.",
  ].join("\n");
}

/** Finds the command whose words start `argv` (longest match), e.g. ["ca", "init", ...]. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[] } | undefined;
  for (const command of commands) {
    const words = command.name.split(" ");
    if (
      words.every((word, i) => argv[i] === word) &&
      (!best || words.length > best.command.name.split(" ").length)
    )
      best = { command, rest: argv.slice(words.length) };
  }
  return best;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    process.stdout.write(`${overview()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = commands.filter((c) => c.name.startsWith(`${argv[0]} `));
    process.stderr.write(
      group.length > 0
        ? `jpki-mobile ${argv[0]}: choose one of: ${group.map((c) => c.name).join(", ")}\n`
        : `jpki-mobile: unknown command "${argv.join(" ")}". Run \`jpki-mobile --help\` for the list.\n`,
    );
    return 2;
  }
  const { command, rest } = found;
  try {
    const { values, positionals } = parseCommandArgs(command, rest);
    if (values.help) {
      process.stdout.write(`${command.help.trim()}\n`);
      return 0;
    }
    return (await command.run(values, positionals)) ?? 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `jpki-mobile ${command.name}: ${error.message}\nRun \`jpki-mobile ${command.name} --help\`.\n`,
      );
      return 2;
    }
    if (error instanceof JpkiError) {
      process.stderr.write(`jpki-mobile ${command.name}: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(
      `jpki-mobile ${command.name}: unexpected failure: ${(error as Error)?.stack ?? error}\n`,
    );
    return 70;
  }
}
