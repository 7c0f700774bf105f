import type { AppStep } from "../../phone/app.js";
import { PostalJpkiApp, type PostalStep } from "../../phone/postal.js";
import { DEFAULT_ACCESS_CODE_TTL_MS } from "../../ra/access-codes.js";
import { DEFAULT_AUTH_PIN } from "../../ra/card-issuance.js";
import { inProcessPostalJlis } from "../../ra/postal.js";
import type { Authority } from "../../server/authority.js";
import { type Command, type OptionValues, printResult, stringOption } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";
import { openPhoneSim } from "./phone-sim.js";
import { postOffice } from "./post.js";

const STEP_TEXT: Record<AppStep | PostalStep, string> = {
  "postal-request": "postal request examined; the access code is in the mail",
  nonce: "nonce received from J-LIS",
  "key-generation": "key pair generated on the SIM (J-LIS over the carrier's relay), attested",
  "card-signature": "application signed by the My Number card",
  "access-code": "access code and the SIM's attestation accepted; the certificate issued",
  submitted: "application examined and the certificate issued",
  delivered: "certificate written to the SIM (J-LIS over the carrier's relay)",
};

/** The JPKI app on the SIM of `--sim`, talking to J-LIS and the post office in process. */
async function withPostalApp(
  authority: Authority,
  values: OptionValues,
  prepare: boolean,
  body: (app: PostalJpkiApp) => Promise<number>,
): Promise<number> {
  const json = values.json === true;
  const phone = await openPhoneSim(authority, stringOption(values, "sim", true), { prepare });
  try {
    const app = new PostalJpkiApp(
      {
        transport: phone.transport,
        iccid: phone.state.iccid,
        eid: phone.state.eid,
        carrier: stringOption(values, "carrier") ?? phone.sim.carrier ?? phone.state.carrier,
      },
      inProcessPostalJlis(authority, postOffice(authority), () => phone.relay),
      (step) => {
        if (!json) process.stderr.write(`  ✓ ${STEP_TEXT[step]}\n`);
      },
    );
    return await body(app);
  } finally {
    phone.stopRelay();
  }
}

export const applyPostalRequest: Command = {
  name: "apply postal-request",
  summary: "apply by post: the form (basic 4 information and the SIM); J-LIS mails an access code",
  help: `
Usage: jpki-mobile apply postal-request --sim SIM_STATE --name NAME --birth YYYY-MM-DD
                                        --sex male|female|unknown --address ADDRESS
                                        [--carrier NAME] [--data DIR] [--json]

The postal application's first step (郵送申請), without a card signature: the basic 4 information
exactly as on the residence record, and the phone's SIM. J-LIS looks for the one resident with a
valid My Number card whose 4 attributes are all equal (a mismatch is refused without saying which
attribute differs), records the application (status awaiting-code) and sends the access code by
restricted-delivery mail (本人限定受取郵便) to the address of record. The code is valid for
${DEFAULT_ACCESS_CODE_TTL_MS / (24 * 3600_000)} days, works once, and 5 wrong attempts void it.

  --sim SIM_STATE      the phone's SIM (from \`sim create\`): ICCID, EID and carrier come from it
  --name NAME          full name as on the residence record
  --birth DATE         birth date, YYYY-MM-DD
  --sex SEX            male, female or unknown (JPKI codes 1, 2, 3 also accepted)
  --address ADDRESS    address of record (住民票の住所), as registered
  --carrier NAME       the contract's carrier when it is a light MVNO (default: the SIM's issuer)
${DATA_HELP}
${JSON_HELP} { "applicationId", "status", "trackingNumber", "codeExpiresAt", ... }

Next: the letter is delivered (\`jpki-mobile post deliver\`), then \`jpki-mobile apply access-code\`.

Example:
  jpki-mobile apply postal-request --sim .jpki/sims/8981900….json --name "山田 太郎" \\
      --birth 1985-04-02 --sex male --address "東京都千代田区霞が関2-1-2"
`,
  options: {
    ...dataOption,
    ...jsonOption,
    sim: { type: "string" },
    name: { type: "string" },
    birth: { type: "string" },
    sex: { type: "string" },
    address: { type: "string" },
    carrier: { type: "string" },
  },
  async run(values) {
    const form = {
      name: stringOption(values, "name", true),
      birth: stringOption(values, "birth", true),
      sex: stringOption(values, "sex", true),
      address: stringOption(values, "address", true),
    };
    stringOption(values, "sim", true);
    return withAuthority(values, "cli:apply-postal", (authority) =>
      withPostalApp(authority, values, false, async (app) => {
        const answer = await app.applyByPost(form);
        printResult(
          values.json === true,
          answer,
          (a) =>
            `Application ${a.applicationId}: ${a.status}. The access code is on its way by restricted-delivery mail ${a.trackingNumber} (valid until ${a.codeExpiresAt}).`,
        );
        return 0;
      }),
    );
  },
};

export const applyAccessCode: Command = {
  name: "apply access-code",
  summary: "apply by post: complete the application with the letter's access code, on the SIM named",
  help: `
Usage: jpki-mobile apply access-code NUMBER --sim SIM_STATE --code CODE [--pin PIN] [--data DIR] [--json]

The postal application's second step, in the JPKI app: the application number and the access code
from the restricted-delivery letter. J-LIS generates the key pair on the SIM (over the carrier's
relay) with the SIM's attestation; the code completes the application only together with that
attestation, and only on the SIM the postal request named. J-LIS issues the certificate and writes
it to the SIM; the SIM's PIN is then set, in the phone.

A mistyped code (16 characters, XXXX-XXXX-XXXX-XXXX; any case, spaces or dashes, O read as 0, I and L
as 1) is refused without counting; a wrong code counts, and the 5th voids it.

  NUMBER               the application number in the letter (AP-XXXX-XXXX-XXXX)
  --sim SIM_STATE      the phone's SIM, the one the postal request named
  --code CODE          the access code in the letter
  --pin PIN            the SIM's user-authentication PIN, 4 digits: set on a SIM that has none,
                       checked on one that has (default: ${DEFAULT_AUTH_PIN})
${DATA_HELP}
${JSON_HELP}
`,
  options: {
    ...dataOption,
    ...jsonOption,
    sim: { type: "string" },
    code: { type: "string" },
    pin: { type: "string" },
  },
  positionals: { min: 1, max: 1, names: "NUMBER" },
  async run(values, positionals) {
    const code = stringOption(values, "code", true);
    stringOption(values, "sim", true);
    return withAuthority(values, "cli:apply-access-code", (authority) =>
      withPostalApp(authority, values, true, async (app) => {
        const answer = await app.completeWithAccessCode(positionals[0]!, code);
        const pin = await app.ensurePin(stringOption(values, "pin") ?? DEFAULT_AUTH_PIN);
        printResult(
          values.json === true,
          { ...answer, iccid: app.sim.iccid, pin },
          (a) =>
            `Application ${a.applicationId}: ${a.status}. Smartphone certificate ${a.certificateSerial} is on SIM ${a.iccid}; ${a.pin === "set" ? "its PIN is set" : "the SIM keeps its PIN"}.`,
        );
        return 0;
      }),
    );
  },
};

/** The postal channel's `apply` subcommands, for a command table or an `apply` dispatcher. */
export const postalApplyCommands: readonly Command[] = [applyPostalRequest, applyAccessCode];
