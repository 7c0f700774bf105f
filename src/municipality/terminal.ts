/**
 * The counter's NFC terminal (窓口端末), DESIGN §4 flow 5: the citizen taps the phone on it and the
 * terminal speaks APDUs to the SIM directly, over any CardTransport: it reads what anyone may read
 * (the ICCID in EF 2FE2, the EID, the JPKI applet's instance id), and relays J-LIS's SCP11a channel
 * with its security domain over the municipal network, as a carrier's OTA relay does over the air
 * (src/mno/ota-relay.ts), with no carrier on the path.
 *
 * The terminal keeps a record of every relayed byte (`relayed`): what a municipality could store. It
 * holds no key that opens them (src/municipality/terminal-security.test.ts works from it).
 */
import { encodeCommandApdu, parseResponseApdu } from "../card/apdu.js";
import type { CardTransport } from "../card/card.js";
import { CardStatusError, SW } from "../card/status-words.js";
import { readTlvList } from "../card/tlv.js";
import { iccidFromFileContent, isValidEid, isValidIccid } from "../card/uicc/identity.js";
import { ISD_AID } from "../card/uicc/uicc.js";
import { JpkiError } from "../errors.js";
import { JpkiCard } from "../phone/jpki-card.js";

export interface TerminalExchange {
  readonly iccid: string;
  readonly id: number;
  readonly command: Buffer;
  response?: Buffer;
}

/** The SIM of the phone on the terminal, as the terminal read it. */
export interface TappedSim {
  readonly iccid: string;
  readonly eid: string;
}

/** GET EID as an LPA sends it (SGP.22 §5.7.20): STORE DATA 'BF3E' { '5C' tag list '5A' }. */
const GET_EID = Buffer.from("80E2910006BF3E035C015A00", "hex");

export class CounterTerminal {
  /** Everything relayed for J-LIS, in order: the municipality's view. */
  readonly relayed: TerminalExchange[] = [];
  private phone: { transport: CardTransport; sim: TappedSim } | undefined;
  private nextId = 1;

  /** `municipalityCode`: the municipality whose network the terminal is on. */
  constructor(readonly municipalityCode: string) {}

  /**
   * The phone is tapped: the SIM is powered (a reset, so no earlier session or verified PIN
   * survives) and identified from EF ICCID (`00 A4 00 0C 02 2F E2`, `00 B0 00 00 0A`) and GET EID.
   */
  async tap(sim: CardTransport): Promise<TappedSim> {
    await sim.reset();
    const send = async (command: Buffer, what: string) => {
      const { data, sw } = parseResponseApdu(await sim.transmit(command));
      if (sw !== SW.OK)
        throw new CardStatusError(sw, `${what}: the SIM refused; is this a phone with a SIM?`);
      return data;
    };
    await send(Buffer.from("00A4000C022FE2", "hex"), "SELECT EF ICCID");
    const iccid = iccidFromFileContent(await send(Buffer.from("00B000000A", "hex"), "READ BINARY EF ICCID"));
    await send(
      encodeCommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: ISD_AID }),
      "SELECT the card manager",
    );
    const eidTlv = readTlvList(await send(GET_EID, "GET EID"))[0];
    const eid = eidTlv
      ? (readTlvList(eidTlv.value)
          .find((t) => t.tag === 0x5a)
          ?.value.toString("hex") ?? "")
      : "";
    if (!isValidIccid(iccid) || !isValidEid(eid))
      throw new JpkiError("bad-input", "the tapped SIM answered an ICCID or EID that is not valid");
    this.phone = { transport: sim, sim: { iccid, eid } };
    return { iccid, eid };
  }

  /** The phone was taken off the terminal. */
  release(): void {
    this.phone = undefined;
  }

  private tapped() {
    if (!this.phone)
      throw new JpkiError("conflict", "no phone on the terminal: have the citizen tap the phone");
    return this.phone;
  }

  get sim(): TappedSim {
    return this.tapped().sim;
  }

  /** The JPKI applet's instance id, which attestations name. */
  async appletInstance(): Promise<string> {
    return (await JpkiCard.open(this.tapped().transport)).instanceId();
  }

  /**
   * J-LIS's side, over the municipal network: a transport to the tapped SIM that forwards each
   * command (already secured by J-LIS) and its answer unchanged, recording both.
   */
  relayForJlis(): Pick<CardTransport, "transmit"> {
    return {
      transmit: async (command) => {
        const { transport, sim } = this.tapped();
        const exchange: TerminalExchange = {
          iccid: sim.iccid,
          id: this.nextId++,
          command: Buffer.from(command),
        };
        this.relayed.push(exchange);
        exchange.response = await transport.transmit(command);
        return Buffer.from(exchange.response);
      },
    };
  }
}
