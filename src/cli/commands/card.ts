/**
 * `card serve` and `sim serve`: put an emulated My Number card or SIM into pcscd's virtual reader
 * (vsmartcard vpcd), so PC/SC middleware such as OpenSC uses it as a real card. `sim create`: a new
 * SIM from the SIM maker, for a carrier.
 */
import type { EmulatedCard } from "../../card/card.js";
import { openMyNumberCard } from "../../card/mynacard.js";
import { openSimAppletCard } from "../../card/sim-applet-card.js";
import { isUiccStateFile } from "../../card/uicc/state.js";
import { openUicc } from "../../card/uicc/uicc.js";
import { formatVpcdAddress, parseVpcdAddress, serveCardOverVpcd, type VpcdEvent } from "../../card/vpcd.js";
import { CARRIERS } from "../../mno/carriers.js";
import { createSim } from "../../mno/sim-factory.js";
import { type Command, type OptionValues, printResult, stringOption } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, untilStopSignal, withAuthority } from "./options.js";

const SERVE_OPTIONS = {
  state: { type: "string" },
  vpcd: { type: "string" },
  trace: { type: "boolean" },
} as const;

function serveHelp(name: string, what: string, stateFrom: string): string {
  return `
Usage: jpki-mobile ${name} --state FILE [--vpcd HOST:PORT] [--trace]

Connects ${what}
to vsmartcard's vpcd (the virtual reader pcscd loads), so PC/SC programs (opensc-tool,
pkcs15-tool, pkcs11-tool, pcsc_scan) see it in the reader "Virtual PCD 00 00". Reconnects when
pcscd restarts; runs until interrupted (Ctrl-C, SIGTERM). Changes (PIN tries, blocked PINs)
are written to the state file as the card makes them.

  --state FILE       the card's JPKI-AP state file (${stateFrom})
  --vpcd HOST:PORT   vpcd's address (default 127.0.0.1:35963, slot 0; slot n is port 35963+n)
  --trace            print every command and response APDU as hex, and power events
`;
}

function describeEvent(event: VpcdEvent, address: string): string | undefined {
  switch (event.type) {
    case "active":
      return `in the reader (vpcd ${address} is polling the card)`;
    case "disconnected":
      return `vpcd ${address}: ${event.reason}; retrying in ${event.retryInMs} ms`;
    case "card-error":
      return `card error: ${(event.error as Error)?.stack ?? event.error}`;
    default:
      return undefined;
  }
}

async function serve(
  values: OptionValues,
  label: string,
  open: (statePath: string) => EmulatedCard,
): Promise<number> {
  const statePath = stringOption(values, "state", true);
  const address = parseVpcdAddress(stringOption(values, "vpcd") ?? "");
  const card = open(statePath);
  const where = formatVpcdAddress(address);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`serving ${label} ${statePath} (ATR ${card.atr.toString("hex").toUpperCase()}) to vpcd ${where}`);
  let lastDisconnect = "";
  const link = serveCardOverVpcd(card, {
    ...address,
    trace: values.trace === true ? say : undefined,
    onEvent: (event) => {
      const line = describeEvent(event, where);
      if (!line) return;
      // While vpcd is down the same refusal repeats at every retry: print it once.
      if (event.type === "disconnected") {
        if (event.reason === lastDisconnect) return;
        lastDisconnect = event.reason;
      } else lastDisconnect = "";
      say(line);
    },
  });
  await untilStopSignal();
  await link.close();
  const stats = link.stats;
  say(`stopped: ${stats.apdus} APDUs in ${stats.sessions} reader session(s)`);
  return 0;
}

export const cardServe: Command = {
  name: "card serve",
  summary: "put an emulated My Number card into the PC/SC virtual reader (vpcd)",
  help: serveHelp("card serve", "an emulated My Number card (個人番号カード)", "from `citizen add`"),
  options: SERVE_OPTIONS,
  run: (values) => serve(values, "My Number card", openMyNumberCard),
};

/** A SIM state file from `sim create`, or a bare SIM-product JPKI-AP state (an applet without its UICC). */
function openSim(statePath: string): EmulatedCard {
  return isUiccStateFile(statePath) ? openUicc(statePath) : openSimAppletCard(statePath);
}

export const simServe: Command = {
  name: "sim serve",
  summary: "put an emulated SIM into the PC/SC virtual reader (vpcd)",
  help: serveHelp(
    "sim serve",
    "an emulated SIM (card manager, J-LIS security domain, JPKI applet)",
    "from `sim create`",
  ),
  options: SERVE_OPTIONS,
  run: (values) => serve(values, "SIM", openSim),
};

export const simCreate: Command = {
  name: "sim create",
  summary: "make a new SIM for a carrier (SIM state file)",
  help: `
Usage: jpki-mobile sim create [--data DIR] --carrier NAME [--json]

Makes a new SIM as the SIM maker ships it to a carrier: an ICCID carrying the issuing carrier's
issuer number, an EID, the carrier's card manager keys (derived from the carrier's master key in
DIR/carriers/), and the J-LIS security domain's P-256 key with its attestation certificate from the
SIM maker's CA (registered in the registry). Writes DIR/sims/<ICCID>.json (mode 0600). The JPKI
applet is not installed yet: the carrier installs it, J-LIS personalises it.

${DATA_HELP}
  --carrier NAME  the carrier the contract is with: ${CARRIERS.map((c) => `${c.name} (${c.kind}${c.host ? ` on ${c.host}` : ""})`).join(", ")}.
                  A light MVNO's SIM is its host MNO's: the ICCID names the host.
${JSON_HELP} { "simState", "iccid", "eid", "carrier", "brand", "simId", "attestationSerial" }

Example:
  jpki-mobile sim create --carrier sakura --json
`,
  options: { ...dataOption, ...jsonOption, carrier: { type: "string" } },
  async run(values) {
    const carrier = stringOption(values, "carrier", true);
    return withAuthority(values, "cli:sim-create", async (authority) => {
      const sim = await createSim(authority, { carrier });
      printResult(values.json === true, sim, (s) =>
        [
          `SIM ${s.iccid} made for ${s.brand}${s.brand === s.carrier ? "" : ` (a ${s.carrier} SIM)`}.`,
          `  SIM state file:  ${s.simState}`,
          `  EID:             ${s.eid}`,
          `  attestation:     certificate ${s.attestationSerial} from the SIM maker's CA`,
        ].join("\n"),
      );
      return 0;
    });
  },
};
