/**
 * `jpki-mobile bench ocsp`: pre-signed OCSP answers over HTTP GET (RFC 5019 §5) per second, with
 * p50 and p99 latency, from `jpki-mobile start` in a child process, at 16 and 64 keep-alive
 * connections; beside the `openssl ocsp` responder on the same CA, the same responder key and the same
 * certificates, measured in the same run.
 *
 * Keep-alive loads come from `wrk` (C, one thread) when it is installed: a Lua script turns over the
 * GET paths, adds the token, and counts every answer that is not HTTP 200 with a successful
 * OCSPResponse. Without wrk, and for every load of one request per connection, the generator is this
 * process: raw TCP sockets, one request in flight per connection, each request about another
 * certificate (round robin over all of them), at several times wrk's CPU cost per request. wrk is not
 * used with one request per connection because it makes `openssl ocsp` spin before its first request
 * (as a client that connects and closes without a request does), and so that those rows, ours and
 * OpenSSL's, come from the same generator. The generator and the server share the machine's cores, so
 * both sides' CPU time is reported.
 *
 * `openssl ocsp -port` (JPKI-FACTS §7) serves one connection at a time over HTTP/1.0 without
 * keep-alive and signs every answer; a client that connects and closes without a request makes it
 * spin. So each of its measurements gets a fresh responder (stopped by its process id afterwards),
 * every connection sends a whole request at once and is waited for, and it is told ready by its own
 * "ACCEPT" line rather than probed. Our server is also measured that way (a connection per request)
 * for a like-for-like row.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import path from "node:path";
import { parseCertificate } from "../src/pki/certificate.js";
import { CrlReason } from "../src/pki/crl.js";
import { sequence } from "../src/pki/der.js";
import { ocspCertId } from "../src/pki/ocsp.js";
import { revokeCertificate } from "../src/registry/lifecycle.js";
import { addVerifier } from "../src/registry/verifiers.js";
import { KEY_LABELS } from "../src/server/authority.js";
import { publishCrls } from "../src/status/crl.js";
import { OcspResponder } from "../src/status/ocsp.js";
import { openOcspSandbox } from "../src/status/ocsp-fixture.js";
import { OcspRefresher } from "../src/status/ocsp-refresher.js";

export interface OcspBenchOptions {
  /** Certificates issued and asked about (default 1000); a tenth of them revoked. */
  certificates?: number;
  /** Length of each measurement (default 5 s). */
  seconds?: number;
  /** Keep-alive connection counts for our server (default 16 and 64). */
  connections?: readonly number[];
  /** Measure `openssl ocsp` too (default true). */
  openssl?: boolean;
  /** Generator of the keep-alive loads: wrk when installed (default), else this process. */
  generator?: LoadGenerator;
  /** Worker processes of `jpki-mobile start` (`--workers`, default 1). */
  workers?: number;
  onProgress?: (phase: string) => void;
}

export type LoadGenerator = "wrk" | "node";

export interface LoadResult {
  /** Who answered: ours, or openssl (with `-multi 2`: two worker processes). */
  server: "jpki-mobile" | "openssl ocsp" | "openssl ocsp -multi 2";
  generator: LoadGenerator;
  connections: number;
  /** Whether connections carry many requests (HTTP/1.1 keep-alive) or one each (HTTP/1.0). */
  keepAlive: boolean;
  answers: number;
  /** Answers that were not HTTP 200 with a successful OCSPResponse. */
  errors: number;
  seconds: number;
  answersPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU used during the measurement, in cores: the server's process(es) and this load generator. */
  serverCores: number;
  clientCores: number;
  /**
   * answersPerSecond / serverCores: the server's efficiency, which holds steadier than the rate when
   * other work shares the machine.
   */
  answersPerServerCore: number;
}

export interface OcspBenchResult {
  certificates: number;
  cores: number;
  /** Generator of the keep-alive loads (loads of one request per connection: always this process). */
  generator: LoadGenerator;
  /** Worker processes of our server. */
  workers: number;
  /** The machine's load average (1 minute) before and after the run: other work sharing the cores. */
  loadAverage: [number, number];
  runs: LoadResult[];
  /** Our best keep-alive rate over the single `openssl ocsp` responder's rate (and over `-multi 2`). */
  ratio?: number;
  ratioMulti?: number;
  /** The same comparison per core the servers kept busy (our best keep-alive run against `openssl ocsp`). */
  ratioPerServerCore?: number;
  goal: { answersPerSecond: number; ratio: number; p99Ms: number };
}

export const OCSP_GOAL = { answersPerSecond: 20_000, ratio: 10, p99Ms: 10 };

/** CPU seconds of a process and its children still running (Linux /proc; utime + stime, USER_HZ 100). */
function cpuSecondsOfTree(pid: number): number {
  const of = (p: string) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 };
    } catch {
      return undefined;
    }
  };
  let total = of(String(pid))?.cpu ?? 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const child = of(entry);
    if (child?.ppid === pid) total += child.cpu;
  }
  return total;
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/**
 * CPU seconds of this process's children that have ended and been waited for (cutime + cstime in
 * /proc/self/stat, proc(5)): how the CPU of a wrk run is read once it has exited.
 */
function endedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** Whether `wrk` can be run. */
export function wrkInstalled(): boolean {
  return spawnSync("wrk", ["--version"], { stdio: "ignore" }).error === undefined;
}

/** The length of the first whole HTTP response in `buffer` and its status, or undefined if incomplete. */
function completeResponse(buffer: Buffer): { length: number; status: number; bodyStart: number } | undefined {
  const end = buffer.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = buffer.toString("latin1", 0, end);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (!length) return undefined;
  const total = end + 4 + Number(length[1]);
  return buffer.length < total
    ? undefined
    : { length: total, status: Number(head.slice(9, 12)), bodyStart: end + 4 };
}

/** A successful OCSPResponse: SEQUENCE { ENUMERATED 0, ... } (RFC 6960 §4.2.1), long-form length. */
function successfulOcsp(body: Buffer): boolean {
  return body[0] === 0x30 && body[4] === 0x0a && body[5] === 0x01 && body[6] === 0x00;
}

interface Load {
  port: number;
  /** The path asked for each certificate, and the headers sent with every request. */
  paths: readonly string[];
  headers: Readonly<Record<string, string>>;
  connections: number;
  seconds: number;
  keepAlive: boolean;
}

type LoadFigures = Omit<
  LoadResult,
  "server" | "generator" | "serverCores" | "clientCores" | "answersPerServerCore"
>;

/** The whole request per path, bytes ready to write: HTTP/1.1 kept alive, or HTTP/1.0 closed after. */
function requestBytes(load: Load): Buffer[] {
  const version = load.keepAlive ? "HTTP/1.1" : "HTTP/1.0";
  const headers = Object.entries(load.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  return load.paths.map((p) => Buffer.from(`GET ${p} ${version}\r\n${headers}\r\n`, "latin1"));
}

/**
 * Runs a closed-loop load: each connection sends its next request when the answer to the previous
 * one is complete. After the deadline no request is started; every one started is waited for.
 */
async function runLoad(load: Load): Promise<LoadFigures> {
  let next = 0;
  let errors = 0;
  const latencies: number[] = [];
  const requests = requestBytes(load);
  const started = performance.now();
  const deadline = started + load.seconds * 1000;
  const request = () => requests[next++ % requests.length]!;
  const record = (since: number, ok: boolean) => {
    latencies.push(performance.now() - since);
    if (!ok) errors++;
  };

  const keepAliveConnection = () =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(load.port, "127.0.0.1");
      socket.setNoDelay(true);
      let buffer: Buffer | undefined;
      let since = 0;
      const send = () => {
        if (performance.now() >= deadline) {
          socket.end();
          return resolve();
        }
        since = performance.now();
        socket.write(request());
      };
      socket.on("connect", send);
      socket.on("data", (chunk: Buffer) => {
        buffer = buffer ? Buffer.concat([buffer, chunk]) : chunk;
        const response = completeResponse(buffer);
        if (!response) return;
        record(since, response.status === 200 && successfulOcsp(buffer.subarray(response.bodyStart)));
        buffer = buffer.length > response.length ? buffer.subarray(response.length) : undefined;
        send();
      });
      socket.on("error", reject);
    });

  /** One request on its own connection, read until the server closes it (HTTP/1.0). */
  const oneShot = () =>
    new Promise<void>((resolve) => {
      const since = performance.now();
      const chunks: Buffer[] = [];
      const socket = connect(load.port, "127.0.0.1", () => socket.write(request()));
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("close", () => {
        const all = Buffer.concat(chunks);
        const response = completeResponse(all);
        record(since, response?.status === 200 && successfulOcsp(all.subarray(response.bodyStart)));
        resolve();
      });
      socket.on("error", () => undefined); // reported through "close" as an incomplete answer
    });
  const connectionPerRequest = async () => {
    while (performance.now() < deadline) await oneShot();
  };

  await Promise.all(
    Array.from({ length: load.connections }, load.keepAlive ? keepAliveConnection : connectionPerRequest),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const percentile = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return {
    connections: load.connections,
    keepAlive: load.keepAlive,
    answers: latencies.length,
    errors,
    seconds,
    answersPerSecond: latencies.length / seconds,
    p50Ms: percentile(0.5),
    p99Ms: percentile(0.99),
  };
}

/**
 * wrk's script: requests made once per thread, turned over in order; every answer checked (HTTP 200, a
 * successful OCSPResponse: SEQUENCE with a long-form length, then ENUMERATED 0, RFC 6960 §4.2.1); the
 * figures printed as one line of JSON when the run is done (wrk's own report is not printed).
 */
function wrkScript(load: Load): string {
  const lua = (text: string) => JSON.stringify(text); // a JSON string of ASCII is a Lua string
  const headers = Object.entries(load.headers).map(
    ([name, value]) => `wrk.headers[${lua(name)}] = ${lua(value)}`,
  );
  return `${headers.join("\n")}
local paths = { ${load.paths.map(lua).join(", ")} }
local requests = {}
local turn = 0
failed = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for i, p in ipairs(paths) do requests[i] = wrk.format("GET", p) end
end
function request()
  turn = turn % #requests + 1
  return requests[turn]
end
function response(status, headers, body)
  if status ~= 200 or body:byte(1) ~= 0x30 or body:byte(5) ~= 0x0a or body:byte(6) ~= 1 or body:byte(7) ~= 0 then
    failed = failed + 1
  end
end
function done(summary, latency, requests)
  local failures = 0
  for _, t in ipairs(threads) do failures = failures + t:get("failed") end
  local e = summary.errors
  io.write(string.format('{"answers":%d,"microseconds":%d,"p50":%.0f,"p99":%.0f,"failed":%d,"socketErrors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), failures,
    e.connect + e.read + e.write + e.timeout))
end
`;
}

/** Runs a load with wrk (one thread; whole seconds, at least one); the CPU it used comes with it. */
async function runWrk(load: Load, scriptFile: string): Promise<LoadFigures & { cpuSeconds: number }> {
  writeFileSync(scriptFile, wrkScript(load));
  const before = endedChildrenCpuSeconds();
  const seconds = Math.max(1, Math.round(load.seconds));
  const out = await new Promise<string>((resolve, reject) => {
    const args = ["-t1", `-c${load.connections}`, `-d${seconds}s`, "-s", scriptFile];
    const wrk = spawn("wrk", [...args, `http://127.0.0.1:${load.port}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    wrk.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    wrk.stderr.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    wrk.once("error", reject);
    wrk.once("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk failed (${code}): ${text}`)),
    );
  });
  const line = out.split("\n").find((l) => l.startsWith('{"answers"'));
  if (!line) throw new Error(`wrk printed no figures: ${out}`);
  const figures = JSON.parse(line) as {
    answers: number;
    microseconds: number;
    p50: number;
    p99: number;
    failed: number;
    socketErrors: number;
  };
  const elapsed = figures.microseconds / 1e6;
  return {
    connections: load.connections,
    keepAlive: load.keepAlive,
    answers: figures.answers,
    errors: figures.failed + figures.socketErrors,
    seconds: elapsed,
    answersPerSecond: figures.answers / elapsed,
    p50Ms: figures.p50 / 1000,
    p99Ms: figures.p99 / 1000,
    cpuSeconds: endedChildrenCpuSeconds() - before,
  };
}

/**
 * Measures a load while counting the CPU of the server process `pid` (and its children: workers) and
 * of the load generator.
 */
async function measured(
  server: LoadResult["server"],
  pid: number,
  load: Load,
  generator: { kind: LoadGenerator; scriptFile: string },
): Promise<LoadResult> {
  const serverBefore = cpuSecondsOfTree(pid);
  const clientBefore = ownCpuSeconds();
  let result: LoadFigures;
  let clientSeconds: number;
  if (generator.kind === "wrk" && load.keepAlive) {
    const { cpuSeconds, ...figures } = await runWrk(load, generator.scriptFile);
    result = figures;
    clientSeconds = cpuSeconds;
  } else {
    result = await runLoad(load);
    clientSeconds = ownCpuSeconds() - clientBefore;
  }
  const serverCores = (cpuSecondsOfTree(pid) - serverBefore) / result.seconds;
  return {
    server,
    generator: generator.kind === "wrk" && load.keepAlive ? "wrk" : "node",
    ...result,
    serverCores,
    clientCores: clientSeconds / result.seconds,
    answersPerServerCore: serverCores > 0 ? result.answersPerSecond / serverCores : 0,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves with the first stdout line matching `pattern`; rejects if the process ends first. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => pattern.test(l));
      if (line) resolve(line);
    });
    child.once("exit", (code) =>
      reject(new Error(`${what} exited (${code}) before it was ready: ${out}${err}`)),
    );
  });
}

/** The ids of a process's children (openssl's `-multi` workers), from /proc. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) found.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

/**
 * Stops a child we started, by its process id, and its own children by theirs: `openssl ocsp -multi`
 * does not stop its workers on SIGTERM, so they are killed too.
 */
function stop(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const workers = childrenOf(child.pid!);
    child.once("exit", () => resolve());
    child.kill(signal);
    for (const worker of workers) {
      try {
        process.kill(worker, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** `jpki-mobile start` in a child process, from source (tsx) or from dist, whichever runs this file. */
function startServer(dataDir: string, workers: number): ChildProcess {
  const main = new URL("../src/cli/main.js", import.meta.url).href;
  const code = `const { main } = await import(${JSON.stringify(main)}); process.exitCode = await main(process.argv.slice(1));`;
  return spawn(
    process.execPath,
    [
      ...process.execArgv,
      "--input-type=module",
      "-e",
      code,
      "start",
      "--data",
      dataDir,
      "--port",
      "0",
      "--workers",
      String(workers),
      "--json",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: process.env },
  );
}

/** openssl's index.txt (as `openssl ca` keeps it): V or R, notAfter, revocation time and reason, serial. */
function indexLine(cert: { serial: string; der: Buffer }, revokedAt?: Date): string {
  const time = (d: Date) => `${d.toISOString().slice(2, 19).replace(/[-T:]/g, "")}Z`;
  const notAfter = time(parseCertificate(cert.der).notAfter);
  const revocation = revokedAt ? `${time(revokedAt)},keyCompromise` : "";
  return `${revokedAt ? "R" : "V"}\t${notAfter}\t${revocation}\t${cert.serial.toUpperCase()}\tunknown\t/CN=${cert.serial}\n`;
}

export async function benchOcsp(options: OcspBenchOptions = {}): Promise<OcspBenchResult> {
  const count = options.certificates ?? 1000;
  const seconds = options.seconds ?? 5;
  const workers = options.workers ?? 1;
  const progress = options.onProgress ?? (() => undefined);
  const generator = {
    kind: options.generator ?? (wrkInstalled() ? "wrk" : "node"),
    scriptFile: "",
  } satisfies { kind: LoadGenerator; scriptFile: string };
  const loadBefore = loadavg()[0]!;
  const sandbox = await openOcspSandbox();
  generator.scriptFile = path.join(sandbox.dir, "load.lua");
  const children: ChildProcess[] = [];
  try {
    const { authority } = sandbox;
    const db = authority.registry.db;
    progress(`issuing ${count} certificates`);
    const certs = await sandbox.issue("auth", count);
    const revoked = new Map<string, Date>();
    for (const cert of certs.filter((_, i) => i % 10 === 9)) {
      await revokeCertificate(db, cert.serial, { actor: "bench", reason: CrlReason.keyCompromise });
      revoked.set(cert.serial, new Date());
    }
    const { token } = await addVerifier(db, { name: "bench", kind: "auth" });
    progress("pre-signing the answers and publishing the CRLs");
    await new OcspRefresher(OcspResponder.forAuthority(authority), db).sweepOnce();
    // Published now, so the server's CRL schedule has nothing to sign while it is measured.
    await publishCrls(authority);

    const ca = parseCertificate(authority.certificates.auth);
    const getPaths = certs.map(
      (c) =>
        `/ocsp/${encodeURIComponent(
          sequence(
            sequence(sequence(sequence(ocspCertId(ca.subjectDer, ca.spki, Buffer.from(c.serial, "hex"))))),
          ).toString("base64"),
        )}`,
    );
    const results: LoadResult[] = [];

    progress("starting jpki-mobile start");
    const server = startServer(sandbox.dir, workers);
    children.push(server);
    const url = new URL(JSON.parse(await waitForLine(server, /^\{/, "jpki-mobile start")).url as string);
    const port = Number(url.port);
    const ours = (connections: number, keepAlive: boolean, time = seconds): Load => ({
      port,
      paths: getPaths,
      headers: { Host: url.host, Authorization: `Bearer ${token}` },
      connections,
      seconds: time,
      keepAlive,
    });
    progress("warming up");
    await measured("jpki-mobile", server.pid!, ours(64, true, Math.min(2, seconds)), generator);
    for (const connections of options.connections ?? [16, 64]) {
      progress(`jpki-mobile, ${connections} keep-alive connections`);
      results.push(await measured("jpki-mobile", server.pid!, ours(connections, true), generator));
    }
    progress("jpki-mobile, 16 connections, one request each");
    results.push(await measured("jpki-mobile", server.pid!, ours(16, false), generator));
    await stop(server);

    if (options.openssl ?? true) {
      const index = path.join(sandbox.dir, "index.txt");
      writeFileSync(index, certs.map((c) => indexLine(c, revoked.get(c.serial))).join(""));
      const caFile = sandbox.pem("auth-ca", authority.certificates.auth);
      const responderFile = sandbox.pem("auth-ocsp", authority.certificates.authOcsp);
      // The same responder key, as the software key store keeps it (encrypted PKCS#8).
      const keyFile = path.join(sandbox.dir, "keys", `${KEY_LABELS.authOcsp}.key.pem`);
      const passin = process.env.JPKI_CA_PASSPHRASE
        ? "env:JPKI_CA_PASSPHRASE"
        : `file:${process.env.JPKI_CA_PASSPHRASE_FILE}`;
      // openssl's responder takes the request right after the first slash (its URL has no path).
      const opensslPaths = getPaths.map((p) => p.slice("/ocsp".length));
      for (const multi of [1, 2]) {
        const name = multi === 1 ? "openssl ocsp" : "openssl ocsp -multi 2";
        progress(`${name}, 16 connections, one request each`);
        const opensslPort = await freePort();
        const responder = spawn(
          "openssl",
          [
            "ocsp",
            "-index",
            index,
            "-port",
            String(opensslPort),
            "-rsigner",
            responderFile,
            "-rkey",
            keyFile,
            "-passin",
            passin,
            "-CA",
            caFile,
            "-nmin",
            "1440",
            "-ignore_err",
            ...(multi > 1 ? ["-multi", String(multi)] : []),
          ],
          // Not detached: started in a session of its own, `openssl ocsp -multi` exits at once (status 1).
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        children.push(responder);
        await waitForLine(responder, /^ACCEPT /, name);
        results.push(
          await measured(
            name,
            responder.pid!,
            {
              port: opensslPort,
              paths: opensslPaths,
              headers: { Host: "127.0.0.1" },
              connections: 16,
              seconds,
              keepAlive: false,
            },
            generator,
          ),
        );
        // The parent waits for its workers and ignores SIGTERM: it is killed with them.
        await stop(responder, "SIGKILL");
      }
    }

    const keepAlive = results.filter((r) => r.server === "jpki-mobile" && r.keepAlive);
    const best = keepAlive.reduce((a, b) => (b.answersPerSecond > a.answersPerSecond ? b : a), keepAlive[0]!);
    const bestOurs = best.answersPerSecond;
    const single = results.find((r) => r.server === "openssl ocsp");
    const multi = results.find((r) => r.server === "openssl ocsp -multi 2");
    return {
      certificates: count,
      cores: availableParallelism(),
      generator: generator.kind,
      workers,
      loadAverage: [loadBefore, loadavg()[0]!],
      runs: results,
      ...(single
        ? {
            ratio: bestOurs / single.answersPerSecond,
            ratioPerServerCore: best.answersPerServerCore / single.answersPerServerCore,
          }
        : {}),
      ...(multi ? { ratioMulti: bestOurs / multi.answersPerSecond } : {}),
      goal: OCSP_GOAL,
    };
  } finally {
    for (const child of children) await stop(child, "SIGKILL").catch(() => undefined);
    await sandbox.close();
  }
}
