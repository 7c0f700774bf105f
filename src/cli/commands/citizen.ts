import { DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD, issueMyNumberCard } from "../../ra/card-issuance.js";
import { type Command, printResult, stringOption } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

export const citizenAdd: Command = {
  name: "citizen add",
  summary: "register a test resident and issue a My Number card (card state file)",
  help: `
Usage: jpki-mobile citizen add [--data DIR] --name NAME --birth YYYY-MM-DD --sex male|female|unknown
                               --address ADDRESS [--residence ADDRESS] [--auth-pin PIN]
                               [--sign-password PASSWORD] [--json]

Registers a resident (basic four attributes, address of record, residence) and issues a My Number
card: a signing certificate carrying the four attributes, a user-authentication certificate with no
personal data, their keys and PINs, written to a card state file (DIR/cards/<card id>.json, mode
0600) that the card emulator serves.

${DATA_HELP}
  --name NAME          full name as on the residence record (any Unicode, up to 100 characters)
  --birth DATE         birth date, YYYY-MM-DD (Meiji era or later, not in the future)
  --sex SEX            male, female or unknown (JPKI codes 1, 2, 3 also accepted)
  --address ADDRESS    address of record (住民票の住所), up to 200 characters
  --residence ADDRESS  where the person actually lives (居所), when it differs
  --auth-pin PIN       user-authentication PIN, 4 digits (default ${DEFAULT_AUTH_PIN})
  --sign-password PW   signing password, 6 to 16 of A-Z and 0-9 (default ${DEFAULT_SIGN_PASSWORD})
${JSON_HELP}

Example:
  jpki-mobile citizen add --name "山田 太郎" --birth 1985-04-02 --sex male \\
      --address "東京都千代田区霞が関2-1-2" --json
`,
  options: {
    ...dataOption,
    ...jsonOption,
    name: { type: "string" },
    birth: { type: "string" },
    sex: { type: "string" },
    address: { type: "string" },
    residence: { type: "string" },
    "auth-pin": { type: "string" },
    "sign-password": { type: "string" },
  },
  async run(values) {
    const citizen = {
      name: stringOption(values, "name", true),
      birth: stringOption(values, "birth", true),
      sex: stringOption(values, "sex", true),
      address: stringOption(values, "address", true),
      residence: stringOption(values, "residence"),
      authPin: stringOption(values, "auth-pin"),
      signPassword: stringOption(values, "sign-password"),
    };
    return withAuthority(values, "cli:citizen-add", async (authority) => {
      const card = await issueMyNumberCard(authority, citizen);
      printResult(values.json === true, card, (c) =>
        [
          `Citizen ${c.citizenId} registered; My Number card ${c.cardId} issued.`,
          `  card state file:        ${c.cardState}`,
          `  signing certificate:    ${c.signSerial}`,
          `  user-auth certificate:  ${c.authSerial}`,
          `  certificates valid to:  ${c.certificatesExpire}   card valid to: ${c.cardExpires}`,
        ].join("\n"),
      );
      return 0;
    });
  },
};
