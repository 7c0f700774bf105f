/**
 * The CRL publisher of the `status` role (DESIGN §3, §6, §7): for each CA and each of its shards, a
 * complete CRL and a delta CRL made from the registry, signed by the CA signer, read back and verified,
 * then stored in the `crls` table, from which `/crl/{sign|auth}/{shard}.crl` and
 * `/crl/{sign|auth}/{shard}-delta.crl` are served (and `crl publish --out` writes files).
 *
 * Decisions (docs/crl.md tells them to operators):
 * - Periods: a complete CRL is valid 24 hours (JPKI publishes daily, JPKI-FACTS §3), a delta 1 hour;
 *   both can be changed with the registry settings `crl.fullPeriodSeconds` and `crl.deltaPeriodSeconds`.
 * - When a CRL is signed again: a complete CRL when half its period has gone by (so a schedule that
 *   misses a run still publishes before nextUpdate), or when asked (`full`); a delta when a certificate
 *   of its shard changed status since it was signed, when half its period has gone by, or when its base
 *   was replaced. A shard where nothing changed and whose CRLs are fresh is not signed again.
 * - A complete CRL lists every held certificate and every revoked one (or held one that expired while
 *   held) until the entry has appeared on one complete CRL issued after the certificate's notAfter
 *   (RFC 5280 §3.3). Put exactly: an entry is left out when its notAfter is before the previous
 *   complete CRL's thisUpdate, because that CRL was issued after notAfter and listed it; unless the
 *   certificate changed status since that CRL's change sequence (revoked after its notAfter, or a
 *   change that CRL did not see yet): then it is listed once more.
 * - A delta lists the certificates whose status changed since its base's change sequence, as they
 *   stand now: newly revoked or held ones with their reason, released holds as removeFromCRL (§5.3.1).
 * - CRL numbers: one increasing sequence per CA and shard, shared by its complete and delta CRLs
 *   (§5.2.3, §5.2.4), continued from the `crls` table.
 */
import type { KeyObject } from "node:crypto";
import { JpkiError } from "../errors.js";
import { parseCertificate } from "../pki/certificate.js";
import { buildTbsCertList, CrlReason, type EncodedCrlEntries, type RevokedCertificate } from "../pki/crl.js";
import type { CaPurpose } from "../pki/names.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import { isoTime } from "../registry/db.js";
import { shardCount } from "../registry/issuance.js";
import type { Authority } from "../server/authority.js";
import { checkSignedCrl } from "./crl-check.js";
import {
  type CertificateChange,
  type CrlKind,
  type CrlRow,
  changeWatermark,
  type PublishedCrlInfo,
  type PublishedShard,
  readChanges,
  readPublishedShards,
  readShardEntries,
  replaceShardCrls,
  shardKey,
  withPublisherCache,
} from "./crl-registry.js";

export { type CrlKind, type PublishedCrl, readPublishedCrl } from "./crl-registry.js";

// ---------------------------------------------------------------------------------------------
// Where CRLs live

const CRL_PATH = /^\/?crl\/(sign|auth)\/(0|[1-9][0-9]{0,4})(-delta)?\.crl$/;

/**
 * `crl/{sign|auth}/{shard}.crl`, or `crl/{sign|auth}/{shard}-delta.crl`: the path of a CRL under the
 * base URL (profiles.crlUrl and crl.deltaCrlUrl give the same, absolute) and under `crl publish --out`.
 */
export function crlPath(purpose: CaPurpose, shard: number, kind: CrlKind): string {
  if (!Number.isInteger(shard) || shard < 0 || shard > 65_535) throw new RangeError(`bad CRL shard ${shard}`);
  return `crl/${purpose}/${shard}${kind === "delta" ? "-delta" : ""}.crl`;
}

/** Which CRL a request path such as `/crl/auth/5-delta.crl` names; undefined for any other path. */
export function parseCrlPath(path: string): { purpose: CaPurpose; shard: number; kind: CrlKind } | undefined {
  const match = CRL_PATH.exec(path);
  if (!match) return undefined;
  return { purpose: match[1] as CaPurpose, shard: Number(match[2]), kind: match[3] ? "delta" : "full" };
}

/** The MIME type of a DER CRL (RFC 2585 §4.2). */
export const CRL_MEDIA_TYPE = "application/pkix-crl";

// ---------------------------------------------------------------------------------------------
// Periods

export interface CrlPeriods {
  /** How long a complete CRL is valid: nextUpdate − thisUpdate. */
  readonly fullMs: number;
  /** How long a delta CRL is valid. */
  readonly deltaMs: number;
}

export const DEFAULT_CRL_PERIODS: CrlPeriods = { fullMs: 24 * 3_600_000, deltaMs: 3_600_000 };

/** Registry settings (seconds) that change the periods for every publisher of the registry. */
export const CRL_PERIOD_SETTINGS = {
  fullMs: "crl.fullPeriodSeconds",
  deltaMs: "crl.deltaPeriodSeconds",
} as const;

/** The periods: `overrides`, else the registry settings, else the defaults; checked. */
export async function crlPeriods(
  authority: Pick<Authority, "registry">,
  overrides: Partial<CrlPeriods> = {},
): Promise<CrlPeriods> {
  const pick = async (name: keyof CrlPeriods): Promise<number> => {
    if (overrides[name] !== undefined) return overrides[name];
    const setting = await authority.registry.getSetting(CRL_PERIOD_SETTINGS[name]);
    if (setting === undefined) return DEFAULT_CRL_PERIODS[name];
    const seconds = Number(setting);
    if (!Number.isInteger(seconds))
      throw new JpkiError(
        "integrity",
        `setting ${CRL_PERIOD_SETTINGS[name]} is not a number of seconds: ${setting}`,
      );
    return seconds * 1000;
  };
  const periods = { fullMs: await pick("fullMs"), deltaMs: await pick("deltaMs") };
  // Whole seconds (the CRL's times have no fractions), at least a minute, a delta no longer than its base.
  for (const [name, value] of [
    ["complete", periods.fullMs],
    ["delta", periods.deltaMs],
  ] as const)
    if (!Number.isInteger(value / 1000) || value < 60_000)
      throw new JpkiError(
        "bad-input",
        `the ${name} CRL period must be a whole number of seconds, at least 60`,
      );
  if (periods.deltaMs > periods.fullMs)
    throw new JpkiError("bad-input", "a delta CRL's period must not be longer than the complete CRL's");
  return periods;
}

// ---------------------------------------------------------------------------------------------
// Publishing

export interface PublishOptions {
  /** The time the CRLs are made (thisUpdate, to the second); default: now. */
  now?: Date;
  /** Which CAs (default both). */
  issuers?: readonly CaPurpose[];
  /** Sign every complete CRL again, with a new empty delta, whatever their age. */
  full?: boolean;
  /** Periods instead of the registry settings (tests, benchmarks). */
  periods?: Partial<CrlPeriods>;
  /** Called after each shard. */
  onProgress?: (done: number, total: number) => void;
}

/** One CRL of a shard after a run: signed by it, or kept as it was. */
export interface CrlPublication extends PublishedCrlInfo {
  readonly signed: boolean;
}

export interface ShardPublication {
  readonly issuer: CaPurpose;
  readonly shard: number;
  readonly full: CrlPublication;
  readonly delta: CrlPublication;
}

export interface PublishReport {
  /** The registry change sequence the CRLs signed in this run reflect. */
  readonly changeSequence: number;
  readonly periods: CrlPeriods;
  readonly shards: readonly ShardPublication[];
  /** CRLs signed in this run (complete and delta). */
  readonly signed: number;
}

/** What every shard of one run shares. */
interface Run {
  authority: Authority;
  now: Date;
  thisUpdate: Date;
  periods: CrlPeriods;
  watermark: number;
  forceFull: boolean;
  caKeys: Map<CaPurpose, KeyObject>;
}

/**
 * Publishes the CRLs of every shard of `issuers` (default both CAs): signs what is due (see the header)
 * and keeps the rest. Shards are read one at a time, each in one query, and at most two are in hand
 * (one being signed while the next is read), so memory is bounded by the largest shards, and the cost
 * is linear in the entries signed plus the status changes since the oldest complete CRL.
 */
export function publishCrls(authority: Authority, options: PublishOptions = {}): Promise<PublishReport> {
  return withPublisherCache(authority.registry.db, () => publish(authority, options));
}

async function publish(authority: Authority, options: PublishOptions): Promise<PublishReport> {
  const db = authority.registry.db;
  const issuers = options.issuers ?? (["sign", "auth"] as const);
  const periods = await crlPeriods(authority, options.periods);
  const shards = await shardCount(db);
  const now = options.now ?? new Date();
  // thisUpdate is what the CRL says, to the second: stored and compared in that form.
  const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
  // The watermark first, then the shards: whatever a shard's CRL misses after it, the next delta lists.
  const watermark = await changeWatermark(db);
  const published = await readPublishedShards(db, issuers);

  // Status changes since the oldest complete CRL kept: read once for every shard.
  let oldestBase = watermark;
  for (const shard of published.values())
    if (shard.full) oldestBase = Math.min(oldestBase, shard.full.changeSequence);
  const changes = await readChanges(db, issuers, oldestBase, watermark);

  const run: Run = {
    authority,
    now,
    thisUpdate,
    periods,
    watermark,
    forceFull: options.full === true,
    caKeys: new Map(
      issuers.map((issuer) => [
        issuer,
        publicKeyFromSpki(parseCertificate(authority.certificates[issuer]).spki),
      ]),
    ),
  };
  const results: ShardPublication[] = [];
  const total = issuers.length * shards;
  const done = (result: ShardPublication) => {
    results.push(result);
    options.onProgress?.(results.length, total);
  };
  // One shard is signed (in the thread pool, or by the HSM) while the next one is read and built.
  let signing: Promise<ShardPublication> | undefined;
  for (const issuer of issuers)
    for (let shard = 0; shard < shards; shard++) {
      const key = shardKey(issuer, shard);
      const plan = await planShard(run, issuer, shard, published.get(key) ?? {}, changes.get(key) ?? []);
      const next = "unsigned" in plan ? finishShard(run, plan) : Promise.resolve(plan);
      next.catch(() => undefined); // awaited below; a failure must not count as unhandled meanwhile
      if (signing) done(await signing);
      signing = next;
    }
  if (signing) done(await signing);
  const signed = results.reduce((n, r) => n + Number(r.full.signed) + Number(r.delta.signed), 0);
  return { changeSequence: watermark, periods, shards: results, signed };
}

/** Whether a CRL has less than half its period left at `now`: time to sign the next one. */
function refreshDue(crl: PublishedCrlInfo, periodMs: number, now: Date): boolean {
  return now.getTime() >= Date.parse(crl.nextUpdate) - periodMs / 2;
}

/** A CRL built for a shard, to be signed. */
interface UnsignedCrl {
  kind: CrlKind;
  crlNumber: number;
  baseCrlNumber: number | null;
  tbs: Buffer;
  entries: number;
  nextUpdate: Date;
}

/** What a shard needs signed, with what was published when the run began. */
interface ShardPlan {
  issuer: CaPurpose;
  shard: number;
  published: PublishedShard;
  /** The highest CRL number of the shard when the run began. */
  previousNumber: number;
  unsigned: UnsignedCrl[];
}

/**
 * Decides what a shard needs (see the header) and builds it: a complete CRL with an empty delta on it,
 * or a delta alone, or nothing when both are current (then the publication as it stands is returned).
 */
async function planShard(
  run: Run,
  issuer: CaPurpose,
  shard: number,
  published: PublishedShard,
  changes: readonly CertificateChange[],
): Promise<ShardPlan | ShardPublication> {
  const { full, delta } = published;
  const previousNumber = Math.max(full?.crlNumber ?? 0, delta?.crlNumber ?? 0);
  const changedSince = (sequence: number) => changes.filter((c) => c.lastChange > sequence);
  const plan = (unsigned: UnsignedCrl[]): ShardPlan => ({
    issuer,
    shard,
    published,
    previousNumber,
    unsigned,
  });

  if (!full || run.forceFull || refreshDue(full, run.periods.fullMs, run.now)) {
    // Entries come from the certificates' status; those expired before the previous complete CRL go,
    // unless they changed since it (revoked after their expiry, or in flight at its watermark).
    const entries = await readShardEntries(
      run.authority.registry.db,
      issuer,
      shard,
      full && { after: full.thisUpdate, changedAfter: full.changeSequence, upTo: run.watermark },
    );
    const fullNumber = previousNumber + 1;
    return plan([
      build(run, issuer, shard, "full", fullNumber, entries),
      build(run, issuer, shard, "delta", fullNumber + 1, [], fullNumber),
    ]);
  }
  const changed = changedSince(full.changeSequence);
  const current =
    delta !== undefined &&
    delta.baseCrlNumber === full.crlNumber &&
    !changed.some((c) => c.lastChange > delta.changeSequence) &&
    !refreshDue(delta, run.periods.deltaMs, run.now);
  if (current) return { issuer, shard, full: kept(full), delta: kept(delta) };
  const entries = changed.map(
    (c): RevokedCertificate =>
      c.entry ?? {
        serial: Buffer.from(c.serial, "hex"),
        revocationDate: new Date(c.releasedAt ?? run.thisUpdate),
        reason: CrlReason.removeFromCRL,
      },
  );
  return plan([build(run, issuer, shard, "delta", previousNumber + 1, entries, full.crlNumber)]);
}

/** The TBSCertList of one CRL of the shard: complete (announcing its delta) or delta (on `deltaOf`). */
function build(
  run: Run,
  issuer: CaPurpose,
  shard: number,
  kind: CrlKind,
  crlNumber: number,
  entries: RevokedCertificate[] | EncodedCrlEntries,
  deltaOf?: number,
): UnsignedCrl {
  const { authority, thisUpdate } = run;
  const nextUpdate = new Date(
    thisUpdate.getTime() + (kind === "full" ? run.periods.fullMs : run.periods.deltaMs),
  );
  const tbs = buildTbsCertList({
    issuer: authority.issuerKey(issuer),
    purpose: issuer,
    baseUrl: authority.config.baseUrl,
    shard,
    crlNumber: BigInt(crlNumber),
    thisUpdate,
    nextUpdate,
    entries,
    ...(deltaOf === undefined ? { announceDelta: true } : { deltaOf: BigInt(deltaOf) }),
  });
  const count = "der" in entries ? entries.count : entries.length;
  return { kind, crlNumber, baseCrlNumber: deltaOf ?? null, tbs, entries: count, nextUpdate };
}

/**
 * Has the CA sign the shard's CRLs, reads each back and verifies it, and stores them together; then
 * reports the shard. If another publisher stored the shard first, its CRLs stand and are reported.
 */
async function finishShard(run: Run, plan: ShardPlan): Promise<ShardPublication> {
  const { issuer, shard, published } = plan;
  const rows: CrlRow[] = [];
  for (const crl of plan.unsigned) {
    const der = await run.authority.signers[issuer].signCrl(crl.tbs);
    // Each CRL is parsed and its signature verified after signing, before it is published.
    checkSignedCrl(der, { tbs: crl.tbs, entries: crl.entries }, run.caKeys.get(issuer)!);
    rows.push({
      issuer,
      shard,
      kind: crl.kind,
      crl_number: crl.crlNumber,
      base_crl_number: crl.baseCrlNumber,
      change_sequence: run.watermark,
      this_update: isoTime(run.thisUpdate),
      next_update: isoTime(crl.nextUpdate),
      entries: crl.entries,
      der,
    });
  }
  const db = run.authority.registry.db;
  if (!(await replaceShardCrls(db, issuer, shard, plan.previousNumber, rows))) {
    const theirs = (await readPublishedShards(db, [issuer])).get(shardKey(issuer, shard))!;
    return { issuer, shard, full: kept(theirs.full!), delta: kept(theirs.delta!) };
  }
  const report = (kind: CrlKind): CrlPublication => {
    const row = rows.find((r) => r.kind === kind);
    return row ? { ...infoOf(row), signed: true } : kept(published[kind]!);
  };
  return { issuer, shard, full: report("full"), delta: report("delta") };
}

function kept(crl: PublishedCrlInfo): CrlPublication {
  return { ...crl, signed: false };
}

function infoOf(row: CrlRow): PublishedCrlInfo {
  return {
    crlNumber: row.crl_number,
    baseCrlNumber: row.base_crl_number,
    changeSequence: row.change_sequence,
    thisUpdate: row.this_update,
    nextUpdate: row.next_update,
    entries: row.entries,
    bytes: row.der.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Schedule

export interface CrlSchedulerOptions {
  /** Longest wait between two runs (default 5 minutes); runs come sooner when a CRL is due. */
  intervalMs?: number;
  periods?: Partial<CrlPeriods>;
  issuers?: readonly CaPurpose[];
  onPublished?: (report: PublishReport) => void;
  /** A failed run (the next one is still scheduled); default: a line on stderr. */
  onError?: (error: unknown) => void;
}

export interface CrlScheduler {
  /** Publishes now, e.g. after a status change; runs asked for during a run are merged into one after it. */
  publishNow(): Promise<PublishReport>;
  /** Stops the schedule and waits for a run in progress. */
  stop(): Promise<void>;
}

/** Shortest wait between scheduled runs, however overdue a CRL is (a failing run is not retried in a loop). */
const MIN_WAIT_MS = 1000;

/**
 * Publishes at once, then again before any CRL's refresh point (half its period before nextUpdate),
 * and at least every `intervalMs`: so as long as runs succeed, no published CRL reaches its nextUpdate.
 * The timer does not keep the process alive.
 */
export function startCrlScheduler(authority: Authority, options: CrlSchedulerOptions = {}): CrlScheduler {
  const intervalMs = options.intervalMs ?? 5 * 60_000;
  if (!(intervalMs >= MIN_WAIT_MS))
    throw new JpkiError("bad-input", `intervalMs must be at least ${MIN_WAIT_MS}`);
  const onError =
    options.onError ??
    ((error: unknown) => process.stderr.write(`CRL publication failed: ${String(error)}\n`));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<PublishReport> | undefined;
  let queued: Promise<PublishReport> | undefined;

  const publish = async (): Promise<PublishReport> => {
    const report = await publishCrls(authority, {
      ...(options.periods ? { periods: options.periods } : {}),
      ...(options.issuers ? { issuers: options.issuers } : {}),
    });
    options.onPublished?.(report);
    return report;
  };

  const publishNow = (): Promise<PublishReport> => {
    if (stopped) return Promise.reject(new JpkiError("conflict", "the CRL scheduler is stopped"));
    if (!running) {
      running = publish().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return publishNow();
      });
    return queued;
  };

  const schedule = (waitMs: number): void => {
    if (stopped) return;
    timer = setTimeout(tick, Math.max(MIN_WAIT_MS, Math.min(intervalMs, waitMs)));
    timer.unref();
  };

  const tick = (): void => {
    publishNow().then(
      (report) => schedule(untilNextRefresh(report, Date.now())),
      (error) => {
        if (!stopped) onError(error);
        schedule(intervalMs);
      },
    );
  };

  tick();
  return {
    publishNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.allSettled([running, queued]);
    },
  };
}

/** Milliseconds from `now` until the first CRL of `report` is due to be signed again. */
export function untilNextRefresh(report: PublishReport, now: number): number {
  let due = Number.POSITIVE_INFINITY;
  for (const { full, delta } of report.shards) {
    due = Math.min(due, Date.parse(full.nextUpdate) - report.periods.fullMs / 2);
    due = Math.min(due, Date.parse(delta.nextUpdate) - report.periods.deltaMs / 2);
  }
  return due - now;
}
