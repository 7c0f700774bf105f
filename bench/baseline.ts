/**
 * Peers and meters measured in the same run as our figures, since these machines are shared and
 * noisy: OpenSSL's own RSA-2048 signing rate, and how many cores a piece of work kept busy.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dropPostgresSchema } from "../src/registry/db.js";

/** `openssl speed rsa2048` on one core: RSA-2048 private-key operations per second. */
export function opensslRsa2048SignsPerSecond(seconds = 3): number {
  // -mr prints "+F2:<index>:<bits>:<sign/s>:<verify/s>" (OpenSSL 3 machine-readable form).
  const out = execFileSync("openssl", ["speed", "-mr", "-seconds", String(seconds), "rsa2048"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const line = out.split("\n").find((l) => l.startsWith("+F2:"));
  const rate = Number(line?.split(":")[3]);
  if (!Number.isFinite(rate) || rate <= 0)
    throw new Error(`cannot read the RSA-2048 rate from openssl speed: ${out}`);
  return rate;
}

/** CPU seconds used so far by this process and by every PostgreSQL server process (from /proc, Linux). */
function cpuSeconds(): { ours: number; database: number } {
  const hz = 100; // USER_HZ on Linux
  let database = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (comm !== "postgres") continue;
      // Fields after the command name: state is field 3, utime 14 and stime 15 (proc(5)).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      database += (Number(fields[11]) + Number(fields[12])) / hz;
    } catch {
      // The process ended while we looked.
    }
  }
  const usage = process.cpuUsage();
  return { ours: (usage.user + usage.system) / 1e6, database };
}

/**
 * Cores kept busy while `work` ran, counting this process and the database server (PostgreSQL's
 * processes), but not unrelated load on the machine.
 */
export async function measureCores<T>(
  work: () => Promise<T>,
): Promise<{ result: T; seconds: number; cores: number; processCores: number }> {
  const before = cpuSeconds();
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const after = cpuSeconds();
  const processCores = (after.ours - before.ours) / seconds;
  const cores = processCores + (after.database - before.database) / seconds;
  return { result, seconds, cores, processCores };
}

/** A throw-away PostgreSQL schema (`<prefix>_<pid>_<time>`) for one run, dropped afterwards. */
export async function withPostgresSchema<T>(
  url: string,
  prefix: string,
  body: (schemaUrl: string) => Promise<T>,
): Promise<T> {
  const schema = `${prefix}_${process.pid}_${Date.now()}`;
  const schemaUrl = new URL(url);
  schemaUrl.searchParams.set("schema", schema);
  try {
    return await body(schemaUrl.toString());
  } finally {
    await dropPostgresSchema(url, schema);
  }
}
