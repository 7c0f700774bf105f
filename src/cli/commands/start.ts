/**
 * `start`: the services of a data directory over HTTP, in this process, until SIGINT or SIGTERM: the
 * OCSP responder with its pre-signing refresher, the CRLs with their publication schedule, health,
 * metrics and the API description (DESIGN §6).
 */
import { openAuthority } from "../../server/authority.js";
import { createStatusService } from "../../server/http.js";
import { startCrlScheduler } from "../../status/crl.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataDir, dataOption, jsonOption } from "./options.js";

const DEFAULT_PORT = 8080;
const DEFAULT_HOST = "127.0.0.1";

/** How often the CRL publisher looks at the registry at the latest (it also runs before any CRL is due). */
const CRL_INTERVAL_MS = 5 * 60_000;

function portOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError("--port must be a TCP port (0 to 65535; 0 picks a free one)");
  return port;
}

/** Resolves at the first SIGINT or SIGTERM; a second one then ends the process the default way. */
function untilStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

export const startCommand: Command = {
  name: "start",
  summary: "serve OCSP, CRLs, health, metrics and API docs over HTTP until stopped",
  help: `
Usage: jpki-mobile start [--data DIR] [--port N] [--host H] [--db URL] [--json]

Runs the status services of the data directory in this process until Ctrl-C (SIGINT) or SIGTERM:
  POST /ocsp, GET /ocsp/{request}     OCSP responder (RFC 6960, RFC 5019), pre-signed answers
  GET /crl/{auth|sign}/{shard}.crl    CRLs and delta CRLs ({shard}-delta.crl), published on schedule
  GET /healthz, /metrics              health (JSON) and Prometheus metrics
  GET /openapi.json, /docs            the API, as OpenAPI 3.1 and as a page
OCSP and CRLs answer registered verifiers only: see \`jpki-mobile verifier add\`. On stop, requests
in progress finish and the verifiers' lookup counts are written.

${DATA_HELP}
  --port N        TCP port (default ${DEFAULT_PORT}; 0 picks a free one)
  --host H        address to listen on (default ${DEFAULT_HOST}; 0.0.0.0 for every interface)
  --db URL        registry database instead of the one in DIR/config.json (SQLite file or postgres://...)
  --json          print the URLs as one line of JSON
`,
  options: {
    ...dataOption,
    ...jsonOption,
    port: { type: "string" },
    host: { type: "string" },
    db: { type: "string" },
  },
  async run(values) {
    const port = portOf(stringOption(values, "port"));
    const host = stringOption(values, "host") ?? DEFAULT_HOST;
    const authority = await openAuthority(dataDir(values), {
      actor: "status",
      db: stringOption(values, "db"),
    });
    const service = createStatusService(authority);
    let crlScheduler: ReturnType<typeof startCrlScheduler> | undefined;
    try {
      const url = await service.listen(port, host);
      crlScheduler = startCrlScheduler(authority, { intervalMs: CRL_INTERVAL_MS });
      const urls = {
        url,
        ocsp: `${url}/ocsp`,
        crl: `${url}/crl/{auth|sign}/{shard}.crl`,
        docs: `${url}/docs`,
        openapi: `${url}/openapi.json`,
        health: `${url}/healthz`,
        metrics: `${url}/metrics`,
        certificatesName: authority.config.baseUrl,
      };
      if (values.json === true) process.stdout.write(`${JSON.stringify(urls)}\n`);
      else
        printResult(false, urls, (u) =>
          [
            `jpki-mobile is serving ${authority.dataDir} at ${u.url}`,
            `  OCSP        ${u.ocsp}  (POST, or GET ${u.ocsp}/{request})`,
            `  CRLs        ${u.crl}`,
            `  API docs    ${u.docs}  (${u.openapi})`,
            `  health      ${u.health}`,
            `  metrics     ${u.metrics}`,
            ...(u.certificatesName.replace(/\/$/, "") === u.url
              ? []
              : [
                  `Note: certificates name ${u.certificatesName} for OCSP and CRLs; make it reach this server.`,
                ]),
            `Verifiers: jpki-mobile verifier add --data ${dataDir(values)} --name NAME --kind auth|sign|both`,
            "Stop with Ctrl-C.",
          ].join("\n"),
        );
      const signal = await untilStopSignal();
      if (values.json !== true)
        process.stdout.write(`${signal}: finishing requests in progress, then stopping\n`);
    } finally {
      await crlScheduler?.stop();
      await service.close();
      await authority.close();
    }
    return 0;
  },
};
