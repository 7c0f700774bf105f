/** Options several commands share. */
import { type Authority, openAuthority } from "../../server/authority.js";
import { type OptionValues, UsageError } from "../command.js";

export const dataOption = { data: { type: "string" } } as const;
export const jsonOption = { json: { type: "boolean" } } as const;

export const DATA_HELP = "  --data DIR      data directory (default: $JPKI_DATA, else ./.jpki)";
export const JSON_HELP = "  --json          print JSON for scripts instead of text";

export function dataDir(values: OptionValues): string {
  const value = values.data;
  return typeof value === "string" ? value : (process.env.JPKI_DATA ?? ".jpki");
}

/**
 * Opens the data directory's authority for one command and closes it afterwards, whatever happens.
 * The command's result (an exit status, or undefined for 0) passes through.
 */
export async function withAuthority(
  values: OptionValues,
  actor: string,
  body: (authority: Authority) => Promise<number | undefined>,
): Promise<number | undefined> {
  const authority = await openAuthority(dataDir(values), { actor });
  try {
    return (await body(authority)) ?? undefined;
  } finally {
    await authority.close();
  }
}

/** A TCP port option (0 picks a free one). */
export function portOption(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError("--port must be a TCP port (0 to 65535; 0 picks a free one)");
  return port;
}

/** Resolves at the first SIGINT or SIGTERM (a server's stop). */
export function untilStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
