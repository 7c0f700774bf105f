/**
 * Checks every channel makes the same way (channel.ts): the SIM and the key it attests, and the card
 * the phone certificate is linked to.
 */
import { createHash, type KeyObject } from "node:crypto";
import { type KeyAttestationStatement, verifyKeyAttestation } from "../card/uicc/attestation.js";
import { JpkiError } from "../errors.js";
import { carrierSimStatus } from "../mno/http-gateway.js";
import { parseCertificate, verifyCertificateSignature } from "../pki/certificate.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import { citizenCertificateValidity, parseBirthDate, type Validity } from "../pki/validity.js";
import { toBuffer } from "../registry/db.js";
import { effectiveStatus } from "../registry/lifecycle.js";
import type { ApplicationSim, ChannelContext } from "./channel.js";

/** The user-authentication key's reference in the JPKI applet (JPKI-FACTS §1). */
export const AUTH_KEY_REFERENCE = 0x17;

const refuse = (message: string): never => {
  throw new JpkiError("bad-input", message);
};
const forbid = (message: string): never => {
  throw new JpkiError("forbidden", message);
};

/** The CAs' public keys, read once (reading a key costs about as much as checking a signature). */
const caKeys = new Map<string, KeyObject>();

function caKeyOf(caCertificate: Buffer): KeyObject {
  const id = caCertificate.toString("base64");
  let key = caKeys.get(id);
  if (!key) {
    key = publicKeyFromSpki(parseCertificate(caCertificate).spki);
    caKeys.set(id, key);
  }
  return key;
}

/** Certificate signatures already checked, by SHA-256 over the CA's and the certificate's DER. */
const checkedSignatures = new Map<string, true>();
const CHECKED_SIGNATURES_KEPT = 100_000;

/**
 * Whether `caCertificate`'s key signed `certificate`: checked once per process for each pair (a
 * signature does not change, and every application of a SIM or a card presents the same ones).
 */
export function signedBy(certificate: Buffer, caCertificate: Buffer): boolean {
  const key = createHash("sha256").update(caCertificate).update(certificate).digest("base64");
  if (checkedSignatures.has(key)) return true;
  if (!verifyCertificateSignature(parseCertificate(certificate), caKeyOf(caCertificate))) return false;
  if (checkedSignatures.size >= CHECKED_SIGNATURES_KEPT)
    checkedSignatures.delete(checkedSignatures.keys().next().value as string);
  checkedSignatures.set(key, true);
  return true;
}

/** What the phone says about its SIM and the key J-LIS had generated there. */
export interface SimKeyClaim {
  readonly iccid: string;
  readonly eid: string;
  /** The JPKI applet instance's id (hex). */
  readonly appletInstance: string;
  /** SubjectPublicKeyInfo DER. */
  readonly publicKey: Buffer;
  /** The SIM's KeyAttestation over the key. */
  readonly attestation: Buffer;
  /** The nonce the attestation must carry. */
  readonly nonce: Buffer;
}

/**
 * The SIM is in a carrier's inventory and active with that EID, and its security domain (certified
 * by the SIM maker's CA) attests the key: its hash, the ICCID, the EID, the applet instance, the
 * user-authentication key reference and the nonce.
 */
export async function attestedSimKey(
  context: ChannelContext,
  claim: SimKeyClaim,
): Promise<{ sim: ApplicationSim; statement: KeyAttestationStatement }> {
  const sim = await activeSim(context, claim);
  const statement = verifyKeyAttestation(
    claim.attestation,
    claim.publicKey,
    await securityDomainCertificate(context, sim),
  );
  if (statement.iccid !== claim.iccid || statement.eid !== claim.eid)
    refuse("the key attestation was made by another SIM");
  if (statement.instanceId.toString("hex") !== claim.appletInstance)
    refuse("the key attestation names another applet instance");
  if (statement.keyReference !== AUTH_KEY_REFERENCE)
    refuse("the attested key is not the applet's user-authentication key");
  if (!statement.nonce.equals(claim.nonce)) refuse("the key attestation was made for another nonce");
  return { sim, statement };
}

/** The SIM is in a carrier's inventory and active, with the EID the claim names. */
export async function activeSim(
  { authority }: ChannelContext,
  claim: Pick<SimKeyClaim, "iccid" | "eid">,
): Promise<ApplicationSim> {
  const sim = await authority.registry.getSimByIccid(claim.iccid);
  if (!sim) return forbid(`SIM ${claim.iccid} is not in any carrier's inventory`);
  if (sim.eid !== claim.eid) refuse(`SIM ${claim.iccid} has another EID than the application says`);
  if (sim.status !== "active")
    forbid(`SIM ${claim.iccid} is ${sim.status} at its carrier: ask the carrier to activate it`);
  // The carrier that issued the SIM answers whether it is in service (the SIM status API).
  const atCarrier =
    (await carrierSimStatus(authority, claim.iccid)) ??
    forbid(`SIM ${claim.iccid} is in no carrier's inventory`);
  if (!atCarrier.active)
    forbid(`SIM ${claim.iccid} is ${atCarrier.state} at ${atCarrier.issuer}: ask the carrier to activate it`);
  return { id: sim.id, iccid: sim.iccid, eid: sim.eid ?? claim.eid, issuer: sim.carrier ?? "unknown" };
}

/** The SIM's attestation certificate, issued by the SIM maker's CA and still valid. */
async function securityDomainCertificate(
  { authority, now }: ChannelContext,
  sim: ApplicationSim,
): Promise<Buffer> {
  const row = await authority.registry.db
    .selectFrom("certificates")
    .select(["der", "status", "not_after"])
    .where("sim_id", "=", sim.id)
    .where("kind", "=", "sim-attestation")
    .where("issuer", "=", "sim-maker")
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  if (!row?.der || effectiveStatus(row, now) !== "issued")
    return forbid(`SIM ${sim.iccid} has no valid attestation certificate from a trusted SIM maker`);
  const der = toBuffer(row.der);
  if (!signedBy(der, authority.certificates.simMaker))
    return forbid(`SIM ${sim.iccid}'s attestation certificate does not chain to the SIM maker's CA`);
  return der;
}

/** A card signing certificate the registry vouches for: who it is, at the moment of the check. */
export interface CardSigner {
  readonly serial: string;
  readonly personId: string;
  readonly cardId: string;
}

/**
 * The card signing certificate that signed something (a CMS signer): the registry's own
 * certificate with that serial, byte for byte (so it chains to the signing CA, which is checked
 * too), valid now: issued, not held, revoked or past notAfter. `what` names the signed thing in the
 * refusals, `instead` says what to do when the certificate is not valid.
 */
export async function cardSigner(
  context: ChannelContext,
  certificate: Buffer,
  what: string,
  instead: string,
): Promise<CardSigner> {
  const { authority, now } = context;
  const signer = parseCertificate(certificate);
  const row = await authority.registry.db
    .selectFrom("certificates")
    .select(["serial", "issuer", "kind", "status", "not_after", "der", "person_id", "card_id"])
    .where("serial", "=", signer.serialHex)
    .executeTakeFirst();
  if (row?.issuer !== "sign" || row.kind !== "card-sign" || !row.der || !toBuffer(row.der).equals(signer.der))
    return refuse(`${what} is not signed with a My Number card signing certificate this JPKI issued`);
  if (!signedBy(signer.der, authority.certificates.sign))
    refuse("the signing certificate does not chain to the signing CA");
  const status = effectiveStatus(row, now);
  if (status !== "issued") forbid(`the card's signing certificate is ${status}: ${instead}`);
  if (signer.notBefore > now) forbid("the card's signing certificate is not valid yet");
  if (!row.card_id || !row.person_id)
    throw new JpkiError("integrity", `card signing certificate ${row.serial} has no card in the registry`);
  return { serial: row.serial, personId: row.person_id, cardId: row.card_id };
}

/** The card a phone certificate is linked to, and what the link imposes. */
export interface CardLink {
  readonly personId: string;
  readonly cardId: string;
  /** The card's valid user-authentication certificate (the link, DESIGN §5). */
  readonly parentSerial: string;
  /** min(5th birthday after issuance, card expiry): JPKI-FACTS §2. */
  readonly validity: Validity;
}

/** The person's active card `cardId` with a valid user-authentication certificate, at `context.now`. */
export async function cardLink(context: ChannelContext, cardId: string, personId: string): Promise<CardLink> {
  const db = context.authority.registry.db;
  const card = await db
    .selectFrom("cards")
    .innerJoin("persons", "persons.id", "cards.person_id")
    .select(["cards.id", "cards.status", "cards.expires_at", "persons.id as person_id", "persons.birth_date"])
    .where("cards.id", "=", cardId)
    .executeTakeFirst();
  if (!card || card.person_id !== personId)
    throw new JpkiError("integrity", `card ${cardId} of person ${personId} is not in the registry`);
  if (card.status !== "active") forbid(`the My Number card is ${card.status}: apply with a valid card`);
  const parent = await db
    .selectFrom("certificates")
    .select(["serial", "status", "not_after"])
    .where("card_id", "=", card.id)
    .where("kind", "=", "card-auth")
    .where("status", "=", "issued")
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  if (!parent || effectiveStatus(parent, context.now) !== "issued")
    forbid(
      "the card's user-authentication certificate is not valid: the phone certificate has nothing to be linked to",
    );
  return {
    personId,
    cardId,
    parentSerial: parent!.serial,
    validity: citizenCertificateValidity(
      parseBirthDate(card.birth_date),
      context.now,
      new Date(card.expires_at),
    ),
  };
}
