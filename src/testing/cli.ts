/**
 * The command line as tests run it: `jpki-mobile` in a child process, from source under tsx or from
 * dist (whichever this file was loaded from), never throwing on a non-zero exit.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Node's arguments that run `jpki-mobile ARGS` with this process's loader (tsx in development). */
export function cliArgs(args: readonly string[]): string[] {
  const main = new URL("../cli/main.js", import.meta.url).href;
  const code = `const { main } = await import(${JSON.stringify(main)}); process.exitCode = await main(process.argv.slice(1));`;
  return [...process.execArgv, "--input-type=module", "-e", code, ...args];
}

/** Runs `jpki-mobile ARGS` with `env` (added to this process's environment). */
export async function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 120_000,
): Promise<CliRun> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, cliArgs(args), {
      env: { ...process.env, ...env },
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}
