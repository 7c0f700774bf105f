/**
 * The counter channel (窓口申請, DESIGN §4 flows 5 and 6), J-LIS's side. A clerk of a municipality,
 * authenticated by the clerk's token (src/municipality/clerks.ts), has J-LIS verify the person in one
 * of two ways, each recorded with the clerk and the municipality:
 *
 * - `card-signature`: J-LIS issues a challenge (a nonce of nonces.ts, single use, 10 minutes); the
 *   counter's reader has the My Number card sign, after the citizen typed the signing password, a
 *   short statement naming the challenge, the clerk, the municipality and the purpose, as CMS
 *   SignedData (cms.ts). J-LIS checks the signature, that the signing certificate is the registry's
 *   own and valid now (not held, revoked or expired), and the statement; the person and the card come
 *   from the certificate's registry row.
 * - `documents`: the clerk saw the person's identity documents (src/municipality/documents.ts: one
 *   photo identity document, or two others) and the terminal read the card's user-authentication
 *   certificate, which is free to read; J-LIS maps that certificate, byte for byte, to the person.
 *
 * Then, for an application (`CounterChannel`, through the RA's submitApplication): the SIM claim, a
 * key J-LIS generated on the SIM through the counter terminal with a nonce, attested by the SIM
 * (evidence.ts), and the card link. For a PIN unblock (`resetSimPinAtCounter`): the SIM's live
 * smartphone certificate must be the person's; J-LIS sends RESET RETRY COUNTER inside its SCP11a
 * channel through the terminal.
 *
 * Jurisdiction: by default only the municipality of the person's address of record serves them, as the
 * JPKI Act has the applicant apply to the mayor of the municipality of their address (公的個人認証法
 * 第3条, 第22条); `jurisdiction: "any"` lets every municipality serve (a policy switch).
 */
import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { CardTransport } from "../card/card.js";
import { checkPin } from "../card/state.js";
import { JpkiError } from "../errors.js";
import { type LedgerRates, municipalityParty, ratesOf, recordBillable } from "../ledger/ledger.js";
import { authenticateClerk, type Clerk, clerkActor } from "../municipality/clerks.js";
import { addressInMunicipality } from "../municipality/codes.js";
import {
  assessDocuments,
  type DocumentKindId,
  formatDocumentList,
  parseDocumentList,
} from "../municipality/documents.js";
import { parseCertificate } from "../pki/certificate.js";
import { verifySignedData } from "../pki/cms.js";
import { appendAudit } from "../registry/audit.js";
import { isoTime, toBuffer } from "../registry/db.js";
import { effectiveStatus, LIVE_STATUSES } from "../registry/lifecycle.js";
import type { CounterIdentityChecksTable, RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";
import { type ApplicationChannelName, getApplication, parseApplicationNumber } from "./applications.js";
import type { ApplicationChannel, Authorisation, ChannelContext } from "./channel.js";
import { attestedSimKey, cardLink, cardSigner, type SimKeyClaim } from "./evidence.js";
import { consumeNonce, issueNonce } from "./nonces.js";
import { openJlisSession } from "./provisioning.js";
import { type SubmittedApplication, submitApplication } from "./ra.js";

export type CounterPurpose = CounterIdentityChecksTable["purpose"];
export type CounterIdentityMethod = CounterIdentityChecksTable["method"];
/** Which municipalities may serve a person: theirs (address of record), or any. */
export type CounterJurisdiction = "address-of-record" | "any";

/** The statement the card signs at the counter (the eContent of the SignedData). */
export const COUNTER_IDENTITY_FORMAT = "jpki-mobile/counter-identity";
const MAX_STATEMENT_BYTES = 2048;
/** How long a challenge waits for the card (the citizen types the password at the counter). */
export const COUNTER_CHALLENGE_TTL_MS = 10 * 60_000;
/** How far the statement's time may be from J-LIS's clock. */
const CLOCK_SKEW_MS = 10 * 60_000;
/** The user-authentication PIN of the JPKI applet (RESET RETRY COUNTER P2, JPKI-FACTS §1). */
const AUTH_PIN_REFERENCE = 0x18;

const refuse = (message: string): never => {
  throw new JpkiError("bad-input", message);
};
const forbid = (message: string): never => {
  throw new JpkiError("forbidden", message);
};

// ---------------------------------------------------------------------------------------------
// The card-signature statement

export interface CounterIdentityStatement {
  readonly challenge: Buffer;
  readonly clerkId: string;
  readonly municipalityCode: string;
  readonly purpose: CounterPurpose;
  readonly time: Date;
}

const STATEMENT_FIELDS = ["format", "version", "challenge", "clerk", "municipality", "purpose", "time"];

/**
 * The statement's bytes: JSON, fields in a fixed order. Signing a statement rather than the bare
 * challenge keeps the signing key (署名用) from signing bytes that mean nothing to the citizen, and
 * binds the signature to this clerk, this municipality and this purpose.
 */
export function encodeCounterIdentityStatement(statement: CounterIdentityStatement): Buffer {
  return Buffer.from(
    JSON.stringify({
      format: COUNTER_IDENTITY_FORMAT,
      version: 1,
      challenge: statement.challenge.toString("base64"),
      clerk: statement.clerkId,
      municipality: statement.municipalityCode,
      purpose: statement.purpose,
      time: statement.time.toISOString(),
    }),
    "utf8",
  );
}

/** Reads a statement strictly: exactly its fields, well formed, bounded. */
export function parseCounterIdentityStatement(bytes: Buffer): CounterIdentityStatement {
  const bad = (why: string): never => refuse(`the signed counter statement is not valid: ${why}`);
  if (bytes.length > MAX_STATEMENT_BYTES) bad(`it is longer than ${MAX_STATEMENT_BYTES} octets`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return bad("it is not UTF-8 JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return bad("it is not an object");
  const o = json as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== STATEMENT_FIELDS.length || !STATEMENT_FIELDS.every((f) => keys.includes(f)))
    bad(`its fields must be exactly ${STATEMENT_FIELDS.join(", ")}`);
  if (o["format"] !== COUNTER_IDENTITY_FORMAT || o["version"] !== 1) bad("unknown format or version");
  const text = (name: string, pattern: RegExp) => {
    const v = o[name];
    if (typeof v !== "string" || !pattern.test(v)) bad(`${name} is malformed`);
    return v as string;
  };
  const challenge = Buffer.from(text("challenge", /^[A-Za-z0-9+/]{8,128}={0,2}$/), "base64");
  const purpose = text("purpose", /^(application|pin-unblock)$/) as CounterPurpose;
  const time = new Date(text("time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/));
  if (Number.isNaN(time.getTime())) bad("time is not a time");
  return {
    challenge,
    clerkId: text("clerk", /^[0-9a-f-]{36}$/),
    municipalityCode: text("municipality", /^\d{6}$/),
    purpose,
    time,
  };
}

export interface CounterChallenge {
  readonly challenge: Buffer;
  readonly expiresAt: Date;
  /** What the statement must name (the authenticated clerk and their municipality). */
  readonly clerkId: string;
  readonly municipalityCode: string;
}

/** J-LIS's challenge for the card at a clerk's counter: single use, stored only as its hash. */
export async function issueCounterChallenge(
  authority: Authority,
  clerkToken: string,
  options: { now?: Date } = {},
): Promise<CounterChallenge> {
  const clerk = await authenticateClerk(authority.registry.db, clerkToken);
  const { nonce, expiresAt } = await issueNonce(authority.registry.db, {
    ttlMs: COUNTER_CHALLENGE_TTL_MS,
    ...(options.now ? { now: options.now } : {}),
  });
  return { challenge: nonce, expiresAt, clerkId: clerk.id, municipalityCode: clerk.municipalityCode };
}

// ---------------------------------------------------------------------------------------------
// Identity verification

/** What the counter sends J-LIS to identify the person. */
export type CounterIdentityEvidence =
  | { readonly method: "card-signature"; readonly signedData: Buffer }
  | {
      readonly method: "documents";
      /** The kinds of document the clerk saw (parseDocumentList reads them as typed). */
      readonly documents: readonly DocumentKindId[] | string;
      /** The presented card's user-authentication certificate (EF 000A, free to read), DER. */
      readonly cardAuthCertificate: Buffer;
    };

/** A person J-LIS identified at a counter; recorded with recordIdentityCheck when it is used. */
export interface VerifiedIdentity {
  readonly clerk: Clerk;
  readonly method: CounterIdentityMethod;
  readonly purpose: CounterPurpose;
  readonly personId: string;
  readonly cardId: string;
  readonly signingSerial: string | null;
  readonly documents: readonly DocumentKindId[] | null;
  /** The card-signature challenge, used up when the check is recorded. */
  readonly challenge: Buffer | null;
}

export interface CounterOptions {
  /** Which municipalities may serve a person (default: that of the address of record). */
  readonly jurisdiction?: CounterJurisdiction;
}

/**
 * Identifies the person at `clerk`'s counter for `purpose`. A refusal is audited (who tried what,
 * without the evidence) and thrown: bad-input for malformed evidence, forbidden for a refused one.
 */
export async function verifyCounterIdentity(
  context: ChannelContext,
  clerk: Clerk,
  evidence: CounterIdentityEvidence,
  purpose: CounterPurpose,
  options: CounterOptions = {},
): Promise<VerifiedIdentity> {
  try {
    const identity =
      evidence.method === "card-signature"
        ? await byCardSignature(context, clerk, evidence.signedData, purpose)
        : evidence.method === "documents"
          ? await byDocuments(context, clerk, evidence, purpose)
          : refuse(
              `unknown identity verification method ${JSON.stringify((evidence as { method: unknown }).method)}`,
            );
    await presentedCardOf(context, identity, clerk, options.jurisdiction ?? "address-of-record");
    return identity;
  } catch (error) {
    if (error instanceof JpkiError && (error.code === "bad-input" || error.code === "forbidden"))
      await context.authority.registry.db.transaction().execute((trx) =>
        appendAudit(trx, {
          actor: clerkActor(clerk),
          action: "counter.identity-refused",
          subject: clerk.municipalityCode,
          details: { method: evidence.method, purpose, reason: error.message },
        }),
      );
    throw error;
  }
}

/** The card signed J-LIS's challenge in a statement naming this clerk and purpose. */
async function byCardSignature(
  context: ChannelContext,
  clerk: Clerk,
  signedData: Buffer,
  purpose: CounterPurpose,
): Promise<VerifiedIdentity> {
  const { now } = context;
  const signed = verifySignedData(signedData);
  const signer = await cardSigner(
    context,
    signed.signerCertificate,
    "the statement",
    "identify the person with documents instead, or have the certificate renewed",
  );

  const statement = parseCounterIdentityStatement(signed.content);
  if (statement.clerkId !== clerk.id || statement.municipalityCode !== clerk.municipalityCode)
    refuse("the card signed a statement for another clerk's counter: ask J-LIS for a new challenge");
  if (statement.purpose !== purpose)
    refuse(
      `the card signed a statement for ${statement.purpose}, not ${purpose}: ask J-LIS for a new challenge`,
    );
  if (Math.abs(statement.time.getTime() - now.getTime()) > CLOCK_SKEW_MS)
    refuse(
      "the statement was signed too long ago or in the future: check the terminal's clock and sign again",
    );
  return {
    clerk,
    method: "card-signature",
    purpose,
    personId: signer.personId,
    cardId: signer.cardId,
    signingSerial: signer.serial,
    documents: null,
    challenge: statement.challenge,
  };
}

/** The clerk saw enough documents, and the presented card's certificate names the person. */
async function byDocuments(
  context: ChannelContext,
  clerk: Clerk,
  evidence: Extract<CounterIdentityEvidence, { method: "documents" }>,
  purpose: CounterPurpose,
): Promise<VerifiedIdentity> {
  const documents =
    typeof evidence.documents === "string"
      ? parseDocumentList(evidence.documents)
      : parseDocumentList(formatDocumentList(evidence.documents));
  const assessment = assessDocuments(documents);
  if (!assessment.sufficient) forbid(`the identity documents are not enough: ${assessment.reason}`);
  let certificate: ReturnType<typeof parseCertificate>;
  try {
    certificate = parseCertificate(evidence.cardAuthCertificate);
  } catch (error) {
    return refuse(
      `the card's user-authentication certificate could not be read: ${(error as Error).message}`,
    );
  }
  const row = await context.authority.registry.db
    .selectFrom("certificates")
    .select(["serial", "issuer", "kind", "status", "not_after", "der", "person_id", "card_id"])
    .where("serial", "=", certificate.serialHex)
    .executeTakeFirst();
  if (
    row?.issuer !== "auth" ||
    row.kind !== "card-auth" ||
    !row.der ||
    !toBuffer(row.der).equals(certificate.der)
  )
    refuse(
      "the presented card's certificate is not a My Number card user-authentication certificate this JPKI issued",
    );
  const status = effectiveStatus(row!, context.now);
  if (status !== "issued")
    forbid(
      `the presented card's user-authentication certificate is ${status}: the card cannot identify the person`,
    );
  if (!row!.person_id || !row!.card_id)
    throw new JpkiError("integrity", `card certificate ${row!.serial} has no card in the registry`);
  return {
    clerk,
    method: "documents",
    purpose,
    personId: row!.person_id,
    cardId: row!.card_id,
    signingSerial: null,
    documents,
    challenge: null,
  };
}

/** The card is active, and the clerk's municipality may serve its holder. */
async function presentedCardOf(
  context: ChannelContext,
  identity: VerifiedIdentity,
  clerk: Clerk,
  jurisdiction: CounterJurisdiction,
): Promise<void> {
  const card = await context.authority.registry.db
    .selectFrom("cards")
    .innerJoin("persons", "persons.id", "cards.person_id")
    .select(["cards.status", "persons.address"])
    .where("cards.id", "=", identity.cardId)
    .where("cards.person_id", "=", identity.personId)
    .executeTakeFirst();
  if (!card) throw new JpkiError("integrity", `card ${identity.cardId} is not in the registry`);
  if (card.status !== "active") forbid(`the My Number card is ${card.status}: the person needs a valid card`);
  if (jurisdiction === "address-of-record" && !addressInMunicipality(card.address, clerk.municipalityName))
    forbid(
      `the person's address of record is not in ${clerk.municipalityName}: the counter of the municipality of the address of record (住所地の市区町村) serves them`,
    );
}

/**
 * Records a verification in the transaction of what it allowed, and uses its challenge up: a second
 * use of the same signed statement fails here.
 */
export async function recordIdentityCheck(
  trx: Kysely<RegistrySchema>,
  identity: VerifiedIdentity,
  subject: string,
  now: Date,
  rates: LedgerRates,
): Promise<string> {
  const id = randomUUID();
  if (identity.challenge) await consumeNonce(trx, identity.challenge, subject, now);
  await trx
    .insertInto("counter_identity_checks")
    .values({
      id,
      clerk_id: identity.clerk.id,
      municipality_code: identity.clerk.municipalityCode,
      method: identity.method,
      purpose: identity.purpose,
      person_id: identity.personId,
      card_id: identity.cardId,
      signing_serial: identity.signingSerial,
      documents: identity.documents ? formatDocumentList(identity.documents) : null,
      subject,
      at: isoTime(now),
    })
    .execute();
  await appendAudit(trx, {
    actor: clerkActor(identity.clerk),
    action: "counter.identity-verified",
    subject,
    details: {
      check: id,
      documents: identity.documents ? formatDocumentList(identity.documents) : null,
      method: identity.method,
      municipality: identity.clerk.municipalityCode,
      personId: identity.personId,
      purpose: identity.purpose,
      signingCertificate: identity.signingSerial,
    },
  });
  // The municipality is paid for serving the citizen at its counter.
  await recordBillable(
    trx,
    [
      {
        kind: "counter-handling",
        source: `counter-handling:${id}`,
        payer: "jlis",
        payee: municipalityParty(identity.clerk.municipalityCode),
        quantity: 1,
        rate: rates.counterHandling,
        reference: subject,
      },
    ],
    clerkActor(identity.clerk),
    now,
  );
  return id;
}

const identityEvidence = (identity: VerifiedIdentity) => ({
  clerk: identity.clerk.id,
  municipality: identity.clerk.municipalityCode,
  municipalityName: identity.clerk.municipalityName,
  identity: identity.method,
  ...(identity.signingSerial ? { signingCertificate: identity.signingSerial } : {}),
  ...(identity.documents ? { documents: formatDocumentList(identity.documents) } : {}),
});

// ---------------------------------------------------------------------------------------------
// Applications

/** A counter application: who serves, who applies, the SIM, and optionally the application it completes. */
export interface CounterApplication {
  readonly clerkToken: string;
  readonly identity: CounterIdentityEvidence;
  /** The key J-LIS generated on the SIM through the counter terminal, attested over a nonce. */
  readonly claim: SimKeyClaim;
  /** A postal application `referred-to-counter` this visit completes (its number, as typed). */
  readonly continues?: string;
}

/**
 * The counter as an application channel. A new counter application is recorded under the channel
 * `counter`. Completing a postal application referred to the counter (`continuing`) keeps that
 * application, with the channel it was filed through: it moves from `referred-to-counter` to
 * `verified` with the counter's evidence added, for the person and the SIM the postal request named.
 */
export class CounterChannel implements ApplicationChannel<CounterApplication> {
  readonly name: ApplicationChannelName;
  readonly continues?: (request: CounterApplication) => string;

  constructor(private readonly options: CounterOptions & { continuing?: boolean } = {}) {
    this.name = "counter";
    if (options.continuing) this.continues = (request) => parseApplicationNumber(request.continues ?? "");
  }

  async authorise(request: CounterApplication, context: ChannelContext): Promise<Authorisation> {
    const db = context.authority.registry.db;
    const clerk = await authenticateClerk(db, request.clerkToken);
    if ((request.continues !== undefined) !== (this.continues !== undefined))
      throw new JpkiError(
        "internal",
        "a counter request that completes an application goes through a continuing CounterChannel (submitCounterApplication)",
      );
    const referred = this.continues ? await referredApplication(db, this.continues(request)) : undefined;

    const identity = await verifyCounterIdentity(
      context,
      clerk,
      request.identity,
      "application",
      this.options,
    );
    const { claim } = request;
    if (referred) {
      if (referred.personId !== identity.personId)
        forbid(
          `application ${referred.id} is another person's: the person identified at the counter did not make it`,
        );
      if (referred.iccid !== claim.iccid)
        forbid(
          `application ${referred.id} is for SIM ${referred.iccid}: tap the phone with that SIM, or make a new counter application`,
        );
    }
    const { sim, statement } = await attestedSimKey(context, claim);
    const link = await cardLink(context, identity.cardId, identity.personId);
    const now = context.now;
    return {
      ...link,
      sim,
      subjectSpki: claim.publicKey,
      evidence: {
        counter: identityEvidence(identity),
        appletInstance: claim.appletInstance,
        attestationKeyReference: statement.keyReference,
      },
      async consume(trx, applicationId) {
        await consumeNonce(trx, claim.nonce, applicationId, now);
        await recordIdentityCheck(trx, identity, applicationId, now, ratesOf(context.authority.dataDir));
      },
    };
  }
}

/** The postal application `id`, waiting for the counter. */
async function referredApplication(db: Kysely<RegistrySchema>, id: string) {
  const application = await getApplication(db, id);
  if (application?.channel !== "postal")
    throw new JpkiError("not-found", `no postal application ${id}: check the number the citizen brought`);
  if (application.status !== "referred-to-counter")
    forbid(
      `application ${id} is ${application.status}, not referred to the counter: ${
        application.status === "awaiting-code"
          ? "the citizen completes it with the access code in the letter"
          : "make a new counter application instead"
      }`,
    );
  return application;
}

/**
 * Runs a counter application through the RA: the clerk is authenticated first (an unknown token
 * leaves no application behind), then the channel that fits (new, or completing a referred postal
 * application) does the rest, with the clerk recorded as the actor.
 */
export async function submitCounterApplication(
  authority: Authority,
  request: CounterApplication,
  options: CounterOptions & { now?: Date } = {},
): Promise<SubmittedApplication> {
  const clerk = await authenticateClerk(authority.registry.db, request.clerkToken);
  const channel = new CounterChannel({ ...options, continuing: request.continues !== undefined });
  return submitApplication(authority, channel, request, {
    actor: clerkActor(clerk),
    ...(options.now ? { now: options.now } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// PIN unblock (暗証番号の初期化)

export interface PinUnblockRequest {
  readonly clerkToken: string;
  readonly identity: CounterIdentityEvidence;
  /** The SIM on the terminal (its ICCID, as the terminal read it). */
  readonly iccid: string;
  /** The new user-authentication PIN the citizen typed on the terminal's PIN pad. */
  readonly newPin: string;
}

export interface PinUnblockResult {
  readonly iccid: string;
  /** The smartphone certificate whose PIN was reset. */
  readonly certificateSerial: string;
  readonly identityCheck: string;
}

/**
 * Resets the user-authentication PIN of the SIM on the terminal: the person is identified, holds the
 * SIM's live smartphone certificate, and J-LIS sends RESET RETRY COUNTER with the new PIN inside its
 * SCP11a channel through `transport` (the terminal relays it, it cannot read it). The check is
 * recorded and the reset audited before the SIM is touched (fail closed), the outcome after.
 */
export async function resetSimPinAtCounter(
  authority: Authority,
  transport: Pick<CardTransport, "transmit">,
  request: PinUnblockRequest,
  options: CounterOptions & { now?: Date } = {},
): Promise<PinUnblockResult> {
  const now = options.now ?? new Date();
  const db = authority.registry.db;
  const clerk = await authenticateClerk(db, request.clerkToken);
  checkPin("auth", request.newPin);
  const sim = await authority.registry.getSimByIccid(request.iccid);
  if (!sim) throw new JpkiError("not-found", `SIM ${request.iccid} is not in any carrier's inventory`);
  const certificate = await db
    .selectFrom("certificates")
    .select(["serial", "status", "not_after", "person_id"])
    .where("sim_id", "=", sim.id)
    .where("kind", "=", "phone-auth")
    .where("status", "in", LIVE_STATUSES)
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  const live = certificate && LIVE_STATUSES.includes(effectiveStatus(certificate, now));
  const identity = await verifyCounterIdentity(
    { authority, now },
    clerk,
    request.identity,
    "pin-unblock",
    options,
  );
  if (!live)
    forbid(
      `SIM ${request.iccid} holds no valid smartphone certificate: there is no PIN to unblock; apply for a new certificate`,
    );
  if (certificate!.person_id !== identity.personId)
    forbid(`the smartphone certificate on SIM ${request.iccid} is another person's: its PIN is not reset`);

  const actor = clerkActor(clerk);
  const identityCheck = await db.transaction().execute(async (trx) => {
    const check = await recordIdentityCheck(trx, identity, request.iccid, now, ratesOf(authority.dataDir));
    await appendAudit(trx, {
      actor,
      action: "sim.pin-unblock.requested",
      subject: request.iccid,
      details: { certificateSerial: certificate!.serial, check },
    });
    return check;
  });
  try {
    const session = await openJlisSession(authority, transport, request.iccid);
    await session.resetRetryCounter(AUTH_PIN_REFERENCE, request.newPin);
  } catch (error) {
    await db.transaction().execute((trx) =>
      appendAudit(trx, {
        actor,
        action: "sim.pin-unblock.failed",
        subject: request.iccid,
        details: { check: identityCheck, reason: (error as Error).message },
      }),
    );
    throw error;
  }
  await db.transaction().execute((trx) =>
    appendAudit(trx, {
      actor,
      action: "sim.pin-unblock.done",
      subject: request.iccid,
      details: { certificateSerial: certificate!.serial, check: identityCheck },
    }),
  );
  return { iccid: request.iccid, certificateSerial: certificate!.serial, identityCheck };
}
