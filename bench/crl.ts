/**
 * `jpki-mobile bench crl`: time and peak memory to produce and verify the CRLs of N revoked
 * certificates, beside `openssl ca -gencrl` (then `openssl crl -verify`) on the same entries, with the
 * same CA key, in the same run.
 *
 * Our side is the production path: the registry read in serial order, shard by shard, the TBSCertList
 * built, signed by the CA signer, read back and verified (publishCrls with `full`), for every shard of
 * the user-authentication CA: complete and delta CRLs. The registry is filled first, outside the timing,
 * with N revoked or held rows (bulk-inserted; they need not be real signed certificates, since a CRL
 * only reads their serial, dates and reason, and the entry DER the lifecycle writes from them), and
 * OpenSSL's index.txt gets the same serials, dates and reasons. Each side runs in a child process of its own, so its peak resident memory is its own, as
 * GNU time reports it (`/usr/bin/time -f %M`: the kernel's maximum resident set size). Without GNU
 * time, OpenSSL's peak is not measured, and ours is read by our child from /proc (VmHWM).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { sql } from "kysely";
import { CrlReason, encodeCrlEntry } from "../src/pki/crl.js";
import { pemEncode } from "../src/pki/pem.js";
import { shardOf } from "../src/pki/serial.js";
import { dialectOf, isoTime } from "../src/registry/db.js";
import { SHARD_SETTING } from "../src/registry/issuance.js";
import type { NewCertificateRow } from "../src/registry/schema.js";
import { initAuthority, KEY_LABELS, openAuthority } from "../src/server/authority.js";
import { publishCrls } from "../src/status/crl.js";
import { countCrlEntries } from "../src/status/crl-check.js";
import { withPostgresSchema } from "./baseline.js";

export interface CrlBenchOptions {
  /** Revoked certificates (default 1,000,000). */
  entries?: number;
  /** CRL shards of the CA (default 64, the registry's default). */
  shards?: number;
  /** PostgreSQL server to measure too; undefined skips it. */
  postgresUrl?: string;
  onProgress?: (phase: CrlBenchPhase, done: number, total: number) => void;
}

export type CrlBenchPhase = "filling the registry" | "publishing";

/** One side's figures: wall time of the work, and the peak resident memory of its process. */
export interface Measured {
  seconds: number;
  peakRssBytes: number | null;
}

export interface CrlBenchRun {
  database: "sqlite" | "postgres";
  entries: number;
  shards: number;
  ours: Measured & { crls: number; entries: number; bytes: number };
  openssl: {
    gencrl: Measured;
    verify: Measured;
    /** Both steps' time, and the higher of their peaks (null without GNU time). */
    seconds: number;
    peakRssBytes: number | null;
    entries: number;
    /** Size of its CRL in DER (it writes PEM). */
    bytes: number;
  };
  /** OpenSSL's time to produce and verify, over ours. */
  speedup: number;
  /** OpenSSL's time to produce alone (`openssl ca -gencrl`), over ours to produce and verify. */
  speedupOverGencrlAlone: number;
  /** Our peak memory over OpenSSL's; null without GNU time. */
  memoryRatio: number | null;
}

export interface CrlBenchResult {
  goal: { speedup: number; memoryRatio: number };
  /** Why peak memory is missing, when GNU time is not installed. */
  memoryUnavailable: string | null;
  runs: CrlBenchRun[];
}

export const GOAL = { speedup: 5, memoryRatio: 1 / 3 };
const GNU_TIME = "/usr/bin/time";
const CHILD_FLAG = "--publish-child";

/** Reasons of the generated entries, in turn: JPKI's usual ones, and holds (JPKI-FACTS §3). */
const REASONS = [
  { code: CrlReason.keyCompromise, openssl: "keyCompromise" },
  { code: CrlReason.affiliationChanged, openssl: "affiliationChanged" },
  { code: CrlReason.superseded, openssl: "superseded" },
  { code: CrlReason.cessationOfOperation, openssl: "cessationOfOperation" },
  { code: CrlReason.certificateHold, openssl: "certificateHold" },
] as const;

/** YYMMDDHHMMSSZ (UTCTime), as OpenSSL's index.txt writes times. */
function utcTime(date: Date): string {
  return `${date.toISOString().slice(2, 19).replace(/[-T:]/g, "")}Z`;
}

/** YYYYMMDDHHMMSSZ (GeneralizedTime), as index.txt wants a key compromise time. */
function generalizedTime(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, "")}Z`;
}

/**
 * Entries `first` to `first + count - 1`: registry rows of the auth CA (every fifth one held) and the
 * same entries as lines of OpenSSL's index.txt (status, expiry, revocation[,reason[,argument]], serial,
 * file, subject; tab-separated). Serials are random, as the registry draws them (serial.randomSerial).
 */
function benchEntries(
  first: number,
  count: number,
  now: number,
  shards: number,
): { rows: NewCertificateRow[]; lines: string } {
  const random = randomBytes(16 * count);
  const rows: NewCertificateRow[] = [];
  let lines = "";
  for (let j = 0; j < count; j++) {
    const i = first + j;
    const serial = random.subarray(16 * j, 16 * j + 16);
    serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, no leading zero byte
    const hex = serial.toString("hex");
    const reason = REASONS[i % REASONS.length]!;
    const revokedAt = new Date(now - ((i * 7919) % (365 * 86_400)) * 1000 - 60_000);
    const notAfter = new Date(now + (1 + (i % 5)) * 365 * 86_400_000);
    const invalidity =
      reason.code === CrlReason.keyCompromise ? new Date(revokedAt.getTime() - 86_400_000) : undefined;
    const held = reason.code === CrlReason.certificateHold;
    rows.push({
      serial: hex,
      issuer: "auth",
      kind: "card-auth",
      medium: "card",
      status: held ? "suspended" : "revoked",
      tbs: EMPTY,
      der: null,
      not_before: isoTime(new Date(notAfter.getTime() - 5 * 365 * 86_400_000)),
      not_after: isoTime(notAfter),
      shard: shardOf(serial, shards),
      revoked_at: isoTime(revokedAt),
      revocation_reason: reason.code,
      invalidity_date: invalidity ? isoTime(invalidity) : null,
      // What the lifecycle writes with a revocation or hold (lifecycle.ts).
      crl_entry: encodeCrlEntry({
        serial,
        revocationDate: revokedAt,
        reason: reason.code,
        invalidityDate: invalidity,
      }),
      created_at: isoTime(revokedAt),
      updated_at: isoTime(revokedAt),
    });
    // A key compromise time becomes the entry's invalidityDate; a hold needs a hold instruction.
    const revocation = invalidity
      ? `keyTime,${generalizedTime(invalidity)}`
      : held
        ? "certificateHold,holdInstructionReject"
        : reason.openssl;
    const upper = hex.toUpperCase();
    lines += `R\t${utcTime(notAfter)}\t${utcTime(revokedAt)},${revocation}\t${upper}\tunknown\t/C=JP/CN=${upper}\n`;
  }
  return { rows, lines };
}

const EMPTY = Buffer.alloc(0);

/**
 * Fills the registry with `count` entries (1,000 rows per statement, 100 statements per transaction)
 * and writes the same entries to OpenSSL's index.txt.
 */
async function fillRegistry(
  dataDir: string,
  indexFile: string,
  count: number,
  shards: number,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<void> {
  const authority = await openAuthority(dataDir, { actor: "bench" });
  const index = openSync(indexFile, "w");
  try {
    const { db } = authority.registry;
    await authority.registry.setSetting(SHARD_SETTING, String(shards), "bench");
    const now = Date.now();
    for (let done = 0; done < count; )
      await db.transaction().execute(async (trx) => {
        for (let statement = 0; statement < 100 && done < count; statement++) {
          const { rows, lines } = benchEntries(done, Math.min(1000, count - done), now, shards);
          await trx.insertInto("certificates").values(rows).execute();
          writeSync(index, lines);
          done += rows.length;
          onProgress?.(done, count);
        }
      });
    // What autovacuum does to a busy table: PostgreSQL answers from the index alone (an index-only
    // scan) only for pages its visibility map knows to be all-visible.
    if (dialectOf(db) === "postgres") await sql`vacuum analyze certificates`.execute(db);
  } finally {
    closeSync(index);
    await authority.close();
  }
}

/** Runs a command under GNU time when it is installed: wall seconds (measured here) and peak RSS. */
function runMeasured(command: string, args: string[]): Measured & { stdout: string } {
  const useTime = existsSync(GNU_TIME);
  const report = path.join(tmpdir(), `jpki-bench-time-${process.pid}-${randomBytes(4).toString("hex")}`);
  const [file, argv] = useTime ? [GNU_TIME, ["-f", "%M", "-o", report, command, ...args]] : [command, args];
  const started = performance.now();
  const result = spawnSync(file, argv, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  let peakRssBytes: number | null = null;
  if (useTime) {
    peakRssBytes = Number(readFileSync(report, "utf8").trim().split("\n").at(-1)) * 1024;
    rmSync(report, { force: true });
  }
  return { seconds, peakRssBytes, stdout: result.stdout };
}

/** What our child process reports on stdout. */
interface ChildReport {
  seconds: number;
  crls: number;
  entries: number;
  bytes: number;
  vmHwmBytes: number;
}

/** Peak resident memory of this process so far (Linux: VmHWM in /proc/self/status). */
function vmHwmBytes(): number {
  const line = readFileSync("/proc/self/status", "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmHWM:"));
  return Number(line?.match(/(\d+)/)?.[1]) * 1024;
}

/** The child: opens the authority and publishes every shard of the auth CA, timed. */
async function publishChild(dataDir: string): Promise<void> {
  const authority = await openAuthority(dataDir, { actor: "bench" });
  try {
    const started = performance.now();
    const report = await publishCrls(authority, { issuers: ["auth"], full: true });
    const seconds = (performance.now() - started) / 1000;
    const result: ChildReport = {
      seconds,
      crls: report.signed,
      entries: report.shards.reduce((n, s) => n + s.full.entries, 0),
      bytes: report.shards.reduce((n, s) => n + s.full.bytes + s.delta.bytes, 0),
      vmHwmBytes: vmHwmBytes(),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await authority.close();
  }
}

/** OpenSSL's `ca` configuration: the same CA certificate and key file, a CRL valid one day, AKI. */
function opensslConfig(dir: string, keyFile: string): string {
  return [
    "[ca]",
    "default_ca = bench",
    "[bench]",
    `database = ${path.join(dir, "index.txt")}`,
    `crlnumber = ${path.join(dir, "crlnumber")}`,
    `certificate = ${path.join(dir, "ca.pem")}`,
    `private_key = ${keyFile}`,
    "default_md = sha256",
    "default_crl_days = 1",
    // Subjects are unique here, but a CRL needs no subject index: spare OpenSSL building one.
    "unique_subject = no",
    "crl_extensions = crl_ext",
    "[crl_ext]",
    "authorityKeyIdentifier = keyid:always",
    "",
  ].join("\n");
}

async function runOne(
  database: CrlBenchRun["database"],
  dbUrl: string | undefined,
  options: Required<Pick<CrlBenchOptions, "entries" | "shards">> & Pick<CrlBenchOptions, "onProgress">,
): Promise<CrlBenchRun> {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-bench-crl-"));
  const dataDir = path.join(dir, "data");
  const opensslDir = path.join(dir, "openssl");
  try {
    const authority = await initAuthority({ dataDir, ...(dbUrl ? { db: dbUrl } : {}) });
    const caPem = pemEncode(authority.certificates.auth);
    await authority.close();
    mkdirSync(opensslDir);
    await fillRegistry(
      dataDir,
      path.join(opensslDir, "index.txt"),
      options.entries,
      options.shards,
      (done, total) => options.onProgress?.("filling the registry", done, total),
    );

    options.onProgress?.("publishing", 0, 2);
    // Imported here, not at the top: the child loads this file, and the HTTP server's modules that come
    // with the command would only add to the memory it measures.
    const { loaderExecArgv } = await import("../src/cli/commands/start.js");
    const child = runMeasured(process.execPath, [
      ...loaderExecArgv(),
      fileURLToPath(import.meta.url),
      CHILD_FLAG,
      dataDir,
    ]);
    const ours = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as ChildReport;
    options.onProgress?.("publishing", 1, 2);

    // OpenSSL: the same CA certificate and encrypted key file (keys/auth-ca.key.pem).
    writeFileSync(path.join(opensslDir, "ca.pem"), caPem);
    writeFileSync(path.join(opensslDir, "crlnumber"), "01\n");
    const config = path.join(opensslDir, "openssl.cnf");
    writeFileSync(
      config,
      opensslConfig(opensslDir, path.join(dataDir, "keys", `${KEY_LABELS.authCa}.key.pem`)),
    );
    const passin = process.env.JPKI_CA_PASSPHRASE
      ? "env:JPKI_CA_PASSPHRASE"
      : `file:${process.env.JPKI_CA_PASSPHRASE_FILE}`;
    const crlFile = path.join(opensslDir, "crl.pem");
    const gencrl = runMeasured("openssl", [
      "ca",
      "-config",
      config,
      "-gencrl",
      "-batch",
      "-passin",
      passin,
      "-out",
      crlFile,
    ]);
    const verify = runMeasured("openssl", [
      "crl",
      "-in",
      crlFile,
      "-CAfile",
      path.join(opensslDir, "ca.pem"),
      "-noout",
      "-verify",
    ]);
    options.onProgress?.("publishing", 2, 2);
    // pem.ts's strict reader is made for certificates; this PEM holds tens of megabytes.
    const opensslDer = Buffer.from(readFileSync(crlFile, "latin1").replace(/-----[^-]+-----/g, ""), "base64");

    const ourPeak = child.peakRssBytes ?? ours.vmHwmBytes;
    const opensslSeconds = gencrl.seconds + verify.seconds;
    const opensslPeak =
      gencrl.peakRssBytes === null || verify.peakRssBytes === null
        ? null
        : Math.max(gencrl.peakRssBytes, verify.peakRssBytes);
    return {
      database,
      entries: options.entries,
      shards: options.shards,
      ours: {
        seconds: ours.seconds,
        peakRssBytes: ourPeak,
        crls: ours.crls,
        entries: ours.entries,
        bytes: ours.bytes,
      },
      openssl: {
        gencrl: { seconds: gencrl.seconds, peakRssBytes: gencrl.peakRssBytes },
        verify: { seconds: verify.seconds, peakRssBytes: verify.peakRssBytes },
        seconds: opensslSeconds,
        peakRssBytes: opensslPeak,
        entries: countCrlEntries(opensslDer),
        bytes: opensslDer.length,
      },
      speedup: opensslSeconds / ours.seconds,
      speedupOverGencrlAlone: gencrl.seconds / ours.seconds,
      memoryRatio: opensslPeak === null ? null : ourPeak / opensslPeak,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCrl(options: CrlBenchOptions = {}): Promise<CrlBenchResult> {
  if (!process.env.JPKI_CA_PASSPHRASE && !process.env.JPKI_CA_PASSPHRASE_FILE)
    process.env.JPKI_CA_PASSPHRASE = "bench-passphrase";
  const settings = {
    entries: options.entries ?? 1_000_000,
    shards: options.shards ?? 64,
    onProgress: options.onProgress,
  };
  const runs = [await runOne("sqlite", undefined, settings)];
  if (options.postgresUrl)
    runs.push(
      await withPostgresSchema(options.postgresUrl, "bench_crl", (url) => runOne("postgres", url, settings)),
    );
  return {
    goal: GOAL,
    memoryUnavailable: existsSync(GNU_TIME) ? null : `${GNU_TIME} (GNU time) is not installed`,
    runs,
  };
}

if (process.argv[2] === CHILD_FLAG && import.meta.url === pathToFileURL(process.argv[1]!).href)
  await publishChild(process.argv[3]!);
