import { JpkiError } from "../../errors.js";
import { parseCertificate, renderName } from "../../pki/certificate.js";
import { pemEncode } from "../../pki/pem.js";
import { type CertificateRecord, getCertificate, listCertificates } from "../../registry/issuance.js";
import { type CertificateKind, type CertificateStatus, certificateKinds } from "../../registry/schema.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

const certificateStatuses: readonly CertificateStatus[] = [
  "pending",
  "issued",
  "failed",
  "suspended",
  "revoked",
  "expired",
];

function summary(record: CertificateRecord) {
  const subject = record.der ? renderName(parseCertificate(record.der).subjectDer) : null;
  return {
    serial: record.serial,
    issuer: record.issuer,
    kind: record.kind,
    medium: record.medium,
    status: record.status,
    subject,
    notBefore: record.notBefore,
    notAfter: record.notAfter,
    shard: record.shard,
    personId: record.personId,
    cardId: record.cardId,
    parentSerial: record.parentSerial,
    failureReason: record.failureReason,
  };
}

export const certList: Command = {
  name: "cert list",
  summary: "list the certificates in the registry",
  help: `
Usage: jpki-mobile cert list [--data DIR] [--kind KIND] [--status STATUS] [--limit N] [--json]

${DATA_HELP}
  --kind KIND      only this kind: ${certificateKinds.join(", ")}
  --status STATUS  only this status: ${certificateStatuses.join(", ")}
  --limit N        at most N certificates (default 1000)
${JSON_HELP}
`,
  options: {
    ...dataOption,
    ...jsonOption,
    kind: { type: "string" },
    status: { type: "string" },
    limit: { type: "string" },
  },
  async run(values) {
    const kind = stringOption(values, "kind");
    const status = stringOption(values, "status");
    if (kind && !certificateKinds.includes(kind as CertificateKind))
      throw new UsageError(`unknown kind ${kind}`);
    if (status && !certificateStatuses.includes(status as CertificateStatus))
      throw new UsageError(`unknown status ${status}`);
    const limit = Number(stringOption(values, "limit") ?? 1000);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError("--limit must be a positive integer");
    return withAuthority(values, "cli:cert-list", async (authority) => {
      const items: ReturnType<typeof summary>[] = [];
      let after: string | undefined;
      do {
        const page = await listCertificates(
          authority.registry.db,
          { kind: kind as CertificateKind | undefined, status: status as CertificateStatus | undefined },
          { limit: Math.min(1000, limit - items.length), after },
        );
        items.push(...page.items.map(summary));
        after = page.next;
      } while (after && items.length < limit);
      printResult(values.json === true, items, (list) =>
        list.length === 0
          ? "No certificates."
          : list
              .map(
                (c) =>
                  `${c.serial}  ${c.kind.padEnd(15)} ${c.status.padEnd(8)} until ${c.notAfter}  ${c.subject ?? ""}`,
              )
              .join("\n"),
      );
      return 0;
    });
  },
};

export const certShow: Command = {
  name: "cert show",
  summary: "show one certificate by serial number",
  help: `
Usage: jpki-mobile cert show SERIAL [--data DIR] [--pem] [--json]

SERIAL is hexadecimal as \`cert list\` prints it (colons and 0x are accepted).

${DATA_HELP}
  --pem           print the certificate as PEM (pipe it to \`openssl x509 -text -noout\`)
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, pem: { type: "boolean" } },
  positionals: { min: 1, max: 1, names: "SERIAL" },
  async run(values, positionals) {
    const serial = positionals[0]!;
    return withAuthority(values, "cli:cert-show", async (authority) => {
      const record = await getCertificate(authority.registry.db, serial);
      if (!record)
        throw new JpkiError(
          "not-found",
          `no certificate with serial ${serial} (see \`jpki-mobile cert list\`)`,
        );
      if (values.pem) {
        if (!record.der)
          throw new JpkiError(
            "not-found",
            `certificate ${record.serial} was never signed (status ${record.status})`,
          );
        process.stdout.write(pemEncode(record.der));
        return 0;
      }
      const info = summary(record);
      printResult(values.json === true, { ...info, der: record.der?.toString("base64") ?? null }, (c) =>
        Object.entries(c)
          .filter(([key, value]) => key !== "der" && value !== null)
          .map(([key, value]) => `${key.padEnd(13)} ${value}`)
          .join("\n"),
      );
      return 0;
    });
  },
};
