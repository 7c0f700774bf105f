/**
 * A demo relying party (a portal that logs citizens in with the smartphone's user-authentication
 * certificate), on node:http with JSON endpoints:
 *
 *   POST /login/challenge   → 200 { challengeId, challenge (base64 DER), rpId, origin, issuedAt, expiresAt }
 *   POST /login             { challengeId, certificate, signature, challenge? } (base64)
 *                           → 200 { session, serial, subject, kind, expiresAt } and a session cookie
 *   GET  /me                (cookie, or Authorization: Bearer <session>) → 200 { serial, subject, ... }
 *   POST /logout            → 204
 *   GET  /                  a short HTML page describing the above
 *
 * Errors are JSON `{ "error", "reason" }` (and `check` for a refused login, the name of the check
 * that failed): 400 malformed input, 401 login refused or no session, 404, 405, 413, 415; 503 when
 * the certificate's status cannot be established. Nothing a client sends ends in a crash: every
 * failure inside is answered 500 and logged.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { JpkiError } from "../errors.js";
import { LoginRefusedError } from "./errors.js";
import {
  type LoginResponse,
  MAX_LOGIN_CERTIFICATE_BYTES,
  MAX_LOGIN_SIGNATURE_BYTES,
  RelyingParty,
  type RelyingPartyOptions,
  type VerifiedLogin,
} from "./relying-party.js";

/** The largest request body read: a login is about 2.5 KB of JSON. */
export const MAX_DEMO_BODY_BYTES = 32 * 1024;
const SESSION_COOKIE = "jpki_rp_session";
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export interface DemoRelyingPartyOptions extends Omit<RelyingPartyOptions, "origin"> {
  /** The origin phones see; default `http://HOST:PORT` of the listening socket. */
  readonly origin?: string;
  /** Session lifetime (default 30 minutes). */
  readonly sessionTtlMs?: number;
  /** Where unexpected failures are reported (default stderr). */
  readonly log?: (line: string) => void;
}

export interface DemoRelyingParty {
  readonly server: Server;
  /** The SDK object, once listening. */
  readonly relyingParty: RelyingParty;
  /** Listens (port 0: any free port); returns the base URL. */
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

interface Session {
  readonly login: VerifiedLogin;
  readonly expiresAt: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function decodeBase64Field(
  value: unknown,
  name: string,
  maxBytes: number,
  required: boolean,
): Buffer | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string") throw new JpkiError("bad-input", `${name} must be a base64 string`);
  if (value.length === 0 || value.length > Math.ceil(maxBytes / 3) * 4 + 4 || !BASE64.test(value))
    throw new JpkiError("bad-input", `${name} is not base64 of 1 to ${maxBytes} bytes`);
  const bytes = Buffer.from(value, value.includes("-") || value.includes("_") ? "base64url" : "base64");
  if (bytes.length === 0 || bytes.length > maxBytes)
    throw new JpkiError("bad-input", `${name} is not base64 of 1 to ${maxBytes} bytes`);
  return bytes;
}

/**
 * Reads the body of `POST /login`: a JSON object with `challengeId` (string), `certificate` and
 * `signature` (base64 of DER and of the signature), optionally `challenge` (base64 of the signed
 * challenge). Other members are ignored. Throws JpkiError bad-input, naming the field, for anything else.
 */
export function parseLoginRequest(body: Buffer | string): LoginResponse {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === "string" ? body : body.toString("utf8"));
  } catch (error) {
    throw new JpkiError("bad-input", `the body is not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new JpkiError(
      "bad-input",
      "the body must be a JSON object { challengeId, certificate, signature }",
    );
  const fields = json as Record<string, unknown>;
  const challengeId = fields["challengeId"];
  if (typeof challengeId !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(challengeId))
    throw new JpkiError(
      "bad-input",
      "challengeId must be the id POST /login/challenge gave (43 base64url characters)",
    );
  const certificate = decodeBase64Field(
    fields["certificate"],
    "certificate",
    MAX_LOGIN_CERTIFICATE_BYTES,
    true,
  )!;
  const signature = decodeBase64Field(fields["signature"], "signature", MAX_LOGIN_SIGNATURE_BYTES, true)!;
  const challenge = decodeBase64Field(fields["challenge"], "challenge", 1024, false);
  return challenge
    ? { challengeId, certificate, signature, challenge }
    : { challengeId, certificate, signature };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > MAX_DEMO_BODY_BYTES) {
      reject(new HttpError(413, "too-large", `the body is larger than ${MAX_DEMO_BODY_BYTES} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_DEMO_BODY_BYTES) {
        reject(new HttpError(413, "too-large", `the body is larger than ${MAX_DEMO_BODY_BYTES} bytes`));
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function sessionToken(req: IncomingMessage): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization?.startsWith("Bearer ")) return authorization.slice(7).trim();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === SESSION_COOKIE) return value.join("=");
  }
  return undefined;
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo relying party</title></head>
<body>
<h1>Demo relying party: log in with the smartphone JPKI certificate</h1>
<ol>
<li><code>POST /login/challenge</code>: a challenge naming this relying party, valid 2 minutes, usable once.</li>
<li>The JPKI app shows who asks, asks for the 4-digit PIN, and the SIM signs the challenge.</li>
<li><code>POST /login</code> with <code>{ challengeId, certificate, signature }</code> (base64): a session.</li>
<li><code>GET /me</code>: who is logged in (the certificate's serial and subject; it carries no personal data).</li>
</ol>
<p>Try it: <code>jpki-mobile login --rp URL --sim SIM_STATE --pin PIN</code>. See docs/relying-party.md.</p>
</body></html>
`;

export function createDemoRelyingParty(options: DemoRelyingPartyOptions): DemoRelyingParty {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const sessionTtlMs = options.sessionTtlMs ?? 30 * 60_000;
  const sessions = new Map<string, Session>();
  let relyingParty: RelyingParty | undefined;

  function send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  function sendError(res: ServerResponse, error: unknown): void {
    if (error instanceof HttpError) send(res, error.status, { error: error.error, reason: error.message });
    else if (error instanceof LoginRefusedError && error.check !== "input")
      send(res, error.check === "status-unavailable" ? 503 : error.check === "configuration" ? 500 : 401, {
        error: "login-refused",
        check: error.check,
        reason: error.message,
      });
    else if (error instanceof JpkiError && error.status < 500)
      send(res, error.status, { error: error.code, reason: error.message });
    else {
      log(`demo relying party: ${(error as Error)?.stack ?? String(error)}`);
      send(res, 500, { error: "internal", reason: "internal error (logged)" });
    }
  }

  function requireMethod(req: IncomingMessage, method: string): void {
    if (req.method !== method)
      throw new HttpError(405, "method-not-allowed", `${req.url} answers ${method} only`);
  }

  function pruneSessions(now: number): void {
    for (const [token, session] of sessions) {
      if (session.expiresAt > now && sessions.size < 100_000) break;
      sessions.delete(token);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rp = relyingParty;
    if (!rp) throw new HttpError(503, "starting", "the relying party is not listening yet");
    const path = (req.url ?? "/").split("?")[0];
    switch (path) {
      case "/": {
        requireMethod(req, "GET");
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(PAGE);
        return;
      }
      case "/login/challenge": {
        requireMethod(req, "POST");
        await readBody(req);
        const challenge = rp.issueChallenge();
        send(res, 200, {
          challengeId: challenge.challengeId,
          challenge: challenge.der.toString("base64"),
          rpId: challenge.id,
          origin: challenge.origin,
          issuedAt: challenge.issuedAt.toISOString(),
          expiresAt: challenge.expiresAt.toISOString(),
        });
        return;
      }
      case "/login": {
        requireMethod(req, "POST");
        const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        if (type !== "application/json")
          throw new HttpError(415, "unsupported-media-type", "POST /login takes application/json");
        const login = await rp.verifyLogin(parseLoginRequest(await readBody(req)));
        const now = Date.now();
        pruneSessions(now);
        const token = randomBytes(32).toString("base64url");
        const expiresAt = now + sessionTtlMs;
        sessions.set(token, { login, expiresAt });
        const secure = rp.identity.origin.startsWith("https:") ? "; Secure" : "";
        send(
          res,
          200,
          {
            session: token,
            serial: login.serial,
            subject: login.subject,
            kind: login.kind,
            expiresAt: new Date(expiresAt).toISOString(),
          },
          {
            "set-cookie": `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(sessionTtlMs / 1000)}${secure}`,
          },
        );
        return;
      }
      case "/me": {
        requireMethod(req, "GET");
        const token = sessionToken(req);
        const session = token === undefined ? undefined : sessions.get(token);
        if (!session || session.expiresAt <= Date.now())
          throw new HttpError(401, "no-session", "not logged in: POST /login first");
        const { login } = session;
        send(res, 200, {
          serial: login.serial,
          subject: login.subject,
          issuer: login.issuer,
          kind: login.kind,
          policy: login.policy,
          certificateNotAfter: login.notAfter.toISOString(),
          loggedInAt: login.at.toISOString(),
          status: { source: login.status.source, thisUpdate: login.status.thisUpdate.toISOString() },
        });
        return;
      }
      case "/logout": {
        requireMethod(req, "POST");
        const token = sessionToken(req);
        if (token !== undefined) sessions.delete(token);
        res.writeHead(204, {
          "set-cookie": `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
        });
        res.end();
        return;
      }
      default:
        throw new HttpError(404, "not-found", `no route ${path}`);
    }
  }

  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, error);
      // A body refused unread: close rather than read the rest.
      if (error instanceof HttpError && error.status === 413) res.on("finish", () => req.destroy());
    });
  });
  server.keepAliveTimeout = 5000;
  server.on("clientError", (_error, socket) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });

  return {
    server,
    get relyingParty() {
      if (!relyingParty) throw new JpkiError("internal", "the demo relying party is not listening yet");
      return relyingParty;
    },
    listen(port, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
          const url = `http://${shownHost}:${address.port}`;
          try {
            relyingParty = new RelyingParty({ ...options, origin: options.origin ?? url });
          } catch (error) {
            server.close();
            reject(error);
            return;
          }
          resolve(url);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
