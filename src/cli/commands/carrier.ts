/**
 * `carrier event` and `carrier outbox`: a carrier reports what happened to one of its SIMs to J-LIS
 * (src/mno/carrier-events.ts, src/ra/carrier-events.ts). The event is signed and stored in the
 * carrier's outbox, then delivered; J-LIS revokes the SIM's smartphone certificates at once. In the
 * sandbox both parties share the data directory, so the carrier's event key is enrolled with J-LIS on
 * first use; a split deployment enrols it once, by its operators.
 */
import { isValidIccid } from "../../card/uicc/identity.js";
import { CARRIER_EVENT_KINDS, type CarrierEventKind } from "../../mno/carrier-events.js";
import { CARRIERS, findCarrier } from "../../mno/carriers.js";
import { compatibilityList } from "../../mno/compatibility.js";
import { CarrierEventOutbox, httpEventSender, type OutboxEntry } from "../../mno/event-outbox.js";
import { reportCarrierEvent } from "../../ra/carrier-events.js";
import { createCarrierServer } from "../../server/carrier-api.js";
import { startPeriodic } from "../../util/periodic.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import {
  DATA_HELP,
  dataDir,
  dataOption,
  JSON_HELP,
  jsonOption,
  portOption,
  untilStopSignal,
  withAuthority,
} from "./options.js";

function carrierOption(value: string | undefined): string {
  if (value === undefined)
    throw new UsageError(`--carrier is required: ${CARRIERS.map((c) => c.name).join(", ")}`);
  return findCarrier(value).name;
}

export const carrierEvent: Command = {
  name: "carrier event",
  summary: "a carrier reports a port-out, SIM swap, deactivation or eSIM deletion to J-LIS",
  help: `
Usage: jpki-mobile carrier event --carrier NAME --kind KIND --iccid ICCID [--not-requested]
                                 [--data DIR] [--json]

The carrier signs the event with its own key, stores it in its outbox and delivers it to J-LIS,
which revokes the smartphone certificates on that SIM (CRL reason cessationOfOperation) and marks
the SIM. J-LIS applies each event once, however often it is delivered; an event J-LIS cannot reach
stays in the outbox and leaves at the next delivery (\`jpki-mobile start\` delivers every 10 s).

${DATA_HELP}
  --carrier NAME     the reporting carrier: the SIM's issuer, or a light MVNO on its SIMs
                     (${CARRIERS.map((c) => c.name).join(", ")})
  --kind KIND        ${CARRIER_EVENT_KINDS.join(" | ")}
  --iccid ICCID      the SIM
  --not-requested    a SIM swap the subscriber did not ask for (recorded as a fraud)
${JSON_HELP} { "event": { "id", "carrier", "kind", "iccid", "occurredAt" }, "state", "simStatus", "revoked" }

Example:
  jpki-mobile carrier event --carrier sakura --kind port-out --iccid 8981900000000000001
`,
  options: {
    ...dataOption,
    ...jsonOption,
    carrier: { type: "string" },
    kind: { type: "string" },
    iccid: { type: "string" },
    "not-requested": { type: "boolean" },
  },
  async run(values) {
    const carrier = carrierOption(stringOption(values, "carrier"));
    const kind = stringOption(values, "kind");
    if (!kind || !(CARRIER_EVENT_KINDS as readonly string[]).includes(kind))
      throw new UsageError(`--kind must be one of ${CARRIER_EVENT_KINDS.join(", ")}`);
    const iccid = stringOption(values, "iccid");
    if (!iccid || !isValidIccid(iccid))
      throw new UsageError("--iccid must be a SIM's ICCID (19 digits, 8981...)");
    if (values["not-requested"] === true && kind !== "sim-swap")
      throw new UsageError("--not-requested applies to a SIM swap only");
    return withAuthority(values, `carrier:${carrier}`, async (authority) => {
      const { event, entry, acknowledgement } = await reportCarrierEvent(
        authority,
        carrier,
        kind as CarrierEventKind,
        iccid,
        kind === "sim-swap" ? { requestedBySubscriber: values["not-requested"] !== true } : {},
      );
      const result = {
        event,
        state: entry.state,
        lastError: entry.lastError,
        simStatus: acknowledgement?.simStatus,
        revoked: acknowledgement?.revoked,
      };
      printResult(values.json === true, result, () =>
        acknowledgement
          ? `${carrier}: ${kind} of SIM ${iccid} reported to J-LIS (event ${event.id}). SIM is now ${acknowledgement.simStatus}; revoked: ${acknowledgement.revoked?.length ? acknowledgement.revoked.join(", ") : "none"}.`
          : `${carrier}: ${kind} of SIM ${iccid} recorded (event ${event.id}) but ${entry.state}: ${entry.lastError}`,
      );
      return acknowledgement ? 0 : 1;
    });
  },
};

const renderEntry = (e: OutboxEntry) =>
  `  ${e.event.occurredAt}  ${e.state.padEnd(9)} ${e.event.kind.padEnd(20)} ${e.event.iccid}  ${e.event.id}` +
  (e.lastError ? `  (${e.attempts} attempts: ${e.lastError})` : "");

export const carrierOutbox: Command = {
  name: "carrier outbox",
  summary: "the events a carrier sent or still has to send to J-LIS",
  help: `
Usage: jpki-mobile carrier outbox --carrier NAME [--data DIR] [--json]

Lists the carrier's events, oldest first, with their state: pending (waiting for J-LIS), delivered,
or refused (J-LIS will never take it: the reason says why).

${DATA_HELP}
  --carrier NAME    ${CARRIERS.map((c) => c.name).join(", ")}
${JSON_HELP} [{ "event", "state", "attempts", "lastError" }]
`,
  options: { ...dataOption, ...jsonOption, carrier: { type: "string" } },
  async run(values) {
    const carrier = carrierOption(stringOption(values, "carrier"));
    // The carrier's own outbox: no J-LIS key or registry is opened to read it.
    const entries = CarrierEventOutbox.open(dataDir(values), carrier).entries();
    printResult(values.json === true, entries, (list) =>
      list.length === 0
        ? `${carrier} has sent no event.`
        : [`${carrier}'s events:`, ...list.map(renderEntry)].join("\n"),
    );
    return 0;
  },
};

export const supportCompatibility: Command = {
  name: "support compatibility",
  summary: "which carriers and SIM kinds carry the JPKI applet, and who delivers over the air",
  help: `
Usage: jpki-mobile support compatibility [--json]

The compatibility list support staff read out (also at GET /api/support/compatibility): for each
carrier and SIM kind, whether the JPKI applet can be stored, which carrier installs it and carries
J-LIS's delivery (a light MVNO's host), and the channels to apply through.

${JSON_HELP} [{ "carrier", "displayName", "kind", "simKind", "jpkiApplet", "otaBy", "channels", "note" }]
`,
  options: { ...jsonOption },
  async run(values) {
    printResult(values.json === true, compatibilityList(), (list) =>
      list
        .map(
          (e) =>
            `${e.displayName.padEnd(24)} ${e.kind.padEnd(10)} ${e.simKind.padEnd(8)} ` +
            `${e.jpkiApplet ? "JPKI ✓" : "JPKI ✗"}  OTA by ${e.otaBy.padEnd(7)} ${e.note}`,
        )
        .join("\n"),
    );
    return 0;
  },
};

const DEFAULT_CARRIER_PORT = 8070;

export const carrierServe: Command = {
  name: "carrier serve",
  summary: "run one carrier in a process of its own: its OTA gateway, SIM status API and events to J-LIS",
  help: `
Usage: jpki-mobile carrier serve --carrier NAME [--jlis URL] [--every SECONDS] [--data DIR]
                                 [--port N] [--host H] [--json]

One carrier as a process of its own, apart from J-LIS: its OTA gateway (J-LIS submits scripts, the
phones pull them), its SIM status API, and the delivery of its events to J-LIS. It reads only the
carrier's own files in the data directory (DATA/carriers/NAME: its SIM inventory, its outbox, its
keys), never J-LIS's registry. J-LIS uses it when the data directory's config.json says where:
"carriers": { "NAME": { "url": "http://127.0.0.1:8070" } }. Prints its URL; runs until Ctrl-C or
SIGTERM. The API is at /api/mno (docs/carriers.md), health at /healthz.

${DATA_HELP}
  --carrier NAME    a carrier that issues SIMs (${CARRIERS.filter((c) => c.issuerNumber)
    .map((c) => c.name)
    .join(", ")}); a light MVNO's SIMs are its host's
  --jlis URL        J-LIS's server, where the carrier's events go (default: events stay in the outbox)
  --every SECONDS   how often the outbox is delivered (default 10)
  --port N          port to listen on (default ${DEFAULT_CARRIER_PORT}; 0 picks a free one)
  --host H          address to listen on (default 127.0.0.1)
${JSON_HELP} the first line: { "url", "carrier" }
`,
  options: {
    ...dataOption,
    ...jsonOption,
    carrier: { type: "string" },
    jlis: { type: "string" },
    every: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
  },
  async run(values) {
    const carrier = findCarrier(carrierOption(stringOption(values, "carrier")));
    if (!carrier.issuerNumber)
      throw new UsageError(
        `${carrier.name} issues no SIMs: its SIMs are ${carrier.host}'s, served by ${carrier.host}`,
      );
    const port = portOption(stringOption(values, "port"), DEFAULT_CARRIER_PORT);
    const every = Number(stringOption(values, "every") ?? "10");
    if (!(every > 0)) throw new UsageError("--every must be a positive number of seconds");
    const jlis = stringOption(values, "jlis");
    const dir = dataDir(values);
    const server = createCarrierServer(dir, carrier.name);
    const stopped = untilStopSignal();
    const url = await server.listen(port, stringOption(values, "host") ?? "127.0.0.1");
    const events = jlis
      ? startPeriodic(
          () => CarrierEventOutbox.open(dir, carrier.name).deliver(httpEventSender(jlis)),
          every * 1000,
          (error) => process.stderr.write(`delivering events to J-LIS failed: ${String(error)}\n`),
        )
      : undefined;
    // One line, so that a supervisor reads the URL from the first line.
    process.stdout.write(
      values.json === true
        ? `${JSON.stringify({ url, carrier: carrier.name })}\n`
        : `${carrier.displayName} serves at ${url}\n`,
    );
    await stopped;
    await events?.stop();
    await server.close();
    return 0;
  },
};

export const carrierCommands: readonly Command[] = [
  carrierEvent,
  carrierOutbox,
  carrierServe,
  supportCompatibility,
];
