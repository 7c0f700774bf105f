/** The shape every `jpki-mobile` command shares, and argument parsing with helpful errors. */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { JpkiError } from "../errors.js";

type OptionSpec = NonNullable<ParseArgsConfig["options"]>;
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** Words typed after `jpki-mobile`, e.g. "ca init". */
  readonly name: string;
  readonly summary: string;
  /** Usage line and option descriptions shown by --help. */
  readonly help: string;
  readonly options: OptionSpec;
  /** How many positional arguments the command takes (default none). */
  readonly positionals?: { min: number; max: number; names: string };
  run(values: OptionValues, positionals: string[]): Promise<number | undefined>;
}

/** A mistake in the command line itself (unknown option, missing value): exit status 2. */
export class UsageError extends JpkiError {
  override readonly name = "UsageError";
  constructor(message: string) {
    super("bad-input", message);
  }
}

export function parseCommandArgs(
  command: Command,
  args: string[],
): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    const wanted = command.positionals ?? { min: 0, max: 0, names: "" };
    if (!values.help && (positionals.length < wanted.min || positionals.length > wanted.max)) {
      throw new UsageError(
        wanted.max === 0
          ? `unexpected argument ${positionals[0]}`
          : `expected ${wanted.names}${positionals.length > wanted.max ? `, got extra ${positionals[wanted.max]}` : ""}`,
      );
    }
    return { values: values as OptionValues, positionals };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))
      throw new UsageError(error.message);
    throw error;
  }
}

/** The string value of an option, or a usage error naming it when it is required and absent. */
export function stringOption(values: OptionValues, name: string, required: true): string;
export function stringOption(values: OptionValues, name: string, required?: false): string | undefined;
export function stringOption(values: OptionValues, name: string, required = false): string | undefined {
  const value = values[name];
  if (typeof value === "string") return value;
  if (required) throw new UsageError(`--${name} is required`);
  return undefined;
}

/** Prints `data` as JSON (for scripts) or as the human text `render` makes. */
export function printResult<T>(json: boolean, data: T, render: (data: T) => string): void {
  process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${render(data)}\n`);
}

/** A one-line progress display on stderr when it is a terminal; silent otherwise (scripts, CI logs). */
export function progress(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY;
  return {
    update(done, total) {
      if (tty) process.stderr.write(`\r${label}: ${done}/${total} (${Math.floor((done / total) * 100)}%)`);
    },
    end() {
      if (tty) process.stderr.write("\n");
    },
  };
}
