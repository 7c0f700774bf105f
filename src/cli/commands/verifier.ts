/**
 * `verifier add`: registers a verifier (署名検証者 / 利用者証明検証者) for OCSP and CRLs and prints
 * its token, which is shown this once (the registry keeps its SHA-256 only).
 */
import { addVerifier, type VerifierKind, verifierKinds } from "../../registry/verifiers.js";
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
