/**
 * What the citizen applies for, as the My Number card signs it (the eContent of the CMS SignedData,
 * docs/application-format.md): the SIM (ICCID, EID, the carrier of the contract, the applet
 * instance), the public key the SIM generated and its attestation, the RA's nonce, the certificate
 * asked for, and the time. UTF-8 JSON, read strictly: the exact fields, nothing else, bounded.
 */
import { isValidEid, isValidIccid } from "../card/uicc/identity.js";
import { JpkiError } from "../errors.js";

export const APPLICATION_FORMAT = "jpki-mobile/smartphone-certificate-application";
/** Far above a real application (about 2 KiB with an RSA-2048 key and its attestation). */
export const MAX_APPLICATION_BYTES = 16 * 1024;

/** Certificates a phone may ask for: the user-authentication one (the signing one later). */
export type RequestedCertificate = "phone-auth";

export interface ApplicationContent {
  readonly iccid: string;
  readonly eid: string;
  /** The carrier the contract is with (a brand: an MVNO's name is fine). */
  readonly carrier: string;
  /** The JPKI applet instance's id on the SIM (hex). */
  readonly appletInstance: string;
  /**
   * Where the key is made: `on-card` (the SIM generated it; the default) or `injected` (J-LIS makes
   * it after the examination and writes it to the SIM through its secure channel).
   */
  readonly keyGeneration: "on-card" | "injected";
  /** SubjectPublicKeyInfo DER of the key the SIM generated (on-card only). */
  readonly publicKey?: Buffer;
  /** The SIM's KeyAttestation over that key (src/card/uicc/attestation.ts; on-card only). */
  readonly attestation?: Buffer;
  /** The RA's nonce (src/ra/nonces.ts). */
  readonly nonce: Buffer;
  readonly requested: RequestedCertificate;
  /** When the phone made the application. */
  readonly time: Date;
  /**
   * The citizen agrees that registered relying parties holding an earlier smartphone certificate of
   * theirs may learn this one (the link query, src/ra/links.ts), so accounts survive the change.
   */
  readonly linkConsent?: boolean;
}

const FIELDS = [
  "format",
  "version",
  "iccid",
  "eid",
  "carrier",
  "appletInstance",
  "publicKey",
  "attestation",
  "nonce",
  "requested",
  "time",
  "keyGeneration",
  "linkConsent",
] as const;

/** The content's bytes: JSON with the fields in a fixed order, binary values in base64. */
export function encodeApplicationContent(content: ApplicationContent): Buffer {
  const onCard = content.keyGeneration === "on-card";
  return Buffer.from(
    JSON.stringify({
      format: APPLICATION_FORMAT,
      version: 1,
      iccid: content.iccid,
      eid: content.eid,
      carrier: content.carrier,
      appletInstance: content.appletInstance,
      ...(onCard
        ? {
            publicKey: content.publicKey?.toString("base64"),
            attestation: content.attestation?.toString("base64"),
          }
        : { keyGeneration: "injected" }),
      nonce: content.nonce.toString("base64"),
      requested: content.requested,
      time: content.time.toISOString(),
      ...(content.linkConsent ? { linkConsent: true } : {}),
    }),
    "utf8",
  );
}

const refuse = (why: string): never => {
  throw new JpkiError("bad-input", `the application content is not valid: ${why}`);
};

function text(value: unknown, name: string, pattern: RegExp): string {
  if (typeof value !== "string" || !pattern.test(value)) return refuse(`${name} is missing or malformed`);
  return value;
}

function base64(value: unknown, name: string, maxBytes: number): Buffer {
  const encoded = text(value, name, /^[A-Za-z0-9+/]*={0,2}$/);
  const bytes = Buffer.from(encoded, "base64");
  // Node's decoder skips what it cannot read: round-trip to refuse anything not canonical.
  if (bytes.toString("base64") !== encoded || bytes.length === 0 || bytes.length > maxBytes)
    return refuse(`${name} is not canonical base64 of 1 to ${maxBytes} octets`);
  return bytes;
}

/** Reads the signed content; refuses anything but exactly the format above. */
export function parseApplicationContent(bytes: Buffer): ApplicationContent {
  if (bytes.length > MAX_APPLICATION_BYTES) refuse(`larger than ${MAX_APPLICATION_BYTES} octets`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return refuse("not UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return refuse("not a JSON object");
  const record = value as Record<string, unknown>;
  const extra = Object.keys(record).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (extra.length) refuse(`unknown field ${JSON.stringify(extra[0])}`);
  if (record["format"] !== APPLICATION_FORMAT) refuse(`format is not ${APPLICATION_FORMAT}`);
  if (record["version"] !== 1) refuse("version is not 1");
  if (record["requested"] !== "phone-auth") refuse('requested is not "phone-auth"');
  const time = new Date(text(record["time"], "time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/));
  if (Number.isNaN(time.getTime())) refuse("time is not a date");
  // keyGeneration is written only for `injected`, and then the SIM sends no key of its own.
  if (record["keyGeneration"] !== undefined && record["keyGeneration"] !== "injected")
    refuse('keyGeneration is "injected" or absent');
  const injected = record["keyGeneration"] === "injected";
  // Written only when given: one encoding for each content.
  if (record["linkConsent"] !== undefined && record["linkConsent"] !== true)
    refuse("linkConsent is true or absent");
  if (injected && (record["publicKey"] !== undefined || record["attestation"] !== undefined))
    refuse("an injected-key application carries no public key or attestation");
  const iccid = text(record["iccid"], "iccid", /^\d{19,20}$/);
  if (!isValidIccid(iccid)) refuse("iccid is not a valid ICCID (check digit)");
  const eid = text(record["eid"], "eid", /^\d{32}$/);
  if (!isValidEid(eid)) refuse("eid is not a valid EID (check digits)");
  return {
    iccid,
    eid,
    carrier: text(record["carrier"], "carrier", /^[a-z0-9-]{1,32}$/),
    appletInstance: text(record["appletInstance"], "appletInstance", /^(?:[0-9a-f]{2}){1,16}$/),
    ...(injected
      ? { keyGeneration: "injected" as const }
      : {
          keyGeneration: "on-card" as const,
          publicKey: base64(record["publicKey"], "publicKey", 1024),
          attestation: base64(record["attestation"], "attestation", 4096),
        }),
    nonce: base64(record["nonce"], "nonce", 64),
    requested: "phone-auth",
    time,
    ...(record["linkConsent"] === true ? { linkConsent: true } : {}),
  };
}
