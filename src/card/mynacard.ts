/**
 * The My Number card (個人番号カード) as an emulated card: the JPKI-AP behind the card's ATR, and the
 * answers OpenSC's other drivers need to leave the card alone (JPKI-FACTS §1): SELECT of any other
 * AID answers 6A82, unknown instructions 6D00, unknown classes 6E00, never 90 00.
 *
 * `JpkiApplicationCard` is the part both products share (ISO/IEC 7816-4 command checks, application
 * selection, the one place where a CardStatusError becomes a status word); sim-applet-card.ts puts
 * it behind a SIM's ATR.
 */

import { JpkiError } from "../errors.js";
import { parseCommandApdu, responseApdu } from "./apdu.js";
import type { EmulatedCard } from "./card.js";
import { cardStateFileStore, JPKI_AP_AID, JpkiApplet } from "./jpki-applet.js";
import { MY_NUMBER_CARD_ATR } from "./state.js";
import { CardStatusError, SW } from "./status-words.js";

/** ATR of the My Number card `3B E0 00 FF 81 31 FE 45 14` (JPKI-FACTS §1; OpenSC's jpki driver matches it). */
export const MY_NUMBER_CARD_ATR_BYTES: Buffer = Buffer.from(MY_NUMBER_CARD_ATR, "hex");

/** Instructions the card knows, by class: interindustry (00) and the JPKI-AP's proprietary SIGN (80). */
const INSTRUCTIONS: ReadonlyMap<number, ReadonlySet<number>> = new Map([
  [0x00, new Set([0xa4, 0xb0, 0x20, 0x24])],
  [0x80, new Set([0x2a])],
]);

/** An emulated card holding one JPKI-AP. transmit never throws; each answer ends with a status word. */
export class JpkiApplicationCard implements EmulatedCard {
  private appletSelected = false;

  constructor(
    readonly atr: Buffer,
    private readonly applet: JpkiApplet,
  ) {}

  reset(): void {
    this.appletSelected = false;
    this.applet.reset();
  }

  powerOff(): void {
    this.reset();
  }

  async transmit(command: Uint8Array): Promise<Buffer> {
    return this.transmitSync(command);
  }

  /** The same as transmit, synchronously (for benchmarks and the vpcd loop). */
  transmitSync(command: Uint8Array): Buffer {
    try {
      return this.process(command);
    } catch (error) {
      if (error instanceof CardStatusError) return responseApdu(error.sw);
      return responseApdu(SW.NO_DIAGNOSIS); // an emulator fault; the card stays usable
    }
  }

  private process(bytes: Uint8Array): Buffer {
    if (bytes.length < 4) throw new CardStatusError(SW.WRONG_LENGTH);
    // ISO/IEC 7816-4 §5.1: class, then instruction, then parameters and lengths.
    const instructions = INSTRUCTIONS.get(bytes[0]!);
    if (!instructions) throw new CardStatusError(SW.CLA_NOT_SUPPORTED);
    if (!instructions.has(bytes[1]!)) throw new CardStatusError(SW.INS_NOT_SUPPORTED);
    const command = parseCommandApdu(bytes);
    // Like the real card (and as OpenSC expects), the JPKI-AP takes short APDUs only.
    if (command.extended) throw new CardStatusError(SW.WRONG_LENGTH, "extended lengths are not supported");

    if (command.ins === 0xa4 && command.p1 === 0x04) {
      // SELECT by DF name. Any other application (券面事項入力補助AP, PIV, OpenPGP, ...) is not here.
      if (!command.data.equals(JPKI_AP_AID)) throw new CardStatusError(SW.FILE_NOT_FOUND);
      if (command.p2 !== 0x0c) throw new CardStatusError(SW.WRONG_P1P2, "the JPKI-AP returns no FCI (P2=0C)");
      this.appletSelected = true;
      this.applet.selected();
      return responseApdu(SW.OK);
    }
    if (!this.appletSelected) {
      // No application selected: the card's MF holds nothing a host may use.
      if (command.ins === 0xa4)
        throw new CardStatusError(command.p1 === 0x02 ? SW.FILE_NOT_FOUND : SW.WRONG_P1P2);
      throw new CardStatusError(SW.NO_CURRENT_EF);
    }
    return this.applet.process(command);
  }
}

/**
 * Opens the My Number card whose JPKI-AP state file is `statePath` (written by `citizen add`).
 * Throws JpkiError("bad-input") when the file is missing, unreadable or not a My Number card's.
 */
export function openMyNumberCard(statePath: string): JpkiApplicationCard {
  const applet = new JpkiApplet(cardStateFileStore(statePath));
  if (applet.product !== "my-number-card")
    throw new JpkiError(
      "bad-input",
      `${statePath} holds a ${applet.product} JPKI-AP, not a My Number card's`,
    );
  return new JpkiApplicationCard(MY_NUMBER_CARD_ATR_BYTES, applet);
}
