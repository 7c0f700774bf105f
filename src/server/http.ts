/**
 * The status role over HTTP (DESIGN §6): one node:http server for the OCSP responder, the CRLs, and
 * the operational endpoints.
 *
 *   POST /ocsp                       OCSPRequest body (application/ocsp-request), RFC 6960 Appendix A.1
 *   GET  /ocsp/{base64 request}      the same, URL-encoded in the path; cacheable answers (RFC 5019 §5, §6)
 *   GET  /crl/{auth|sign}/{n}.crl    complete CRL of shard n; {n}-delta.crl its delta CRL
 *   GET  /healthz  /metrics  /openapi.json  /docs
 *   /api/ra/..., /api/mno/relay/...  J-LIS's RA and the carriers' relays (ra-api.ts), as JSON
 *
 * OCSP and CRLs are for registered verifiers, and each lookup is counted for the verifier. The token
 * goes in `Authorization: Bearer <token>` (RFC 6750 §2.1), or, for clients that cannot add a header
 * (GnuTLS `ocsptool --ask`, NSS `ocspclnt`, a responder URL configured in a library), in the URL's
 * query as `?access_token=<token>` (RFC 6750 §2.3; its answers are then `Cache-Control: private`).
 *
 * OCSP routes answer in OCSP: a missing or unknown token, like any refusal, is an `unauthorized`
 * OCSPResponse with HTTP 200 (RFC 6960 §2.3 defines it for "the client is not authorized to make this
 * query"), because OCSP clients read the OCSP status and report an HTTP error only as a transport
 * failure. Only what is not an OCSP request at all gets an HTTP error: a wrong method, media type, or
 * a body over 64 KiB (refused from its Content-Length, unread). Other routes answer errors as JSON
 * `{ "error", "reason" }` with a 4xx status. /healthz, /metrics and the API description need no token
 * (they say nothing about certificates).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Kysely, sql } from "kysely";
import {
  MalformedOcspRequestError,
  OCSP_REQUEST_LIMITS,
  type OcspRequest,
  OcspResponseStatus,
  parseOcspRequest,
} from "../pki/ocsp.js";
import type { RegistrySchema } from "../registry/schema.js";
import { authenticateVerifier, LookupCounter, type Verifier, verifierMayAsk } from "../registry/verifiers.js";
import { CRL_MEDIA_TYPE, parseCrlPath } from "../status/crl.js";
import {
  type OcspAnswer,
  OcspResponder,
  type OcspResponderOptions,
  ocspErrorAnswer,
} from "../status/ocsp.js";
import { OcspRefresher, type OcspRefresherOptions } from "../status/ocsp-refresher.js";
import { type Authority, KEY_LABELS } from "./authority.js";
import { bearerToken, readBody } from "./http-body.js";
import { StatusMetrics } from "./http-metrics.js";
import { docsHtml, openApiDocument } from "./http-openapi.js";
import { RaApi } from "./ra-api.js";

/** The largest OCSP request accepted: the codec's own bound (64 KiB). */
export const MAX_OCSP_REQUEST_BYTES = OCSP_REQUEST_LIMITS.maxBytes;
/** The longest GET path accepted: 64 KiB in base64, every character percent-encoded. */
const MAX_GET_PATH = 3 * 4 * Math.ceil(MAX_OCSP_REQUEST_BYTES / 3);
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;
const MAX_REMEMBERED_GET_REQUESTS = 50_000;

/**
 * The DER of a `GET /ocsp/{request}` path (RFC 6960 Appendix A.1: the URL encoding of the base64 of
 * the DER OCSPRequest), or undefined when the text is not one. Percent-encoded or raw characters are
 * read, '/' inside the base64 may be left unencoded (clients do), and base64url (- _) and missing
 * padding are tolerated. Whether the bytes are a request is for the OCSP codec to say.
 */
export function decodeOcspGetPath(encoded: string): Buffer | undefined {
  if (encoded.length === 0 || encoded.length > MAX_GET_PATH) return undefined;
  let text = encoded;
  if (text.includes("%")) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return undefined;
    }
  }
  if (!BASE64_TEXT.test(text)) return undefined;
  const unpadded = text.replace(/=+$/, "");
  // A lone character cannot be a base64 quantum, and padding, when present, must complete one.
  if (unpadded.length % 4 === 1 || (unpadded.length !== text.length && text.length % 4 !== 0))
    return undefined;
  const der = Buffer.from(unpadded, "base64");
  return der.length > 0 ? der : undefined;
}

/** The request of a `GET /ocsp/{request}` path, or undefined when it is not a well-formed one. */
function readGetRequest(encoded: string): OcspRequest | undefined {
  const der = decodeOcspGetPath(encoded);
  if (der === undefined) return undefined;
  try {
    return parseOcspRequest(der);
  } catch (error) {
    if (error instanceof MalformedOcspRequestError) return undefined;
    throw error;
  }
}

/** The `access_token` of a URL query (RFC 6750 §2.3), for clients that cannot send a header. */
function queryToken(query: string | undefined): string | undefined {
  if (query === undefined || query.length > 2048) return undefined;
  return new URLSearchParams(query).get("access_token") ?? undefined;
}

/** Whether an If-None-Match header names `etag` (weak comparison, RFC 9110 §13.1.2). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/** HTTP-dates by second: every answer carries two, and most repeat (same producedAt, same second). */
const httpDates = new Map<number, string>();

function httpDate(date: Date): string {
  const second = Math.floor(date.getTime() / 1000);
  let text = httpDates.get(second);
  if (text === undefined) {
    if (httpDates.size >= 10_000) httpDates.clear();
    text = date.toUTCString();
    httpDates.set(second, text);
  }
  return text;
}

/**
 * HTTP caching headers for an answer fresh until `until` (RFC 5019 §6.2, RFC 9111 §5.2.2). Answers
 * go to registered verifiers only: `Vary: Authorization` lets a shared cache reuse one for the same
 * token alone; a token in the query makes the answer `private` (RFC 6750 §2.3).
 */
function cacheHeaders(
  etag: string,
  lastModified: Date,
  until: Date,
  now: number,
  tokenInQuery: boolean,
): Record<string, string> {
  const maxAge = Math.max(0, Math.floor((until.getTime() - now) / 1000));
  return {
    "cache-control": `${tokenInQuery ? "private" : "public"}, no-transform, must-revalidate, max-age=${maxAge}`,
    etag,
    "last-modified": httpDate(lastModified),
    expires: httpDate(new Date(now + maxAge * 1000)),
    vary: "Authorization",
  };
}

// ---------------------------------------------------------------------------------------------
// CRLs, as the publisher stores them

interface ServedCrl {
  readonly crlNumber: number;
  readonly der: Buffer;
  readonly etag: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/** The latest CRL of each shard, read from the `crls` table, kept in memory until a newer one appears. */
class CrlStore {
  private readonly entries = new Map<string, ServedCrl>();
  private bytes = 0;

  constructor(
    private readonly db: Kysely<RegistrySchema>,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  async get(issuer: "auth" | "sign", shard: number, kind: "full" | "delta"): Promise<ServedCrl | undefined> {
    const where = { issuer, shard, kind };
    const head = await this.db
      .selectFrom("crls")
      .select("crl_number")
      .where("issuer", "=", where.issuer)
      .where("shard", "=", where.shard)
      .where("kind", "=", where.kind)
      .executeTakeFirst();
    if (!head) return undefined;
    const key = `${issuer}/${shard}/${kind}`;
    const cached = this.entries.get(key);
    if (cached && cached.crlNumber === Number(head.crl_number)) return cached;
    const row = await this.db
      .selectFrom("crls")
      .select(["crl_number", "der", "this_update", "next_update"])
      .where("issuer", "=", where.issuer)
      .where("shard", "=", where.shard)
      .where("kind", "=", where.kind)
      .executeTakeFirst();
    if (!row) return undefined;
    const der = Buffer.from(row.der);
    const crl: ServedCrl = {
      crlNumber: Number(row.crl_number),
      der,
      etag: `"${createHash("sha256").update(der).digest().subarray(0, 18).toString("base64url")}"`,
      thisUpdate: new Date(row.this_update),
      nextUpdate: new Date(row.next_update),
    };
    if (cached) {
      this.entries.delete(key);
      this.bytes -= cached.der.length;
    }
    for (const [oldKey, old] of this.entries) {
      if (this.bytes + der.length <= this.maxBytes) break;
      this.entries.delete(oldKey);
      this.bytes -= old.der.length;
    }
    this.entries.set(key, crl);
    this.bytes += der.length;
    return crl;
  }
}

// ---------------------------------------------------------------------------------------------
// The server

export interface StatusServiceOptions {
  ocsp?: OcspResponderOptions;
  /** Pre-signing of OCSP answers; false: none (answers are then signed on first request). */
  refresher?: OcspRefresherOptions | false;
  /** How often lookup counts are written (default 1 s). */
  lookupFlushIntervalMs?: number;
  /** Where failures are reported (default: stderr). */
  log?: (line: string) => void;
}

export interface StatusService {
  readonly server: Server;
  readonly responder: OcspResponder;
  readonly refresher: OcspRefresher | undefined;
  readonly lookups: LookupCounter;
  readonly metrics: StatusMetrics;
  /** Listens (port 0: any free port), starts the refresher; returns the base URL. */
  listen(port: number, host?: string): Promise<string>;
  /**
   * Graceful stop: no new connections, the refresher stopped, requests in progress finished (those
   * still running after `graceMs` are cut), then the lookup counts written.
   */
  close(graceMs?: number): Promise<void>;
}

type Route =
  | "ocsp_post"
  | "ocsp_get"
  | "crl"
  | "api"
  | "healthz"
  | "metrics"
  | "openapi"
  | "docs"
  | "unknown";

/** One request in flight: its route and start, for the metrics. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly started: number;
  route: Route;
  /** The URL's query, without the `?`. */
  query?: string;
  /** Whether the verifier's token came in the query rather than the Authorization header. */
  tokenInQuery?: boolean;
}

const OCSP_RESPONSE_TYPE = "application/ocsp-response";

export function createStatusService(authority: Authority, options: StatusServiceOptions = {}): StatusService {
  const db = authority.registry.db;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const report = (what: string) => (error: unknown) =>
    log(`${what}: ${(error as Error)?.stack ?? String(error)}`);
  const responder = OcspResponder.forAuthority(authority, {
    onError: report("OCSP answer failed"),
    ...options.ocsp,
  });
  const refresher =
    options.refresher === false
      ? undefined
      : new OcspRefresher(responder, db, {
          onError: report("OCSP pre-signing failed"),
          ...options.refresher,
        });
  const lookups = new LookupCounter(db, {
    flushIntervalMs: options.lookupFlushIntervalMs ?? 1000,
    onError: report("writing lookup counts failed (kept for the next flush)"),
  });
  const crls = new CrlStore(db);
  const api = new RaApi(authority, report("API request failed"));
  const metrics = new StatusMetrics(() => ({
    jpki_ocsp_answers_in_memory: {
      help: "Pre-signed OCSP answers held in memory.",
      value: responder.remembered,
    },
    jpki_verifier_lookups_unwritten: {
      help: "Lookups counted and not yet written.",
      value: lookups.unwritten,
    },
    jpki_ocsp_presigned_by_refresher: {
      help: "Answers pre-signed by the refresher since start.",
      value: refresher?.state.presigned ?? 0,
    },
  }));
  /**
   * Requests already read from GET paths, by path: caches and relying parties ask the same URLs over
   * and over, and a path always reads the same. Only well-formed requests are kept; oldest out first.
   */
  const getRequests = new Map<string, OcspRequest>();
  const openApiJson = `${JSON.stringify(openApiDocument(), null, 2)}\n`;
  const docsPage = docsHtml(openApiDocument());

  function finish(
    x: Exchange,
    status: number,
    headers: Record<string, string | number>,
    body?: Buffer | string,
  ): void {
    x.res.writeHead(status, headers);
    x.res.end(body);
    metrics.requests.inc({ route: x.route, code: String(status) });
    metrics.latency.observe({ route: x.route }, (performance.now() - x.started) / 1000);
  }

  function jsonError(
    x: Exchange,
    status: number,
    error: string,
    reason: string,
    headers: Record<string, string> = {},
  ): void {
    const body = `${JSON.stringify({ error, reason })}\n`;
    finish(
      x,
      status,
      {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
        ...headers,
      },
      body,
    );
  }

  function methodNotAllowed(x: Exchange, allowed: string): void {
    jsonError(x, 405, "method-not-allowed", `${x.req.method} is not served here; use ${allowed}`, {
      allow: allowed,
    });
  }

  async function verifierOf(x: Exchange): Promise<Verifier | undefined> {
    let token = bearerToken(x.req.headers.authorization);
    if (token === undefined) {
      token = queryToken(x.query);
      x.tokenInQuery = token !== undefined;
    }
    return token === undefined ? undefined : authenticateVerifier(db, token);
  }

  /** Sends an OCSP answer; counts it. `cacheable`: a GET, whose answers without nonce may be cached. */
  function ocspReply(
    x: Exchange,
    answer: OcspAnswer,
    verifier: Verifier | undefined,
    cacheable: boolean,
  ): void {
    metrics.ocspResponses.inc({ status: answer.responseStatus });
    if (answer.responseStatus === "successful") {
      for (const status of answer.certStatuses) metrics.ocspCertStatuses.inc({ status });
      if (answer.source) metrics.ocspSources.inc({ source: answer.source });
      if (answer.cache && answer.certStatuses.length === 1)
        metrics.ocspCache.inc({ result: answer.source === "signed" ? "miss" : "hit" });
      if (verifier) {
        lookups.count(verifier.id, "ocsp", answer.certStatuses.length);
        metrics.lookups.inc({ channel: "ocsp" }, answer.certStatuses.length);
      }
    }
    const headers: Record<string, string | number> = { "content-type": OCSP_RESPONSE_TYPE };
    if (cacheable && answer.cache) {
      Object.assign(
        headers,
        cacheHeaders(
          answer.cache.etag,
          answer.cache.producedAt,
          answer.cache.nextUpdate,
          Date.now(),
          x.tokenInQuery === true,
        ),
      );
      if (matchesEtag(x.req.headers["if-none-match"], answer.cache.etag)) {
        finish(x, 304, headers);
        return;
      }
    } else headers["cache-control"] = "no-store";
    headers["content-length"] = answer.der.length;
    finish(x, 200, headers, answer.der);
  }

  async function ocspPost(x: Exchange): Promise<void> {
    if (x.req.method !== "POST") return methodNotAllowed(x, "POST");
    const type = (x.req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/ocsp-request")
      return jsonError(
        x,
        415,
        "unsupported-media-type",
        "POST /ocsp takes application/ocsp-request (RFC 6960 Appendix A.1)",
      );
    let body: Buffer | undefined;
    try {
      body = await readBody(x.req, MAX_OCSP_REQUEST_BYTES);
    } catch {
      // The client went away in the middle of its body: nobody to answer.
      x.res.destroy();
      return;
    }
    if (body === undefined)
      return jsonError(x, 413, "too-large", `an OCSP request has at most ${MAX_OCSP_REQUEST_BYTES} bytes`, {
        connection: "close",
      });
    const verifier = await verifierOf(x);
    ocspReply(x, await responder.answerDer(body, verifier), verifier, false);
  }

  async function ocspGet(x: Exchange, encoded: string): Promise<void> {
    if (x.req.method !== "GET" && x.req.method !== "HEAD") return methodNotAllowed(x, "GET, HEAD");
    let request = getRequests.get(encoded);
    if (request === undefined) {
      request = readGetRequest(encoded);
      if (request === undefined)
        return ocspReply(x, ocspErrorAnswer(OcspResponseStatus.malformedRequest), undefined, false);
      if (getRequests.size >= MAX_REMEMBERED_GET_REQUESTS)
        getRequests.delete(getRequests.keys().next().value!);
      getRequests.set(encoded, request);
    }
    const verifier = await verifierOf(x);
    ocspReply(x, await responder.answer(request, verifier), verifier, true);
  }

  async function crl(x: Exchange, path: string): Promise<void> {
    const wanted = parseCrlPath(path);
    if (!wanted)
      return jsonError(
        x,
        404,
        "not-found",
        "CRLs are at /crl/{auth|sign}/{shard}.crl and /crl/{auth|sign}/{shard}-delta.crl",
      );
    if (x.req.method !== "GET" && x.req.method !== "HEAD") return methodNotAllowed(x, "GET, HEAD");
    const { purpose: issuer, shard, kind } = wanted;
    const verifier = await verifierOf(x);
    if (!verifier)
      return jsonError(
        x,
        401,
        "unauthorized",
        "CRLs are for registered verifiers: send Authorization: Bearer <token>, or ?access_token=<token>",
        {
          "www-authenticate": 'Bearer realm="jpki-mobile"',
        },
      );
    if (!verifierMayAsk(verifier, issuer))
      return jsonError(x, 403, "forbidden", `this verifier is not registered for the ${issuer} CA`);
    const served = await crls.get(issuer, shard, kind);
    if (!served)
      return jsonError(
        x,
        404,
        "not-found",
        `no ${kind === "delta" ? "delta " : ""}CRL published for ${issuer} shard ${shard}`,
      );
    lookups.count(verifier.id, "crl");
    metrics.lookups.inc({ channel: "crl" });
    const headers: Record<string, string | number> = {
      "content-type": CRL_MEDIA_TYPE,
      ...cacheHeaders(served.etag, served.thisUpdate, served.nextUpdate, Date.now(), x.tokenInQuery === true),
    };
    if (matchesEtag(x.req.headers["if-none-match"], served.etag)) return finish(x, 304, headers);
    headers["content-length"] = served.der.length;
    finish(x, 200, headers, served.der);
  }

  async function health(x: Exchange): Promise<void> {
    if (x.req.method !== "GET" && x.req.method !== "HEAD") return methodNotAllowed(x, "GET, HEAD");
    const started = performance.now();
    let database: { reachable: boolean; milliseconds?: number; error?: string };
    try {
      await withTimeout(sql`select 1`.execute(db), 2000);
      database = { reachable: true, milliseconds: Math.round((performance.now() - started) * 100) / 100 };
    } catch (error) {
      database = { reachable: false, error: (error as Error)?.message ?? String(error) };
    }
    const labels = { auth: KEY_LABELS.authOcsp, sign: KEY_LABELS.signOcsp };
    const signers = await Promise.all(
      responder.health().map(async (signer) => ({
        ...signer,
        // Asks the key store, so a key whose HSM went away shows here.
        loaded: await withTimeout(authority.keystore.has(labels[signer.issuer]), 2000).catch(() => false),
      })),
    );
    const ok = database.reachable && signers.every((s) => s.loaded) && responder.healthy();
    const body = `${JSON.stringify({ status: ok ? "ok" : "degraded", database, signers, refresher: refresher?.state ?? null }, null, 2)}\n`;
    finish(
      x,
      ok ? 200 : 503,
      {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
      },
      body,
    );
  }

  function constant(x: Exchange, type: string, body: string): void {
    if (x.req.method !== "GET" && x.req.method !== "HEAD") {
      methodNotAllowed(x, "GET, HEAD");
      return;
    }
    finish(
      x,
      200,
      { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "no-store" },
      body,
    );
  }

  async function route(x: Exchange): Promise<void> {
    const url = x.req.url ?? "/";
    const mark = url.indexOf("?");
    const path = mark < 0 ? url : url.slice(0, mark);
    if (mark >= 0) x.query = url.slice(mark + 1);
    if (path.startsWith("/ocsp/") && path.length > 6) {
      x.route = "ocsp_get";
      return ocspGet(x, path.slice(6));
    }
    if (path === "/ocsp" || path === "/ocsp/") {
      x.route = "ocsp_post";
      return ocspPost(x);
    }
    if (path.startsWith("/crl/")) {
      x.route = "crl";
      return crl(x, path);
    }
    if (path.startsWith("/api/")) {
      x.route = "api";
      const reply = await api.handle(x.req, path, new URLSearchParams(x.query ?? ""));
      if (reply) {
        if (reply.body === undefined) return finish(x, reply.status, { "cache-control": "no-store" });
        const body = `${JSON.stringify(reply.body)}\n`;
        return finish(
          x,
          reply.status,
          {
            "content-type": "application/json; charset=utf-8",
            "content-length": Buffer.byteLength(body),
            "cache-control": "no-store",
          },
          body,
        );
      }
    }
    switch (path) {
      case "/healthz":
        x.route = "healthz";
        return health(x);
      case "/metrics":
        x.route = "metrics";
        return constant(x, "text/plain; version=0.0.4; charset=utf-8", metrics.render());
      case "/openapi.json":
        x.route = "openapi";
        return constant(x, "application/json; charset=utf-8", openApiJson);
      case "/docs":
      case "/docs/":
        x.route = "docs";
        x.res.setHeader("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'");
        return constant(x, "text/html; charset=utf-8", docsPage);
      default:
        return jsonError(
          x,
          404,
          "not-found",
          "no such resource; the API is described at /openapi.json and /docs",
        );
    }
  }

  const server = createServer((req, res) => {
    const x: Exchange = { req, res, started: performance.now(), route: "unknown" };
    route(x).catch((error) => {
      report(`${req.method} ${x.route}`)(error);
      if (res.headersSent) return res.destroy();
      if (x.route === "ocsp_get" || x.route === "ocsp_post")
        return ocspReply(x, ocspErrorAnswer(OcspResponseStatus.internalError), undefined, false);
      jsonError(x, 500, "internal", "the request could not be served; see the server log");
    });
  });
  // Bounded waits for slow or silent clients (slowloris): headers, whole request, idle keep-alive.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    // Unparseable HTTP: answer 400 (431 for oversized headers) when the socket can still take it.
    if (!socket.writable || error.code === "ECONNRESET") return socket.destroy();
    const status =
      error.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    metrics.requests.inc({ route: "unknown", code: status.slice(0, 3) });
  });

  let closing: Promise<void> | undefined;
  return {
    server,
    responder,
    refresher,
    lookups,
    metrics,
    async listen(port, host = "127.0.0.1") {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      await refresher?.start();
      const address = server.address() as AddressInfo;
      const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
      return `http://${shown}:${address.port}`;
    },
    close(graceMs = 5000) {
      closing ??= (async () => {
        await refresher?.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        cut.unref();
        await closed;
        clearTimeout(cut);
        api.close();
        await lookups.close();
      })();
      return closing;
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
