/**
 * The RA's application channels (online, postal, counter) behind one interface, as step-ca's
 * provisioners are: a channel authorises the applicant in its own way and returns what it imposes on
 * the issuance (the person, the card the certificate is linked to, the SIM, the key, the validity)
 * and the evidence it checked. The RA (ra.ts) does the rest the same way for every channel: records
 * the application, applies the policy, has the CA sign.
 */
import type { KeyObject } from "node:crypto";
import type { Kysely } from "kysely";
import type { Validity } from "../pki/validity.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";
import type { ApplicationChannelName } from "./applications.js";

/** The SIM an application is for, as the registry (the carrier's inventory) knows it. */
export interface ApplicationSim {
  readonly id: string;
  readonly iccid: string;
  readonly eid: string;
  /** The carrier that issued the SIM (the ICCID's issuer). */
  readonly issuer: string;
}

/** What a channel established about an application. */
export interface Authorisation {
  readonly personId: string;
  readonly cardId: string;
  /** The card's user-authentication certificate the phone certificate is linked to (DESIGN §5). */
  readonly parentSerial: string;
  readonly sim: ApplicationSim;
  /** SubjectPublicKeyInfo DER of the key on the SIM. */
  readonly subjectSpki: Buffer;
  /**
   * The private key when J-LIS made it (`keyGeneration = injected`): sealed in the registry with the
   * certificate, written to the SIM inside J-LIS's channel at delivery, then destroyed.
   */
  readonly injectedKey?: KeyObject;
  readonly validity: Validity;
  /** What was checked, for the application's record (no personal data beyond what was proven). */
  readonly evidence: Record<string, unknown>;
  /**
   * Uses up what must be used once (the online nonce, a postal access code) inside the transaction
   * that records the application: throws when it was used already, and nothing is recorded.
   */
  consume(trx: Kysely<RegistrySchema>, applicationId: string): Promise<void>;
}

export interface ChannelContext {
  readonly authority: Authority;
  readonly now: Date;
}

export interface ApplicationChannel<Request> {
  readonly name: ApplicationChannelName;
  /**
   * For a channel whose requests complete an application it recorded earlier (postal: the access
   * code comes back for an application awaiting it): the application `request` continues. The RA then
   * moves that application to `verified` instead of recording a new one, and leaves a refusal to the
   * channel (a wrong access code is counted against the code, not recorded as a failed application).
   */
  continues?(request: Request): string;
  /**
   * Checks the applicant and the request; throws a JpkiError saying why not (bad-input for a forged
   * or malformed application, forbidden for a refused one, conflict for a replay).
   */
  authorise(request: Request, context: ChannelContext): Promise<Authorisation>;
}
