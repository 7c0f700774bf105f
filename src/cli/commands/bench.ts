import { benchCa, type CaBenchResult } from "../../../bench/ca.js";
import {
  benchCard,
  type CardBenchPhase,
  type CardBenchResult,
  type RoundTripRate,
} from "../../../bench/card.js";
import {
  type Command,
  type OptionValues,
  printResult,
  progress,
  stringOption,
  UsageError,
} from "../command.js";
import { JSON_HELP, jsonOption } from "./options.js";

const DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test";

function positiveInteger(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
  return n;
}

function positiveNumber(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number`);
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

function renderCard(result: CardBenchResult): string {
  const rate = (label: string, measured: RoundTripRate) => {
    const perSecond = measured.roundTripsPerSecond;
    return `  ${label.padEnd(44)} ${perSecond.toFixed(perSecond < 1000 ? 1 : 0).padStart(10)}   ${(1e6 / perSecond).toFixed(1).padStart(11)}`;
  };
  const seconds = result.inProcess.seconds.toFixed(1);
  const lines = [
    `APDU round trips (${result.roundTripApdus.join(" and ")} alternately), ${seconds} s each:`,
    `  ${"".padEnd(44)} ${"per second".padStart(10)}   ${"µs per trip".padStart(11)}`,
    rate("in process", result.inProcess),
  ];
  if (result.vpcdLink.available) {
    lines.push(rate("vpcd link alone, one write", result.vpcdLink.oneWrite));
    lines.push(rate("vpcd link alone, length then payload (Nagle)", result.vpcdLink.splitWrites));
  } else lines.push(`  vpcd link alone: unavailable: ${result.vpcdLink.reason}`);
  if (result.pcsc.available) lines.push(rate(`PC/SC, pcscd → vpcd (${result.pcsc.reader})`, result.pcsc));
  else lines.push(`  PC/SC, pcscd → vpcd: unavailable: ${result.pcsc.reason}`);
  const { sign } = result;
  const row = (label: string, median: string, p99: string) =>
    `  ${label.padEnd(34)} ${median.padStart(9)}   ${p99.padStart(9)}`;
  lines.push(
    "",
    `SIGN 80 2A 00 80 (user-authentication key, RSA-2048): ${sign.signatures} by the card and ${sign.signatures} by Node, alternately`,
    row("", "median µs", "p99 µs"),
    row(
      "emulated card, in process",
      sign.card.medianMicroseconds.toFixed(0),
      sign.card.p99Microseconds.toFixed(0),
    ),
    row(
      "Node privateEncrypt, same key",
      sign.node.medianMicroseconds.toFixed(0),
      sign.node.p99Microseconds.toFixed(0),
    ),
    row("card / Node", sign.ratio.median.toFixed(2), sign.ratio.p99.toFixed(2)),
  );
  return lines.join("\n");
}

/** Options that belong to one benchmark only: naming one with the other is a usage error. */
const OPTIONS_OF = { ca: ["batch", "pg", "no-pg"], card: ["seconds", "no-vpcd"] } as const;

function refuseOptionsOfOther(values: OptionValues, benchmark: keyof typeof OPTIONS_OF): void {
  const other = benchmark === "ca" ? "card" : "ca";
  const wrong = OPTIONS_OF[other].find((name) => values[name] !== undefined);
  if (wrong) throw new UsageError(`--${wrong} applies to bench ${other}, not bench ${benchmark}`);
}

async function runCa(values: OptionValues): Promise<CaBenchResult> {
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
  return result;
}

const PHASE_LABEL: Record<CardBenchPhase, string> = {
  "in process": "round trips in process (ms)",
  "vpcd link, one write": "round trips over the vpcd link, one write (ms)",
  "vpcd link, split writes": "round trips over the vpcd link, length then payload (ms)",
  pcscd: "round trips through pcscd and vpcd (ms)",
  sign: "signatures",
};

async function runCard(values: OptionValues): Promise<CardBenchResult> {
  let phase: CardBenchPhase | undefined;
  let bar: ReturnType<typeof progress> | undefined;
  const result = await benchCard({
    seconds: positiveNumber(stringOption(values, "seconds"), "seconds", 2),
    signatures: positiveInteger(stringOption(values, "count"), "count", 2000),
    vpcd: values["no-vpcd"] !== true,
    onProgress: (next, done, total) => {
      if (next !== phase) {
        bar?.end();
        bar = progress(PHASE_LABEL[next]);
        phase = next;
      }
      bar?.update(done, total);
    },
  });
  bar?.end();
  return result;
}

export const benchCommand: Command = {
  name: "bench",
  summary: "measure performance beside a peer measured in the same run (bench ca, bench card)",
  help: `
Usage: jpki-mobile bench ca [--count N] [--batch N] [--pg URL | --no-pg] [--json]
       jpki-mobile bench card [--seconds S] [--count N] [--no-vpcd] [--json]

ca    certificates issued per second through the whole registry path (store, sign, store, audit)
      on SQLite and PostgreSQL, beside \`openssl speed rsa2048\` measured in the same run, and the
      rate per busy core as a share of OpenSSL's single-core rate (goal: at least 0.6).

card  APDU round trips per second to an emulated My Number card: in process, over the vpcd link
      alone (a vpcd peer in this process, sending each message in one write, then as Debian's vpcd
      does, length and payload in two writes with Nagle's algorithm on), and through PC/SC (pcscd
      and vsmartcard's vpcd; pcscd is started when none runs, which needs root; without them the
      figure is reported unavailable). Then SIGN (80 2A) latency after VERIFY, median and p99,
      beside Node's RSA-2048 signature with the same key over the same DigestInfo in the same run.

Options of bench ca:
  --count N       certificates per database (default 10000)
  --batch N       certificates per registry call (default 500)
  --pg URL        PostgreSQL server (default $JPKI_BENCH_PG, else ${DEFAULT_PG})
  --no-pg         measure SQLite only

Options of bench card:
  --seconds S     time for each round-trip measurement (default 2)
  --count N       signatures by the card, and as many by Node (default 2000)
  --no-vpcd       measure in process only (no vpcd link, no pcscd)

${JSON_HELP}
`,
  options: {
    ...jsonOption,
    count: { type: "string" },
    batch: { type: "string" },
    pg: { type: "string" },
    "no-pg": { type: "boolean" },
    seconds: { type: "string" },
    "no-vpcd": { type: "boolean" },
  },
  positionals: { min: 1, max: 1, names: "what to measure (ca or card)" },
  async run(values, positionals) {
    const benchmark = positionals[0];
    if (benchmark === "ca") {
      refuseOptionsOfOther(values, "ca");
      printResult(values.json === true, await runCa(values), renderCa);
    } else if (benchmark === "card") {
      refuseOptionsOfOther(values, "card");
      printResult(values.json === true, await runCard(values), renderCard);
    } else throw new UsageError(`unknown benchmark ${benchmark}: choose ca or card`);
    return 0;
  },
};
