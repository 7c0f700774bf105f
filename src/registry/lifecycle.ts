/**
 * Certificate lifecycle after issuance (DESIGN §4 flow 6, JPKI-FACTS §3): suspend (hold), resume,
 * revoke, expire, and the cascades between a card's certificates and the phone's.
 *
 *   issued ──suspend──▶ suspended ──resume──▶ issued      (resume: phone certificates, hold = releasable)
 *   issued | suspended ──revoke──▶ revoked                 (with a CRLReason code)
 *   issued | suspended ──expire──▶ expired                 (past notAfter: the scheduled job)
 *
 * `revoked`, `expired` and `failed` are final. Every transition changes the row, appends a lifecycle
 * event (whose id is the registry's change sequence, read by the OCSP cache) and an audit entry, in
 * one transaction, after locking the row: two operators acting on one certificate serialise, and an
 * illegal transition is refused with a JpkiError("conflict") that says what state the certificate is in.
 */
import { type Kysely, sql } from "kysely";
import { JpkiError } from "../errors.js";
import { CrlReason, type CrlReasonCode, encodeCrlEntry } from "../pki/crl.js";
import { appendAudit } from "./audit.js";
import { dialectOf, isoTime } from "./db.js";
import type { CertificateRow, CertificateStatus, RegistrySchema } from "./schema.js";

/** Configurable policies (DESIGN §5), defaults first. */
export interface Policies {
  /** `one-per-medium`: the card's certificates and one phone's; `strict`: one valid user-auth certificate per person. */
  doubleIssuance: "one-per-medium" | "strict";
  /** `releasable`: a phone certificate's hold can be lifted (一時利用停止); `final`: never (一時保留). */
  hold: "releasable" | "final";
  /** Where the phone's key pair is made: in the SIM's applet, or by J-LIS and injected. */
  keyGeneration: "on-card" | "injected";
}

export const DEFAULT_POLICIES: Policies = {
  doubleIssuance: "one-per-medium",
  hold: "releasable",
  keyGeneration: "on-card",
};

/** Validates policies read from configuration; unknown values are refused, missing ones take the default. */
export function readPolicies(value: unknown): Policies {
  const given = (value ?? {}) as Partial<Record<keyof Policies, unknown>>;
  const pick = <K extends keyof Policies>(key: K, allowed: readonly Policies[K][]): Policies[K] => {
    const v = given[key] ?? DEFAULT_POLICIES[key];
    if (!allowed.includes(v as Policies[K]))
      throw new JpkiError("bad-input", `policy ${key} must be one of ${allowed.join(", ")}: ${String(v)}`);
    return v as Policies[K];
  };
  return {
    doubleIssuance: pick("doubleIssuance", ["one-per-medium", "strict"]),
    hold: pick("hold", ["releasable", "final"]),
    keyGeneration: pick("keyGeneration", ["on-card", "injected"]),
  };
}

/** Statuses in which a certificate is valid for its holder and verifiers (held: valid but answered "revoked, on hold"). */
export const LIVE_STATUSES: readonly CertificateStatus[] = ["issued", "suspended"];

/** A certificate past its notAfter is expired whatever its row says, until the job writes it. */
export function effectiveStatus(
  row: Pick<CertificateRow, "status" | "not_after">,
  now = new Date(),
): CertificateStatus {
  return LIVE_STATUSES.includes(row.status) && row.not_after < isoTime(now) ? "expired" : row.status;
}

export interface TransitionOptions {
  actor: string;
  /** Free text for the audit log and lifecycle event (why the operator acted). */
  note?: string;
  now?: Date;
}

export interface RevokeOptions extends TransitionOptions {
  reason: CrlReasonCode;
  /** When the key is known or suspected to have stopped being trustworthy (RFC 5280 §5.3.2). */
  invalidityDate?: Date;
}

export interface TransitionResult {
  serial: string;
  from: CertificateStatus;
  to: CertificateStatus;
  /** The lifecycle event id: the registry's change sequence after this change. */
  changeSequence: number;
}

type Trx = Kysely<RegistrySchema>;

/** Reads and locks a certificate row for the rest of the transaction (SQLite's write lock is already held). */
async function lockCertificate(trx: Trx, serial: string): Promise<CertificateRow> {
  let query = trx.selectFrom("certificates").selectAll().where("serial", "=", serial);
  if (dialectOf(trx) === "postgres") query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) throw new JpkiError("not-found", `no certificate with serial ${serial}`);
  return row;
}

const isCardCertificate = (row: CertificateRow) => row.kind === "card-sign" || row.kind === "card-auth";

/**
 * Applies one transition to a locked row: the row, a lifecycle event and an audit entry. The caller
 * has checked that the transition is allowed.
 */
async function apply(
  trx: Trx,
  row: CertificateRow,
  change: {
    event: string;
    to: CertificateStatus;
    revokedAt: string | null;
    reason: number | null;
    invalidityDate: string | null;
    /** The row's revokedCertificates entry after the change (CRL publisher); undefined: unchanged. */
    crlEntry?: Buffer | null;
  },
  options: TransitionOptions,
): Promise<TransitionResult> {
  const at = isoTime(options.now);
  await trx
    .updateTable("certificates")
    .set({
      status: change.to,
      revoked_at: change.revokedAt,
      revocation_reason: change.reason,
      invalidity_date: change.invalidityDate,
      ...(change.crlEntry !== undefined ? { crl_entry: change.crlEntry } : {}),
      updated_at: at,
    })
    .where("serial", "=", row.serial)
    .execute();
  const inserted = await trx
    .insertInto("lifecycle_events")
    .values({
      serial: row.serial,
      event: change.event,
      from_status: row.status,
      to_status: change.to,
      reason:
        change.reason === null
          ? (options.note ?? null)
          : `${change.reason}${options.note ? ` ${options.note}` : ""}`,
      actor: options.actor,
      at,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  await appendAudit(trx, {
    actor: options.actor,
    action: `certificate.${change.event}`,
    subject: row.serial,
    details: {
      from: row.status,
      to: change.to,
      reason: change.reason,
      invalidityDate: change.invalidityDate,
      note: options.note ?? null,
    },
  });
  return { serial: row.serial, from: row.status, to: change.to, changeSequence: Number(inserted.id) };
}

/**
 * The certificate's revokedCertificates entry (RFC 5280 §5.1.2.6) for the revocation columns written
 * beside it, made from them exactly as the CRL publisher reads them (status/crl-registry.ts).
 */
function crlEntryOf(
  serial: string,
  revokedAt: string,
  reason: number,
  invalidityDate: string | null,
): Buffer {
  return encodeCrlEntry({
    serial: Buffer.from(serial, "hex"),
    revocationDate: new Date(revokedAt),
    reason: reason as CrlReasonCode,
    invalidityDate: invalidityDate === null ? undefined : new Date(invalidityDate),
  });
}

function refuse(row: CertificateRow, action: string, why: string): never {
  throw new JpkiError(
    "conflict",
    `cannot ${action} certificate ${row.serial}: it is ${row.status}${why ? ` (${why})` : ""}`,
  );
}

/** Transitions of one row inside the caller's transaction (cascades and issuance policies use these). */
export const transitions = {
  async suspend(trx: Trx, serial: string, options: TransitionOptions): Promise<TransitionResult> {
    const row = await lockCertificate(trx, serial);
    if (effectiveStatus(row, options.now) !== "issued")
      refuse(row, "suspend", effectiveStatus(row, options.now) === "expired" ? "past its notAfter" : "");
    const at = isoTime(options.now);
    return apply(
      trx,
      row,
      {
        event: "suspend",
        to: "suspended",
        revokedAt: at,
        reason: CrlReason.certificateHold,
        invalidityDate: null,
        crlEntry: crlEntryOf(row.serial, at, CrlReason.certificateHold, null),
      },
      options,
    );
  },

  async resume(
    trx: Trx,
    serial: string,
    options: TransitionOptions & { policies: Policies },
  ): Promise<TransitionResult> {
    const row = await lockCertificate(trx, serial);
    if (effectiveStatus(row, options.now) !== "suspended")
      refuse(row, "resume", "only a held certificate can be resumed");
    // JPKI-FACTS §3: J-LIS never releases a card certificate's hold; a phone's only under `releasable`.
    if (isCardCertificate(row)) refuse(row, "resume", "a card certificate's hold is final");
    if (options.policies.hold === "final") refuse(row, "resume", "the hold policy is final");
    return apply(
      trx,
      row,
      { event: "resume", to: "issued", revokedAt: null, reason: null, invalidityDate: null, crlEntry: null },
      options,
    );
  },

  async revoke(trx: Trx, serial: string, options: RevokeOptions): Promise<TransitionResult> {
    if (
      !Object.values(CrlReason).includes(options.reason) ||
      options.reason === CrlReason.certificateHold ||
      options.reason === CrlReason.removeFromCRL
    )
      throw new JpkiError(
        "bad-input",
        `revocation reason ${options.reason} is not a revocation (hold is suspend)`,
      );
    const row = await lockCertificate(trx, serial);
    if (!LIVE_STATUSES.includes(row.status)) refuse(row, "revoke", "");
    // A held certificate keeps its original revocation date (RFC 5280 §5.3: the hold's time).
    const at = row.status === "suspended" && row.revoked_at ? row.revoked_at : isoTime(options.now);
    const invalidityDate = options.invalidityDate ? isoTime(options.invalidityDate) : null;
    return apply(
      trx,
      row,
      {
        event: "revoke",
        to: "revoked",
        revokedAt: at,
        reason: options.reason,
        invalidityDate,
        crlEntry: crlEntryOf(row.serial, at, options.reason, invalidityDate),
      },
      options,
    );
  },
};

async function inTransaction<T>(db: Kysely<RegistrySchema>, body: (trx: Trx) => Promise<T>): Promise<T> {
  return db.isTransaction ? body(db) : db.transaction().execute(body);
}

export function suspendCertificate(
  db: Kysely<RegistrySchema>,
  serial: string,
  options: TransitionOptions,
): Promise<TransitionResult> {
  return inTransaction(db, (trx) => transitions.suspend(trx, serial, options));
}

export function resumeCertificate(
  db: Kysely<RegistrySchema>,
  serial: string,
  options: TransitionOptions & { policies: Policies },
): Promise<TransitionResult> {
  return inTransaction(db, (trx) => transitions.resume(trx, serial, options));
}

export function revokeCertificate(
  db: Kysely<RegistrySchema>,
  serial: string,
  options: RevokeOptions,
): Promise<TransitionResult> {
  return inTransaction(db, (trx) => transitions.revoke(trx, serial, options));
}

/**
 * The scheduled expiry job: every live certificate past its notAfter becomes `expired`, in batches,
 * each audited. Returns how many changed.
 */
export async function expireCertificates(
  db: Kysely<RegistrySchema>,
  options: TransitionOptions & { batch?: number },
): Promise<number> {
  const now = isoTime(options.now);
  let total = 0;
  for (;;) {
    const changed = await db.transaction().execute(async (trx) => {
      const due = await trx
        .selectFrom("certificates")
        .select("serial")
        .where("status", "in", LIVE_STATUSES)
        .where("not_after", "<", now)
        .orderBy("not_after")
        .limit(options.batch ?? 500)
        .execute();
      for (const { serial } of due) {
        const row = await lockCertificate(trx, serial);
        if (!LIVE_STATUSES.includes(row.status)) continue;
        await apply(
          trx,
          row,
          {
            event: "expire",
            to: "expired",
            revokedAt: row.revoked_at,
            reason: row.revocation_reason,
            invalidityDate: row.invalidity_date,
          },
          options,
        );
      }
      return due.length;
    });
    total += changed;
    if (changed < (options.batch ?? 500)) return total;
  }
}

/** Live certificates matching `where`, in serial order (the order rows are locked in, so cascades cannot deadlock). */
async function liveSerials(
  trx: Trx,
  where: {
    cardId?: string;
    simId?: string;
    parentSerials?: readonly string[];
    personId?: string;
    kinds?: readonly CertificateRow["kind"][];
  },
): Promise<string[]> {
  let query = trx.selectFrom("certificates").select("serial").where("status", "in", LIVE_STATUSES);
  if (where.cardId !== undefined) query = query.where("card_id", "=", where.cardId);
  if (where.simId !== undefined) query = query.where("sim_id", "=", where.simId);
  if (where.parentSerials) query = query.where("parent_serial", "in", where.parentSerials);
  if (where.personId !== undefined) query = query.where("person_id", "=", where.personId);
  if (where.kinds) query = query.where("kind", "in", where.kinds);
  return (await query.orderBy("serial").execute()).map((r) => r.serial);
}

/**
 * Card lost, returned, dead, or its holder died or moved abroad (JPKI-FACTS §3): the card's certificates
 * are revoked, and so is every phone certificate issued against them.
 */
export async function revokeCardCertificates(
  db: Kysely<RegistrySchema>,
  cardId: string,
  options: RevokeOptions,
): Promise<TransitionResult[]> {
  return inTransaction(db, async (trx) => {
    const cardSerials = await liveSerials(trx, { cardId });
    const allCardSerials = (
      await trx.selectFrom("certificates").select("serial").where("card_id", "=", cardId).execute()
    ).map((r) => r.serial);
    const phoneSerials = allCardSerials.length
      ? await liveSerials(trx, { parentSerials: allCardSerials })
      : [];
    const results: TransitionResult[] = [];
    for (const serial of [...cardSerials, ...phoneSerials])
      results.push(await transitions.revoke(trx, serial, options));
    return results;
  });
}

/**
 * The SIM left its holder's hands (ported out, swapped, deactivated, its eSIM profile deleted): every
 * live smartphone certificate whose key is on it is revoked, inside the caller's transaction.
 */
export async function revokeSimCertificates(
  trx: Trx,
  simId: string,
  options: RevokeOptions,
): Promise<TransitionResult[]> {
  const results: TransitionResult[] = [];
  for (const serial of await liveSerials(trx, { simId, kinds: PHONE_KINDS }))
    results.push(await transitions.revoke(trx, serial, options));
  return results;
}

/**
 * A change of the basic four attributes (move, marriage, ...): every signing certificate of the person
 * (card and phone) is revoked with affiliationChanged; user-authentication certificates carry no
 * personal data and stay valid (JPKI-FACTS §3).
 */
export async function revokeForAttributeChange(
  db: Kysely<RegistrySchema>,
  personId: string,
  options: TransitionOptions,
): Promise<TransitionResult[]> {
  return inTransaction(db, async (trx) => {
    const serials = await liveSerials(trx, { personId, kinds: ["card-sign", "phone-sign"] });
    const results: TransitionResult[] = [];
    for (const serial of serials)
      results.push(
        await transitions.revoke(trx, serial, { ...options, reason: CrlReason.affiliationChanged }),
      );
    return results;
  });
}

/** The registry's change sequence: the last lifecycle event id (0 when none). */
export async function changeSequence(db: Kysely<RegistrySchema>): Promise<number> {
  const row = await db
    .selectFrom("lifecycle_events")
    .select(sql<number>`coalesce(max(id), 0)`.as("last"))
    .executeTakeFirstOrThrow();
  return Number(row.last);
}

/** Kinds of user-authentication certificate: the ones `strict` allows one of per person. */
const USER_AUTH_KINDS: readonly CertificateRow["kind"][] = ["card-auth", "phone-auth"];
const PHONE_KINDS: readonly CertificateRow["kind"][] = ["phone-auth", "phone-sign"];

/**
 * Locks the persons rows (PostgreSQL) so that concurrent issuances for one person take turns. FOR NO
 * KEY UPDATE, not FOR UPDATE: the certificate rows the transaction already inserted hold KEY SHARE locks
 * on the person through their foreign key, and FOR UPDATE would deadlock two issuances on those.
 */
async function lockPersons(trx: Trx, personIds: readonly string[]): Promise<void> {
  if (dialectOf(trx) !== "postgres" || personIds.length === 0) return;
  await trx
    .selectFrom("persons")
    .select("id")
    .where("id", "in", personIds)
    .orderBy("id")
    .forNoKeyUpdate()
    .execute();
}

/**
 * The double-issuance policy (DESIGN §5) as issuance hooks for phone certificates, run inside the
 * issuance's own transactions (src/registry/issuance.ts), so the outcome holds however many
 * issuances for one person race:
 *
 * - `one-per-medium`: when a phone certificate is stored (issued, or finished by the recovery), the
 *   person's live certificates of the same kind on a SIM are compared by when they were applied for
 *   (their pending rows' created_at; the serial breaks a tie): the latest application stays valid and
 *   every other one is revoked as superseded, in the same transaction. The stored certificate itself
 *   is the one superseded when a later application already holds a live certificate (a recovered
 *   issuance that was overtaken while it was pending, or the loser of two racing issuances).
 * - `strict`: a user-authentication certificate is refused (before anything is signed) while the
 *   person holds another live or pending one, the card's included: the 2015 rule of one valid
 *   user-authentication certificate per person. The citizen revokes the old one first.
 */
export function doubleIssuanceHooks(
  policies: Policies,
  actor: string,
): {
  onPending(
    trx: Trx,
    stored: readonly { serial: string; request: { kind: string; personId?: string | null } }[],
  ): Promise<void>;
  onIssued(
    trx: Trx,
    issued: readonly { serial: string; request: { kind: string; personId?: string | null } }[],
  ): Promise<void>;
} {
  const phone = (items: readonly { serial: string; request: { kind: string; personId?: string | null } }[]) =>
    items.filter((i) => PHONE_KINDS.includes(i.request.kind as CertificateRow["kind"]) && i.request.personId);
  return {
    async onPending(trx, stored) {
      const items = phone(stored).filter((i) =>
        USER_AUTH_KINDS.includes(i.request.kind as CertificateRow["kind"]),
      );
      if (policies.doubleIssuance !== "strict" || items.length === 0) return;
      await lockPersons(trx, [...new Set(items.map((i) => i.request.personId!))]);
      const own = items.map((i) => i.serial);
      for (const item of items) {
        const other = await trx
          .selectFrom("certificates")
          .select(["serial", "status"])
          .where("person_id", "=", item.request.personId!)
          .where("kind", "in", USER_AUTH_KINDS)
          .where("status", "in", [...LIVE_STATUSES, "pending"])
          .where("serial", "not in", own)
          .executeTakeFirst();
        if (other)
          throw new JpkiError(
            "conflict",
            `the person already holds user-authentication certificate ${other.serial} (${other.status}); the strict policy allows one: revoke it first`,
          );
      }
    },
    async onIssued(trx, issued) {
      const items = phone(issued);
      if (policies.doubleIssuance !== "one-per-medium" || items.length === 0) return;
      await lockPersons(trx, [...new Set(items.map((i) => i.request.personId!))]);
      const groups = new Map<string, { personId: string; kind: CertificateRow["kind"] }>();
      for (const { request } of items)
        groups.set(`${request.personId}\u0000${request.kind}`, {
          personId: request.personId!,
          kind: request.kind as CertificateRow["kind"],
        });
      for (const { personId, kind } of groups.values()) {
        const live = await trx
          .selectFrom("certificates")
          .select("serial")
          .where("person_id", "=", personId)
          .where("kind", "=", kind)
          .where("status", "in", LIVE_STATUSES)
          .orderBy("created_at")
          .orderBy("serial")
          .execute();
        const latest = live.pop();
        if (!latest) continue;
        // In serial order, as every cascade locks rows, so two of them cannot deadlock.
        for (const serial of live.map((r) => r.serial).sort())
          await transitions.revoke(trx, serial, {
            actor,
            reason: CrlReason.superseded,
            note: `superseded by ${latest.serial}`,
          });
      }
    },
  };
}
