import { auditHead, verifyAudit } from "../../registry/audit.js";
import { type Command, printResult } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

export const auditVerify: Command = {
  name: "audit verify",
  summary: "check the hash chain of the audit log; name every entry modified, deleted, inserted or reordered",
  help: `
Usage: jpki-mobile audit verify [--data DIR] [--json]

Recomputes the audit log's hash chain and compares it with the stored head. Exits 0 when the log
is intact, 1 with one line per finding otherwise. Keep the printed head hash somewhere else (a
ticket, a notebook): a later run that prints a different hash for the same length means the log
was rewritten.

${DATA_HELP}
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption },
  async run(values) {
    return withAuthority(values, "cli:audit-verify", async (authority) => {
      const findings = await verifyAudit(authority.registry.db);
      const head = await auditHead(authority.registry.db);
      printResult(values.json === true, { ok: findings.length === 0, head, findings }, (r) =>
        r.ok
          ? `audit log intact: ${r.head.seq} entries, head ${r.head.hash}`
          : [
              `audit log damaged: ${r.findings.length} finding(s)`,
              ...r.findings.map((f) => `  entry ${f.seq}: ${f.kind}: ${f.message}`),
            ].join("\n"),
      );
      return findings.length === 0 ? 0 : 1;
    });
  },
};
