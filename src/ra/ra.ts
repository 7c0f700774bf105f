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
import { smartphoneAuthenticationCertificateTbs } from "../pki/profiles.js";
import { issueCertificates } from "../registry/issuance.js";
import { doubleIssuanceHooks } from "../registry/lifecycle.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";
import {
  type ApplicationRecord,
  advanceApplication,
  createApplication,
  newApplicationNumber,
} from "./applications.js";
import type { ApplicationChannel, Authorisation } from "./channel.js";

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
  const now = options.now ?? new Date();
  const actor = options.actor ?? `ra:${channel.name}`;
  const db = authority.registry.db;
  const continued = channel.continues?.(request);
  const id = continued ?? newApplicationNumber();

  let authorisation: Authorisation;
  try {
    authorisation = await channel.authorise(request, { authority, now });
  } catch (error) {
    if (isRefusal(error) && continued === undefined)
      await recordRefusal(db, id, channel.name, actor, error, now);
    throw error;
  }

  try {
    await db.transaction().execute(async (trx) => {
      if (continued === undefined)
        await createApplication(trx, {
          id,
          channel: channel.name,
          personId: authorisation.personId,
          iccid: authorisation.sim.iccid,
          evidence: authorisation.evidence,
          actor,
          now,
        });
      else await assertContinues(trx, id, authorisation);
      await authorisation.consume(trx, id);
      await advanceApplication(trx, id, "verified", {
        actor,
        now,
        ...(continued === undefined ? {} : { evidence: authorisation.evidence }),
      });
    });
  } catch (error) {
    if (isRefusal(error) && continued === undefined)
      await recordRefusal(db, id, channel.name, actor, error, now, {
        personId: authorisation.personId,
        iccid: authorisation.sim.iccid,
      });
    throw error;
  }

  const policy = doubleIssuanceHooks(authority.policies, actor);
  const { validity } = authorisation;
  let application: ApplicationRecord | undefined;
  let results: Awaited<ReturnType<typeof issueCertificates>>;
  try {
    results = await issueCertificates(
      db,
      authority.signers,
      [
        {
          issuer: "auth",
          kind: "phone-auth",
          medium: "sim",
          personId: authorisation.personId,
          cardId: authorisation.cardId,
          simId: authorisation.sim.id,
          parentSerial: authorisation.parentSerial,
          ...validity,
          buildTbs: (serial, shard) =>
            smartphoneAuthenticationCertificateTbs({
              serial,
              shard,
              issuer: authority.issuerKey("auth"),
              subjectSpki: authorisation.subjectSpki,
              validity,
              baseUrl: authority.config.baseUrl,
            }),
        },
      ],
      {
        actor,
        async onPending(trx, stored) {
          await policy.onPending(trx, stored);
          await trx
            .updateTable("applications")
            .set({ certificate_serial: stored[0]!.serial })
            .where("id", "=", id)
            .execute();
        },
        async onIssued(trx, issued) {
          await policy.onIssued(trx, issued);
          application = await advanceApplication(trx, id, "issued", {
            actor,
            certificateSerial: issued[0]!.serial,
          });
        },
      },
    );
  } catch (error) {
    // The policy refused before anything was signed (strict double issuance), or the registry failed.
    await db
      .transaction()
      .execute((trx) => advanceApplication(trx, id, "failed", { actor, reason: (error as Error).message }));
    throw error;
  }
  const [result] = results;
  if (!result?.ok || !application) {
    const reason = result && !result.ok ? result.reason : "no result";
    const transient = reason.startsWith("signer unavailable");
    // A signer that is away leaves the certificate pending for recovery: the application waits with it.
    if (!transient)
      await db.transaction().execute((trx) =>
        advanceApplication(trx, id, "failed", {
          actor,
          reason: `the certificate was not issued: ${reason}`,
        }),
      );
    throw new JpkiError(
      transient ? "signer-unavailable" : "internal",
      `application ${id}: the certificate was not issued (${reason})${transient ? "; it will be finished when the CA is back" : ""}`,
    );
  }
  return { application, certificate: result.der };
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
 * the issuance a crash interrupted. Returns how many moved.
 */
export async function reconcileApplications(
  authority: Authority,
  actor = "system:recovery",
): Promise<number> {
  const db = authority.registry.db;
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
