/**
 * The municipal counter on the command line: `clerk add | list | disable | enable` (the clerk
 * accounts, src/municipality/clerks.ts) and `counter apply | unblock-pin` (a visit to the counter: the
 * My Number card on the counter's reader, the phone on the NFC terminal, J-LIS in process;
 * src/municipality/console.ts, src/ra/counter.ts). docs/counter.md describes the flows.
 */
import type { CardTransport } from "../../card/card.js";
import { InProcessTransport } from "../../card/in-process-transport.js";
import { openMyNumberCard } from "../../card/mynacard.js";
import { JpkiError } from "../../errors.js";
import {
  addClerk,
  authenticateClerk,
  type ClerkStatusChange,
  listClerks,
  setClerkStatus,
} from "../../municipality/clerks.js";
import {
  applyAtCounter,
  type CounterIdentityInput,
  type CounterStep,
  unblockPinAtCounter,
} from "../../municipality/console.js";
import { parseDocumentList } from "../../municipality/documents.js";
import { CounterTerminal } from "../../municipality/terminal.js";
import { JpkiApp } from "../../phone/app.js";
import { DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD } from "../../ra/card-issuance.js";
import { inProcessJlis } from "../../ra/jlis-client.js";
import type { Authority } from "../../server/authority.js";
import { type Command, type OptionValues, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";
import { openPhoneSim } from "./phone-sim.js";

export const clerkAdd: Command = {
  name: "clerk add",
  summary: "make a counter clerk account for a municipality and print its token",
  help: `
Usage: jpki-mobile clerk add --municipality CODE --name NAME [--label TEXT] [--data DIR] [--json]

Makes a clerk account bound to one municipality. The token is printed once and cannot be shown again
(the registry keeps its SHA-256 only): the clerk's console gives it with every counter command
(\`counter apply --clerk-token TOKEN\`). The municipality is registered with its first clerk; later
clerks of the same code must give the same name.

  --municipality CODE   the local government code (全国地方公共団体コード), 6 digits with the check
                        digit, e.g. 131016 for 千代田区
  --name NAME           the municipality's full name with its prefecture, e.g. 東京都千代田区: the
                        counter serves persons whose address of record starts with it
  --label TEXT          who the account is for (a clerk's name or a desk), for the audit log
${DATA_HELP}
${JSON_HELP}
`,
  options: {
    ...dataOption,
    ...jsonOption,
    municipality: { type: "string" },
    name: { type: "string" },
    label: { type: "string" },
  },
  async run(values) {
    const municipalityCode = stringOption(values, "municipality", true);
    const municipalityName = stringOption(values, "name", true);
    const label = stringOption(values, "label");
    return withAuthority(values, "cli:clerk", async (authority) => {
      const { clerk, token } = await addClerk(authority.registry.db, {
        municipalityCode,
        municipalityName,
        ...(label !== undefined ? { label } : {}),
        actor: "cli:clerk",
      });
      printResult(values.json === true, { ...clerk, token }, (c) =>
        [
          `Clerk ${c.id} of ${c.municipalityName} (${c.municipalityCode})${c.label ? `: ${c.label}` : ""}.`,
          `Token (shown once, keep it secret): ${c.token}`,
        ].join("\n"),
      );
      return 0;
    });
  },
};

export const clerkList: Command = {
  name: "clerk list",
  summary: "list the counter clerk accounts",
  help: `
Usage: jpki-mobile clerk list [--data DIR] [--json]

Every clerk account, oldest first: id, municipality, status (active, disabled), label.

${DATA_HELP}
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption },
  async run(values) {
    return withAuthority(values, "cli:clerk", async (authority) => {
      const clerks = await listClerks(authority.registry.db);
      printResult(values.json === true, clerks, (list) =>
        list.length === 0
          ? "No clerks."
          : list
              .map(
                (c) =>
                  `${c.id}  ${c.municipalityCode} ${c.municipalityName}  ${c.status.padEnd(8)} since ${c.createdAt}${c.label ? `  ${c.label}` : ""}`,
              )
              .join("\n"),
      );
      return 0;
    });
  },
};

const statusCommand = (to: "disabled" | "active"): Command => {
  const verb = to === "disabled" ? "disable" : "enable";
  return {
    name: `clerk ${verb}`,
    summary:
      to === "disabled" ? "refuse a clerk's token from now on" : "accept a disabled clerk's token again",
    help: `
Usage: jpki-mobile clerk ${verb} ID [--reason TEXT] [--data DIR] [--json]

${to === "disabled" ? "Disables a clerk account (ID as `clerk list` prints it): its token is refused from then on." : "Enables a disabled clerk account again, with the token it had."}
Exit 1 for an unknown ID or an account already ${to}.

  --reason TEXT   why, for the audit log
${DATA_HELP}
${JSON_HELP}
`,
    options: { ...dataOption, ...jsonOption, reason: { type: "string" } },
    positionals: { min: 1, max: 1, names: "ID" },
    async run(values, positionals) {
      return withAuthority(values, "cli:clerk", async (authority) => {
        const change = await setClerkStatus(authority.registry.db, positionals[0]!, to, {
          actor: "cli:clerk",
          reason: stringOption(values, "reason"),
        });
        printResult(
          values.json === true,
          change,
          (c: ClerkStatusChange) => `Clerk ${c.clerkId}: ${c.from} → ${c.to}.`,
        );
        return 0;
      });
    },
  };
};

export const clerkDisable = statusCommand("disabled");
export const clerkEnable = statusCommand("active");

/** The phone's SIM; when its carrier has not installed the JPKI applet yet, it does so over the air first. */
async function openSim(authority: Authority, statePath: string): Promise<InProcessTransport> {
  const phone = await openPhoneSim(authority, statePath);
  phone.stopRelay(); // at the counter, the terminal reaches the SIM, not the carrier
  return phone.transport;
}

/** The identity check the options ask for, with the card on the counter's reader. */
function identityInput(values: OptionValues, card: CardTransport): CounterIdentityInput {
  const identity = stringOption(values, "identity") ?? "card";
  const documents = stringOption(values, "documents");
  if (identity === "card") {
    if (documents !== undefined) throw new UsageError("--documents goes with --identity documents");
    return {
      method: "card-signature",
      card,
      signPassword: stringOption(values, "sign-password") ?? DEFAULT_SIGN_PASSWORD,
    };
  }
  if (identity !== "documents") throw new UsageError(`--identity is card or documents, not ${identity}`);
  if (documents === undefined)
    throw new UsageError("--identity documents needs --documents KIND[,KIND] (e.g. license)");
  return { method: "documents", card, documents: parseDocumentList(documents) };
}

const visitOptions = {
  ...dataOption,
  ...jsonOption,
  "clerk-token": { type: "string" },
  card: { type: "string" },
  sim: { type: "string" },
  identity: { type: "string" },
  documents: { type: "string" },
  "sign-password": { type: "string" },
} as const;

const IDENTITY_HELP = `  --clerk-token T        the clerk's token (\`clerk add\` printed it)
  --card CARD_STATE      the My Number card on the counter's reader (from \`citizen add\`)
  --sim SIM_STATE        the phone's SIM, tapped on the terminal (from \`sim create\`)
  --identity card        the card signs J-LIS's challenge after the signing password (default)
  --identity documents   the clerk saw identity documents, listed with --documents
  --documents LIST       comma-separated: one of my-number-card, license, driving-record, passport,
                         residence-card, special-permanent-resident, disability-handbook; or two of
                         health-insurance, pension-book, pension-certificate, student-id, employee-id
  --sign-password P      the card's signing password, typed on the PIN pad (default: ${DEFAULT_SIGN_PASSWORD})`;

const STEP_TEXT: Record<CounterStep, string> = {
  identity: "identity verified by J-LIS",
  "key-generation": "key pair generated on the SIM (J-LIS through the counter terminal), attested",
  examined: "application examined and the certificate issued",
  delivered: "certificate written to the SIM (J-LIS through the counter terminal)",
};

export const counterApply: Command = {
  name: "counter apply",
  summary: "apply at the municipal counter: identity check, key on the SIM, issuance, storage",
  help: `
Usage: jpki-mobile counter apply --clerk-token T --card CARD_STATE --sim SIM_STATE
                                 [--identity card|documents] [--documents LIST] [--sign-password P]
                                 [--application NUMBER] [--pin PIN] [--data DIR] [--json]

A visit to the counter (窓口申請): the clerk has J-LIS verify the person (the card's signature, or
documents seen face to face); the phone is tapped on the terminal and J-LIS generates the key pair on
the SIM through it, examines the application, issues the certificate and writes it to the SIM through
the terminal. Then the citizen sets the SIM's PIN in the phone. Only the municipality of the person's
address of record serves them. Prints the application number and status.

${IDENTITY_HELP}
  --application NUMBER   a postal application referred to the counter (its letter came back) that
                         this visit completes, for the SIM that application named
  --pin PIN              the SIM's user-authentication PIN, set in the phone afterwards: set on a SIM
                         that has none, checked on one that has (default: ${DEFAULT_AUTH_PIN})
${DATA_HELP}
${JSON_HELP}
`,
  options: { ...visitOptions, application: { type: "string" }, pin: { type: "string" } },
  async run(values) {
    const clerkToken = stringOption(values, "clerk-token", true);
    const cardPath = stringOption(values, "card", true);
    const simPath = stringOption(values, "sim", true);
    const continues = stringOption(values, "application");
    const json = values.json === true;
    return withAuthority(values, "cli:counter", async (authority) => {
      // The console logs the clerk in first: a wrong token stops the visit before any card is touched.
      const clerk = await authenticateClerk(authority.registry.db, clerkToken);
      const card = new InProcessTransport(openMyNumberCard(cardPath));
      const sim = await openSim(authority, simPath);
      try {
        const terminal = new CounterTerminal(clerk.municipalityCode);
        const { iccid, eid } = await terminal.tap(sim);
        const application = await applyAtCounter(authority, terminal, {
          clerkToken,
          identity: identityInput(values, card),
          ...(continues !== undefined ? { continues } : {}),
          onStep: (step) => {
            if (!json) process.stderr.write(`  ✓ ${STEP_TEXT[step]}\n`);
          },
        });
        terminal.release();
        // The phone leaves the terminal; the citizen chooses the PIN in it, never through the terminal.
        const app = new JpkiApp(
          { transport: sim, iccid, eid, carrier: "" },
          inProcessJlis(authority, () => {
            throw new JpkiError("internal", "the counter flow has no carrier relay");
          }),
        );
        const pin = await app.ensurePin(stringOption(values, "pin") ?? DEFAULT_AUTH_PIN);
        printResult(
          json,
          {
            applicationId: application.id,
            status: application.status,
            channel: application.channel,
            certificateSerial: application.certificateSerial,
            iccid,
            pin,
          },
          (a) =>
            `Application ${a.applicationId} (${a.channel}, at the counter): ${a.status}. Smartphone certificate ${a.certificateSerial} is on SIM ${a.iccid}; ${a.pin === "set" ? "its PIN is set" : "the SIM keeps its PIN"}.`,
        );
        return 0;
      } finally {
        await card.close();
        await sim.close();
      }
    });
  },
};

export const counterUnblockPin: Command = {
  name: "counter unblock-pin",
  summary: "reset a blocked SIM PIN at the municipal counter (暗証番号の初期化)",
  help: `
Usage: jpki-mobile counter unblock-pin --clerk-token T --card CARD_STATE --sim SIM_STATE --new-pin NNNN
                                       [--identity card|documents] [--documents LIST]
                                       [--sign-password P] [--data DIR] [--json]

After J-LIS verified the person, who must hold the SIM's valid smartphone certificate, J-LIS opens its
secure channel with the SIM through the counter terminal and resets the user-authentication PIN to
the one the citizen typed on the PIN pad, with a full try counter. The PIN travels only inside
J-LIS's channel. Audited.

${IDENTITY_HELP}
  --new-pin NNNN         the new user-authentication PIN, 4 digits
${DATA_HELP}
${JSON_HELP}
`,
  options: { ...visitOptions, "new-pin": { type: "string" } },
  async run(values) {
    const clerkToken = stringOption(values, "clerk-token", true);
    const cardPath = stringOption(values, "card", true);
    const simPath = stringOption(values, "sim", true);
    const newPin = stringOption(values, "new-pin", true);
    return withAuthority(values, "cli:counter", async (authority) => {
      // The console logs the clerk in first: a wrong token stops the visit before any card is touched.
      const clerk = await authenticateClerk(authority.registry.db, clerkToken);
      const card = new InProcessTransport(openMyNumberCard(cardPath));
      const sim = await openSim(authority, simPath);
      try {
        const terminal = new CounterTerminal(clerk.municipalityCode);
        await terminal.tap(sim);
        const result = await unblockPinAtCounter(authority, terminal, {
          clerkToken,
          identity: identityInput(values, card),
          newPin,
        });
        terminal.release();
        printResult(
          values.json === true,
          result,
          (r) =>
            `The user-authentication PIN of SIM ${r.iccid} (certificate ${r.certificateSerial}) is reset; the SIM accepts the new PIN, with 3 tries.`,
        );
        return 0;
      } finally {
        await card.close();
        await sim.close();
      }
    });
  },
};
