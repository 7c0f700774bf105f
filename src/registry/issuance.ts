/**
 * Crash-safe certificate issuance, in Let's Encrypt Boulder's order:
 *
 * 1. one transaction stores each serial, shard and to-be-signed certificate (status `pending`), audited;
 * 2. the signer signs each stored TBS (concurrently);
 * 3. one transaction stores each certificate (status `issued`), audited.
 *
 * A crash between 2 and 3 leaves `pending` rows whose TBS is known, so no certificate ever exists that
 * the registry does not know. `recoverInterruptedIssuances` finishes them at start: RSASSA-PKCS1-v1_5
 * (RFC 8017 §8.2) is deterministic, so re-signing the stored TBS yields byte for byte the certificate
 * that may have left the CA before the crash. (An ECDSA signer yields a different signature over the
 * same TBS: same serial and content, so revocation by serial still covers both.)
 *
 * Certificate content is not built here: each request brings `buildTbs`, the profile code.
 */
import { type Kysely, sql } from "kysely";
import { JpkiError, SignerUnavailableError } from "../errors.js";
import { DerError, readDer, readTlvAt, Tag } from "../pki/der.js";
import { randomSerial, serialFromHex, serialToHex, shardOf } from "../pki/serial.js";
import { type AuditEntry, appendAudit, sha256Hex } from "./audit.js";
import { type BulkColumn, bulkInsert, bulkStoreIssued, column } from "./bulk.js";
import { isoTime, toBuffer } from "./db.js";
import { doubleIssuanceHooks, type Policies } from "./lifecycle.js";
import {
  type CertificateIssuer,
  type CertificateKind,
  type CertificateMedium,
  type CertificateRow,
  type CertificateStatus,
  certificateIssuers,
  certificateKinds,
  certificateMedia,
  type RegistrySchema,
} from "./schema.js";

/** The CA's one issuing call, as the registry sees it: TBSCertificate DER in, Certificate DER out. */
export interface CertificateSigner {
  issue(tbs: Buffer): Promise<Buffer>;
}

export type CertificateSigners = Partial<Record<CertificateIssuer, CertificateSigner>>;

export interface IssuanceRequest {
  issuer: CertificateIssuer;
  kind: CertificateKind;
  medium: CertificateMedium;
  personId?: string | null;
  cardId?: string | null;
  simId?: string | null;
  /** The card certificate this one is linked to (a phone certificate's card user-auth certificate). */
  parentSerial?: string | null;
  notBefore: Date;
  notAfter: Date;
  /** Builds the TBSCertificate for the serial (16 bytes, positive) and CRL shard the registry chose. */
  buildTbs(serial: Buffer, shard: number): Buffer;
}

export type IssuanceResult =
  | { ok: true; serial: string; shard: number; der: Buffer }
  | { ok: false; serial: string; shard: number; reason: string };

/** A stored row, as returned by `issueCertificates` hooks. */
export interface StoredIssuance {
  serial: string;
  shard: number;
  request: IssuanceRequest;
}

export interface IssuanceOptions {
  /** Recorded in the audit log and lifecycle events (default `registry`). */
  actor?: string;
  /**
   * Runs first in the transaction that stores the pending rows: rows the certificates refer to (a new
   * person and card) are written here, so they exist together with their certificates or not at all.
   */
  beforePending?(trx: Kysely<RegistrySchema>): Promise<void>;
  /**
   * Runs inside the transaction that stores the pending rows: a policy check that throws (double
   * issuance) stops the whole batch before anything is signed.
   */
  onPending?(trx: Kysely<RegistrySchema>, stored: readonly StoredIssuance[]): Promise<void>;
  /** Runs inside the transaction that stores the certificates (supersede the old certificate here). */
  onIssued?(trx: Kysely<RegistrySchema>, issued: readonly StoredIssuance[]): Promise<void>;
  /** Where serials come from (default `randomSerial`); tests use it to force collisions. */
  serialSource?: () => Buffer;
}

/** A certificate as the registry's API returns it (times ISO-8601 UTC). */
export interface CertificateRecord {
  serial: string;
  issuer: CertificateIssuer;
  kind: CertificateKind;
  medium: CertificateMedium;
  personId: string | null;
  cardId: string | null;
  simId: string | null;
  parentSerial: string | null;
  status: CertificateStatus;
  /** The TBSCertificate: as stored, or read from `der` once the certificate is stored. */
  tbs: Buffer;
  der: Buffer | null;
  notBefore: string;
  notAfter: string;
  shard: number;
  failureReason: string | null;
  revokedAt: string | null;
  revocationReason: number | null;
  invalidityDate: string | null;
  createdAt: string;
  updatedAt: string;
}

export const SHARD_SETTING = "certificates.shards";
export const DEFAULT_SHARDS = 64;

export async function shardCount(db: Kysely<RegistrySchema>): Promise<number> {
  const row = await db
    .selectFrom("settings")
    .select("value")
    .where("key", "=", SHARD_SETTING)
    .executeTakeFirst();
  if (!row) return DEFAULT_SHARDS;
  const value = Number(row.value);
  if (!Number.isInteger(value) || value < 1 || value > 65536)
    throw new JpkiError("integrity", `setting ${SHARD_SETTING} is not a shard count: ${row.value}`);
  return value;
}

function validate(request: IssuanceRequest, signers: CertificateSigners): void {
  const fail = (message: string) => {
    throw new JpkiError("bad-input", message);
  };
  if (!certificateIssuers.includes(request.issuer)) fail(`unknown issuer ${String(request.issuer)}`);
  if (!certificateKinds.includes(request.kind)) fail(`unknown certificate kind ${String(request.kind)}`);
  if (!certificateMedia.includes(request.medium)) fail(`unknown medium ${String(request.medium)}`);
  if (!signers[request.issuer]) fail(`no signer for issuer ${request.issuer}`);
  if (!(request.notBefore.getTime() < request.notAfter.getTime())) fail("notBefore must precede notAfter");
}

interface Prepared extends StoredIssuance {
  tbs: Buffer;
  notBefore: string;
  notAfter: string;
}

type SerialSource = () => Buffer;

function prepare(request: IssuanceRequest, shards: number, serialSource: SerialSource): Prepared {
  const serialBytes = serialSource();
  if (serialBytes.length !== 16 || serialBytes[0] === 0 || serialBytes[0]! & 0x80)
    throw new JpkiError("internal", "a serial must be 16 bytes, positive, first byte non-zero");
  const shard = shardOf(serialBytes, shards);
  let tbs: Buffer;
  try {
    tbs = request.buildTbs(serialBytes, shard);
  } catch (error) {
    throw new JpkiError("bad-input", `building the certificate failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return {
    serial: serialBytes.toString("hex"),
    shard,
    request,
    tbs,
    notBefore: isoTime(request.notBefore),
    notAfter: isoTime(request.notAfter),
  };
}

/** The columns a pending row sets, in `toRow` order. */
const CERTIFICATE_COLUMNS: readonly BulkColumn[] = [
  column("serial"),
  column("issuer"),
  column("kind"),
  column("medium"),
  column("person_id"),
  column("card_id"),
  column("sim_id"),
  column("parent_serial"),
  column("status"),
  column("tbs", "bytea"),
  column("not_before"),
  column("not_after"),
  column("shard", "integer"),
  column("created_at"),
  column("updated_at"),
];

const LIFECYCLE_COLUMNS: readonly BulkColumn[] = [
  column("serial"),
  column("event"),
  column("from_status"),
  column("to_status"),
  column("reason"),
  column("actor"),
  column("at"),
];

async function storePending(
  trx: Kysely<RegistrySchema>,
  prepared: Prepared[],
  shards: number,
  actor: string,
  serialSource: SerialSource,
): Promise<void> {
  const now = isoTime();
  const toRow = (p: Prepared): unknown[] => [
    p.serial,
    p.request.issuer,
    p.request.kind,
    p.request.medium,
    p.request.personId ?? null,
    p.request.cardId ?? null,
    p.request.simId ?? null,
    p.request.parentSerial ?? null,
    "pending",
    p.tbs,
    p.notBefore,
    p.notAfter,
    p.shard,
    now,
    now,
  ];
  // A serial drawn twice (2^-127 per pair, but never assumed away) is drawn again: within the batch
  // here, against the table through ON CONFLICT DO NOTHING below.
  const inBatch = new Set<string>();
  for (const p of prepared) {
    while (inBatch.has(p.serial)) Object.assign(p, prepare(p.request, shards, serialSource));
    inBatch.add(p.serial);
  }
  let remaining = prepared;
  for (let attempt = 0; remaining.length > 0; attempt++) {
    if (attempt === 5) throw new JpkiError("internal", "could not allocate unique serial numbers");
    const inserted = await bulkInsert(trx, "certificates", CERTIFICATE_COLUMNS, remaining.map(toRow), {
      skipConflictsOn: "serial",
    });
    const stored = new Set(inserted.map((r) => r["serial"] as string));
    const conflicts = remaining.filter((p) => !stored.has(p.serial));
    for (const p of conflicts) {
      do Object.assign(p, prepare(p.request, shards, serialSource));
      while (inBatch.has(p.serial));
      inBatch.add(p.serial);
    }
    remaining = conflicts;
  }
  await appendAudit(
    trx,
    prepared.map(
      (p): AuditEntry => ({
        actor,
        action: "certificate.pending",
        subject: p.serial,
        // Keys in order: canonicalJson then takes the object as it is.
        details: {
          cardId: p.request.cardId ?? null,
          issuer: p.request.issuer,
          kind: p.request.kind,
          medium: p.request.medium,
          notAfter: p.notAfter,
          notBefore: p.notBefore,
          parentSerial: p.request.parentSerial ?? null,
          personId: p.request.personId ?? null,
          shard: p.shard,
          simId: p.request.simId ?? null,
          tbsSha256: sha256Hex(p.tbs),
        },
      }),
    ),
  );
}

type SignOutcome = { ok: true; der: Buffer } | { ok: false; reason: string; transient: boolean };

/**
 * The first element of a Certificate (RFC 5280 §4.1), its TBSCertificate. Only the two outer headers
 * are read: the bytes inside are the ones the registry built.
 */
function tbsOf(der: Buffer): Buffer {
  const certificate = readTlvAt(der, 0);
  if (certificate.tag !== Tag.sequence || certificate.end !== der.length)
    throw new DerError("not a Certificate SEQUENCE");
  return readTlvAt(certificate.content, 0).encoded;
}

/** Checks that what came back is a Certificate whose first element is exactly the stored TBS. */
function wrapsTbs(der: Buffer, tbs: Buffer): boolean {
  try {
    return tbsOf(der).equals(tbs);
  } catch {
    return false;
  }
}

interface ToSign {
  serial: string;
  shard: number;
  issuer: CertificateIssuer;
  tbs: Buffer;
}

async function signAll(signers: CertificateSigners, items: readonly ToSign[]): Promise<SignOutcome[]> {
  return Promise.all(
    items.map(async (item): Promise<SignOutcome> => {
      const signer = signers[item.issuer];
      if (!signer) return { ok: false, reason: `no signer for issuer ${item.issuer}`, transient: false };
      try {
        const der = toBuffer(await signer.issue(item.tbs));
        if (!wrapsTbs(der, item.tbs))
          return { ok: false, reason: "the signer returned a certificate for other data", transient: false };
        return { ok: true, der };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return error instanceof SignerUnavailableError
          ? {
              ok: false,
              reason: `signer unavailable (left pending for recovery): ${message}`,
              transient: true,
            }
          : { ok: false, reason: `signer refused: ${message}`, transient: false };
      }
    }),
  );
}

const toSign = (p: Prepared): ToSign => ({
  serial: p.serial,
  shard: p.shard,
  issuer: p.request.issuer,
  tbs: p.tbs,
});

interface FinishOptions {
  actor: string;
  /** Lifecycle event for a stored certificate: `issued`, or `recovered` after a crash. */
  event: string;
  onIssued?: ((trx: Kysely<RegistrySchema>, serials: ReadonlySet<string>) => Promise<void>) | undefined;
}

/**
 * Step 3: store each signed certificate and mark each refused one failed, in one transaction. Only rows
 * still `pending` change, so a recovery running beside a slow issuer cannot make both write. Returns the
 * serials this call changed.
 */
async function finish(
  db: Kysely<RegistrySchema>,
  items: readonly ToSign[],
  outcomes: readonly SignOutcome[],
  options: FinishOptions,
): Promise<{ issued: Set<string>; failed: Set<string> }> {
  const now = isoTime();
  const issued: { serial: string; der: Buffer }[] = [];
  const failed: { serial: string; reason: string }[] = [];
  items.forEach((item, i) => {
    const outcome = outcomes[i]!;
    if (outcome.ok) issued.push({ serial: item.serial, der: outcome.der });
    else if (!outcome.transient) failed.push({ serial: item.serial, reason: outcome.reason });
  });
  return db.transaction().execute(async (trx) => {
    const changedIssued = new Set(await bulkStoreIssued(trx, issued, now));
    const changedFailed = new Set<string>();
    for (const { serial, reason } of failed) {
      const result = await trx
        .updateTable("certificates")
        .set({ status: "failed", failure_reason: reason, updated_at: now })
        .where("serial", "=", serial)
        .where("status", "=", "pending")
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) changedFailed.add(serial);
    }
    const derOf = new Map(issued.map(({ serial, der }) => [serial, der]));
    const events = [
      ...issued
        .filter(({ serial }) => changedIssued.has(serial))
        .map(({ serial }) => ({ serial, to: "issued" as const, reason: null })),
      ...failed
        .filter(({ serial }) => changedFailed.has(serial))
        .map(({ serial, reason }) => ({ serial, to: "failed" as const, reason })),
    ];
    await bulkInsert(
      trx,
      "lifecycle_events",
      LIFECYCLE_COLUMNS,
      events.map((e) => [
        e.serial,
        e.to === "issued" ? options.event : "failed",
        "pending",
        e.to,
        e.reason,
        options.actor,
        now,
      ]),
    );
    await appendAudit(
      trx,
      events.map(
        (e): AuditEntry => ({
          actor: options.actor,
          action: e.to === "issued" ? "certificate.issued" : "certificate.failed",
          subject: e.serial,
          details:
            e.to === "issued"
              ? { derSha256: sha256Hex(derOf.get(e.serial)!), event: options.event }
              : { reason: e.reason },
        }),
      ),
    );
    if (options.onIssued && changedIssued.size > 0) await options.onIssued(trx, changedIssued);
    return { issued: changedIssued, failed: changedFailed };
  });
}

/**
 * Issues a batch: three steps, two transactions, whatever the batch size. Results come back in the
 * order of `requests`. A request whose signing fails is stored as `failed` with the reason (a signer
 * that is unavailable leaves it `pending` for recovery); the others are issued. A bad request, or a
 * throwing `onPending` hook, rejects the whole batch before anything is stored.
 */
export async function issueCertificates(
  db: Kysely<RegistrySchema>,
  signers: CertificateSigners,
  requests: readonly IssuanceRequest[],
  options: IssuanceOptions = {},
): Promise<IssuanceResult[]> {
  if (requests.length === 0) return [];
  for (const request of requests) validate(request, signers);
  const actor = options.actor ?? "registry";
  const shards = await shardCount(db);
  const serialSource = options.serialSource ?? randomSerial;
  const prepared = requests.map((request) => prepare(request, shards, serialSource));

  // 1. Store serial + TBS before anything is signed.
  await db.transaction().execute(async (trx) => {
    if (options.beforePending) await options.beforePending(trx);
    await storePending(trx, prepared, shards, actor, serialSource);
    if (options.onPending) await options.onPending(trx, prepared);
  });

  // 2. Sign. A signer may run several signatures at once (thread pool, HSM sessions).
  const items = prepared.map(toSign);
  const outcomes = await signAll(signers, items);

  // 3. Store what was signed.
  const onIssued = options.onIssued;
  const changed = await finish(db, items, outcomes, {
    actor,
    event: "issued",
    onIssued: onIssued
      ? (trx, serials) =>
          onIssued(
            trx,
            prepared.filter((p) => serials.has(p.serial)),
          )
      : undefined,
  });

  const results: IssuanceResult[] = [];
  const elsewhere: string[] = [];
  prepared.forEach((p, i) => {
    const outcome = outcomes[i]!;
    if (outcome.ok && changed.issued.has(p.serial))
      results.push({ ok: true, serial: p.serial, shard: p.shard, der: outcome.der });
    else if (!outcome.ok)
      results.push({ ok: false, serial: p.serial, shard: p.shard, reason: outcome.reason });
    else {
      results.push({ ok: false, serial: p.serial, shard: p.shard, reason: "finished elsewhere" });
      elsewhere.push(p.serial);
    }
  });
  // A row another process finished first (a recovery beside a slow batch) is reported as it now stands.
  if (elsewhere.length > 0) {
    const rows = await db
      .selectFrom("certificates")
      .select(["serial", "status", "der", "failure_reason"])
      .where("serial", "in", elsewhere)
      .execute();
    const bySerial = new Map(rows.map((r) => [r.serial, r]));
    results.forEach((result, i) => {
      const row = bySerial.get(result.serial);
      if (!row) return;
      results[i] =
        row.status === "issued" && row.der
          ? { ok: true, serial: result.serial, shard: result.shard, der: toBuffer(row.der) }
          : {
              ok: false,
              serial: result.serial,
              shard: result.shard,
              reason: row.failure_reason ?? row.status,
            };
    });
  }
  return results;
}

/** One certificate; throws a JpkiError when it could not be issued. */
export async function issueCertificate(
  db: Kysely<RegistrySchema>,
  signers: CertificateSigners,
  request: IssuanceRequest,
  options: IssuanceOptions = {},
): Promise<{ serial: string; shard: number; der: Buffer }> {
  const [result] = await issueCertificates(db, signers, [request], options);
  if (!result) throw new JpkiError("internal", "issuance returned no result");
  if (!result.ok) {
    const code = result.reason.startsWith("signer unavailable") ? "signer-unavailable" : "internal";
    throw new JpkiError(code, `certificate ${result.serial} was not issued: ${result.reason}`);
  }
  return { serial: result.serial, shard: result.shard, der: result.der };
}

export interface RecoveryOptions {
  /**
   * The configured policies: a recovered phone certificate is subject to the double-issuance policy
   * as one issued without a crash (`doubleIssuanceHooks`), in the transaction that stores it.
   */
  policies: Policies;
  actor?: string;
  /**
   * Leave pending rows younger than this alone (default 0). With several processes on one PostgreSQL
   * database, set it above the longest batch so a live issuance is not finished from under its process
   * (harmless for RSA, as both would store the same bytes, but noisy).
   */
  olderThanMs?: number;
  /** Rows re-signed per round (default 200). */
  batchSize?: number;
}

export interface RecoveryReport {
  /** Re-signed and stored. */
  issued: string[];
  /** Could not be finished: stored as `failed` with the reason. */
  failed: { serial: string; reason: string }[];
  /** The signer was unavailable: still pending, to be retried. */
  stillPending: string[];
}

function tbsProblem(tbs: Buffer): string | null {
  try {
    const node = readDer(tbs, { maxDepth: 64 });
    return node.tag === Tag.sequence ? null : "the stored TBS is not a SEQUENCE";
  } catch (error) {
    return `the stored TBS is unreadable: ${(error as Error).message}`;
  }
}

/**
 * Finishes every issuance a crash interrupted: re-signs each pending row's stored TBS and stores the
 * certificate, or marks the row failed when it cannot be finished (unreadable TBS, no signer, the signer
 * refuses). Rows whose signer is unavailable stay pending. Run it at start, before serving.
 *
 * A stored phone certificate goes through the double-issuance policy's `onIssued` in the same
 * transaction: under `one-per-medium` the person's older live certificate of its kind is superseded,
 * or the recovered one itself when a later application was issued meanwhile. (`strict` checked the
 * row when it was stored as pending.)
 */
export async function recoverInterruptedIssuances(
  db: Kysely<RegistrySchema>,
  signers: CertificateSigners,
  options: RecoveryOptions,
): Promise<RecoveryReport> {
  const actor = options.actor ?? "system:recovery";
  const { onIssued } = doubleIssuanceHooks(options.policies, actor);
  const report: RecoveryReport = { issued: [], failed: [], stillPending: [] };
  const cutoff = isoTime(new Date(Date.now() - (options.olderThanMs ?? 0)));
  let after = "";
  for (;;) {
    const rows = await db
      .selectFrom("certificates")
      .select(["serial", "shard", "issuer", "tbs", "kind", "person_id"])
      // A literal, not a parameter, so SQLite can use the partial index on pending rows.
      .where(sql<boolean>`status = 'pending'`)
      .where("created_at", "<=", cutoff)
      .where("serial", ">", after)
      .orderBy("serial")
      .limit(options.batchSize ?? 200)
      .execute();
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.serial;
    const items: ToSign[] = rows.map((r) => ({
      serial: r.serial,
      shard: r.shard,
      issuer: r.issuer,
      tbs: toBuffer(r.tbs),
    }));
    const outcomes = await Promise.all(
      items.map(async (item): Promise<SignOutcome> => {
        const problem = tbsProblem(item.tbs);
        if (problem) return { ok: false, reason: problem, transient: false };
        const [outcome] = await signAll(signers, [item]);
        return outcome!;
      }),
    );
    const changed = await finish(db, items, outcomes, {
      actor,
      event: "recovered",
      onIssued: (trx, serials) =>
        onIssued(
          trx,
          rows
            .filter((r) => serials.has(r.serial))
            .map((r) => ({ serial: r.serial, request: { kind: r.kind, personId: r.person_id } })),
        ),
    });
    items.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) {
        if (changed.issued.has(item.serial)) report.issued.push(item.serial);
      } else if (outcome.transient) report.stillPending.push(item.serial);
      else if (changed.failed.has(item.serial))
        report.failed.push({ serial: item.serial, reason: outcome.reason });
    });
  }
  return report;
}

function toRecord(row: CertificateRow): CertificateRecord {
  return {
    serial: row.serial,
    issuer: row.issuer,
    kind: row.kind,
    medium: row.medium,
    personId: row.person_id,
    cardId: row.card_id,
    simId: row.sim_id,
    parentSerial: row.parent_serial,
    status: row.status,
    // Emptied once the certificate is stored (bulkStoreIssued): the DER holds it.
    tbs: row.der && row.tbs.length === 0 ? tbsOf(toBuffer(row.der)) : toBuffer(row.tbs),
    der: toBuffer(row.der),
    notBefore: row.not_before,
    notAfter: row.not_after,
    shard: row.shard,
    failureReason: row.failure_reason,
    revokedAt: row.revoked_at,
    revocationReason: row.revocation_reason,
    invalidityDate: row.invalidity_date,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A serial as the registry stores it: lowercase hex of the minimal magnitude (what serialToHex makes). */
export function normaliseSerial(serial: string): string {
  return serialToHex(serialFromHex(serial));
}

export async function getCertificate(
  db: Kysely<RegistrySchema>,
  serial: string,
): Promise<CertificateRecord | undefined> {
  const row = await db
    .selectFrom("certificates")
    .selectAll()
    .where("serial", "=", normaliseSerial(serial))
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export interface CertificateFilters {
  status?: CertificateStatus | readonly CertificateStatus[];
  issuer?: CertificateIssuer;
  kind?: CertificateKind | readonly CertificateKind[];
  medium?: CertificateMedium;
  personId?: string;
  cardId?: string;
  simId?: string;
  parentSerial?: string;
  shard?: number;
}

export interface Paging {
  /** At most this many (default 100, at most 1000). */
  limit?: number;
  /** The `next` cursor of the previous page. */
  after?: string;
}

export interface CertificatePage {
  items: CertificateRecord[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

const asList = <T>(value: T | readonly T[]): readonly T[] => (Array.isArray(value) ? value : [value as T]);

/** Certificates matching every given filter, in serial order, one page at a time (keyset paging). */
export async function listCertificates(
  db: Kysely<RegistrySchema>,
  filters: CertificateFilters = {},
  paging: Paging = {},
): Promise<CertificatePage> {
  const limit = Math.min(Math.max(Math.trunc(paging.limit ?? 100), 1), 1000);
  let query = db.selectFrom("certificates").selectAll();
  if (filters.status !== undefined) query = query.where("status", "in", asList(filters.status));
  if (filters.kind !== undefined) query = query.where("kind", "in", asList(filters.kind));
  if (filters.issuer !== undefined) query = query.where("issuer", "=", filters.issuer);
  if (filters.medium !== undefined) query = query.where("medium", "=", filters.medium);
  if (filters.personId !== undefined) query = query.where("person_id", "=", filters.personId);
  if (filters.cardId !== undefined) query = query.where("card_id", "=", filters.cardId);
  if (filters.simId !== undefined) query = query.where("sim_id", "=", filters.simId);
  if (filters.parentSerial !== undefined)
    query = query.where("parent_serial", "=", normaliseSerial(filters.parentSerial));
  if (filters.shard !== undefined) query = query.where("shard", "=", filters.shard);
  if (paging.after !== undefined) query = query.where("serial", ">", paging.after);
  const rows = await query
    .orderBy("serial")
    .limit(limit + 1)
    .execute();
  const items = rows.slice(0, limit).map(toRecord);
  return rows.length > limit ? { items, next: items[items.length - 1]!.serial } : { items };
}
