/**
 * `suspend`, `resume` and `revoke`: the lifecycle operations of support staff on one certificate
 * (DESIGN §4 flow 6), with the JPKI reason codes (JPKI-FACTS §3).
 */
import { CrlReason, type CrlReasonCode } from "../../pki/crl.js";
import { normaliseSerial } from "../../registry/issuance.js";
import {
  resumeCertificate,
  revokeCertificate,
  suspendCertificate,
  type TransitionResult,
} from "../../registry/lifecycle.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

/** Reasons an operator may give, with what JPKI means by them (JPKI-FACTS §3). */
const REVOCATION_REASONS: Record<string, { code: CrlReasonCode; meaning: string }> = {
  unspecified: { code: CrlReason.unspecified, meaning: "destroyed before delivery" },
  keyCompromise: { code: CrlReason.keyCompromise, meaning: "the key is compromised (lost, stolen)" },
  cACompromise: { code: CrlReason.cACompromise, meaning: "the CA is compromised" },
  affiliationChanged: { code: CrlReason.affiliationChanged, meaning: "the basic four attributes changed" },
  superseded: { code: CrlReason.superseded, meaning: "renewed, or issued on a new device" },
  cessationOfOperation: { code: CrlReason.cessationOfOperation, meaning: "no longer needed (the default)" },
};

const REASONS_HELP = Object.entries(REVOCATION_REASONS)
  .map(([name, { code, meaning }]) => `                      ${name.padEnd(21)} (${code}) ${meaning}`)
  .join("\n");

function reasonCode(text: string | undefined): CrlReasonCode {
  if (text === undefined) return CrlReason.cessationOfOperation;
  const byName = REVOCATION_REASONS[text];
  if (byName) return byName.code;
  const byCode = Object.values(REVOCATION_REASONS).find((r) => String(r.code) === text);
  if (byCode) return byCode.code;
  throw new UsageError(`unknown reason ${text}: choose ${Object.keys(REVOCATION_REASONS).join(", ")}`);
}

function invalidityDate(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime()))
    throw new UsageError(`--invalidity-date must be an ISO-8601 date or time: ${text}`);
  if (date.getTime() > Date.now()) throw new UsageError("--invalidity-date cannot be in the future");
  return date;
}

const render = (r: TransitionResult) =>
  `Certificate ${r.serial}: ${r.from} → ${r.to} (change ${r.changeSequence}).`;

const serialOf = (positionals: string[]) => normaliseSerial(positionals[0]!);

export const suspendCommand: Command = {
  name: "suspend",
  summary: "hold a certificate (lost phone or card): verifiers see it revoked, on hold",
  help: `
Usage: jpki-mobile suspend SERIAL [--data DIR] [--note TEXT] [--json]

Places a hold on a certificate (一時利用停止 for a phone, 一時保留 for a card): OCSP answers
"revoked, certificateHold" and the next CRL lists it. A phone certificate's hold can be lifted with
\`resume\` when the hold policy is releasable (the default); a card certificate's never.

${DATA_HELP}
  --note TEXT     why, for the audit log (e.g. "lost phone, hotline call 2026-11-26")
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, note: { type: "string" } },
  positionals: { min: 1, max: 1, names: "SERIAL" },
  async run(values, positionals) {
    return withAuthority(values, "cli:suspend", async (authority) => {
      const result = await suspendCertificate(authority.registry.db, serialOf(positionals), {
        actor: "cli:suspend",
        note: stringOption(values, "note"),
      });
      printResult(values.json === true, result, render);
      return 0;
    });
  },
};

export const resumeCommand: Command = {
  name: "resume",
  summary: "lift the hold on a phone certificate (after re-verification)",
  help: `
Usage: jpki-mobile resume SERIAL [--data DIR] [--note TEXT] [--json]

Lifts a hold placed with \`suspend\`: the certificate is good again for OCSP, and the next delta CRL
removes it (removeFromCRL). Refused for card certificates and when the hold policy is final.

${DATA_HELP}
  --note TEXT     why, for the audit log (e.g. "phone found; identity re-verified at the counter")
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, note: { type: "string" } },
  positionals: { min: 1, max: 1, names: "SERIAL" },
  async run(values, positionals) {
    return withAuthority(values, "cli:resume", async (authority) => {
      const result = await resumeCertificate(authority.registry.db, serialOf(positionals), {
        actor: "cli:resume",
        note: stringOption(values, "note"),
        policies: authority.policies,
      });
      printResult(values.json === true, result, render);
      return 0;
    });
  },
};

export const revokeCommand: Command = {
  name: "revoke",
  summary: "revoke a certificate for good, with a JPKI reason",
  help: `
Usage: jpki-mobile revoke SERIAL [--data DIR] [--reason REASON] [--invalidity-date DATE]
                          [--note TEXT] [--json]

Revokes a certificate (also a held one, keeping the hold's date). Final: nothing follows.

${DATA_HELP}
  --reason REASON      a name or code:
${REASONS_HELP}
  --invalidity-date D  when the key stopped being trustworthy, if known (ISO-8601)
  --note TEXT          why, for the audit log
${JSON_HELP}

Example:
  jpki-mobile revoke 4fd92d427d1e6211f3db25b847baa4b7 --reason keyCompromise --note "phone stolen"
`,
  options: {
    ...dataOption,
    ...jsonOption,
    reason: { type: "string" },
    "invalidity-date": { type: "string" },
    note: { type: "string" },
  },
  positionals: { min: 1, max: 1, names: "SERIAL" },
  async run(values, positionals) {
    const reason = reasonCode(stringOption(values, "reason"));
    const invalidity = invalidityDate(stringOption(values, "invalidity-date"));
    return withAuthority(values, "cli:revoke", async (authority) => {
      const result = await revokeCertificate(authority.registry.db, serialOf(positionals), {
        actor: "cli:revoke",
        reason,
        invalidityDate: invalidity,
        note: stringOption(values, "note"),
      });
      printResult(values.json === true, result, render);
      return 0;
    });
  },
};
