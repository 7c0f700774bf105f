/**
 * The command line as tests run it: `jpki-mobile` in a child process, from source under tsx or from
 * dist (whichever this file was loaded from), never throwing on a non-zero exit.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
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

/** A fresh data directory for a file of command-line tests, removed after them. */
export interface CliSandbox {
  readonly dir: string;
  /** `<dir>/data`, also in `env` as JPKI_DATA. */
  readonly data: string;
  /** What the commands run with: a CA passphrase and JPKI_DATA. */
  readonly env: NodeJS.ProcessEnv;
  run(args: readonly string[]): Promise<CliRun>;
  /** Runs and asserts exit 0 (the message names the command and its stderr); returns stdout. */
  ok(args: readonly string[]): Promise<string>;
}

/** Call at a test file's top level: the directory goes with the file's `after`. */
export function cliSandbox(name: string): CliSandbox {
  const dir = mkdtempSync(path.join(tmpdir(), `jpki-${name}-`));
  const data = path.join(dir, "data");
  const env = { JPKI_CA_PASSPHRASE: `${name} command test`, JPKI_DATA: data };
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: readonly string[]) => runCli(args, env);
  return {
    dir,
    data,
    env,
    run,
    async ok(args) {
      const result = await run(args);
      assert.equal(result.code, 0, `${args.join(" ")}: exit ${result.code}: ${result.stderr}`);
      return result.stdout;
    },
  };
}

/** The first line a child process prints (a server's URLs); rejects when it exits before. */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
    });
    child.on("exit", (code) =>
      reject(new Error(`the process exited (${code}) before printing a line: ${out}${err}`)),
    );
  });
}
