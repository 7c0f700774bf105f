/**
 * How fast the registry's issuance path runs, and what it costs per certificate beside the signature:
 *
 *   node --import tsx src/registry/measure-issuance.ts [--count 3000] [--batch 100] [--pg URL]
 *
 * For each dialect: certificates/s through issueCertificates with a real RSA-2048 signer (store, sign,
 * store, audit), the same with a signer that returns a fixed signature (registry alone), and the
 * signer alone. A quick measurement for development, not a test; `jpki-mobile bench ca` is the benchmark.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { assembleSigned, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { randomSerial } from "../pki/serial.js";
import { openRegistryDatabase, type RegistryDatabase } from "./db.js";
import { type CertificateSigner, issueCertificates } from "./issuance.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "3000" },
    batch: { type: "string", default: "100" },
    concurrency: { type: "string", default: "1" },
    pg: { type: "string", default: process.env["JPKI_TEST_PG"] || "postgres://postgres@127.0.0.1:5432/test" },
  },
});
const count = Number(values.count);
const batch = Number(values.batch);
/** Batches in flight at once: while one batch is signed, another is stored. */
const concurrency = Number(values.concurrency);

const key = await generateTestKey();
const real = rsaSigner(key);
const fixedSignature = Buffer.alloc(256, 0x5a);
const instant: CertificateSigner = {
  issue: async (tbs) => assembleSigned(tbs, signatureAlgorithmIdentifier("rsa-2048"), fixedSignature),
};

/** Operations per second of wall time; `cpu` gets this process's CPU time per operation, in µs. */
async function rate(
  run: () => Promise<void>,
  n: number,
  cpu?: (microseconds: number) => void,
): Promise<number> {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  await run();
  const used = process.cpuUsage(cpuStart);
  cpu?.((used.user + used.system) / n);
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function throughRegistry(
  db: RegistryDatabase["db"],
  signer: CertificateSigner,
  n: number,
  cpu?: (microseconds: number) => void,
): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let done = next; done < n; done = next) {
      const size = Math.min(batch, n - done);
      next += size;
      const results = await issueCertificates(
        db,
        { auth: signer },
        Array.from({ length: size }, () => testRequest(key)),
      );
      if (!results.every((r) => r.ok)) throw new Error("an issuance failed");
    }
  };
  return rate(
    async () => {
      await Promise.all(Array.from({ length: concurrency }, worker));
    },
    n,
    cpu,
  );
}

const signerAlone = await rate(async () => {
  for (let done = 0; done < count; done += batch) {
    const tbs = Array.from({ length: Math.min(batch, count - done) }, () =>
      testRequest(key).buildTbs(randomSerial(), 0),
    );
    await Promise.all(tbs.map((t) => real.issue(t)));
  }
}, count);

interface Row {
  dialect: string;
  full: number;
  registryOnly: number;
  registryCpu: number;
}
const rows: Row[] = [];

async function measure(dialect: string, handle: RegistryDatabase): Promise<void> {
  await throughRegistry(handle.db, instant, Math.min(500, count)); // warm up
  let registryCpu = 0;
  const registryOnly = await throughRegistry(handle.db, instant, count, (us) => {
    registryCpu = us;
  });
  const full = await throughRegistry(handle.db, real, count);
  rows.push({ dialect, full, registryOnly, registryCpu });
}

const dir = mkdtempSync(join(tmpdir(), "jpki-measure-"));
try {
  const sqlite = await openRegistryDatabase(join(dir, "registry.db"));
  await measure("sqlite", sqlite);
  await sqlite.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const schema = `measure_${randomBytes(6).toString("hex")}`;
try {
  const postgres = await openRegistryDatabase(values.pg, { schema });
  try {
    await measure("postgres", postgres);
  } finally {
    await postgres.close();
  }
} catch (error) {
  console.error(`PostgreSQL skipped: ${(error as Error).message}`);
} finally {
  const client = new pg.Client({ connectionString: values.pg });
  await client
    .connect()
    .then(() => client.query(`drop schema if exists "${schema}" cascade`))
    .catch(() => undefined);
  await client.end().catch(() => undefined);
}

console.log(
  `RSA-2048 signer alone (thread pool, batches of ${batch}): ${signerAlone.toFixed(0)} signatures/s`,
);
for (const r of rows)
  console.log(
    `${r.dialect.padEnd(8)} full path ${r.full.toFixed(0)} certificates/s (${((r.full / signerAlone) * 100).toFixed(0)}% of the signer); ` +
      `registry alone ${r.registryOnly.toFixed(0)} certificates/s = ${(1e6 / r.registryOnly).toFixed(0)} µs per certificate ` +
      `(${r.registryCpu.toFixed(0)} µs of this process's CPU; PostgreSQL's own is not counted)`,
  );
