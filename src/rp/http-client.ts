/**
 * One HTTP exchange over node:http or node:https, bounded in time and size: the OCSP client and the
 * phone's login both talk to servers they do not control.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { JpkiError } from "../errors.js";

export interface HttpExchange {
  readonly method: "GET" | "POST";
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  /** Whole exchange, connection to last byte (default 10 s). */
  readonly timeoutMs?: number;
  /** Largest response body read (default 1 MiB); a larger one fails the exchange. */
  readonly maxBytes?: number;
}

export interface HttpReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Sends one request; rejects with JpkiError (`internal`) when the server cannot be reached or answers too much. */
export function exchange(url: string, options: HttpExchange): Promise<HttpReply> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.reject(new JpkiError("bad-input", `not a URL: ${JSON.stringify(url)}`));
  }
  const send =
    target.protocol === "https:" ? httpsRequest : target.protocol === "http:" ? httpRequest : undefined;
  if (!send) return Promise.reject(new JpkiError("bad-input", `unsupported URL scheme ${target.protocol}`));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBytes = options.maxBytes ?? 1 << 20;
  return new Promise((resolve, reject) => {
    const fail = (message: string, cause?: unknown) =>
      reject(
        new JpkiError("internal", `${options.method} ${target.origin}${target.pathname}: ${message}`, {
          cause,
        }),
      );
    const headers: Record<string, string> = { ...options.headers };
    if (options.body) headers["content-length"] = String(options.body.length);
    const req = send(target, { method: options.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          req.destroy();
          fail(`the answer is larger than ${maxBytes} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on("error", (error) => fail(error.message, error));
    });
    const timer = setTimeout(() => {
      req.destroy();
      fail(`no complete answer within ${timeoutMs} ms`);
    }, timeoutMs);
    req.on("error", (error) => {
      clearTimeout(timer);
      fail(error.message, error);
    });
    req.end(options.body);
  });
}
