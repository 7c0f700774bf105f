/**
 * `apply` (the online channel, end to end in one process) and `application show` (the status history
 * support staff and the citizen look up). The phone app (src/phone/app.ts) drives the SIM and the
 * card; J-LIS (src/ra) examines, issues and provisions; the carrier's OTA relay carries J-LIS's
 * secured commands to the SIM.
 */
import type { CardTransport } from "../../card/card.js";
import { InProcessTransport } from "../../card/in-process-transport.js";
import { openMyNumberCard } from "../../card/mynacard.js";
import { connectPcscCard } from "../../card/pcsc-transport.js";
import { JpkiError } from "../../errors.js";
import { type AppStep, JpkiApp } from "../../phone/app.js";
import { type ApplicationEvent, getApplication, parseApplicationNumber } from "../../ra/applications.js";
import { DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD } from "../../ra/card-issuance.js";
import { inProcessJlis } from "../../ra/jlis-client.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { applyPostalRequest } from "./apply-postal.js";
import { counterApply } from "./counter.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";
import { openPhoneSim } from "./phone-sim.js";

const STEP_TEXT: Record<AppStep, string> = {
  nonce: "nonce received from J-LIS",
  "key-generation": "key pair generated on the SIM (J-LIS over the carrier's relay), attested",
  "card-signature": "application signed by the My Number card",
  submitted: "application examined and the certificate issued",
  delivered: "certificate written to the SIM (J-LIS over the carrier's relay)",
};

async function openCard(values: Record<string, unknown>): Promise<CardTransport> {
  const reader = values["card-reader"];
  if (typeof reader === "string") return connectPcscCard({ reader });
  const file = values["card"];
  if (typeof file !== "string")
    throw new UsageError("give the My Number card: --card CARD_STATE or --card-reader NAME");
  return new InProcessTransport(openMyNumberCard(file));
}

const ONLINE_OPTIONS = {
  ...dataOption,
  ...jsonOption,
  channel: { type: "string" },
  card: { type: "string" },
  "card-reader": { type: "string" },
  sim: { type: "string" },
  "sign-password": { type: "string" },
  pin: { type: "string" },
  "link-consent": { type: "boolean" },
} as const;

export const applyCommand: Command = {
  name: "apply",
  summary: "apply online for the smartphone certificate: card signature, key on the SIM, delivery",
  help: `
Usage: jpki-mobile apply [--channel online] --card CARD_STATE --sim SIM_STATE [--data DIR]
                         [--sign-password P] [--pin NEW_PIN] [--link-consent] [--json]
       jpki-mobile apply --channel postal …    the same as \`apply postal-request\` (see its --help)
       jpki-mobile apply --channel counter …   the same as \`counter apply\` (see its --help)

The JPKI app's online application, end to end: J-LIS generates the key pair on the SIM (over the
SIM carrier's relay) with the SIM's attestation, the My Number card signs the application (CMS
SignedData, with the signing password), J-LIS examines it and issues the certificate, and writes it
to the SIM. Then the SIM's PIN is set, in the phone. Prints the application number and status.
With the policy keyGeneration = injected in the data directory's config.json, J-LIS makes the key
itself after the examination and writes it to the SIM with the certificate (no attestation step).

  --channel online       online (default); postal and counter take their own options, as above
  --card CARD_STATE      the My Number card (a state file from \`citizen add\`)
  --card-reader NAME     or a card in a PC/SC reader (e.g. "Virtual PCD 00 00" for \`card serve\`)
  --sim SIM_STATE        the phone's SIM (from \`sim create\`); the carrier installs the JPKI applet
                         on it first if it is missing
  --sign-password P      the card's signing password (default: ${DEFAULT_SIGN_PASSWORD}, as \`citizen add\` sets it)
  --pin PIN              the SIM's user-authentication PIN, 4 digits: set on a SIM that has none,
                         checked on one that has (default: ${DEFAULT_AUTH_PIN})
  --link-consent         let relying parties that know the citizen by an earlier smartphone
                         certificate find this one (the link query), so their accounts carry over
${DATA_HELP}
${JSON_HELP}
`,
  options: { ...ONLINE_OPTIONS, ...applyPostalRequest.options, ...counterApply.options },
  async run(values, positionals) {
    const channel = stringOption(values, "channel") ?? "online";
    const command = { online: undefined, postal: applyPostalRequest, counter: counterApply }[channel];
    if (command === undefined && channel !== "online")
      throw new UsageError(`unknown channel ${channel}: online, postal or counter`);
    // Each channel takes its own options only.
    const own = Object.keys(command?.options ?? ONLINE_OPTIONS);
    const stray = Object.keys(values).find((name) => name !== "channel" && !own.includes(name));
    if (stray) throw new UsageError(`--${stray} does not apply to --channel ${channel}`);
    if (command) return command.run(values, positionals);
    const json = values.json === true;
    return withAuthority(values, "cli:apply", async (authority) => {
      const phone = await openPhoneSim(authority, stringOption(values, "sim", true));
      const card = await openCard(values);
      try {
        const app = new JpkiApp(
          {
            transport: phone.transport,
            iccid: phone.state.iccid,
            eid: phone.state.eid,
            carrier: phone.sim.carrier ?? phone.state.carrier,
          },
          inProcessJlis(authority, () => phone.relay),
          (step) => {
            if (!json) process.stderr.write(`  ✓ ${STEP_TEXT[step]}\n`);
          },
        );
        const answer = await app.applyOnline({
          card,
          signPassword: stringOption(values, "sign-password") ?? DEFAULT_SIGN_PASSWORD,
          linkConsent: values["link-consent"] === true,
        });
        const pin = stringOption(values, "pin") ?? DEFAULT_AUTH_PIN;
        const pinState = await app.ensurePin(pin);
        printResult(
          json,
          { ...answer, iccid: phone.state.iccid, pin: pinState },
          (a) =>
            `Application ${a.applicationId}: ${a.status}. Smartphone certificate ${a.certificateSerial} is on SIM ${a.iccid}; ${a.pin === "set" ? "its PIN is set" : "the SIM keeps its PIN"}.`,
        );
        return 0;
      } finally {
        phone.stopRelay();
        await card.close();
      }
    });
  },
};

const renderEvent = (e: ApplicationEvent) =>
  `  ${e.at}  ${e.status.padEnd(11)} ${e.actor}${e.reason ? `: ${e.reason}` : ""}`;

export const applicationShow: Command = {
  name: "application show",
  summary: "an application's status and history, by its number",
  help: `
Usage: jpki-mobile application show NUMBER [--data DIR] [--json]

Shows an application (AP-XXXX-XXXX-XXXX; any case, O read as 0, I and L as 1): its channel, its
status, the certificate issued for it, and every status it went through with who moved it and why.

${DATA_HELP}
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption },
  positionals: { min: 1, max: 1, names: "NUMBER" },
  async run(values, positionals) {
    const id = parseApplicationNumber(positionals[0]!);
    return withAuthority(values, "cli:application", async (authority) => {
      const application = await getApplication(authority.registry.db, id);
      if (!application) throw new JpkiError("not-found", `no application ${id}`);
      printResult(values.json === true, application, (a) =>
        [
          `Application ${a.id} (${a.channel}): ${a.status}${a.failureReason ? ` — ${a.failureReason}` : ""}`,
          ...(a.certificateSerial ? [`Certificate: ${a.certificateSerial}`] : []),
          ...(a.iccid ? [`SIM: ${a.iccid}`] : []),
          "History:",
          ...a.history.map(renderEvent),
        ].join("\n"),
      );
      return 0;
    });
  },
};
