/**
 * What a carrier tells J-LIS about its SIMs (DESIGN §4 flow 7): a number ported out to another
 * carrier, a SIM swapped for another, a SIM deactivated, an eSIM profile deleted. Each event leaves
 * the carrier signed with the carrier's own key (ECDSA P-256, enrolled with J-LIS once), so J-LIS
 * acts only on what the SIM's carrier said, and keeps the signed bytes as evidence.
 *
 * The wire form is JSON: `{ "event": base64(the event as canonical JSON), "signature":
 * base64(ECDSA-SHA256, DER) }`. The event's `id` is the carrier's (a UUID): with the carrier's name
 * it identifies the event, so J-LIS applies a repeated delivery once (src/ra/carrier-events.ts).
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { isValidIccid } from "../card/uicc/identity.js";
import { JpkiError } from "../errors.js";
import { generateP256PrivateKey } from "../pki/algorithms.js";
import { canonicalJson } from "../registry/audit.js";
import { writeFileAtomic } from "../util/fs.js";
import { findCarrier } from "./carriers.js";

export const CARRIER_EVENT_KINDS = [
  "port-out",
  "sim-swap",
  "sim-deactivated",
  "esim-profile-deleted",
] as const;
export type CarrierEventKind = (typeof CARRIER_EVENT_KINDS)[number];

/** The SIM's state after each kind of event, at the carrier and at J-LIS alike. */
export const SIM_STATE_AFTER: Record<
  CarrierEventKind,
  "ported-out" | "swapped" | "deactivated" | "profile-deleted"
> = {
  "port-out": "ported-out",
  "sim-swap": "swapped",
  "sim-deactivated": "deactivated",
  "esim-profile-deleted": "profile-deleted",
};

export interface CarrierEvent {
  /** The carrier's id for the event (a UUID). */
  readonly id: string;
  readonly carrier: string;
  readonly kind: CarrierEventKind;
  readonly iccid: string;
  /** A SIM swap only: whether the subscriber asked for it (a swap nobody asked for is a fraud). */
  readonly requestedBySubscriber?: boolean;
  /** When it happened at the carrier (ISO 8601, UTC). */
  readonly occurredAt: string;
}

/** An event as it travels: the canonical JSON's bytes and the carrier's signature over them, in base64. */
export interface SignedCarrierEvent {
  readonly event: string;
  readonly signature: string;
}

/** The longest signed event accepted, in octets of its JSON (an event is about 200). */
export const MAX_CARRIER_EVENT_BYTES = 2048;

/** The carrier's event-signing key: `DATA/carriers/<name>/events.key.pem` (PKCS #8, mode 0600), made on first use. */
export function carrierEventKey(dataDir: string, carrier: string): KeyObject {
  findCarrier(carrier);
  const file = path.join(dataDir, "carriers", carrier, "events.key.pem");
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const key = generateP256PrivateKey();
    writeFileAtomic(file, key.export({ type: "pkcs8", format: "pem" }) as string, 0o600);
  }
  return createPrivateKey(readFileSync(file, "utf8"));
}

/** The public half of the carrier's event key, as J-LIS enrols it (SubjectPublicKeyInfo DER). */
export function carrierEventPublicKey(dataDir: string, carrier: string): Buffer {
  return createPublicKey(carrierEventKey(dataDir, carrier)).export({ type: "spki", format: "der" });
}

/** The carrier's signature over the event's canonical JSON. */
export function signCarrierEvent(event: CarrierEvent, key: KeyObject): SignedCarrierEvent {
  const bytes = Buffer.from(canonicalJson(event), "utf8");
  return {
    event: bytes.toString("base64"),
    signature: sign("sha256", bytes, { key, dsaEncoding: "der" }).toString("base64"),
  };
}

const bad = (message: string): never => {
  throw new JpkiError("bad-input", `carrier event: ${message}`);
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

function base64Of(value: unknown, name: string, maxBytes: number): Buffer {
  if (typeof value !== "string" || !BASE64.test(value) || value.length % 4 !== 0)
    bad(`${name}: base64 expected`);
  const bytes = Buffer.from(value as string, "base64");
  if (bytes.length === 0 || bytes.length > maxBytes) bad(`${name}: 1 to ${maxBytes} octets`);
  return bytes;
}

/**
 * Reads a signed event as J-LIS receives it, strictly: the two fields and nothing else, the event a
 * JSON object with exactly the fields of its kind, in canonical form (so the signed bytes are the one
 * encoding of the event). The signature is not checked here: J-LIS does, with the enrolled key.
 */
export function readSignedCarrierEvent(body: unknown): {
  event: CarrierEvent;
  bytes: Buffer;
  signature: Buffer;
} {
  if (body === null || typeof body !== "object" || Array.isArray(body)) bad("a JSON object expected");
  const fields = body as Record<string, unknown>;
  const extra = Object.keys(fields).filter((k) => k !== "event" && k !== "signature");
  if (extra.length > 0) bad(`unexpected field ${extra[0]}`);
  const bytes = base64Of(fields["event"], "event", MAX_CARRIER_EVENT_BYTES);
  const signature = base64Of(fields["signature"], "signature", 72);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return bad("the event is not UTF-8 JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    bad("the event is not an object");
  const event = parsed as Record<string, unknown>;
  const kind = event["kind"];
  if (typeof kind !== "string" || !(CARRIER_EVENT_KINDS as readonly string[]).includes(kind))
    bad(`kind: one of ${CARRIER_EVENT_KINDS.join(", ")}`);
  const expected = ["carrier", "iccid", "id", "kind", "occurredAt"];
  if (kind === "sim-swap") expected.push("requestedBySubscriber");
  const keys = Object.keys(event).sort();
  if (keys.join(",") !== expected.sort().join(","))
    bad(`fields: ${expected.join(", ")} expected, got ${keys.join(", ")}`);
  if (typeof event["id"] !== "string" || !UUID.test(event["id"])) bad("id: a lowercase UUID expected");
  if (typeof event["carrier"] !== "string" || !/^[a-z][a-z0-9-]{0,31}$/.test(event["carrier"]))
    bad("carrier: a carrier name expected");
  if (typeof event["iccid"] !== "string" || !isValidIccid(event["iccid"])) bad("iccid: not a valid ICCID");
  const occurredAt = event["occurredAt"];
  if (typeof occurredAt !== "string" || !ISO_UTC.test(occurredAt) || Number.isNaN(Date.parse(occurredAt)))
    bad("occurredAt: an ISO 8601 UTC time expected");
  if (kind === "sim-swap" && typeof event["requestedBySubscriber"] !== "boolean")
    bad("requestedBySubscriber: true or false");
  if (canonicalJson(event) !== bytes.toString("utf8")) bad("the event is not in canonical JSON form");
  return { event: event as unknown as CarrierEvent, bytes, signature };
}
