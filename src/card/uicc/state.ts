/**
 * The persistent contents of an emulated SIM (UICC): what its secure memory holds. One JSON file per
 * SIM, written with mode 0600 and atomically (src/util/fs.ts), so a power cut leaves the state from
 * before or after a command, never a mix.
 *
 * Three owners share the card, as on a real UICC under GlobalPlatform:
 * - the carrier's issuer security domain (card manager), opened with the carrier's SCP03 keys;
 * - what the SIM maker provisioned at manufacture, in the manner of an eUICC's ECASD: the P-256 key
 *   the J-LIS security domain uses for SCP11 and key attestations, its certificate from the maker's
 *   attestation CA, and the roots that certify J-LIS as the only party allowed to open that domain;
 * - the J-LIS supplementary security domain and the JPKI applet instance associated with it, once the
 *   carrier installed them (their data is out of the carrier's reach).
 */
import { readFileSync } from "node:fs";
import { JpkiError } from "../../errors.js";
import { writeFileAtomic } from "../../util/fs.js";
import type { JpkiApState } from "../state.js";

export const UICC_STATE_FORMAT = "jpki-mobile/uicc-state";

/** GlobalPlatform life cycle states (GPCS §5.3, Table 11-5 coding) this emulation uses. */
export const LifeCycle = {
  installed: 0x03,
  selectable: 0x07,
  /** Security domains and applications: personalised. The issuer security domain: SECURED. */
  personalized: 0x0f,
} as const;

export interface UiccState {
  format: typeof UICC_STATE_FORMAT;
  version: 1;
  /** ITU-T E.118, 19 digits; its issuer identification number names the issuing carrier. */
  iccid: string;
  /** GSMA SGP.29, 32 digits. */
  eid: string;
  /** The carrier that issued the SIM (owns the card manager). */
  carrier: string;
  /** The issuer security domain (card manager): the carrier's SCP03 key set, hex. */
  isd: { keyVersion: number; enc: string; mac: string; dek: string };
  /** Provisioned by the SIM maker; the carrier never holds these. */
  maker: {
    /** SK.SD.ECKA of the J-LIS security domain, base64 PKCS#8 (P-256). */
    sdKey: string;
    /** Its certificate from the SIM maker's attestation CA, base64 DER. */
    sdCertificate: string;
    /** Roots (base64 DER) an SCP11a host chain must lead to; the leaf must name J-LIS. */
    oceRoots: string[];
  };
  /** The J-LIS supplementary security domain, once installed. */
  ssd: { aid: string; lifeCycle: number; scp11KeyVersion: number } | null;
  /** The JPKI applet instance, once installed. */
  applet: {
    aid: string;
    lifeCycle: number;
    /** 16 random bytes drawn at installation (hex): which instance a key attestation speaks of. */
    instanceId: string;
    /** AID of the security domain the applet is associated with (the ISD's, or J-LIS's after extradition). */
    associatedSd: string;
    jpki: JpkiApState;
  } | null;
}

export function saveUiccState(path: string, state: UiccState): void {
  writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

export function loadUiccState(path: string): UiccState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new JpkiError("bad-input", `cannot read the SIM state file ${path}`, { cause });
  }
  const state = parsed as Partial<UiccState>;
  if (state.format !== UICC_STATE_FORMAT || state.version !== 1)
    throw new JpkiError(
      "bad-input",
      `${path} is not a jpki-mobile SIM state file (format ${UICC_STATE_FORMAT} v1)`,
    );
  return state as UiccState;
}

/** Whether a file holds a SIM (UICC) state rather than a bare JPKI-AP state. */
export function isUiccStateFile(path: string): boolean {
  try {
    return (JSON.parse(readFileSync(path, "utf8")) as { format?: unknown }).format === UICC_STATE_FORMAT;
  } catch {
    return false;
  }
}
