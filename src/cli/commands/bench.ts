import { benchCa, type CaBenchResult } from "../../../bench/ca.js";
import { type Command, printResult, progress, stringOption, UsageError } from "../command.js";
import { JSON_HELP, jsonOption } from "./options.js";

const DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test";

function positiveInteger(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
  return n;
}

function renderCa(result: CaBenchResult): string {
  const lines = [
    `openssl speed rsa2048 (1 core), before, between and after: ${result.opensslMeasurements.map((r) => r.toFixed(0)).join(", ")} signatures/s`,
    "",
    "database   certificates/s   cores busy (total/ours)   openssl around   per core vs openssl   goal",
  ];
  for (const run of result.runs) {
    lines.push(
      `${run.database.padEnd(10)} ${run.certificatesPerSecond.toFixed(0).padStart(14)}   ` +
        `${run.cores.toFixed(2).padStart(9)} / ${run.processCores.toFixed(2).padEnd(11)}   ` +
        `${run.opensslRsa2048SignsPerSecond.toFixed(0).padStart(14)}   ` +
        `${run.ratioPerCore.toFixed(2).padStart(19)}   ${run.ratioPerCore >= result.goalRatioPerCore ? "met" : "missed"} (>= ${result.goalRatioPerCore})`,
    );
  }
  return lines.join("\n");
}

export const benchCommand: Command = {
  name: "bench",
  summary: "measure performance beside a peer measured in the same run (bench ca)",
  help: `
Usage: jpki-mobile bench ca [--count N] [--batch N] [--pg URL | --no-pg] [--json]

ca   certificates issued per second through the whole registry path (store, sign, store, audit)
     on SQLite and PostgreSQL, beside \`openssl speed rsa2048\` measured in the same run, and the
     rate per busy core as a share of OpenSSL's single-core rate (goal: at least 0.6).

  --count N   certificates per database (default 10000)
  --batch N   certificates per registry call (default 500)
  --pg URL    PostgreSQL server (default $JPKI_BENCH_PG, else ${DEFAULT_PG})
  --no-pg     measure SQLite only
${JSON_HELP}
`,
  options: {
    ...jsonOption,
    count: { type: "string" },
    batch: { type: "string" },
    pg: { type: "string" },
    "no-pg": { type: "boolean" },
  },
  positionals: { min: 1, max: 1, names: "what to measure (ca)" },
  async run(values, positionals) {
    if (positionals[0] !== "ca") throw new UsageError(`unknown benchmark ${positionals[0]}: choose ca`);
    const bar = progress("issuing");
    const result = await benchCa({
      count: positiveInteger(stringOption(values, "count"), "count", 10000),
      batch: positiveInteger(stringOption(values, "batch"), "batch", 500),
      postgresUrl: values["no-pg"]
        ? undefined
        : (stringOption(values, "pg") ?? process.env.JPKI_BENCH_PG ?? DEFAULT_PG),
      onProgress: (_label, done, total) => bar.update(done, total),
    });
    bar.end();
    printResult(values.json === true, result, renderCa);
    return 0;
  },
};
