/**
 * The link query for registered relying parties (DESIGN §4 flow 8): a relying party that knows a
 * citizen by a smartphone certificate which has since been superseded (a new phone, a new SIM, a
 * carrier change) asks J-LIS for the citizen's current one, so the account survives the change.
 *
 * J-LIS answers only when the citizen agreed: the application for the current certificate, signed
 * with the My Number card, carries `linkConsent` (docs/application-format.md). Without it, or when
 * the certificate asked about was not superseded (revoked for another reason, still valid, unknown),
 * the answer is the same "no link", so the query reveals nothing else. Each answer is audited with
 * the verifier that asked.
 */
import type { Kysely } from "kysely";
import { CrlReason } from "../pki/crl.js";
import { appendAudit } from "../registry/audit.js";
import { toBuffer } from "../registry/db.js";
import { normaliseSerial } from "../registry/issuance.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Verifier } from "../registry/verifiers.js";

export interface CertificateLink {
  /** The certificate asked about. */
  readonly superseded: string;
  /** The person's current smartphone user-authentication certificate. */
  readonly current: string;
  readonly certificate: Buffer;
}

/** The current certificate of the holder of superseded certificate `serial`, if the holder agreed. */
export async function linkedCertificate(
  db: Kysely<RegistrySchema>,
  serial: string,
  verifier: Pick<Verifier, "id">,
): Promise<CertificateLink | undefined> {
  const superseded = normaliseSerial(serial);
  const link = await findLink(db, superseded);
  await db.transaction().execute((trx) =>
    appendAudit(trx, {
      actor: `verifier:${verifier.id}`,
      action: "certificate.link-query",
      subject: superseded,
      details: { current: link?.current ?? null },
    }),
  );
  return link;
}

async function findLink(
  db: Kysely<RegistrySchema>,
  superseded: string,
): Promise<CertificateLink | undefined> {
  const old = await db
    .selectFrom("certificates")
    .select(["person_id", "kind", "status", "revocation_reason"])
    .where("serial", "=", superseded)
    .executeTakeFirst();
  if (
    !old?.person_id ||
    old.kind !== "phone-auth" ||
    old.status !== "revoked" ||
    old.revocation_reason !== CrlReason.superseded
  )
    return undefined;
  const current = await db
    .selectFrom("certificates")
    .innerJoin("applications", "applications.certificate_serial", "certificates.serial")
    .select(["certificates.serial", "certificates.der", "applications.evidence"])
    .where("certificates.person_id", "=", old.person_id)
    .where("certificates.kind", "=", "phone-auth")
    .where("certificates.status", "=", "issued")
    .orderBy("certificates.created_at", "desc")
    .executeTakeFirst();
  if (!current?.der) return undefined;
  const evidence = JSON.parse(current.evidence ?? "{}") as { linkConsent?: boolean };
  if (evidence.linkConsent !== true) return undefined;
  return { superseded, current: current.serial, certificate: toBuffer(current.der) };
}
