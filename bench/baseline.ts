/**
 * Peers and meters measured in the same run as our figures, since these machines are shared and
 * noisy: OpenSSL's own RSA-2048 signing rate, and how many cores a piece of work kept busy.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** `openssl speed rsa2048` on one core: RSA-2048 private-key operations per second. */
export function opensslRsa2048SignsPerSecond(seconds = 3): number {
  // -mr prints "+F2:<index>:<bits>:<sign/s>:<verify/s>" (OpenSSL 3 machine-readable form).
  const out = execFileSync("openssl", ["speed", "-mr", "-seconds", String(seconds), "rsa2048"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const line = out.split("\n").find((l) => l.startsWith("+F2:"));
  const rate = Number(line?.split(":")[3]);
  if (!Number.isFinite(rate) || rate <= 0) throw new Error(`cannot read the RSA-2048 rate from openssl speed: ${out}`);
  return rate;
}

/** Busy and total CPU time of the whole machine, from /proc/stat (Linux), in clock ticks. */
function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Cores kept busy while `work` ran: the machine's (all processes, e.g. our own plus PostgreSQL's) and ours. */
export async function measureCores<T>(
  work: () => Promise<T>,
): Promise<{ result: T; seconds: number; machineCores: number; processCores: number }> {
  const ticks0 = machineTicks();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = machineTicks();
  const hz = 100; // USER_HZ on Linux
  const machineCores = (ticks1.busy - ticks0.busy) / hz / seconds;
  const processCores = (cpu.user + cpu.system) / 1e6 / seconds;
  return { result, seconds, machineCores, processCores };
}
