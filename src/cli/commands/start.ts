/**
 * `start`: the services of a data directory over HTTP until SIGINT or SIGTERM: the OCSP responder
 * with its pre-signing refresher, the CRLs with their publication schedule, J-LIS's RA and the
 * carriers' relays (/api), health, metrics and the API description (DESIGN §6); in the background,
 * the expiry job, and the sweep that revokes what could not be delivered to a SIM in time.
 *
 * With `--workers N` (N > 1) the process is a supervisor of N worker processes (node:cluster) that
 * share the listening socket and the registry: connections are handed out in turn, pre-signed OCSP
 * answers are shared through the `ocsp_responses` table, and lookup counts are added by each worker.
 * Every worker checks the certificate's latest change for every answer, as a single process does, so
 * a cached `good` is never served after a revocation whichever worker signed it. The first worker
 * also runs the pre-signing refresher, the CRL schedule and the background jobs; the others only serve.
 */
import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import { closeMonth, previousMonth, ratesOf } from "../../ledger/ledger.js";
import { deliverCarrierOutboxes } from "../../mno/event-outbox.js";
import { inProcessEventSender } from "../../ra/carrier-events.js";
import { purgeExpiredNonces } from "../../ra/nonces.js";
import { revokeUndelivered } from "../../ra/provisioning.js";
import { expireCertificates } from "../../registry/lifecycle.js";
import { openAuthority } from "../../server/authority.js";
import { createStatusService } from "../../server/http.js";
import { startCrlScheduler } from "../../status/crl.js";
import { type PeriodicJob, startPeriodic } from "../../util/periodic.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataDir, dataOption, jsonOption } from "./options.js";

const DEFAULT_PORT = 8080;
const DEFAULT_HOST = "127.0.0.1";
const MAX_WORKERS = 64;

/** How often the CRL publisher looks at the registry at the latest (it also runs before any CRL is due). */
const CRL_INTERVAL_MS = 5 * 60_000;
/** How often certificates past their notAfter are marked expired (reads treat them so in between). */
const EXPIRY_INTERVAL_MS = 60_000;
/** How often J-LIS ends undeliverable certificates and forgets expired nonces. */
const SWEEP_INTERVAL_MS = 3_600_000;

/** How often the carriers' outboxes are delivered to J-LIS (each event also retries on its own backoff). */
const CARRIER_EVENTS_INTERVAL_MS = 10_000;

/** How often the previous month's ledger is closed (a no-op once it is). */
const LEDGER_CLOSE_INTERVAL_MS = 6 * 3_600_000;

/** Where a worker process finds its settings (set by the supervisor when it forks it). */
const WORKER_ENV = "JPKI_START_WORKER";

function portOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError("--port must be a TCP port (0 to 65535; 0 picks a free one)");
  return port;
}

function workersOf(text: string | undefined): number {
  if (text === undefined) return 1;
  const workers = Number(text);
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS)
    throw new UsageError(`--workers must be a whole number from 1 to ${MAX_WORKERS}`);
  return workers;
}

/** What one serving process needs. */
interface ServeSettings {
  dataDir: string;
  db: string | undefined;
  port: number;
  host: string;
  /** Whether this process also pre-signs OCSP answers and publishes CRLs (one process of a group does). */
  background: boolean;
}

/** What a serving process tells once it listens. */
interface Listening {
  url: string;
  dataDir: string;
  baseUrl: string;
}

/**
 * Resolves at the first SIGINT or SIGTERM (a second one then ends the process the default way), or,
 * in a worker, when the supervisor asks it to stop or goes away.
 */
function untilStopSignal(): Promise<NodeJS.Signals | "stop"> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals | "stop") => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      process.off("message", onMessage);
      process.off("disconnect", onDisconnect);
      resolve(signal);
    };
    const onMessage = (message: unknown) => {
      if (message === "stop") stop("stop");
    };
    const onDisconnect = () => stop("stop");
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (cluster.isWorker) {
      process.on("message", onMessage);
      process.on("disconnect", onDisconnect);
    }
  });
}

/** Serves until stopped: the one process, or one worker. */
async function serve(
  settings: ServeSettings,
  announce: (listening: Listening) => void,
  stopped: Promise<NodeJS.Signals | "stop">,
  json: boolean,
): Promise<number> {
  const authority = await openAuthority(settings.dataDir, { actor: "status", db: settings.db });
  const service = createStatusService(authority, settings.background ? {} : { refresher: false });
  let crlScheduler: ReturnType<typeof startCrlScheduler> | undefined;
  let expiry: PeriodicJob | undefined;
  let sweep: PeriodicJob | undefined;
  let carrierEvents: PeriodicJob | undefined;
  let ledger: PeriodicJob | undefined;
  try {
    const url = await service.listen(settings.port, settings.host);
    if (settings.background) {
      crlScheduler = startCrlScheduler(authority, { intervalMs: CRL_INTERVAL_MS });
      expiry = startPeriodic(
        () => expireCertificates(authority.registry.db, { actor: "system:expiry" }),
        EXPIRY_INTERVAL_MS,
        (error) => process.stderr.write(`the expiry job failed: ${String(error)}\n`),
      );
      sweep = startPeriodic(
        async () => {
          await revokeUndelivered(authority, { actor: "system:delivery-window" });
          await purgeExpiredNonces(authority.registry.db);
        },
        SWEEP_INTERVAL_MS,
        (error) => process.stderr.write(`the delivery sweep failed: ${String(error)}\n`),
      );
      carrierEvents = startPeriodic(
        () => deliverCarrierOutboxes(authority.dataDir, inProcessEventSender(authority)),
        CARRIER_EVENTS_INTERVAL_MS,
        (error) => process.stderr.write(`the carrier event delivery failed: ${String(error)}\n`),
      );
      ledger = startPeriodic(
        () => closeMonth(authority.registry.db, ratesOf(authority.dataDir), previousMonth(new Date())),
        LEDGER_CLOSE_INTERVAL_MS,
        (error) => process.stderr.write(`closing last month's ledger failed: ${String(error)}\n`),
      );
    }
    announce({ url, dataDir: authority.dataDir, baseUrl: authority.config.baseUrl });
    const signal = await stopped;
    if (!json && signal !== "stop")
      process.stdout.write(`${signal}: finishing requests in progress, then stopping\n`);
  } finally {
    await ledger?.stop();
    await carrierEvents?.stop();
    await sweep?.stop();
    await expiry?.stop();
    await crlScheduler?.stop();
    await service.close();
    await authority.close();
  }
  return 0;
}

function printUrls(listening: Listening, dataDirArg: string, workers: number, json: boolean): void {
  const { url } = listening;
  const urls = {
    url,
    ocsp: `${url}/ocsp`,
    crl: `${url}/crl/{auth|sign}/{shard}.crl`,
    docs: `${url}/docs`,
    openapi: `${url}/openapi.json`,
    health: `${url}/healthz`,
    metrics: `${url}/metrics`,
    certificatesName: listening.baseUrl,
    workers,
  };
  if (json) process.stdout.write(`${JSON.stringify(urls)}\n`);
  else
    printResult(false, urls, (u) =>
      [
        `jpki-mobile is serving ${listening.dataDir} at ${u.url}${workers > 1 ? ` (${workers} worker processes)` : ""}`,
        `  OCSP        ${u.ocsp}  (POST, or GET ${u.ocsp}/{request})`,
        `  CRLs        ${u.crl}`,
        `  API docs    ${u.docs}  (${u.openapi})`,
        `  health      ${u.health}`,
        `  metrics     ${u.metrics}${workers > 1 ? "  (of the worker that answers)" : ""}`,
        ...(u.certificatesName.replace(/\/$/, "") === u.url
          ? []
          : [`Note: certificates name ${u.certificatesName} for OCSP and CRLs; make it reach this server.`]),
        `Verifiers: jpki-mobile verifier add --data ${dataDirArg} --name NAME --kind auth|sign|both`,
        "Stop with Ctrl-C.",
      ].join("\n"),
    );
}

/**
 * The module loaders of this process (`--import tsx` when it runs from the TypeScript sources), for a
 * child to load our modules the same way; none of its other options (an `--eval` would run again).
 */
export function loaderExecArgv(): string[] {
  const kept: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (/^--(import|require|loader|experimental-loader)=/.test(arg)) kept.push(arg);
    else if (/^(--import|--require|-r|--loader|--experimental-loader)$/.test(arg) && i + 1 < args.length)
      kept.push(arg, args[++i]!);
  }
  return kept;
}

/**
 * The supervisor of `--workers N`: forks the workers (this module is their entry), prints the URLs once
 * every one listens, and on SIGINT or SIGTERM asks each to stop and waits for them. A worker that fails
 * stops the group with status 1, for the service manager to restart it whole.
 */
async function supervise(
  settings: Omit<ServeSettings, "background">,
  workers: number,
  json: boolean,
  dataDirArg: string,
): Promise<number> {
  cluster.setupPrimary({ exec: fileURLToPath(import.meta.url), execArgv: loaderExecArgv(), args: [] });
  const group: Worker[] = [];
  let stopping = false;
  let failed: string | undefined;
  const exits: Promise<number | null>[] = [];
  const ended = new Promise<void>((resolve) => {
    for (let i = 0; i < workers; i++) {
      const worker = cluster.fork({
        [WORKER_ENV]: JSON.stringify({ ...settings, background: i === 0 } satisfies ServeSettings),
      });
      group.push(worker);
      exits.push(
        new Promise((exited) =>
          worker.once("exit", (code, signal) => {
            // Status 0: it was stopped by a signal of its own (Ctrl-C reaches the whole process group).
            if (!stopping) {
              if (code !== 0) failed ??= `worker ${worker.process.pid} ended (${signal ?? `status ${code}`})`;
              resolve();
            }
            exited(code);
          }),
        ),
      );
    }
  });
  const stopAll = async () => {
    stopping = true;
    for (const worker of group) if (worker.isConnected()) worker.send("stop");
    return Promise.all(exits);
  };

  const listening = await Promise.race([
    Promise.all(
      group.map(
        (worker) =>
          new Promise<Listening>((resolve) =>
            worker.on("message", (message: { listening?: Listening }) => {
              if (message?.listening) resolve(message.listening);
            }),
          ),
      ),
    ),
    ended.then(() => undefined),
  ]);
  if (listening === undefined) {
    await stopAll();
    process.stderr.write(`jpki-mobile start: ${failed ?? "a worker stopped before it listened"}\n`);
    return 1;
  }
  printUrls(listening[0]!, dataDirArg, workers, json);
  const signal = await Promise.race([untilStopSignal(), ended.then(() => undefined)]);
  if (signal !== undefined && !json)
    process.stdout.write(`${signal}: finishing requests in progress, then stopping\n`);
  const codes = await stopAll();
  if (failed !== undefined) {
    process.stderr.write(`jpki-mobile start: ${failed}; stopped the others\n`);
    return 1;
  }
  return codes.every((code) => code === 0) ? 0 : 1;
}

export const startCommand: Command = {
  name: "start",
  summary: "serve OCSP, CRLs, health, metrics and API docs over HTTP until stopped",
  help: `
Usage: jpki-mobile start [--data DIR] [--port N] [--host H] [--db URL] [--workers N] [--json]

Runs the services of the data directory until Ctrl-C (SIGINT) or SIGTERM:
  POST /ocsp, GET /ocsp/{request}     OCSP responder (RFC 6960, RFC 5019), pre-signed answers
  GET /crl/{auth|sign}/{shard}.crl    CRLs and delta CRLs ({shard}-delta.crl), published on schedule
  /api/ra/..., /api/mno/relay/...     J-LIS's RA (online applications) and the carriers' relays
  GET /healthz, /metrics              health (JSON) and Prometheus metrics
  GET /openapi.json, /docs            the API, as OpenAPI 3.1 and as a page
In the background: certificates past notAfter marked expired (every minute), certificates not
delivered to their SIM within 7 days revoked (every hour).
OCSP and CRLs answer registered verifiers only: see \`jpki-mobile verifier add\`. On stop, requests
in progress finish and the verifiers' lookup counts are written.

${DATA_HELP}
  --port N        TCP port (default ${DEFAULT_PORT}; 0 picks a free one)
  --host H        address to listen on (default ${DEFAULT_HOST}; 0.0.0.0 for every interface)
  --db URL        registry database instead of the one in DIR/config.json (SQLite file or postgres://...)
  --workers N     serve from N processes sharing the port and the registry (default 1); the first also
                  pre-signs OCSP answers and publishes CRLs; /metrics is the answering worker's own
  --json          print the URLs as one line of JSON
`,
  options: {
    ...dataOption,
    ...jsonOption,
    port: { type: "string" },
    host: { type: "string" },
    db: { type: "string" },
    workers: { type: "string" },
  },
  async run(values) {
    const settings = {
      dataDir: dataDir(values),
      db: stringOption(values, "db"),
      port: portOf(stringOption(values, "port")),
      host: stringOption(values, "host") ?? DEFAULT_HOST,
    };
    const workers = workersOf(stringOption(values, "workers"));
    const json = values.json === true;
    if (workers > 1) return supervise(settings, workers, json, dataDir(values));
    return serve(
      { ...settings, background: true },
      (listening) => printUrls(listening, dataDir(values), 1, json),
      untilStopSignal(),
      json,
    );
  },
};

// A worker of `start --workers N`: this module is its entry (see supervise).
if (cluster.isWorker && process.env[WORKER_ENV] !== undefined) {
  const settings = JSON.parse(process.env[WORKER_ENV]) as ServeSettings;
  try {
    process.exitCode = await serve(
      settings,
      (listening) => process.send!({ listening }),
      untilStopSignal(),
      true,
    );
  } catch (error) {
    process.stderr.write(`jpki-mobile start (worker ${process.pid}): ${(error as Error)?.stack ?? error}\n`);
    process.exitCode = 1;
  }
  // The IPC channel to the supervisor would keep the process alive.
  if (process.connected) process.disconnect();
}
