import { benchCa, type CaBenchResult } from "../../../bench/ca.js";
import {
  benchCard,
  type CardBenchPhase,
  type CardBenchResult,
  type RoundTripRate,
} from "../../../bench/card.js";
import { benchCrl, type CrlBenchPhase, type CrlBenchResult } from "../../../bench/crl.js";
import { type IssueBenchResult, runIssueBench } from "../../../bench/issue.js";
import { benchOcsp, type OcspBenchResult } from "../../../bench/ocsp.js";
import { type OtaBenchResult, runOtaBench } from "../../../bench/ota.js";
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

function renderCrl(result: CrlBenchResult): string {
  const mb = (bytes: number | null) => (bytes === null ? "n/a" : `${(bytes / 1e6).toFixed(0)} MB`);
  const header = [
    "database",
    "entries",
    "ours s",
    "peak",
    "openssl s (gencrl + verify)",
    "peak",
    "speed-up",
    "memory",
  ];
  const rows = result.runs.map((run) => [
    run.database,
    run.entries.toLocaleString("en-US"),
    run.ours.seconds.toFixed(2),
    mb(run.ours.peakRssBytes),
    `${run.openssl.seconds.toFixed(2)} (${run.openssl.gencrl.seconds.toFixed(2)} + ${run.openssl.verify.seconds.toFixed(2)})`,
    mb(run.openssl.peakRssBytes),
    `${run.speedup.toFixed(1)}×`,
    run.memoryRatio === null ? "n/a" : run.memoryRatio.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("   ")
      .trimEnd();
  const met = (ok: boolean) => (ok ? "met" : "missed");
  return [
    line(header),
    ...rows.map(line),
    "",
    `Ours: ${result.runs[0]?.ours.crls ?? 0} CRLs (every shard of the auth CA, complete and delta), each read back and verified.`,
    "OpenSSL: one CRL of the same entries, then `openssl crl -verify` of it.",
    ...result.runs.map(
      (run) =>
        `${run.database}: speed ${met(run.speedup >= result.goal.speedup)} (goal >= ${result.goal.speedup}×), memory ` +
        `${run.memoryRatio === null ? "not measured" : met(run.memoryRatio <= result.goal.memoryRatio)} (goal <= 1/3 of OpenSSL's peak)`,
    ),
    ...(result.memoryUnavailable ? [`Peak memory not measured: ${result.memoryUnavailable}.`] : []),
  ].join("\n");
}

function renderOcsp(result: OcspBenchResult): string {
  const lines = [
    `Pre-signed OCSP answers over GET, ${result.certificates} certificates asked in turn, ${result.cores} cores shared by server and load generator;`,
    `our server: ${result.workers} worker process${result.workers > 1 ? "es" : ""}; load average ${result.loadAverage[0].toFixed(2)} before, ${result.loadAverage[1].toFixed(2)} after:`,
    "server                   generator   connections        answers/s    p50 ms    p99 ms   cores (server + client)   per server core",
  ];
  for (const run of result.runs)
    lines.push(
      `${run.server.padEnd(24)} ${(run.generator === "wrk" ? "wrk" : "node").padEnd(11)} ${`${run.connections} ${run.keepAlive ? "keep-alive" : "one each"}`.padEnd(16)}` +
        `${run.answersPerSecond.toFixed(0).padStart(11)} ${run.p50Ms.toFixed(2).padStart(9)} ${run.p99Ms.toFixed(2).padStart(9)}` +
        `   ${run.serverCores.toFixed(2)} + ${run.clientCores.toFixed(2)}`.padEnd(28) +
        `${run.answersPerServerCore.toFixed(0).padStart(15)}${run.errors ? `   (${run.errors} errors)` : ""}`,
    );
  const best = result.runs.filter((r) => r.server === "jpki-mobile" && r.keepAlive);
  const fastest = best.reduce((a, b) => (b.answersPerSecond > a.answersPerSecond ? b : a), best[0]!);
  const met = (ok: boolean) => (ok ? "met" : "missed");
  lines.push(
    "",
    `Goal ${result.goal.answersPerSecond}/s: ${met(fastest.answersPerSecond >= result.goal.answersPerSecond)}; ` +
      `p99 under ${result.goal.p99Ms} ms: ${met(fastest.p99Ms < result.goal.p99Ms)} (at ${fastest.connections} connections)`,
  );
  if (result.ratio !== undefined)
    lines.push(
      `Over openssl ocsp: ${result.ratio.toFixed(1)}× (goal ${result.goal.ratio}×: ${met(result.ratio >= result.goal.ratio)})` +
        (result.ratioMulti === undefined
          ? ""
          : `; over openssl ocsp -multi 2: ${result.ratioMulti.toFixed(1)}×`),
    );
  if (result.ratioPerServerCore !== undefined)
    lines.push(`Per server core kept busy, over openssl ocsp: ${result.ratioPerServerCore.toFixed(1)}×`);
  return lines.join("\n");
}

/** Options that belong to some benchmarks only: naming one with another benchmark is a usage error. */
const OPTIONS_OF = {
  ca: ["batch", "pg", "no-pg"],
  card: ["seconds", "no-vpcd"],
  crl: ["entries", "pg", "no-pg"],
  ocsp: ["seconds", "workers"],
  issue: ["citizens", "concurrency"],
  ota: ["sims"],
} as const;

function refuseOptionsOfOther(values: OptionValues, benchmark: keyof typeof OPTIONS_OF): void {
  const own: readonly string[] = OPTIONS_OF[benchmark];
  for (const [other, names] of Object.entries(OPTIONS_OF)) {
    const wrong = names.find((name) => !own.includes(name) && values[name] !== undefined);
    if (wrong) throw new UsageError(`--${wrong} applies to bench ${other}, not bench ${benchmark}`);
  }
}

function renderIssue(r: IssueBenchResult): string {
  const l = r.latency;
  return [
    `online applications examined and issued (J-LIS's side, SQLite): ${r.applications} in ${r.seconds} s`,
    `  ${r.applicationsPerSecond} applications/s, ${r.cores} cores busy; goal ${r.goalApplicationsPerSecond}/s: ${r.applicationsPerSecond >= r.goalApplicationsPerSecond ? "met" : "missed"}`,
    `  openssl speed rsa2048 (1 core): ${r.opensslRsa2048SignsPerSecond} signatures/s; applications per OpenSSL signature: ${r.ratioToOpenssl}`,
    `one complete application from the phone with OTA delivery (median of ${l.samples}, the SIM's key generation taken out):`,
    `  median ${l.medianMs} ms, p90 ${l.p90Ms} ms (key generation on the SIM: median ${l.keyGenerationMedianMs} ms); goal under ${l.goalMs} ms: ${l.medianMs < l.goalMs ? "met" : "missed"}`,
  ].join("\n");
}

/** A progress bar that names each phase on its own line as it starts (on a terminal). */
function phasedProgress() {
  const bar = progress("preparing");
  let label = "";
  return {
    onProgress(phase: string, done: number, total: number) {
      if (phase !== label && process.stderr.isTTY) process.stderr.write(`\r\x1b[K${phase}\n`);
      label = phase;
      bar.update(done, total);
    },
    end: () => bar.end(),
  };
}

async function runIssue(values: OptionValues): Promise<IssueBenchResult> {
  const shown = phasedProgress();
  const result = await runIssueBench({
    applications: positiveInteger(stringOption(values, "count"), "count", 1000),
    citizens: positiveInteger(stringOption(values, "citizens"), "citizens", 50),
    concurrency: positiveInteger(stringOption(values, "concurrency"), "concurrency", 128),
    onProgress: shown.onProgress,
  });
  shown.end();
  return result;
}

function renderOta(r: OtaBenchResult): string {
  const pct = (share: number) => `${Math.round(share * 100)}%`;
  return [
    `certificate deliveries over the air: ${r.deliveries} to ${r.sims} SIMs at once in ${r.seconds} s`,
    `  ${r.deliveriesPerSecond} deliveries/s, ${r.scriptsPerSecond} scripts/s, ${r.apdusPerSecond} APDUs/s (${r.scriptsPerDelivery} scripts, ${r.apdusPerDelivery} APDUs each)`,
    `  J-LIS talking to the SIMs directly, same run: ${r.directDeliveriesPerSecond} deliveries/s; through the gateway: ${r.ratioToDirect}× that`,
    `  one delivery alone: median ${r.latency.medianMs} ms, p90 ${r.latency.p90Ms} ms; its time in each hop: J-LIS ${pct(r.shares.jlis)}, gateway queue ${pct(r.shares.gateway)}, phone and SIM ${pct(r.shares.phoneAndSim)}, way back ${pct(r.shares.back)}`,
  ].join("\n");
}

async function runOta(values: OptionValues): Promise<OtaBenchResult> {
  const shown = phasedProgress();
  const result = await runOtaBench({
    sims: positiveInteger(stringOption(values, "sims"), "sims", 32),
    deliveries: positiveInteger(stringOption(values, "count"), "count", 20),
    onProgress: shown.onProgress,
  });
  shown.end();
  return result;
}

async function runCa(values: OptionValues): Promise<CaBenchResult> {
  const bar = progress("issuing");
  const result = await benchCa({
    count: positiveInteger(stringOption(values, "count"), "count", 10000),
    batch: positiveInteger(stringOption(values, "batch"), "batch", 500),
    postgresUrl: postgresUrlOption(values),
    onProgress: (_label, done, total) => bar.update(done, total),
  });
  bar.end();
  return result;
}

function postgresUrlOption(values: OptionValues): string | undefined {
  return values["no-pg"]
    ? undefined
    : (stringOption(values, "pg") ?? process.env.JPKI_BENCH_PG ?? DEFAULT_PG);
}

async function runCrl(values: OptionValues): Promise<CrlBenchResult> {
  let phase: CrlBenchPhase | undefined;
  let bar: ReturnType<typeof progress> | undefined;
  const result = await benchCrl({
    entries: positiveInteger(stringOption(values, "entries"), "entries", 1_000_000),
    postgresUrl: postgresUrlOption(values),
    onProgress: (next, done, total) => {
      if (next !== phase) {
        bar?.end();
        bar = progress(next);
        phase = next;
      }
      bar?.update(done, total);
    },
  });
  bar?.end();
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
  summary:
    "measure performance beside a peer measured in the same run (bench ca, card, crl, ocsp, issue, ota)",
  help: `
Usage: jpki-mobile bench ca [--count N] [--batch N] [--pg URL | --no-pg] [--json]
       jpki-mobile bench card [--seconds S] [--count N] [--no-vpcd] [--json]
       jpki-mobile bench crl [--entries N] [--pg URL | --no-pg] [--json]
       jpki-mobile bench ocsp [--count N] [--seconds S] [--workers N] [--json]
       jpki-mobile bench issue [--count N] [--citizens N] [--concurrency N] [--json]
       jpki-mobile bench ota [--sims N] [--count N] [--json]

ca    certificates issued per second through the whole registry path (store, sign, store, audit)
      on SQLite and PostgreSQL, beside \`openssl speed rsa2048\` measured in the same run, and the
      rate per busy core as a share of OpenSSL's single-core rate (goal: at least 0.6).

card  APDU round trips per second to an emulated My Number card: in process, over the vpcd link
      alone (a vpcd peer in this process, sending each message in one write, then as Debian's vpcd
      does, length and payload in two writes with Nagle's algorithm on), and through PC/SC (pcscd
      and vsmartcard's vpcd; pcscd is started when none runs, which needs root; without them the
      figure is reported unavailable). Then SIGN (80 2A) latency after VERIFY, median and p99,
      beside Node's RSA-2048 signature with the same key over the same DigestInfo in the same run.

crl   time and peak memory to produce and verify the CRLs of N revoked certificates: every shard of
      the user-authentication CA, complete and delta, read from the registry (SQLite, then PostgreSQL)
      in serial order, signed, read back and verified; beside \`openssl ca -gencrl\` and
      \`openssl crl -verify\` on the same entries with the same CA key, each side in a process of its
      own (peak memory from GNU time and /proc). The registry is filled first, outside the timing.
      Goal: at least 5 times faster, and at most a third of OpenSSL's peak memory.

ocsp  pre-signed OCSP answers per second over GET, with p50 and p99 latency, from
      \`jpki-mobile start\` in a child process at 16 and 64 keep-alive connections (and one request
      per connection), beside \`openssl ocsp\` (alone, and with -multi 2) on the same CA, responder
      key and certificates, a fresh responder per measurement. Keep-alive loads come from wrk when it
      is installed (Debian package wrk), else from this process, as do loads of one request per
      connection. Goal: 20,000 answers/s, p99 under 10 ms, at least 10 times OpenSSL's rate.

issue complete online applications per second on J-LIS's side (CMS, chain and status, SIM
      inventory and attestation, nonce, policy, records, registry, CA signature, audit) through the
      RA's desk on SQLite, with the applications made ahead (keys, attestations, card signatures),
      beside \`openssl speed rsa2048\` in the same run (goal: 1,000/s); then one complete application
      from the phone with OTA delivery, median of 20, the SIM's key generation taken out (goal:
      under 200 ms).

ota   certificate deliveries over the air per second with many SIMs at once: J-LIS's SCP11a
      session and the certificate's script, through the carrier's OTA gateway and the phone's agent
      to the SIM and back with the SIM's responses (the proof of receipt, every R-MAC checked);
      beside the same deliveries with J-LIS talking to the SIMs directly; then, one delivery at a
      time, its latency and the share of its time in each hop (J-LIS, gateway queue, phone and
      SIM, way back).

Options of bench ca:
  --count N       certificates per database (default 10000)
  --batch N       certificates per registry call (default 500)
  --pg URL        PostgreSQL server (default $JPKI_BENCH_PG, else ${DEFAULT_PG})
  --no-pg         measure SQLite only

Options of bench crl:
  --entries N     revoked certificates (default 1000000)
  --pg URL, --no-pg  as for bench ca

Options of bench ocsp:
  --count N       certificates, asked about in turn (default 1000; a tenth revoked)
  --seconds S     time for each measurement (default 5; whole seconds with wrk)
  --workers N     worker processes of \`jpki-mobile start\` (--workers, default 1)

Options of bench issue:
  --count N        applications (default 1000)
  --citizens N     citizens applying, each several times (default 50)
  --concurrency N  applications submitted at once (default 128)

Options of bench ota:
  --sims N         SIMs served at once (default 32; an MNO's, a full MVNO's, a light MVNO's)
  --count N        deliveries to each SIM (default 20)

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
    entries: { type: "string" },
    workers: { type: "string" },
    citizens: { type: "string" },
    concurrency: { type: "string" },
    sims: { type: "string" },
  },
  positionals: { min: 1, max: 1, names: "what to measure (ca, card, crl, ocsp, issue or ota)" },
  async run(values, positionals) {
    const benchmark = positionals[0];
    if (benchmark === "ca") {
      refuseOptionsOfOther(values, "ca");
      printResult(values.json === true, await runCa(values), renderCa);
    } else if (benchmark === "card") {
      refuseOptionsOfOther(values, "card");
      printResult(values.json === true, await runCard(values), renderCard);
    } else if (benchmark === "crl") {
      refuseOptionsOfOther(values, "crl");
      printResult(values.json === true, await runCrl(values), renderCrl);
    } else if (benchmark === "ocsp") {
      refuseOptionsOfOther(values, "ocsp");
      // One line of progress, rewritten in place on a terminal.
      const tty = process.stderr.isTTY;
      const result = await benchOcsp({
        certificates: positiveInteger(stringOption(values, "count"), "count", 1000),
        seconds: positiveNumber(stringOption(values, "seconds"), "seconds", 5),
        workers: positiveInteger(stringOption(values, "workers"), "workers", 1),
        onProgress: (phase) => {
          if (tty) process.stderr.write(`\r\x1b[K${phase}`);
        },
      });
      if (tty) process.stderr.write("\r\x1b[K");
      printResult(values.json === true, result, renderOcsp);
    } else if (benchmark === "issue") {
      refuseOptionsOfOther(values, "issue");
      printResult(values.json === true, await runIssue(values), renderIssue);
    } else if (benchmark === "ota") {
      refuseOptionsOfOther(values, "ota");
      printResult(values.json === true, await runOta(values), renderOta);
    } else throw new UsageError(`unknown benchmark ${benchmark}: choose ca, card, crl, ocsp, issue or ota`);
    return 0;
  },
};
