/**
 * A carrier's JSON API (DESIGN §6, `/api/mno/...`): its OTA gateway for J-LIS and for the phones,
 * and its SIM status API. The all-in-one server answers it for every carrier (RaApi delegates here);
 * `jpki-mobile carrier serve` answers it for one carrier in a process of its own.
 *
 *   POST /api/mno/scripts                        J-LIS submits a script for a SIM: { iccid, id?, commands }
 *   GET  /api/mno/scripts/{id}                   its state and, once run, the SIM's responses
 *   GET  /api/mno/sims/{iccid}                   the SIM status API: issuer, brand, state, active
 *   GET  /api/mno/relay/{iccid}?wait=SECONDS     the phone pulls the scripts waiting for its SIM
 *   POST /api/mno/relay/{iccid}/{id}             the phone posts the SIM's responses to one
 *
 * The scripts are secured end to end by J-LIS's channel with the SIM, and the phone's responses by
 * the SIM's MACs, so these endpoints take no credentials of their own; a deployment puts the J-LIS
 * side behind mutual TLS.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { JpkiError } from "../errors.js";
import { issuerOfIccid, type SimStatusAnswer, simStatus } from "../mno/carrier-store.js";
import { OtaRelay, type ScriptStatus } from "../mno/ota-relay.js";
import { type ApiReply, base64List, errorReply, readJson, refusal, reply } from "./json-api.js";

/** The longest a phone's pull may wait for scripts (long polling). */
const MAX_WAIT_SECONDS = 30;

const scriptStatusOf = (status: ScriptStatus) => ({
  ...status,
  ...(status.responses ? { responses: status.responses.map((r) => r.toString("base64")) } : {}),
});

export interface CarrierApiOptions {
  /** The gateway that reaches SIM `iccid` (its issuer's); throws not-found for a SIM it does not serve. */
  gatewayOf(iccid: string): Promise<OtaRelay>;
  /** Every gateway this API answers for (where a script id is looked up). */
  gateways(): Iterable<OtaRelay>;
  /** The SIM status API's answer, or undefined for a SIM it does not know. */
  simStatus(iccid: string): SimStatusAnswer | undefined;
  onError?(error: unknown): void;
}

export class CarrierApi {
  constructor(private readonly options: CarrierApiOptions) {}

  /** Answers a request under /api/mno/; undefined when the path is not one of them. */
  async handle(req: IncomingMessage, path: string, query: URLSearchParams): Promise<ApiReply | undefined> {
    const [, api, role, resource, id, sub, extra] = path.split("/");
    if (api !== "api" || role !== "mno") return undefined;
    const method = req.method ?? "GET";
    try {
      if (resource === "relay" && id) {
        const relay = await this.options.gatewayOf(id);
        if (sub === undefined && method === "GET") {
          const wait = Math.min(Math.max(Number(query.get("wait") ?? 0) || 0, 0), MAX_WAIT_SECONDS);
          return reply(200, { scripts: await this.pull(relay, id, wait * 1000) });
        }
        if (sub !== undefined && extra === undefined && method === "POST") {
          const body = await readJson(req);
          const accepted = relay.respond(id, sub, base64List(body, "responses", 70_000));
          return accepted
            ? reply(204)
            : refusal(409, "conflict", `script ${sub} is not waiting for responses`);
        }
        return refusal(
          405,
          "method-not-allowed",
          "GET /api/mno/relay/{iccid}, POST /api/mno/relay/{iccid}/{script id}",
        );
      }
      if (resource === "sims" && id && sub === undefined) {
        if (method !== "GET") return refusal(405, "method-not-allowed", "GET /api/mno/sims/{iccid}");
        const status = this.options.simStatus(id);
        return status
          ? reply(200, status)
          : refusal(404, "not-found", `SIM ${id} is in no carrier's inventory`);
      }
      if (resource === "scripts") {
        if (id === undefined && method === "POST") {
          const body = (await readJson(req)) as { iccid?: unknown; id?: unknown } | null;
          const iccid = typeof body?.iccid === "string" ? body.iccid : "";
          const scriptId = body?.id ?? randomUUID();
          if (typeof scriptId !== "string" || !/^[\w-]{1,64}$/.test(scriptId))
            throw new JpkiError("bad-input", "id: 1 to 64 letters, digits, - or _");
          const relay = await this.options.gatewayOf(iccid);
          // Delivery goes on without this request: its outcome is read with GET /api/mno/scripts/{id}.
          relay.submitScript(iccid, base64List(body, "commands", 70_000), scriptId).catch(() => undefined);
          return reply(202, scriptStatusOf(relay.status(scriptId)!));
        }
        if (id !== undefined && sub === undefined && method === "GET") {
          for (const relay of this.options.gateways()) {
            const status = relay.status(id);
            if (status) return reply(200, scriptStatusOf(status));
          }
          return refusal(404, "not-found", `no script ${id}`);
        }
        return refusal(405, "method-not-allowed", "POST /api/mno/scripts, GET /api/mno/scripts/{id}");
      }
      return refusal(404, "not-found", "no such resource; the API is described at /openapi.json and /docs");
    } catch (error) {
      if (!(error instanceof JpkiError) || error.status >= 500) this.options.onError?.(error);
      return errorReply(error);
    }
  }

  /** The scripts waiting for the SIM, waiting up to `waitMs` for the first one (long polling). */
  private async pull(relay: OtaRelay, iccid: string, waitMs: number) {
    let waiting = relay.pull(iccid);
    if (waiting.length === 0 && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        const stop = relay.onCommand(iccid, done);
        function done() {
          clearTimeout(timer);
          stop();
          resolve();
        }
      });
      waiting = relay.pull(iccid);
    }
    return waiting.map(({ id, commands }) => ({ id, commands: commands.map((c) => c.toString("base64")) }));
  }
}

/**
 * One carrier's server (`jpki-mobile carrier serve`): the carrier API for the SIMs it issued, from its
 * own files in the data directory, and /healthz.
 */
export function createCarrierServer(dataDir: string, carrier: string) {
  const gateway = new OtaRelay(carrier);
  const ours = (iccid: string) => issuerOfIccid(iccid)?.name === carrier;
  const api = new CarrierApi({
    async gatewayOf(iccid) {
      if (!ours(iccid)) throw new JpkiError("not-found", `SIM ${iccid} is not one of ${carrier}'s`);
      return gateway;
    },
    gateways: () => [gateway],
    simStatus: (iccid) => (ours(iccid) ? simStatus(dataDir, iccid) : undefined),
    onError: (error) => process.stderr.write(`carrier API: ${String(error)}\n`),
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://carrier");
    const send = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { "content-type": "application/json" });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (url.pathname === "/healthz") return send(200, { carrier, status: "ok" });
    api.handle(req, url.pathname, url.searchParams).then(
      (answer) =>
        answer
          ? send(answer.status, answer.body)
          : send(404, { error: "not-found", reason: "no such resource: the carrier API is under /api/mno" }),
      () => send(500, { error: "internal", reason: "the server failed; the error is logged" }),
    );
  });
  return {
    async listen(port: number, host = "127.0.0.1"): Promise<string> {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      return `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
    },
    async close(): Promise<void> {
      gateway.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
