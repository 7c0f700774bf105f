/**
 * What the SIM maker writes into a new SIM: its identity, the carrier's card manager keys, and the
 * J-LIS security domain's key with its attestation certificate and the roots it trusts. No security
 * domain or applet is installed yet: the carrier does that over the air (host.ts).
 */
import type { KeyObject } from "node:crypto";
import { JpkiError } from "../../errors.js";
import type { Scp03KeySet } from "../gp/scp03.js";
import { isValidEid, isValidIccid } from "./identity.js";
import { saveUiccState, UICC_STATE_FORMAT, type UiccState } from "./state.js";

export interface NewSimInput {
  iccid: string;
  eid: string;
  /** Name of the issuing carrier. */
  carrier: string;
  /** The carrier's SCP03 key set for this SIM's card manager. */
  isdKeys: Scp03KeySet & { keyVersion: number };
  /** SK.SD.ECKA: the J-LIS security domain's P-256 private key. */
  sdKey: KeyObject;
  /** Its certificate from the SIM maker's attestation CA (DER). */
  sdCertificate: Buffer;
  /** Roots J-LIS's SCP11a certificate must chain to (DER). */
  oceRoots: readonly Buffer[];
}

export function newUiccState(input: NewSimInput): UiccState {
  if (!isValidIccid(input.iccid)) throw new JpkiError("bad-input", `not a valid ICCID: ${input.iccid}`);
  if (!isValidEid(input.eid)) throw new JpkiError("bad-input", `not a valid EID: ${input.eid}`);
  if (input.sdKey.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    throw new JpkiError("bad-input", "the security domain key must be P-256");
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return {
    format: UICC_STATE_FORMAT,
    version: 1,
    iccid: input.iccid,
    eid: input.eid,
    carrier: input.carrier,
    isd: {
      keyVersion: input.isdKeys.keyVersion,
      enc: hex(input.isdKeys.enc),
      mac: hex(input.isdKeys.mac),
      dek: hex(input.isdKeys.dek),
    },
    maker: {
      sdKey: input.sdKey.export({ type: "pkcs8", format: "der" }).toString("base64"),
      sdCertificate: input.sdCertificate.toString("base64"),
      oceRoots: input.oceRoots.map((der) => der.toString("base64")),
    },
    ssd: null,
    applet: null,
  };
}

/** Writes a new SIM's state file (mode 0600, atomically) and returns the state. */
export function writeNewSim(path: string, input: NewSimInput): UiccState {
  const state = newUiccState(input);
  saveUiccState(path, state);
  return state;
}
