/** Options several commands share. */
import type { OptionValues } from "../command.js";

export const dataOption = { data: { type: "string" } } as const;
export const jsonOption = { json: { type: "boolean" } } as const;

export const DATA_HELP = "  --data DIR      data directory (default: $JPKI_DATA, else ./.jpki)";
export const JSON_HELP = "  --json          print JSON for scripts instead of text";

export function dataDir(values: OptionValues): string {
  const value = values.data;
  return typeof value === "string" ? value : (process.env.JPKI_DATA ?? ".jpki");
}
