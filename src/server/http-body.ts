/** Request bodies read with a size limit, and bearer tokens, for every HTTP API of the server. */
import type { IncomingMessage } from "node:http";

/**
 * Reads a request body of at most `limit` bytes; undefined when it is larger. A declared
 * Content-Length over the limit is refused before a byte is read; a chunked body is cut as soon as it
 * passes the limit.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && !(Number(declared) <= limit)) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        resolve(undefined);
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const onAborted = () => onError(new Error("the client aborted the request"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1). */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length > 300) return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return match?.[1];
}
