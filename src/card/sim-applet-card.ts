/**
 * A minimal SIM-product card for PC/SC tests: the JPKI-AP with the SIM product's rules (EF 000A after
 * the auth PIN, label JPKIAPUICCTOKEN) behind a UICC-like ATR. OpenSC's jpki driver does not match
 * this ATR and finds the applet by SELECT AID instead (JPKI-FACTS §1). The full UICC (card manager,
 * GlobalPlatform secure channels) is a separate card; this one has no GlobalPlatform at all.
 */
import { JpkiError } from "../errors.js";
import { cardStateFileStore, JpkiApplet } from "./jpki-applet.js";
import { JpkiApplicationCard } from "./mynacard.js";

/**
 * Appends TCK (ISO/IEC 7816-3 §8.2.5): present when any protocol other than T=0 is indicated; the XOR
 * of T0..TCK is then 00.
 */
export function withTck(atrWithoutTck: Uint8Array): Buffer {
  let tck = 0;
  for (const byte of atrWithoutTck.subarray(1)) tck ^= byte;
  return Buffer.concat([Buffer.from(atrWithoutTck), Buffer.from([tck])]);
}

/**
 * A UICC-style ATR: TS 3B, T0 9F (TD1, 15 historical bytes), TA1 96 (Fi/Di), TD1 80 (TD2, T=0),
 * TD2 1F (TA3, T=15), TA3 C7 (class A/B/C, clock stop), ETSI TS 102 221 §6.3 style historical bytes
 * (80 31 E0 73 FE 21 1B 63 3A 20 4E 83 00 90 00), then TCK.
 */
export const SIM_ATR: Buffer = withTck(Buffer.from("3B9F96801FC78031E073FE211B633A204E83009000", "hex"));

/** Opens the SIM-product JPKI-AP whose state file is `statePath` (product "sim"). */
export function openSimAppletCard(statePath: string): JpkiApplicationCard {
  const applet = new JpkiApplet(cardStateFileStore(statePath));
  if (applet.product !== "sim")
    throw new JpkiError("bad-input", `${statePath} holds a ${applet.product} JPKI-AP, not a SIM applet's`);
  return new JpkiApplicationCard(SIM_ATR, applet);
}
