/**
 * `verifier add | list | disable | enable`: the registered verifiers (署名検証者 / 利用者証明検証者)
 * that get OCSP answers and CRLs. A token is printed once, at `add` (the registry keeps its SHA-256
 * only); `disable` refuses it from then on without losing the verifier's lookup counts.
 */
import {
  addVerifier,
  disableVerifier,
  enableVerifier,
  listVerifiers,
  type VerifierKind,
  type VerifierStatusChange,
  verifierKinds,
} from "../../registry/verifiers.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

export const verifierAdd: Command = {
  name: "verifier add",
  summary: "register a verifier for OCSP and CRLs and print its token",
  help: `
Usage: jpki-mobile verifier add --name NAME --kind auth|sign|both [--data DIR] [--json]

Registers a verifier (a relying party: 利用者証明検証者 for user-authentication certificates,
署名検証者 for signing certificates). Only registered verifiers get OCSP answers and CRLs, and
each lookup is counted for them. The token is printed once and cannot be shown again: send it as
\`Authorization: Bearer TOKEN\`, e.g.
  openssl ocsp -issuer auth-ca.pem -cert cert.pem -url http://127.0.0.1:8080/ocsp \\
    -header Authorization="Bearer TOKEN" -CAfile auth-ca.pem

  --name NAME     who the verifier is (for the ledger and the audit log)
  --kind KIND     auth: user-authentication certificates; sign: signing certificates; both
${DATA_HELP}
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, name: { type: "string" }, kind: { type: "string" } },
  async run(values) {
    const name = stringOption(values, "name", true);
    const kind = stringOption(values, "kind", true);
    if (!verifierKinds.includes(kind as VerifierKind))
      throw new UsageError(`--kind must be one of ${verifierKinds.join(", ")}`);
    return withAuthority(values, "cli:verifier", async (authority) => {
      const result = await addVerifier(authority.registry.db, {
        name,
        kind: kind as VerifierKind,
        actor: "cli:verifier",
      });
      printResult(values.json === true, result, (r) =>
        [
          `Registered verifier ${r.verifierId} (${kind}).`,
          `Token (shown once, keep it secret): ${r.token}`,
          "Send it as: Authorization: Bearer <token>",
        ].join("\n"),
      );
      return 0;
    });
  },
};

export const verifierList: Command = {
  name: "verifier list",
  summary: "list the registered verifiers with their status and lookup totals",
  help: `
Usage: jpki-mobile verifier list [--data DIR] [--json]

Lists every registered verifier, oldest first: id, name, kind (auth, sign, both), status (active,
disabled), when it was registered, and its lookups of all days (OCSP certificates answered, CRL
downloads) as the status servers have written them (every second, and at shutdown).

${DATA_HELP}
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption },
  async run(values) {
    return withAuthority(values, "cli:verifier", async (authority) => {
      const verifiers = await listVerifiers(authority.registry.db);
      printResult(values.json === true, verifiers, (list) =>
        list.length === 0
          ? "No verifiers."
          : list
              .map(
                (v) =>
                  `${v.id}  ${v.kind.padEnd(4)} ${v.status.padEnd(8)} since ${v.createdAt}  ocsp ${v.lookups.ocsp}  crl ${v.lookups.crl}  ${v.name}`,
              )
              .join("\n"),
      );
      return 0;
    });
  },
};

const renderChange = (r: VerifierStatusChange) =>
  `Verifier ${r.verifierId} (${r.name}): ${r.from} → ${r.to}.`;

const statusOptions = { ...dataOption, ...jsonOption, reason: { type: "string" } } as const;

/** The run of `verifier disable` and `verifier enable`: one status change, printed. */
function changeStatus(change: typeof disableVerifier): Command["run"] {
  return (values, positionals) =>
    withAuthority(values, "cli:verifier", async (authority) => {
      const result = await change(authority.registry.db, positionals[0]!, {
        actor: "cli:verifier",
        reason: stringOption(values, "reason"),
      });
      printResult(values.json === true, result, renderChange);
      return 0;
    });
}

export const verifierDisable: Command = {
  name: "verifier disable",
  summary: "refuse a verifier's token from now on (its lookup counts stay)",
  help: `
Usage: jpki-mobile verifier disable ID [--data DIR] [--reason TEXT] [--json]

Disables a registered verifier (ID as \`verifier list\` prints it): its OCSP requests are answered
\`unauthorized\` and its CRL downloads refused with 401. A running \`jpki-mobile start\` notices within
a second. \`verifier enable\` gives the same token back its access. Exit 1 for an unknown ID or a
verifier already disabled.

${DATA_HELP}
  --reason TEXT   why, for the audit log (e.g. "contract ended 2026-11-30")
${JSON_HELP}
`,
  options: statusOptions,
  positionals: { min: 1, max: 1, names: "ID" },
  run: changeStatus(disableVerifier),
};

export const verifierEnable: Command = {
  name: "verifier enable",
  summary: "accept a disabled verifier's token again",
  help: `
Usage: jpki-mobile verifier enable ID [--data DIR] [--reason TEXT] [--json]

Enables a disabled verifier again, with the token it had (a lost token needs a new registration,
\`verifier add\`, and the old one disabled). A running \`jpki-mobile start\` notices within a second.
Exit 1 for an unknown ID or a verifier already active.

${DATA_HELP}
  --reason TEXT   why, for the audit log
${JSON_HELP}
`,
  options: statusOptions,
  positionals: { min: 1, max: 1, names: "ID" },
  run: changeStatus(enableVerifier),
};
