/**
 * The OCSP responder of the status role (DESIGN §3, §4 flow 8): RFC 6960 in the RFC 5019 profile,
 * with the nonce of RFC 8954, for registered verifiers only. It reads the registry and never changes
 * a certificate's state.
 *
 * What an answer says, per CertID:
 * - the issuing CA is found by issuerNameHash and issuerKeyHash (SHA-1 or SHA-256). A CertID of any
 *   other issuer, or in another hash, makes the whole answer `unauthorized`: this responder is not
 *   authoritative for it (RFC 5019 §2.2.3). So does a request naming both of our CAs, since one answer
 *   has one signer (RFC 6960 §4.2.2.2: each CA's delegated responder signs for that CA only), and a
 *   verifier asking about a CA it is not registered for.
 * - `good` for an issued certificate; `revoked` with revocationTime and reason; a held one (一時保留,
 *   一時利用停止) `revoked` with reason certificateHold (RFC 6960 §2.2); `unknown` for a serial the
 *   registry does not hold for that CA, or one whose issuance never finished (pending, failed).
 * - a certificate past its notAfter is never answered `good`: a revoked or held one keeps its
 *   revocation (the CRL lists it too, RFC 5280 §3.3), one never revoked is `unknown`, as the registry
 *   no longer vouches for it (docs/ocsp.md). A `good` answer's nextUpdate is capped at the
 *   certificate's notAfter, so no cache holds a `good` beyond it either.
 *
 * Answers to one certificate without a nonce are pre-signed and reused (RFC 5019 §2.1.1, §6): kept
 * in memory (bounded) and in the `ocsp_responses` table, which every responder process shares. One is
 * served only while its change sequence (the id of the certificate's latest lifecycle event when it
 * was signed) is still that certificate's latest, read after the request arrived, and while its
 * nextUpdate is comfortably ahead; otherwise a fresh one is signed and stored. Reads of the latest
 * change are batched: one query answers every request that arrived before it started, so a revocation
 * committed before a request arrives is always seen, whatever the load. Answers with a nonce, or about
 * several certificates, are signed for the request.
 */
import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { parseCertificate } from "../pki/certificate.js";
import { CrlReason, type CrlReasonCode } from "../pki/crl.js";
import {
  buildResponseData,
  MalformedOcspRequestError,
  type OcspCertId,
  type OcspCertStatus,
  type OcspErrorStatus,
  type OcspRequest,
  OcspResponseStatus,
  ocspCertId,
  ocspErrorResponse,
  ocspResponderKeyHash,
  ocspResponse,
  parseOcspRequest,
} from "../pki/ocsp.js";
import { OID_SHA1, OID_SHA256 } from "../pki/oids.js";
import { isoTime, toBuffer } from "../registry/db.js";
import { effectiveStatus } from "../registry/lifecycle.js";
import type { CertificateRow, RegistrySchema } from "../registry/schema.js";
import { type Verifier, verifierMayAsk } from "../registry/verifiers.js";
import type { Authority } from "../server/authority.js";

/** The CAs this responder answers for: each has a delegated responder key (authority.ts). */
export type AnsweredIssuer = "auth" | "sign";
export const answeredIssuers: readonly AnsweredIssuer[] = ["auth", "sign"];

/** One CA as the responder needs it. */
export interface ResponderCa {
  readonly issuer: AnsweredIssuer;
  readonly caCertificate: Buffer;
  readonly responderCertificate: Buffer;
  /** CertificateSigner.signOcsp: ResponseData in, BasicOCSPResponse (with the responder certificate) out. */
  readonly signer: { signOcsp(tbsResponseData: Buffer): Promise<Buffer> };
}

export interface OcspResponderOptions {
  /** nextUpdate − thisUpdate of every answer (default 24 h: JPKI gives same-day status). */
  validityMs?: number;
  /** Pre-signed answers with less than this left are signed again (default half the validity). */
  refreshBeforeMs?: number;
  /** Pre-signed answers kept in memory (default 100,000; the table holds them all). */
  memoryEntries?: number;
  /** Signatures the pre-signing runs at once (default 4, libuv's thread pool). */
  signingConcurrency?: number;
  /** Failures that become internalError or tryLater answers, for the log. */
  onError?: (error: unknown) => void;
  now?: () => Date;
}

/** A certificate's status as answered; `held` is sent as revoked with reason certificateHold. */
export type AnsweredCertStatus = "good" | "revoked" | "held" | "unknown";

/** The OCSPResponseStatus names of RFC 6960 §4.2.1. */
export type OcspResponseStatusName = keyof typeof OcspResponseStatus;

/** Where an answer came from: pre-signed in memory, pre-signed in the table, or signed for this request. */
export type OcspAnswerSource = "memory" | "table" | "signed";

export interface OcspAnswer {
  /** OCSPResponse DER. */
  readonly der: Buffer;
  readonly responseStatus: OcspResponseStatusName;
  /** The status given for each CertID, in request order (empty unless successful). */
  readonly certStatuses: readonly AnsweredCertStatus[];
  readonly source?: OcspAnswerSource;
  /**
   * Present when the answer may be cached by HTTP caches (RFC 5019 §6.2): successful and without a
   * nonce, so it is the same for anyone asking until nextUpdate.
   */
  readonly cache?: { readonly etag: string; readonly producedAt: Date; readonly nextUpdate: Date };
}

/** A signed answer about one certificate, reusable until its certificate changes or its nextUpdate. */
export interface PresignedAnswer {
  /** OCSPResponse DER. */
  readonly der: Buffer;
  /** The BasicOCSPResponse inside `der` (a view of its tail), as the table stores it. */
  readonly basic: Buffer;
  readonly status: AnsweredCertStatus;
  /** The certificate's latest lifecycle event id when signed (0: no such certificate). */
  readonly changeSequence: number;
  readonly producedAt: Date;
  readonly nextUpdate: Date;
  readonly etag: string;
}

const HOUR = 3_600_000;
const names = Object.fromEntries(Object.entries(OcspResponseStatus).map(([k, v]) => [v, k])) as Record<
  number,
  OcspResponseStatusName
>;
const ERROR_ANSWERS = new Map<OcspErrorStatus, Buffer>(
  (Object.values(OcspResponseStatus).filter((s) => s !== 0) as OcspErrorStatus[]).map((s) => [
    s,
    ocspErrorResponse(s),
  ]),
);

/** An unsuccessful answer (RFC 6960 §2.3): the status alone, unsigned. */
export function ocspErrorAnswer(status: OcspErrorStatus): OcspAnswer {
  return { der: ERROR_ANSWERS.get(status)!, responseStatus: names[status]!, certStatuses: [] };
}

/** The OCSPResponse around a BasicOCSPResponse, and the BasicOCSPResponse as a view of its tail. */
function wrap(basic: Buffer): { der: Buffer; basic: Buffer } {
  const der = ocspResponse(basic);
  return { der, basic: der.subarray(der.length - basic.length) };
}

/** A strong validator of an answer's bytes (RFC 9110 §8.8.3). */
function etagOf(der: Buffer): string {
  return `"${createHash("sha256").update(der).digest().subarray(0, 18).toString("base64url")}"`;
}

/** Whole seconds: what GeneralizedTime keeps (RFC 5280 §4.1.2.5.2), so HTTP dates agree with the DER. */
function wholeSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

// ---------------------------------------------------------------------------------------------
// Which CA a CertID names

interface IssuerHashes {
  readonly issuer: AnsweredIssuer;
  readonly hashAlgorithm: string;
  readonly nameHash: Buffer;
  readonly keyHash: Buffer;
}

interface CaState extends ResponderCa {
  readonly subjectDer: Buffer;
  readonly spki: Buffer;
  readonly responderKeyHash: Buffer;
  readonly responderNotAfter: Date;
}

// ---------------------------------------------------------------------------------------------
// The latest change of each certificate, read in batches

/**
 * Reads the latest lifecycle event id of serials, for many concurrent requests in few queries. A
 * query starts only after every request it answers arrived: requests coming while one runs wait for
 * the next, which starts when it ends. So a change committed before a request arrived is always seen.
 */
class LatestChanges {
  private queue = new Map<string, { resolve: (seq: number) => void; reject: (e: unknown) => void }[]>();
  private running = false;
  private scheduled = false;

  constructor(private readonly db: Kysely<RegistrySchema>) {}

  of(serial: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const waiting = this.queue.get(serial);
      if (waiting) waiting.push({ resolve, reject });
      else this.queue.set(serial, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: requests parsed in the same turn of the event loop share a query.
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    const batch = this.queue;
    if (batch.size === 0) return;
    this.queue = new Map();
    this.running = true;
    try {
      const serials = [...batch.keys()];
      const found = new Map<string, number>();
      for (let i = 0; i < serials.length; i += 500) {
        const rows = await this.db
          .selectFrom("lifecycle_events")
          .select(["serial", (eb) => eb.fn.max("id").as("seq")])
          .where("serial", "in", serials.slice(i, i + 500))
          .groupBy("serial")
          .execute();
        for (const row of rows) found.set(row.serial, Number(row.seq));
      }
      for (const [serial, waiting] of batch) for (const w of waiting) w.resolve(found.get(serial) ?? 0);
    } catch (error) {
      for (const waiting of batch.values()) for (const w of waiting) w.reject(error);
    } finally {
      this.running = false;
      if (this.queue.size > 0) this.schedule();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Registry reads

type StatusRow = Pick<
  CertificateRow,
  "serial" | "issuer" | "status" | "revoked_at" | "revocation_reason" | "not_after"
> & { seq: number };

/** The rows of `serials` with each one's latest change, read in one statement (one snapshot). */
async function statusRows(
  db: Kysely<RegistrySchema>,
  serials: readonly string[],
): Promise<Map<string, StatusRow>> {
  const rows = await db
    .selectFrom("certificates as c")
    .select([
      "c.serial",
      "c.issuer",
      "c.status",
      "c.revoked_at",
      "c.revocation_reason",
      "c.not_after",
      (eb) =>
        eb
          .selectFrom("lifecycle_events as e")
          .select((e) => e.fn.max("e.id").as("m"))
          .whereRef("e.serial", "=", "c.serial")
          .as("seq"),
    ])
    .where("c.serial", "in", [...new Set(serials)])
    .execute();
  return new Map(rows.map((r) => [r.serial, { ...r, seq: Number(r.seq ?? 0) }]));
}

/** What the registry row says at `now`, as an OCSP CertStatus (see the header for expired certificates). */
function certStatusOf(row: StatusRow | undefined, issuer: AnsweredIssuer, now: Date): OcspCertStatus {
  if (!row || row.issuer !== issuer) return { status: "unknown" };
  const status = effectiveStatus(row, now);
  switch (status) {
    case "issued":
      return { status: "good" };
    case "suspended":
    case "revoked":
    case "expired": {
      if (row.revoked_at === null) {
        if (status === "expired") return { status: "unknown" };
        throw new JpkiError("integrity", `certificate ${row.serial} is ${status} without a revocation time`);
      }
      const reason = row.revocation_reason === null ? undefined : (row.revocation_reason as CrlReasonCode);
      return reason === undefined
        ? { status: "revoked", revocationTime: new Date(row.revoked_at) }
        : { status: "revoked", revocationTime: new Date(row.revoked_at), reason };
    }
    default:
      // pending, failed: no certificate the registry can vouch for.
      return { status: "unknown" };
  }
}

/** nextUpdate of an answer signed at `now`: a `good` one ends at the certificate's notAfter at the latest. */
function nextUpdateOf(
  status: OcspCertStatus,
  row: StatusRow | undefined,
  now: Date,
  validityMs: number,
): Date {
  const next = now.getTime() + validityMs;
  if (status.status !== "good" || !row) return new Date(next);
  return new Date(Math.min(next, Math.floor(Date.parse(row.not_after) / 1000) * 1000));
}

function answeredStatus(status: OcspCertStatus): AnsweredCertStatus {
  if (status.status !== "revoked") return status.status;
  return status.reason === CrlReason.certificateHold ? "held" : "revoked";
}

// ---------------------------------------------------------------------------------------------
// The responder

/** Bounded memory of pre-signed answers, oldest first out (a Map keeps insertion order). */
class AnswerMemory {
  private readonly entries = new Map<string, PresignedAnswer>();
  constructor(private readonly capacity: number) {}
  get(key: string): PresignedAnswer | undefined {
    return this.entries.get(key);
  }
  has(key: string): boolean {
    return this.entries.has(key);
  }
  set(key: string, answer: PresignedAnswer): void {
    if (this.capacity <= 0) return;
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, answer);
  }
  get size(): number {
    return this.entries.size;
  }
}

/** The state of one CA's signing, for /healthz. */
export interface SignerHealth {
  readonly issuer: AnsweredIssuer;
  readonly responderCertificateValidUntil: string;
  /** The last failed signature's time and message, when the last attempt failed. */
  readonly lastFailure?: { readonly at: string; readonly message: string };
}

export class OcspResponder {
  readonly validityMs: number;
  readonly refreshBeforeMs: number;
  private readonly cas: readonly CaState[];
  private readonly hashes: readonly IssuerHashes[];
  private readonly memory: AnswerMemory;
  private readonly latest: LatestChanges;
  /** Signatures in progress per memory key, so a burst of requests after a change signs once. */
  private readonly signing = new Map<string, Promise<PresignedAnswer>>();
  private readonly failures = new Map<AnsweredIssuer, { at: string; message: string }>();
  private readonly now: () => Date;
  private readonly concurrency: number;

  constructor(
    private readonly db: Kysely<RegistrySchema>,
    cas: readonly ResponderCa[],
    private readonly options: OcspResponderOptions = {},
  ) {
    this.validityMs = options.validityMs ?? 24 * HOUR;
    this.refreshBeforeMs = options.refreshBeforeMs ?? this.validityMs / 2;
    if (!(this.validityMs >= 60_000) || !(this.refreshBeforeMs > 0 && this.refreshBeforeMs < this.validityMs))
      throw new JpkiError(
        "bad-input",
        "OCSP validity must be at least a minute and longer than the refresh margin",
      );
    this.now = options.now ?? (() => new Date());
    this.concurrency = Math.max(1, options.signingConcurrency ?? 4);
    this.memory = new AnswerMemory(options.memoryEntries ?? 100_000);
    this.latest = new LatestChanges(db);
    this.cas = cas.map((ca) => {
      const certificate = parseCertificate(ca.caCertificate);
      return {
        ...ca,
        subjectDer: certificate.subjectDer,
        spki: certificate.spki,
        responderKeyHash: ocspResponderKeyHash(ca.responderCertificate),
        responderNotAfter: parseCertificate(ca.responderCertificate).notAfter,
      };
    });
    this.hashes = this.cas.flatMap((ca) => {
      const { subjectPublicKey } = parseCertificate(ca.caCertificate);
      return (["sha1", "sha256"] as const).map((hash) => ({
        issuer: ca.issuer,
        hashAlgorithm: hash === "sha1" ? OID_SHA1 : OID_SHA256,
        nameHash: createHash(hash).update(ca.subjectDer).digest(),
        keyHash: createHash(hash).update(subjectPublicKey).digest(),
      }));
    });
  }

  /** The responder of an authority's signing and user-authentication CAs. */
  static forAuthority(authority: Authority, options: OcspResponderOptions = {}): OcspResponder {
    const { certificates, signers } = authority;
    return new OcspResponder(
      authority.registry.db,
      [
        {
          issuer: "auth",
          caCertificate: certificates.auth,
          responderCertificate: certificates.authOcsp,
          signer: signers.auth,
        },
        {
          issuer: "sign",
          caCertificate: certificates.sign,
          responderCertificate: certificates.signOcsp,
          signer: signers.sign,
        },
      ],
      options,
    );
  }

  /** Answers an OCSPRequest's DER; never throws. */
  async answerDer(der: Buffer, verifier: Verifier | undefined): Promise<OcspAnswer> {
    let request: OcspRequest;
    try {
      request = parseOcspRequest(der);
    } catch (error) {
      if (error instanceof MalformedOcspRequestError)
        return ocspErrorAnswer(OcspResponseStatus.malformedRequest);
      return this.failed(error);
    }
    return this.answer(request, verifier);
  }

  /** Answers a parsed request for `verifier` (undefined: no valid token); never throws. */
  async answer(request: OcspRequest, verifier: Verifier | undefined): Promise<OcspAnswer> {
    if (!verifier) return ocspErrorAnswer(OcspResponseStatus.unauthorized);
    let issuer: AnsweredIssuer | undefined;
    for (const certId of request.certIds) {
      const found = this.issuerOf(certId);
      if (!found || (issuer !== undefined && found !== issuer) || !verifierMayAsk(verifier, found))
        return ocspErrorAnswer(OcspResponseStatus.unauthorized);
      issuer = found;
    }
    const ca = this.caOf(issuer!);
    try {
      if (request.certIds.length === 1 && request.nonce === undefined)
        return await this.answerOne(ca, request.certIds[0]!);
      return await this.answerFresh(ca, request);
    } catch (error) {
      return this.failed(error);
    }
  }

  /** An internal failure as an OCSP answer: tryLater when the signer's device is away, else internalError. */
  private failed(error: unknown): OcspAnswer {
    this.options.onError?.(error);
    const unavailable = error instanceof JpkiError && error.code === "signer-unavailable";
    return ocspErrorAnswer(unavailable ? OcspResponseStatus.tryLater : OcspResponseStatus.internalError);
  }

  private issuerOf(certId: OcspCertId): AnsweredIssuer | undefined {
    for (const h of this.hashes)
      if (
        h.hashAlgorithm === certId.hashAlgorithm &&
        h.nameHash.equals(certId.issuerNameHash) &&
        h.keyHash.equals(certId.issuerKeyHash)
      )
        return h.issuer;
    return undefined;
  }

  private caOf(issuer: AnsweredIssuer): CaState {
    const ca = this.cas.find((c) => c.issuer === issuer);
    if (!ca) throw new JpkiError("internal", `no responder for the ${issuer} CA`);
    return ca;
  }

  /** Whether a pre-signed answer may still be given: its nextUpdate must leave the client time to use it. */
  private fresh(answer: { nextUpdate: Date }, now: number): boolean {
    return answer.nextUpdate.getTime() - now > Math.min(5 * 60_000, this.refreshBeforeMs / 2);
  }

  /** The RFC 5019 path: one certificate, no nonce, answered pre-signed whenever still right. */
  private async answerOne(ca: CaState, certId: OcspCertId): Promise<OcspAnswer> {
    const key = certId.der.toString("latin1");
    const latest = await this.latest.of(certId.serialHex);
    const now = this.now().getTime();
    const remembered = this.memory.get(key);
    if (remembered && remembered.changeSequence === latest && this.fresh(remembered, now))
      return this.presignedAnswer(remembered, "memory");

    const canonical = this.isCanonical(ca, certId);
    if (canonical) {
      const row = await this.db
        .selectFrom("ocsp_responses")
        .select(["issuer", "status", "change_sequence", "produced_at", "next_update", "der"])
        .where("serial", "=", certId.serialHex)
        .executeTakeFirst();
      if (row && row.issuer === ca.issuer && Number(row.change_sequence) === latest) {
        const stored = this.fromTable(row, latest);
        if (this.fresh(stored, now)) {
          this.memory.set(key, stored);
          return this.presignedAnswer(stored, "table");
        }
      }
    }
    return this.presignedAnswer(await this.signOnce(ca, certId, key, latest, canonical), "signed");
  }

  private presignedAnswer(answer: PresignedAnswer, source: OcspAnswerSource): OcspAnswer {
    return {
      der: answer.der,
      responseStatus: "successful",
      certStatuses: [answer.status],
      source,
      cache: { etag: answer.etag, producedAt: answer.producedAt, nextUpdate: answer.nextUpdate },
    };
  }

  private fromTable(
    row: { status: string; change_sequence: number; produced_at: string; next_update: string; der: Buffer },
    changeSequence: number,
  ): PresignedAnswer {
    const { der, basic } = wrap(toBuffer(row.der));
    return {
      der,
      basic,
      status: row.status as AnsweredCertStatus,
      changeSequence,
      producedAt: new Date(row.produced_at),
      nextUpdate: new Date(row.next_update),
      etag: etagOf(der),
    };
  }

  /**
   * The CertID pre-signed answers are made for, and the table holds: SHA-1 with NULL parameters, as
   * RFC 5019 §2.1.1 has clients write it (OpenSSL, GnuTLS and NSS do). Other spellings of the same
   * certificate are answered with their own bytes echoed, signed on demand and kept in memory only.
   */
  private isCanonical(ca: CaState, certId: OcspCertId): boolean {
    return (
      certId.hashAlgorithm === OID_SHA1 &&
      certId.der.equals(ocspCertId(ca.subjectDer, ca.spki, certId.serial))
    );
  }

  /** Signs one answer, or joins a signature of the same CertID in progress if it is recent enough. */
  private async signOnce(
    ca: CaState,
    certId: OcspCertId,
    key: string,
    latest: number,
    canonical: boolean,
  ): Promise<PresignedAnswer> {
    const inProgress = this.signing.get(key);
    if (inProgress) {
      const answer = await inProgress;
      if (answer.changeSequence >= latest) return answer;
    }
    const signature = (async () => {
      const rows = await statusRows(this.db, [certId.serialHex]);
      const row = rows.get(certId.serialHex);
      const answer = await this.signSingle(ca, certId.der, row);
      // Only the canonical CertID of a certificate of this CA goes to the shared table (one row per serial).
      if (canonical && row && row.issuer === ca.issuer)
        await this.store([{ serial: row.serial, issuer: ca.issuer, answer }]);
      this.memory.set(key, answer);
      return answer;
    })();
    this.signing.set(key, signature);
    try {
      return await signature;
    } finally {
      if (this.signing.get(key) === signature) this.signing.delete(key);
    }
  }

  /** Signs the answer about one certificate, as its registry row stands (row.seq is read with it). */
  private async signSingle(
    ca: CaState,
    certIdDer: Buffer,
    row: StatusRow | undefined,
  ): Promise<PresignedAnswer> {
    const now = wholeSecond(this.now());
    const status = certStatusOf(row, ca.issuer, now);
    const nextUpdate = nextUpdateOf(status, row, now, this.validityMs);
    const basic = await this.sign(
      ca,
      buildResponseData({
        responderKeyHash: ca.responderKeyHash,
        producedAt: now,
        responses: [{ certId: certIdDer, ...status, thisUpdate: now, nextUpdate }],
      }),
    );
    const wrapped = wrap(basic);
    return {
      der: wrapped.der,
      basic: wrapped.basic,
      status: answeredStatus(status),
      changeSequence: row?.seq ?? 0,
      producedAt: now,
      nextUpdate,
      etag: etagOf(wrapped.der),
    };
  }

  private async sign(ca: CaState, tbsResponseData: Buffer): Promise<Buffer> {
    try {
      const basic = await ca.signer.signOcsp(tbsResponseData);
      this.failures.delete(ca.issuer);
      return basic;
    } catch (error) {
      this.failures.set(ca.issuer, {
        at: isoTime(this.now()),
        message: (error as Error)?.message ?? String(error),
      });
      throw error;
    }
  }

  /** Several certificates, or a nonce to echo (RFC 8954 §2.1): signed for this request. */
  private async answerFresh(ca: CaState, request: OcspRequest): Promise<OcspAnswer> {
    const rows = await statusRows(
      this.db,
      request.certIds.map((c) => c.serialHex),
    );
    const now = wholeSecond(this.now());
    const statuses = request.certIds.map((c) => certStatusOf(rows.get(c.serialHex), ca.issuer, now));
    const nextUpdates = request.certIds.map((c, i) =>
      nextUpdateOf(statuses[i]!, rows.get(c.serialHex), now, this.validityMs),
    );
    const nextUpdate = new Date(Math.min(...nextUpdates.map((d) => d.getTime())));
    const basic = await this.sign(
      ca,
      buildResponseData({
        responderKeyHash: ca.responderKeyHash,
        producedAt: now,
        responses: request.certIds.map((c, i) => ({
          certId: c.der,
          ...statuses[i]!,
          thisUpdate: now,
          nextUpdate: nextUpdates[i]!,
        })),
        ...(request.nonce ? { nonce: request.nonce } : {}),
      }),
    );
    const der = ocspResponse(basic);
    return {
      der,
      responseStatus: "successful",
      certStatuses: statuses.map(answeredStatus),
      source: "signed",
      ...(request.nonce ? {} : { cache: { etag: etagOf(der), producedAt: now, nextUpdate } }),
    };
  }

  /**
   * Writes answers to the shared table. An answer replaces the stored one unless that one reflects a
   * later change (two processes signing one certificate at once: the later state wins).
   */
  private async store(
    answers: readonly { serial: string; issuer: AnsweredIssuer; answer: PresignedAnswer }[],
  ): Promise<void> {
    if (answers.length === 0) return;
    await this.db
      .insertInto("ocsp_responses")
      .values(
        answers.map(({ serial, issuer, answer }) => ({
          serial,
          issuer,
          // good, revoked, held (revoked with certificateHold) or unknown: the status the answer gives.
          status: answer.status,
          change_sequence: answer.changeSequence,
          produced_at: isoTime(answer.producedAt),
          next_update: isoTime(answer.nextUpdate),
          der: answer.basic,
        })),
      )
      .onConflict((oc) =>
        oc
          .column("serial")
          .doUpdateSet((eb) => ({
            issuer: eb.ref("excluded.issuer"),
            status: eb.ref("excluded.status"),
            change_sequence: eb.ref("excluded.change_sequence"),
            produced_at: eb.ref("excluded.produced_at"),
            next_update: eb.ref("excluded.next_update"),
            der: eb.ref("excluded.der"),
          }))
          .where((eb) => eb("ocsp_responses.change_sequence", "<=", eb.ref("excluded.change_sequence"))),
      )
      .execute();
  }

  /**
   * Pre-signs the answers of `serials` that need it: live or revoked certificates of our CAs, not yet
   * expired, whose stored answer is missing, reflects an older change, or nears its nextUpdate.
   * Returns how many were signed. Memory entries of these certificates are replaced too.
   */
  async presign(serials: readonly string[]): Promise<number> {
    if (serials.length === 0) return 0;
    const now = this.now();
    const due: { row: StatusRow; ca: CaState }[] = [];
    for (let i = 0; i < serials.length; i += 500) {
      const rows = await this.db
        .selectFrom("certificates as c")
        .leftJoin("ocsp_responses as o", "o.serial", "c.serial")
        .select([
          "c.serial",
          "c.issuer",
          "c.status",
          "c.revoked_at",
          "c.revocation_reason",
          "c.not_after",
          "o.change_sequence as answered",
          "o.next_update as answered_until",
          (eb) =>
            eb
              .selectFrom("lifecycle_events as e")
              .select((e) => e.fn.max("e.id").as("m"))
              .whereRef("e.serial", "=", "c.serial")
              .as("seq"),
        ])
        .where("c.serial", "in", [...new Set(serials.slice(i, i + 500))])
        .where("c.issuer", "in", answeredIssuers)
        .where("c.status", "in", ["issued", "suspended", "revoked"])
        .where("c.not_after", ">", isoTime(now))
        .execute();
      const refreshBefore = isoTime(new Date(now.getTime() + this.refreshBeforeMs));
      for (const r of rows) {
        const seq = Number(r.seq ?? 0);
        if (r.answered === null || Number(r.answered) !== seq || (r.answered_until ?? "") < refreshBefore)
          due.push({ row: { ...r, seq }, ca: this.caOf(r.issuer as AnsweredIssuer) });
      }
    }
    let signed = 0;
    for (let i = 0; i < due.length; i += this.concurrency * 8) {
      const chunk = due.slice(i, i + this.concurrency * 8);
      const answers: { serial: string; issuer: AnsweredIssuer; answer: PresignedAnswer }[] = [];
      for (let j = 0; j < chunk.length; j += this.concurrency)
        answers.push(
          ...(await Promise.all(
            chunk.slice(j, j + this.concurrency).map(async ({ row, ca }) => {
              const certId = ocspCertId(ca.subjectDer, ca.spki, Buffer.from(row.serial, "hex"));
              const answer = await this.signSingle(ca, certId, row);
              const key = certId.toString("latin1");
              if (this.memory.has(key)) this.memory.set(key, answer);
              return { serial: row.serial, issuer: ca.issuer, answer };
            }),
          )),
        );
      await this.store(answers);
      signed += answers.length;
    }
    return signed;
  }

  /** The signers' state for /healthz. */
  health(): SignerHealth[] {
    return this.cas.map((ca) => {
      const failure = this.failures.get(ca.issuer);
      return {
        issuer: ca.issuer,
        responderCertificateValidUntil: ca.responderNotAfter.toISOString(),
        ...(failure ? { lastFailure: failure } : {}),
      };
    });
  }

  /** Whether each responder certificate is within its validity and its last signature worked. */
  healthy(now = this.now()): boolean {
    return this.cas.every((ca) => ca.responderNotAfter > now && !this.failures.has(ca.issuer));
  }

  /** Answers held in memory. */
  get remembered(): number {
    return this.memory.size;
  }
}
