/**
 * `jpki-mobile bench ca`: certificates issued per second through the full registry path (store the
 * serial and TBS, sign, store the certificate, audit both steps) on SQLite and on PostgreSQL, beside
 * `openssl speed rsa2048` measured in the same run.
 *
 * The figure that matters is the rate per core kept busy, as a share of OpenSSL's single-core
 * signing rate: the CA signer is the one serial component of the system (DESIGN §7), so the rest of
 * the path must cost little next to the RSA signature. Cores are counted for our process and the
 * PostgreSQL server together, leaving out unrelated load on a shared machine.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { cardAuthenticationCertificateTbs } from "../src/pki/profiles.js";
import { citizenCertificateValidity, parseBirthDate } from "../src/pki/validity.js";
import { type IssuanceRequest, issueCertificates } from "../src/registry/issuance.js";
import { initAuthority } from "../src/server/authority.js";
import { measureCores, opensslRsa2048SignsPerSecond, withPostgresSchema } from "./baseline.js";

export interface CaBenchOptions {
  /** Certificates per database (default 10000). */
  count?: number;
  /** Requests per issueCertificates call (default 500). */
  batch?: number;
  /** Batches in flight at once (default 2). */
  concurrency?: number;
  /** How long `openssl speed` runs (default 3 s). */
  opensslSeconds?: number;
  /** PostgreSQL server to measure; undefined skips it. */
  postgresUrl?: string;
  onProgress?: (label: string, done: number, total: number) => void;
}

export interface CaBenchRun {
  database: "sqlite" | "postgres";
  certificates: number;
  seconds: number;
  certificatesPerSecond: number;
  /** Cores busy during the run: this process and the PostgreSQL server's processes. */
  cores: number;
  processCores: number;
  /** OpenSSL's single-core RSA-2048 rate around this run: the mean of the measurements just before and after. */
  opensslRsa2048SignsPerSecond: number;
  /** certificatesPerSecond / cores / opensslRsa2048SignsPerSecond. */
  ratioPerCore: number;
}

export interface CaBenchResult {
  /** Every `openssl speed rsa2048` measurement of the run, in order (before, between and after the databases). */
  opensslMeasurements: number[];
  goalRatioPerCore: number;
  runs: CaBenchRun[];
}

export const GOAL_RATIO_PER_CORE = 0.6;

async function runOne(
  database: "sqlite" | "postgres",
  dbUrl: string | undefined,
  options: Required<Pick<CaBenchOptions, "count" | "batch" | "concurrency">> &
    Pick<CaBenchOptions, "onProgress">,
): Promise<Omit<CaBenchRun, "opensslRsa2048SignsPerSecond" | "ratioPerCore">> {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-bench-ca-"));
  process.env.JPKI_CA_PASSPHRASE ??= "bench-passphrase";
  const authority = await initAuthority({ dataDir: dir, db: dbUrl });
  try {
    // Subject keys are made before the timed part: the CA never sees a citizen's private key.
    const subjectKeys = Array.from({ length: 8 }, () =>
      generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" }),
    );
    const birth = parseBirthDate("1980-06-15");
    const issuer = authority.issuerKey("auth");
    const request = (i: number): IssuanceRequest => {
      const validity = citizenCertificateValidity(
        birth,
        new Date(),
        new Date(Date.now() + 5 * 365 * 86_400_000),
      );
      return {
        issuer: "auth",
        kind: "card-auth",
        medium: "card",
        ...validity,
        buildTbs: (serial, shard) =>
          cardAuthenticationCertificateTbs({
            serial,
            shard,
            issuer,
            subjectSpki: subjectKeys[i % subjectKeys.length]!,
            validity,
            baseUrl: authority.config.baseUrl,
          }),
      };
    };
    const batches = Math.ceil(options.count / options.batch);
    let next = 0;
    let done = 0;
    const worker = async () => {
      for (let b = next++; b < batches; b = next++) {
        const size = Math.min(options.batch, options.count - b * options.batch);
        const requests = Array.from({ length: size }, (_, i) => request(b * options.batch + i));
        const results = await issueCertificates(authority.registry.db, authority.signers, requests, {
          actor: "bench",
        });
        if (results.some((r) => !r.ok)) throw new Error("an issuance failed during the benchmark");
        done += size;
        options.onProgress?.(database, done, options.count);
      }
    };
    const measured = await measureCores(() =>
      Promise.all(Array.from({ length: options.concurrency }, worker)),
    );
    const rate = options.count / measured.seconds;
    return {
      database,
      certificates: options.count,
      seconds: measured.seconds,
      certificatesPerSecond: rate,
      cores: measured.cores,
      processCores: measured.processCores,
    };
  } finally {
    await authority.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCa(options: CaBenchOptions = {}): Promise<CaBenchResult> {
  const settings = {
    count: options.count ?? 10000,
    batch: options.batch ?? 500,
    concurrency: options.concurrency ?? 2,
    onProgress: options.onProgress,
  };
  // The machine's speed drifts on a shared host: OpenSSL is measured before and after each database,
  // and each run is compared with the mean of the two measurements around it.
  const openssl = () => opensslRsa2048SignsPerSecond(options.opensslSeconds);
  const measurements = [openssl()];
  const runs: CaBenchRun[] = [];
  const compare = (run: Awaited<ReturnType<typeof runOne>>): void => {
    measurements.push(openssl());
    const around = (measurements.at(-2)! + measurements.at(-1)!) / 2;
    runs.push({
      ...run,
      opensslRsa2048SignsPerSecond: around,
      ratioPerCore: run.certificatesPerSecond / run.cores / around,
    });
  };
  compare(await runOne("sqlite", undefined, settings));
  if (options.postgresUrl)
    compare(
      await withPostgresSchema(options.postgresUrl, "bench", (url) => runOne("postgres", url, settings)),
    );
  return { opensslMeasurements: measurements, goalRatioPerCore: GOAL_RATIO_PER_CORE, runs };
}
