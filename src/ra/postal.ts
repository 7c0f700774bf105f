/**
 * The postal channel (郵送申請, DESIGN §4 flow 4), in two phases.
 *
 * 1. The postal request (`requestPostalApplication`): a form without any card signature, with the
 *    basic 4 information (name, birth date, sex, address) and the SIM (ICCID, EID, carrier). J-LIS
 *    matches exactly one registered person with an active My Number card (all 4 attributes equal;
 *    any other outcome is one refusal that names no attribute), checks that the SIM is active at
 *    that carrier, records the application (`received` → `awaiting-code`) and, in the same
 *    transaction, makes the access code (access-codes.ts) and posts it by restricted-delivery mail
 *    (src/post/) to the address of record. The letter names the SIM, so a person who did not apply
 *    sees whose phone it is for.
 * 2. The completion in the phone app (`PostalChannel`, through the RA's `submitApplication`): the
 *    application number, the access code and the SIM's claim (the key J-LIS generated on the SIM over
 *    the carrier's relay, attested over a nonce of nonces.ts). Checked in this order: the application
 *    awaits its code; the claim is for the SIM the request named; the SIM attests the key
 *    (evidence.ts); the code is right (a wrong one is counted, 5 void it and fail the application);
 *    the card link. The nonce and the code are used up in the transaction that makes the application
 *    `verified`; the RA then issues, and provisioning delivers as for the online channel. The
 *    attestation is checked before the code, so only the holder of that SIM can spend attempts.
 *
 * When the letter comes back (the person does not live at the address of record), J-LIS voids the
 * code and refers the application to the municipal counter (`referReturnedApplications`).
 */
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { findCarrier, simIssuerOf } from "../mno/carriers.js";
import type { OtaRelay } from "../mno/ota-relay.js";
import type { ApplicationAnswer } from "../phone/app.js";
import type { PostalJlisClient, PostalRequest, PostalRequestAnswer } from "../phone/postal.js";
import { formatDate, parseBirthDate } from "../pki/validity.js";
import type { MailItem, RestrictedDeliveryService } from "../post/restricted-delivery.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";
import { checkAccessCode, issueAccessCode, useAccessCode, voidAccessCodes } from "./access-codes.js";
import {
  type ApplicationRecord,
  advanceApplication,
  createApplication,
  getApplication,
  newApplicationNumber,
  parseApplicationNumber,
} from "./applications.js";
import type { ApplicationChannel, Authorisation, ChannelContext } from "./channel.js";
import { attestedSimKey, cardLink, type SimKeyClaim } from "./evidence.js";
import { answerOf, inProcessJlis } from "./jlis-client.js";
import { consumeNonce } from "./nonces.js";
import { recordRefusal, submitApplication } from "./ra.js";

/** The sender name on J-LIS's restricted-delivery mail. */
export const JLIS_SENDER = "J-LIS";

/** Why a postal application goes to the counter when its letter came back. */
export const COUNTER_REFERRAL_REASON =
  "the restricted-delivery mail could not be handed to the addressee at the address of record: complete the application at the municipal counter";

/** One answer for every form that does not lead to exactly one person with a valid card. */
export const NO_MATCH_REFUSAL =
  "no resident with a valid My Number card matches the name, birth date, sex and address given: write them exactly as on your residence record (住民票), or apply at the municipal counter";

const ACTOR = "ra:postal";

const forbid = (message: string): never => {
  throw new JpkiError("forbidden", message);
};

const sexCodes: Record<string, string> = {
  male: "1",
  female: "2",
  unknown: "3",
  "1": "1",
  "2": "2",
  "3": "3",
};

/** The form's attributes in the registry's forms; a malformed field is named (it is the form's, not the registry's). */
function formAttributes(request: PostalRequest, now: Date) {
  const text = (value: string, what: string) => {
    const trimmed = (value ?? "").trim();
    if (trimmed === "") throw new JpkiError("bad-input", `the form's ${what} is empty`);
    return trimmed;
  };
  const sex = sexCodes[(request.sex ?? "").trim().toLowerCase()];
  if (!sex)
    throw new JpkiError(
      "bad-input",
      `the form's sex must be male, female or unknown (or 1, 2, 3): ${JSON.stringify(request.sex)}`,
    );
  return {
    name: text(request.name, "name"),
    birthDate: formatDate(parseBirthDate(text(request.birth, "birth date"), now)),
    sex,
    address: text(request.address, "address"),
  };
}

/** The one person the 4 attributes name, with their active card linked to a valid certificate. */
async function matchPerson(context: ChannelContext, request: PostalRequest) {
  const db = context.authority.registry.db;
  const attributes = formAttributes(request, context.now);
  const matches = await db
    .selectFrom("persons")
    .innerJoin("cards", "cards.person_id", "persons.id")
    .select(["persons.id as personId", "persons.name", "persons.address", "cards.id as cardId"])
    .where("persons.name", "=", attributes.name)
    .where("persons.birth_date", "=", attributes.birthDate)
    .where("persons.sex", "=", attributes.sex)
    .where("persons.address", "=", attributes.address)
    .where("cards.status", "=", "active")
    .orderBy("cards.issued_at", "desc")
    .execute();
  const persons = new Set(matches.map((m) => m.personId));
  // Two residents alike in all 4 attributes cannot be told apart by a form: the counter can.
  if (persons.size !== 1) return forbid(NO_MATCH_REFUSAL);
  const person = matches[0]!;
  try {
    await cardLink(context, person.cardId, person.personId);
  } catch (error) {
    // A card certificate that is not valid says something about the person: not for a form's sender.
    if (error instanceof JpkiError && error.code === "forbidden") forbid(NO_MATCH_REFUSAL);
    throw error;
  }
  return person;
}

/** The SIM the form names: in a carrier's inventory, active, with that EID, sold by that carrier. */
async function requestedSim(context: ChannelContext, sim: PostalRequest["sim"]) {
  const row = await context.authority.registry.getSimByIccid(sim.iccid);
  if (!row) return forbid(`SIM ${sim.iccid} is not in any carrier's inventory: check the ICCID`);
  if (row.eid !== sim.eid) forbid(`SIM ${sim.iccid} has another EID than the form says`);
  if (row.status !== "active")
    forbid(`SIM ${sim.iccid} is ${row.status} at its carrier: ask the carrier to activate it`);
  if (simIssuerOf(findCarrier(sim.carrier)).name !== row.carrier)
    forbid(`SIM ${sim.iccid} is not a ${sim.carrier} SIM: check the carrier`);
  return row;
}

/** The letter J-LIS puts in the envelope: what the addressee needs, and whom to call if they did not apply. */
function accessCodeLetter(fields: {
  name: string;
  applicationId: string;
  code: string;
  expiresAt: Date;
  iccid: string;
  carrier: string;
}): Buffer {
  return Buffer.from(
    [
      `${fields.name} 様`,
      "Smartphone certificate: your access code (スマートフォン用電子証明書 アクセスコードのお知らせ)",
      "",
      `Application number: ${fields.applicationId}`,
      `Access code:        ${fields.code}`,
      `Valid until:        ${fields.expiresAt.toISOString()} (one use; 5 wrong attempts void it)`,
      `For the SIM:        ${fields.iccid} (${fields.carrier})`,
      "",
      "Enter the application number and the access code in the JPKI app on the phone with this SIM.",
      "If you did not apply, do not use the code: tell J-LIS's help desk the application number.",
      "Japan Agency for Local Authority Information Systems (J-LIS)",
    ].join("\n"),
    "utf8",
  );
}

/** Reads the application number and access code from a letter (what the person copies into the app). */
export function readAccessCodeLetter(letter: Buffer | string): { applicationId: string; accessCode: string } {
  const text = letter.toString();
  const applicationId = /^Application number: (\S+)$/m.exec(text)?.[1];
  const accessCode = /^Access code: +(\S+)$/m.exec(text)?.[1];
  if (!applicationId || !accessCode)
    throw new JpkiError("bad-input", "this letter carries no application number and access code");
  return { applicationId, accessCode };
}

export interface PostalRequestOptions {
  readonly now?: Date;
  readonly actor?: string;
  /** The access code's lifetime (default 14 days). */
  readonly codeTtlMs?: number;
}

export interface PostalRequestResult {
  readonly application: ApplicationRecord;
  readonly mail: MailItem;
  readonly codeExpiresAt: Date;
}

/**
 * Phase 1: examines the postal form and, when it names one person with a valid card and an active
 * SIM, records the application and posts the access code to the address of record, in one
 * transaction. A refusal is recorded as a failed application (without the form's data) and thrown.
 */
export async function requestPostalApplication(
  authority: Authority,
  post: RestrictedDeliveryService,
  request: PostalRequest,
  options: PostalRequestOptions = {},
): Promise<PostalRequestResult> {
  const now = options.now ?? new Date();
  const actor = options.actor ?? ACTOR;
  const db = authority.registry.db;
  const id = newApplicationNumber();
  const context: ChannelContext = { authority, now };
  let person: Awaited<ReturnType<typeof matchPerson>>;
  let sim: Awaited<ReturnType<typeof requestedSim>>;
  try {
    sim = await requestedSim(context, request.sim);
    person = await matchPerson(context, request);
  } catch (error) {
    if (error instanceof JpkiError && ["bad-input", "forbidden"].includes(error.code))
      await recordRefusal(db, id, "postal", actor, error, now);
    throw error;
  }
  return db.transaction().execute(async (trx) => {
    await createApplication(trx, {
      id,
      channel: "postal",
      personId: person.personId,
      iccid: sim.iccid,
      evidence: {
        form: "postal-request",
        matched: "basic-4",
        cardId: person.cardId,
        eid: sim.eid,
        carrier: request.sim.carrier,
      },
      actor,
      now,
    });
    const code = await issueAccessCode(trx, {
      applicationId: id,
      actor,
      now,
      ...(options.codeTtlMs !== undefined ? { ttlMs: options.codeTtlMs } : {}),
    });
    const mail = await post.send(
      {
        sender: JLIS_SENDER,
        senderReference: id,
        addresseeId: person.personId,
        addresseeName: person.name,
        // The registry's address of record, never an address the form could choose.
        address: person.address,
        letter: accessCodeLetter({
          name: person.name,
          applicationId: id,
          code: code.code,
          expiresAt: code.expiresAt,
          iccid: sim.iccid,
          carrier: request.sim.carrier,
        }),
        actor,
        now,
      },
      trx,
    );
    const application = await advanceApplication(trx, id, "awaiting-code", {
      actor,
      now,
      reason: `access code sent by restricted-delivery mail ${mail.trackingNumber} to the address of record`,
      evidence: { mailTracking: mail.trackingNumber, codeExpiresAt: code.expiresAt.toISOString() },
    });
    return { application, mail, codeExpiresAt: code.expiresAt };
  });
}

/** Phase 2's request: from the letter and the phone. */
export interface PostalCompletion {
  readonly applicationId: string;
  readonly accessCode: string;
  readonly claim: SimKeyClaim;
}

/** Moves an application still awaiting its code to `failed`, inside `trx` (the code became void). */
async function failAwaiting(
  trx: Kysely<RegistrySchema>,
  id: string,
  reason: string,
  now: Date,
): Promise<void> {
  const row = await trx.selectFrom("applications").select("status").where("id", "=", id).executeTakeFirst();
  if (row?.status === "awaiting-code")
    await advanceApplication(trx, id, "failed", {
      actor: ACTOR,
      now,
      reason: `${reason}: make a new postal request, or apply at the municipal counter`,
    });
}

export class PostalChannel implements ApplicationChannel<PostalCompletion> {
  readonly name = "postal" as const;

  continues(request: PostalCompletion): string {
    return parseApplicationNumber(request.applicationId);
  }

  async authorise(request: PostalCompletion, context: ChannelContext): Promise<Authorisation> {
    const { authority, now } = context;
    const db = authority.registry.db;
    const id = parseApplicationNumber(request.applicationId);
    const application = await getApplication(db, id);
    if (application?.channel !== "postal")
      throw new JpkiError("not-found", `no postal application ${id}: check the number in the letter`);
    switch (application.status) {
      case "awaiting-code":
        break;
      case "referred-to-counter":
      case "failed":
        forbid(`application ${id} is ${application.status}: ${application.history.at(-1)?.reason ?? ""}`);
        break;
      default:
        throw new JpkiError("conflict", `application ${id} was completed already (${application.status})`);
    }

    // Only for the SIM the request named, and only with that SIM's attestation.
    const { claim } = request;
    if (claim.iccid !== application.iccid || claim.eid !== application.evidence["eid"])
      forbid(
        `application ${id} is for SIM ${application.iccid}, not this one: the access code works only on the phone whose SIM the request named`,
      );
    const { sim, statement } = await attestedSimKey(context, claim);

    const codeId = await checkAccessCode(db, {
      applicationId: id,
      code: request.accessCode,
      actor: ACTOR,
      now,
      onVoid: (trx, reason) => failAwaiting(trx, id, reason, now),
    });

    // The person's card as it is now: the link is to the card valid at issuance.
    const card = await db
      .selectFrom("cards")
      .select("id")
      .where("person_id", "=", application.personId ?? "")
      .where("status", "=", "active")
      .orderBy("issued_at", "desc")
      .executeTakeFirst();
    if (!card)
      forbid("the My Number card is no longer valid: apply with a valid card, or at the municipal counter");
    const link = await cardLink(context, card!.id, application.personId!);

    return {
      ...link,
      sim,
      subjectSpki: claim.publicKey,
      evidence: {
        accessCode: "accepted",
        appletInstance: claim.appletInstance,
        attestationKeyReference: statement.keyReference,
        cardId: link.cardId,
      },
      async consume(trx, applicationId) {
        await consumeNonce(trx, claim.nonce, applicationId, now);
        await useAccessCode(trx, codeId, { actor: ACTOR, now });
      },
    };
  }
}

/**
 * J-LIS learns of its returned letters: each application still awaiting its code has the code voided
 * and goes to the municipal counter with the reason. Idempotent: an application already moved is left.
 */
export async function referReturnedApplications(
  authority: Authority,
  post: RestrictedDeliveryService,
  options: { actor?: string; now?: Date } = {},
): Promise<ApplicationRecord[]> {
  const actor = options.actor ?? ACTOR;
  const db = authority.registry.db;
  const referred: ApplicationRecord[] = [];
  for (const item of await post.returnedTo(JLIS_SENDER)) {
    const application = await getApplication(db, item.senderReference);
    if (
      application?.status !== "awaiting-code" ||
      application.evidence["mailTracking"] !== item.trackingNumber
    )
      continue;
    referred.push(
      await db.transaction().execute(async (trx) => {
        await voidAccessCodes(trx, application.id, {
          actor,
          reason: `the letter ${item.trackingNumber} came back to J-LIS`,
          ...(options.now ? { now: options.now } : {}),
        });
        return advanceApplication(trx, application.id, "referred-to-counter", {
          actor,
          reason: COUNTER_REFERRAL_REASON,
          evidence: { mailReturned: item.trackingNumber, mailReturnedAt: item.returnedAt },
          ...(options.now ? { now: options.now } : {}),
        });
      }),
    );
  }
  return referred;
}

/**
 * J-LIS in process for the postal app: the online client's operations (nonce, key generation,
 * delivery over the relay) and the postal ones.
 */
export function inProcessPostalJlis(
  authority: Authority,
  post: RestrictedDeliveryService,
  relayFor: (iccid: string) => OtaRelay,
): PostalJlisClient {
  const channel = new PostalChannel();
  return {
    ...inProcessJlis(authority, relayFor),
    async postalRequest(request): Promise<PostalRequestAnswer> {
      const { application, mail, codeExpiresAt } = await requestPostalApplication(authority, post, request);
      return {
        ...answerOf(application),
        trackingNumber: mail.trackingNumber,
        codeExpiresAt: codeExpiresAt.toISOString(),
      };
    },
    async completeWithAccessCode(completion): Promise<ApplicationAnswer> {
      return answerOf((await submitApplication(authority, channel, completion)).application);
    },
  };
}
