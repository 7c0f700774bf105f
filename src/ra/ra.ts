/**
 * The RA (J-LIS front): takes an application from any channel (channel.ts), has the channel
 * authorise it, records the decision, then has the CA sign, the same way for every channel:
 *
 * 1. authorise (outside any transaction: signature and chain checks are CPU work). A refusal is
 *    recorded as a failed application with the reason, and thrown to the caller.
 * 2. one transaction: the application is recorded `received`, the channel's single-use proof is
 *    used up (nonce, access code), the application becomes `verified`. A channel that continues an
 *    application it recorded earlier (`channel.continues`, the postal channel) has that application
 *    move to `verified` instead, and records its refusals itself.
 * 3. issuance (registry/issuance.ts): the pending certificate row is stored with the double-issuance
 *    policy's check and the application's link to it in one transaction; the CA signs; the
 *    certificate is stored, the policy's supersede applied and the application moved to `issued`
 *    in one transaction. A crash in between leaves a pending row that recovery finishes, and
 *    `reconcileApplications` brings the application to the certificate's state.
 */
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { ratesOf, recordBillable } from "../ledger/ledger.js";
import { smartphoneAuthenticationCertificateTbs } from "../pki/profiles.js";
import { type IssuanceRequest, issueCertificates } from "../registry/issuance.js";
import { doubleIssuanceHooks } from "../registry/lifecycle.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";
import {
  type ApplicationRecord,
  advanceApplication,
  createApplication,
  markApplicationsIssued,
  newApplicationNumber,
  recordVerifiedApplications,
} from "./applications.js";
import type { ApplicationChannel, Authorisation } from "./channel.js";
import { storeInjectedKey } from "./injected-keys.js";

export interface SubmittedApplication {
  readonly application: ApplicationRecord;
  readonly certificate: Buffer;
}

export interface SubmitOptions {
  readonly now?: Date;
  /** Recorded as the actor of the application's changes (default `ra:<channel>`). */
  readonly actor?: string;
}

/** Refusals the applicant caused (recorded as a failed application); anything else is our failure. */
const isRefusal = (error: unknown): error is JpkiError =>
  error instanceof JpkiError && ["bad-input", "forbidden", "conflict", "not-found"].includes(error.code);

/** One application's end in a batch: the certificate, or why not (a refusal or a failure). */
export type ApplicationOutcome =
  | { readonly ok: true; readonly value: SubmittedApplication }
  | { readonly ok: false; readonly error: unknown };

/**
 * Runs one application through `channel` to a signed smartphone user-authentication certificate.
 * Throws the channel's or the policy's refusal (after recording it) or a failure of ours.
 */
export async function submitApplication<Request>(
  authority: Authority,
  channel: ApplicationChannel<Request>,
  request: Request,
  options: SubmitOptions = {},
): Promise<SubmittedApplication> {
  const [outcome] = await submitApplications(authority, channel, [request], options);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.value;
}

interface Item<Request> {
  readonly request: Request;
  /** The application an earlier step of the channel recorded (postal, counter), if any. */
  readonly continued: string | undefined;
  readonly id: string;
  authorisation?: Authorisation;
  error?: unknown;
  application?: ApplicationRecord;
  certificate?: Buffer;
}

/**
 * Runs a batch of applications of one channel together, each with its own outcome: the examinations
 * run side by side, the records of all share one transaction, and the issuance one registry batch
 * (one transaction for the pending rows, one for the certificates), so the database's commits are
 * paid once per batch rather than per application (ApplicationDesk gathers the batches).
 */
export async function submitApplications<Request>(
  authority: Authority,
  channel: ApplicationChannel<Request>,
  requests: readonly Request[],
  options: SubmitOptions = {},
): Promise<ApplicationOutcome[]> {
  const now = options.now ?? new Date();
  const actor = options.actor ?? `ra:${channel.name}`;
  const db = authority.registry.db;
  const items: Item<Request>[] = requests.map((request) => {
    const continued = channel.continues?.(request);
    return { request, continued, id: continued ?? newApplicationNumber() };
  });

  // 1. Examination, side by side.
  await Promise.all(
    items.map(async (item) => {
      try {
        item.authorisation = await channel.authorise(item.request, { authority, now });
      } catch (error) {
        item.error = error;
      }
    }),
  );

  // 2. The records, in one transaction. A refusal met there (a nonce used meanwhile) takes its item
  // out and the others are recorded again without it, so nothing of the refused one stays.
  let pending = items.filter((i) => i.authorisation);
  while (pending.length > 0) {
    let refused: Item<Request> | undefined;
    try {
      await db.transaction().execute(async (trx) => {
        // New applications in one go (rows, history, audit), then each one's single-use proof.
        await recordVerifiedApplications(
          trx,
          pending
            .filter((item) => item.continued === undefined)
            .map((item) => ({
              id: item.id,
              channel: channel.name,
              personId: item.authorisation!.personId,
              iccid: item.authorisation!.sim.iccid,
              evidence: item.authorisation!.evidence,
              actor,
              now,
            })),
        );
        for (const item of pending) {
          try {
            if (item.continued === undefined) await item.authorisation!.consume(trx, item.id);
            else await continueVerified(trx, item, actor, now);
          } catch (error) {
            if (isRefusal(error)) refused = item;
            throw error;
          }
        }
      });
      break;
    } catch (error) {
      if (!refused) {
        for (const item of pending) item.error = error;
        pending = [];
        break;
      }
      refused.error = error;
      pending = pending.filter((i) => i !== refused);
    }
  }
  for (const item of items)
    if (item.error !== undefined && isRefusal(item.error) && item.continued === undefined)
      await recordRefusal(db, item.id, channel.name, actor, item.error, now, {
        personId: item.authorisation?.personId,
        iccid: item.authorisation?.sim.iccid,
      });

  // 3. Issuance: the whole batch, or one by one when the policy refused within it.
  const verified = items.filter((i) => i.error === undefined);
  if (verified.length > 0)
    try {
      await issueFor(authority, verified, actor);
    } catch (error) {
      if (verified.length === 1 || !isRefusal(error)) await failAll(authority, verified, actor, error);
      else
        for (const item of verified)
          await issueFor(authority, [item], actor).catch((single) =>
            failAll(authority, [item], actor, single),
          );
    }

  return items.map(
    (item): ApplicationOutcome =>
      item.error === undefined && item.application && item.certificate
        ? { ok: true, value: { application: item.application, certificate: item.certificate } }
        : {
            ok: false,
            error: item.error ?? new JpkiError("internal", `application ${item.id} ended without a result`),
          },
  );
}

/** Moves an application recorded earlier (postal, counter) to `verified`, using up its single-use proof. */
async function continueVerified<Request>(
  trx: Kysely<RegistrySchema>,
  item: Item<Request>,
  actor: string,
  now: Date,
): Promise<void> {
  const authorisation = item.authorisation!;
  await assertContinues(trx, item.id, authorisation);
  await authorisation.consume(trx, item.id);
  await advanceApplication(trx, item.id, "verified", { actor, now, evidence: authorisation.evidence });
}

/** The registry's crash-safe issuance for verified applications, the policy and the records in its transactions. */
async function issueFor<Request>(authority: Authority, items: Item<Request>[], actor: string): Promise<void> {
  const db = authority.registry.db;
  const policy = doubleIssuanceHooks(authority.policies, actor);
  const byRequest = new Map<IssuanceRequest, Item<Request>>();
  const requests = items.map((item) => {
    const a = item.authorisation!;
    const request: IssuanceRequest = {
      issuer: "auth",
      kind: "phone-auth",
      medium: "sim",
      personId: a.personId,
      cardId: a.cardId,
      simId: a.sim.id,
      parentSerial: a.parentSerial,
      ...a.validity,
      buildTbs: (serial, shard) =>
        smartphoneAuthenticationCertificateTbs({
          serial,
          shard,
          issuer: authority.issuerKey("auth"),
          subjectSpki: a.subjectSpki,
          validity: a.validity,
          baseUrl: authority.config.baseUrl,
        }),
    };
    byRequest.set(request, item);
    return request;
  });
  const results = await issueCertificates(db, authority.signers, requests, {
    actor,
    async onPending(trx, stored) {
      await policy.onPending(trx, stored);
      for (const { serial, request } of stored)
        await trx
          .updateTable("applications")
          .set({ certificate_serial: serial })
          .where("id", "=", byRequest.get(request)!.id)
          .execute();
    },
    async onIssued(trx, issued) {
      await policy.onIssued(trx, issued);
      const rate = ratesOf(authority.dataDir).issuance;
      await recordBillable(
        trx,
        issued.map(({ serial }) => ({
          kind: "issuance",
          source: `issuance:${serial}`,
          payer: rate.payer,
          payee: "jlis",
          quantity: 1,
          rate,
          reference: serial,
        })),
        actor,
      );
      const records = await markApplicationsIssued(
        trx,
        issued.map(({ serial, request }) => ({ id: byRequest.get(request)!.id, certificateSerial: serial })),
        actor,
      );
      for (const [i, { request }] of issued.entries()) {
        const item = byRequest.get(request)!;
        item.application = records[i];
        const injected = item.authorisation!.injectedKey;
        if (injected) await storeInjectedKey(trx, authority.dataDir, item.id, injected);
      }
    },
  });
  for (const [i, result] of results.entries()) {
    const item = items[i]!;
    if (result.ok) {
      item.certificate = result.der;
      continue;
    }
    const transient = result.reason.startsWith("signer unavailable");
    item.error = new JpkiError(
      transient ? "signer-unavailable" : "internal",
      `application ${item.id}: the certificate was not issued (${result.reason})${transient ? "; it will be finished when the CA is back" : ""}`,
    );
    // A signer that is away leaves the certificate pending for recovery: the application waits with it.
    if (!transient)
      await db.transaction().execute((trx) =>
        advanceApplication(trx, item.id, "failed", {
          actor,
          reason: `the certificate was not issued: ${result.reason}`,
        }),
      );
  }
}

/** Fails verified applications whose issuance was refused (strict double issuance) or broke. */
async function failAll<Request>(authority: Authority, items: Item<Request>[], actor: string, error: unknown) {
  await authority.registry.db.transaction().execute(async (trx) => {
    for (const item of items) {
      item.error = error;
      await advanceApplication(trx, item.id, "failed", { actor, reason: (error as Error).message });
    }
  });
}

export interface ApplicationDeskOptions extends SubmitOptions {
  /** Applications examined together at most (default 64). */
  readonly maxBatch?: number;
  /** Batches in progress at once (default 2: one is signed while the next is examined). */
  readonly concurrency?: number;
}

/**
 * The RA's desk (窓口) for one channel: applications that arrive while a batch is in progress wait and
 * go together in the next (submitApplications), so under load many share each transaction, and a
 * lone application goes at once. Each caller gets its own application's outcome.
 */
export class ApplicationDesk<Request> {
  private readonly queue: {
    request: Request;
    resolve: (value: SubmittedApplication) => void;
    reject: (error: unknown) => void;
  }[] = [];
  private running = 0;

  constructor(
    private readonly authority: Authority,
    private readonly channel: ApplicationChannel<Request>,
    private readonly options: ApplicationDeskOptions = {},
  ) {}

  submit(request: Request): Promise<SubmittedApplication> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.queue.length === 0 || this.running >= (this.options.concurrency ?? 2)) return;
    const batch = this.queue.splice(0, this.options.maxBatch ?? 64);
    this.running++;
    submitApplications(
      this.authority,
      this.channel,
      batch.map((b) => b.request),
      this.options,
    )
      .then(
        (outcomes) => {
          for (const [i, outcome] of outcomes.entries())
            if (outcome.ok) batch[i]!.resolve(outcome.value);
            else batch[i]!.reject(outcome.error);
        },
        (error) => {
          for (const b of batch) b.reject(error);
        },
      )
      .finally(() => {
        this.running--;
        this.next();
      });
  }
}

/**
 * A continued application is for the person and the SIM the channel authorised. (Not necessarily the
 * same channel: the counter may continue a postal application referred to it.)
 */
async function assertContinues(
  trx: Kysely<RegistrySchema>,
  id: string,
  authorisation: Authorisation,
): Promise<void> {
  const row = await trx
    .selectFrom("applications")
    .select(["person_id", "iccid"])
    .where("id", "=", id)
    .executeTakeFirst();
  if (!row) throw new JpkiError("not-found", `no application ${id}`);
  if (row.person_id !== authorisation.personId || row.iccid !== authorisation.sim.iccid)
    throw new JpkiError(
      "integrity",
      `application ${id} is not for this person and SIM: the channel's authorisation does not continue it`,
    );
}

/** Records a refused request as a failed application with the refusal as its reason. */
export async function recordRefusal(
  db: Kysely<RegistrySchema>,
  id: string,
  channel: ApplicationRecord["channel"],
  actor: string,
  error: JpkiError,
  now: Date,
  who: { personId?: string; iccid?: string } = {},
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await createApplication(trx, {
      id,
      channel,
      personId: who.personId ?? null,
      iccid: who.iccid ?? null,
      evidence: { refusal: error.code },
      actor,
      now,
    });
    await advanceApplication(trx, id, "failed", { actor, reason: error.message, now });
  });
}

/**
 * Brings `verified` applications to their certificate's state after recovery finished (or failed)
 * the issuance a crash interrupted (openAuthority runs it after recovery). Returns how many moved.
 */
export async function reconcileApplications(
  db: Kysely<RegistrySchema>,
  actor = "system:recovery",
): Promise<number> {
  const waiting = await db
    .selectFrom("applications")
    .innerJoin("certificates", "certificates.serial", "applications.certificate_serial")
    .select(["applications.id", "certificates.serial", "certificates.status", "certificates.failure_reason"])
    .where("applications.status", "=", "verified")
    .where("certificates.status", "!=", "pending")
    .execute();
  for (const row of waiting)
    await db.transaction().execute((trx) =>
      row.status === "failed"
        ? advanceApplication(trx, row.id, "failed", {
            actor,
            reason: `the certificate was not issued: ${row.failure_reason ?? "unknown"}`,
          })
        : advanceApplication(trx, row.id, "issued", { actor, certificateSerial: row.serial }),
    );
  return waiting.length;
}
