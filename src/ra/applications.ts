/**
 * Applications for a smartphone certificate (スマートフォン用電子証明書の発行申請), whatever the
 * channel: each gets a number the citizen and support staff quote, a current status and the history
 * of every status it went through, with the reason and who moved it. Every change is audited in its
 * own transaction, like every other registry change.
 *
 *   received ─────────────────────▶ verified ──▶ issued ──▶ delivering ──▶ delivered
 *       │  (postal)                    ▲  ▲
 *       ├──▶ awaiting-code ────────────┘  │
 *       │        │                        │
 *       │        └──▶ referred-to-counter ┘
 *       │                  │
 *       └──────────────────┴──▶ failed (with the reason), from every state but delivered
 *
 * `received`: the channel accepted the request for examination; `verified`: the applicant and the SIM
 * are proven (signature, attestation, carrier); `issued`: the CA signed; `delivering`: provisioning
 * to the SIM started; `delivered`: the SIM holds the certificate. `failed` is final; a refused
 * application (forged, replayed, policy) is failed with the refusal as its reason.
 *
 * The postal channel (src/ra/postal.ts) adds two: `awaiting-code`, the restricted-delivery mail with
 * the access code is out and the code, with the SIM's attestation, verifies the application;
 * `referred-to-counter`, the mail came back (the person does not live at the address of record) and
 * the municipal counter verifies the person instead.
 */
import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { appendAudit, canonicalJson } from "../registry/audit.js";
import { type BulkColumn, bulkInsert, column } from "../registry/bulk.js";
import { isoTime } from "../registry/db.js";
import type { ApplicationsTable, RegistrySchema } from "../registry/schema.js";

export type ApplicationChannelName = ApplicationsTable["channel"];
export type ApplicationStatus = ApplicationsTable["status"];

const NEXT: Record<ApplicationStatus, readonly ApplicationStatus[]> = {
  received: ["verified", "awaiting-code", "failed"],
  "awaiting-code": ["verified", "referred-to-counter", "failed"],
  "referred-to-counter": ["verified", "failed"],
  verified: ["issued", "failed"],
  issued: ["delivering", "delivered", "failed"],
  delivering: ["delivered", "failed"],
  delivered: [],
  failed: [],
};

export interface ApplicationEvent {
  readonly status: ApplicationStatus;
  readonly reason: string | null;
  readonly actor: string;
  readonly at: string;
}

export interface ApplicationRecord {
  /** The application number, e.g. `AP-7KQ2-M9XD-3F8A`. */
  readonly id: string;
  readonly channel: ApplicationChannelName;
  readonly status: ApplicationStatus;
  readonly personId: string | null;
  readonly iccid: string | null;
  readonly certificateSerial: string | null;
  readonly failureReason: string | null;
  readonly evidence: Record<string, unknown>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** Crockford's base32: no I, L, O, U, so a number read aloud over the phone is not misheard. */
export const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A new application number: `AP-` and 12 base32 characters (60 random bits) in groups of four. */
export function newApplicationNumber(): string {
  const bytes = randomBytes(8);
  let value = bytes.readBigUInt64BE() >> 4n;
  let text = "";
  for (let i = 0; i < 12; i++) {
    text = CROCKFORD[Number(value & 31n)] + text;
    value >>= 5n;
  }
  return `AP-${text.slice(0, 4)}-${text.slice(4, 8)}-${text.slice(8)}`;
}

const NUMBER_PATTERN = /^AP-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

/** Reads an application number as a person may type it (any case, O for 0, I and L for 1). */
export function parseApplicationNumber(text: string): string {
  const normalised = text
    .trim()
    .toUpperCase()
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1")
    .replace(/^AP(?!-)/, "AP-");
  if (!NUMBER_PATTERN.test(normalised))
    throw new JpkiError(
      "bad-input",
      `${JSON.stringify(text)} is not an application number (AP-XXXX-XXXX-XXXX)`,
    );
  return normalised;
}

export interface NewApplication {
  readonly channel: ApplicationChannelName;
  readonly personId?: string | null;
  readonly iccid?: string | null;
  readonly evidence?: Record<string, unknown>;
  readonly actor: string;
  readonly id?: string;
  readonly now?: Date;
}

/** Records a new application as `received`, inside the caller's transaction. */
export async function createApplication(
  trx: Kysely<RegistrySchema>,
  application: NewApplication,
): Promise<ApplicationRecord> {
  const at = isoTime(application.now);
  const row: ApplicationsTable = {
    id: application.id ?? newApplicationNumber(),
    channel: application.channel,
    status: "received",
    person_id: application.personId ?? null,
    iccid: application.iccid ?? null,
    certificate_serial: null,
    failure_reason: null,
    evidence: canonicalJson(application.evidence ?? {}),
    created_at: at,
    updated_at: at,
  };
  await trx.insertInto("applications").values(row).execute();
  await trx
    .insertInto("application_events")
    .values({ application_id: row.id, status: "received", reason: null, actor: application.actor, at })
    .execute();
  await appendAudit(trx, {
    actor: application.actor,
    action: "application.received",
    subject: row.id,
    details: { channel: row.channel, personId: row.person_id, iccid: row.iccid },
  });
  return toRecord(row);
}

const APPLICATION_COLUMNS: readonly BulkColumn[] = [
  column("id"),
  column("channel"),
  column("status"),
  column("person_id"),
  column("iccid"),
  column("certificate_serial"),
  column("failure_reason"),
  column("evidence"),
  column("created_at"),
  column("updated_at"),
];
const EVENT_COLUMNS: readonly BulkColumn[] = [
  column("application_id"),
  column("status"),
  column("reason"),
  column("actor"),
  column("at"),
];

/**
 * Records applications already examined as `verified` in one go, inside the caller's transaction:
 * the same rows, history (received, then verified) and audit entries as createApplication followed
 * by advanceApplication, in one statement per table, for the RA's batches.
 */
export async function recordVerifiedApplications(
  trx: Kysely<RegistrySchema>,
  applications: readonly (NewApplication & { readonly id: string })[],
): Promise<ApplicationRecord[]> {
  if (applications.length === 0) return [];
  const rows = applications.map((a): ApplicationsTable => {
    const at = isoTime(a.now);
    return {
      id: a.id,
      channel: a.channel,
      status: "verified",
      person_id: a.personId ?? null,
      iccid: a.iccid ?? null,
      certificate_serial: null,
      failure_reason: null,
      evidence: canonicalJson(a.evidence ?? {}),
      created_at: at,
      updated_at: at,
    };
  });
  await bulkInsert(
    trx,
    "applications",
    APPLICATION_COLUMNS,
    rows.map((r) => APPLICATION_COLUMNS.map((c) => r[c.name as keyof ApplicationsTable])),
  );
  await bulkInsert(
    trx,
    "application_events",
    EVENT_COLUMNS,
    applications.flatMap((a, i) => [
      [a.id, "received", null, a.actor, rows[i]!.created_at],
      [a.id, "verified", null, a.actor, rows[i]!.created_at],
    ]),
  );
  await appendAudit(
    trx,
    applications.flatMap((a, i) => [
      {
        actor: a.actor,
        action: "application.received",
        subject: a.id,
        details: { channel: a.channel, personId: rows[i]!.person_id, iccid: rows[i]!.iccid },
      },
      { actor: a.actor, action: "application.verified", subject: a.id, details: { from: "received" } },
    ]),
  );
  return rows.map(toRecord);
}

/**
 * Moves `verified` applications to `issued` with their certificates, inside the caller's transaction
 * (the one that stores the certificates), as advanceApplication does one by one.
 */
export async function markApplicationsIssued(
  trx: Kysely<RegistrySchema>,
  issued: readonly { readonly id: string; readonly certificateSerial: string }[],
  actor: string,
  now?: Date,
): Promise<ApplicationRecord[]> {
  if (issued.length === 0) return [];
  const at = isoTime(now);
  for (const { id, certificateSerial } of issued) {
    const result = await trx
      .updateTable("applications")
      .set({ status: "issued", certificate_serial: certificateSerial, updated_at: at })
      .where("id", "=", id)
      .where("status", "=", "verified")
      .executeTakeFirst();
    if (result.numUpdatedRows !== 1n)
      throw new JpkiError("conflict", `application ${id} is not verified; it cannot become issued`);
  }
  await bulkInsert(
    trx,
    "application_events",
    EVENT_COLUMNS,
    issued.map(({ id }) => [id, "issued", null, actor, at]),
  );
  await appendAudit(
    trx,
    issued.map(({ id, certificateSerial }) => ({
      actor,
      action: "application.issued",
      subject: id,
      details: { from: "verified", certificateSerial },
    })),
  );
  const rows = await trx
    .selectFrom("applications")
    .selectAll()
    .where(
      "id",
      "in",
      issued.map((i) => i.id),
    )
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  return issued.map(({ id }) => toRecord(byId.get(id)!));
}

export interface ApplicationChange {
  readonly actor: string;
  /** Why (a failure's reason, a note). */
  readonly reason?: string;
  readonly personId?: string;
  readonly iccid?: string;
  readonly certificateSerial?: string;
  /** Merged into the recorded evidence. */
  readonly evidence?: Record<string, unknown>;
  readonly now?: Date;
}

/**
 * Moves an application to `to` inside the caller's transaction: refused with a clear error when the
 * application is unknown or the move is not one the diagram allows (a failed application stays failed).
 */
export async function advanceApplication(
  trx: Kysely<RegistrySchema>,
  id: string,
  to: ApplicationStatus,
  change: ApplicationChange,
): Promise<ApplicationRecord> {
  const row = await trx.selectFrom("applications").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) throw new JpkiError("not-found", `no application ${id}`);
  if (!NEXT[row.status].includes(to))
    throw new JpkiError("conflict", `application ${id} is ${row.status}; it cannot become ${to}`);
  const at = isoTime(change.now);
  const evidence = change.evidence
    ? canonicalJson({ ...(JSON.parse(row.evidence) as object), ...change.evidence })
    : row.evidence;
  const updated: ApplicationsTable = {
    ...row,
    status: to,
    person_id: change.personId ?? row.person_id,
    iccid: change.iccid ?? row.iccid,
    certificate_serial: change.certificateSerial ?? row.certificate_serial,
    failure_reason: to === "failed" ? (change.reason ?? "unspecified") : row.failure_reason,
    evidence,
    updated_at: at,
  };
  const result = await trx
    .updateTable("applications")
    .set({
      status: updated.status,
      person_id: updated.person_id,
      iccid: updated.iccid,
      certificate_serial: updated.certificate_serial,
      failure_reason: updated.failure_reason,
      evidence: updated.evidence,
      updated_at: at,
    })
    .where("id", "=", id)
    .where("status", "=", row.status)
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n)
    throw new JpkiError("conflict", `application ${id} changed while it was being moved to ${to}`);
  await trx
    .insertInto("application_events")
    .values({ application_id: id, status: to, reason: change.reason ?? null, actor: change.actor, at })
    .execute();
  await appendAudit(trx, {
    actor: change.actor,
    action: `application.${to}`,
    subject: id,
    details: {
      from: row.status,
      ...(change.reason !== undefined ? { reason: change.reason } : {}),
      ...(change.certificateSerial !== undefined ? { certificateSerial: change.certificateSerial } : {}),
    },
  });
  return toRecord(updated);
}

/** An application and its status history, oldest first; undefined when there is none. */
export async function getApplication(
  db: Kysely<RegistrySchema>,
  id: string,
): Promise<(ApplicationRecord & { history: ApplicationEvent[] }) | undefined> {
  const row = await db.selectFrom("applications").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) return undefined;
  const events = await db
    .selectFrom("application_events")
    .select(["status", "reason", "actor", "at"])
    .where("application_id", "=", id)
    .orderBy("id")
    .execute();
  return { ...toRecord(row), history: events };
}

function toRecord(row: ApplicationsTable): ApplicationRecord {
  return {
    id: row.id,
    channel: row.channel,
    status: row.status,
    personId: row.person_id,
    iccid: row.iccid,
    certificateSerial: row.certificate_serial,
    failureReason: row.failure_reason,
    evidence: JSON.parse(row.evidence) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
