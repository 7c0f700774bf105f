/**
 * What every JSON API of the server shares: replies, refusals with a JSON reason, the mapping of
 * JpkiError codes to HTTP statuses, and strict readers of JSON bodies and their base64 fields.
 */
import type { IncomingMessage } from "node:http";
import { JpkiError } from "../errors.js";
import { readBody } from "./http-body.js";

export interface ApiReply {
  readonly status: number;
  readonly body?: unknown;
}

const MAX_JSON_BYTES = 16 * 1024;

export const reply = (status: number, body?: unknown): ApiReply => ({
  status,
  ...(body === undefined ? {} : { body }),
});
export const refusal = (status: number, error: string, reason: string) => reply(status, { error, reason });

/** The HTTP status and error name of a JpkiError (src/errors.ts), as every JSON API answers it. */
export function errorReply(error: unknown): ApiReply {
  if (error instanceof JpkiError) return refusal(error.status, error.code, error.message);
  return refusal(500, "internal", "the server failed; the error is logged");
}

export function base64Field(body: unknown, name: string, maxBytes: number): Buffer {
  const value = (body as Record<string, unknown> | null)?.[name];
  if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value))
    throw new JpkiError("bad-input", `${name}: base64 expected`);
  const bytes = Buffer.from(value, "base64");
  if (bytes.length === 0 || bytes.length > maxBytes)
    throw new JpkiError("bad-input", `${name}: 1 to ${maxBytes} octets`);
  return bytes;
}

/** A list of base64 strings, each 1 to `maxBytes` octets, at most 64 of them. */
export function base64List(body: unknown, name: string, maxBytes: number): Buffer[] {
  const value = (body as Record<string, unknown> | null)?.[name];
  if (!Array.isArray(value) || value.length === 0 || value.length > 64)
    throw new JpkiError("bad-input", `${name}: a list of 1 to 64 base64 strings`);
  return value.map((item, i) => base64Field({ [`${name}[${i}]`]: item }, `${name}[${i}]`, maxBytes));
}

/** The request's JSON body, at most 16 KiB. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req, MAX_JSON_BYTES);
  if (!body) throw new JpkiError("bad-input", `the JSON body is larger than ${MAX_JSON_BYTES} octets`);
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new JpkiError("bad-input", "the body is not JSON");
  }
}
