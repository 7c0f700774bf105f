/**
 * The counter console (窓口端末の業務画面): what the clerk does at the counter, in the order it is
 * done, with the counter's card reader (the My Number card), the NFC terminal (the phone's SIM,
 * terminal.ts) and J-LIS (src/ra/counter.ts; in one process here, over the municipal network when the
 * roles are split).
 *
 * - `identifyAtCounter`: either the card signs J-LIS's challenge (the citizen types the signing
 *   password on the PIN pad), or the clerk records the documents seen and the reader reads the card's
 *   user-authentication certificate (free to read).
 * - `applyAtCounter`: identity, then J-LIS generates the key on the SIM through the terminal with a
 *   nonce and the SIM attests it; J-LIS examines and issues, then writes the certificate to the SIM
 *   through the terminal. The citizen then chooses the SIM's PIN in the phone, as after an online
 *   application: it never crosses the terminal.
 * - `unblockPinAtCounter`: identity, then J-LIS resets the SIM's user-authentication PIN through the
 *   terminal with the new PIN the citizen typed on the PIN pad.
 */
import type { CardTransport } from "../card/card.js";
import { JpkiCard } from "../phone/jpki-card.js";
import { buildSignedData } from "../pki/cms.js";
import { type ApplicationEvent, type ApplicationRecord, getApplication } from "../ra/applications.js";
import {
  type CounterIdentityEvidence,
  type CounterOptions,
  type CounterPurpose,
  encodeCounterIdentityStatement,
  issueCounterChallenge,
  type PinUnblockResult,
  resetSimPinAtCounter,
  submitCounterApplication,
} from "../ra/counter.js";
import { issueNonce } from "../ra/nonces.js";
import { deliverCertificate, generateKeyOnSim } from "../ra/provisioning.js";
import type { Authority } from "../server/authority.js";
import type { DocumentKindId } from "./documents.js";
import type { CounterTerminal } from "./terminal.js";

/** How the clerk identifies the person, with the card on the counter's reader. */
export type CounterIdentityInput =
  | { readonly method: "card-signature"; readonly card: CardTransport; readonly signPassword: string }
  | {
      readonly method: "documents";
      readonly card: CardTransport;
      readonly documents: readonly DocumentKindId[] | string;
    };

/** Steps the console reports (for a progress display). */
export type CounterStep = "identity" | "key-generation" | "examined" | "delivered";

/** Makes the identity evidence J-LIS checks. */
export async function identifyAtCounter(
  authority: Authority,
  clerkToken: string,
  input: CounterIdentityInput,
  purpose: CounterPurpose,
  now: Date = new Date(),
): Promise<CounterIdentityEvidence> {
  const card = await JpkiCard.open(input.card);
  if (input.method === "documents")
    return {
      method: "documents",
      documents: input.documents,
      cardAuthCertificate: await card.readCertificate("auth"),
    };
  // The password first: a wrong one is reported (with the tries left) before J-LIS is asked anything.
  await card.verify("sign", input.signPassword);
  const challenge = await issueCounterChallenge(authority, clerkToken, { now });
  const signedData = await buildSignedData({
    content: encodeCounterIdentityStatement({ ...challenge, purpose, time: now }),
    signerCertificate: await card.readCertificate("sign"),
    signingTime: now,
    sign: card.signer("sign", input.signPassword),
  });
  return { method: "card-signature", signedData };
}

export interface CounterApplicationInput {
  readonly clerkToken: string;
  readonly identity: CounterIdentityInput;
  /** A postal application referred to the counter that this visit completes. */
  readonly continues?: string;
  readonly options?: CounterOptions;
  readonly onStep?: (step: CounterStep) => void;
}

/**
 * A counter application with the phone on `terminal` (tapped already): identity, key on the SIM,
 * examination and issuance, delivery. Returns the delivered application.
 */
export async function applyAtCounter(
  authority: Authority,
  terminal: CounterTerminal,
  input: CounterApplicationInput,
): Promise<ApplicationRecord & { history: ApplicationEvent[] }> {
  const step = input.onStep ?? (() => undefined);
  const identity = await identifyAtCounter(authority, input.clerkToken, input.identity, "application");
  step("identity");
  const { iccid, eid } = terminal.sim;
  const { nonce } = await issueNonce(authority.registry.db);
  const key = await generateKeyOnSim(authority, terminal.relayForJlis(), { iccid, nonce });
  step("key-generation");
  const submitted = await submitCounterApplication(
    authority,
    {
      clerkToken: input.clerkToken,
      identity,
      claim: {
        iccid,
        eid,
        appletInstance: await terminal.appletInstance(),
        publicKey: key.spki,
        attestation: key.attestation,
        nonce,
      },
      ...(input.continues !== undefined ? { continues: input.continues } : {}),
    },
    input.options ?? {},
  );
  step("examined");
  await deliverCertificate(authority, terminal.relayForJlis(), submitted.application.id, {
    actor: "ra:counter",
    via: "counter",
  });
  step("delivered");
  return (await getApplication(authority.registry.db, submitted.application.id))!;
}

export interface PinUnblockInput {
  readonly clerkToken: string;
  readonly identity: CounterIdentityInput;
  /** What the citizen typed on the terminal's PIN pad. */
  readonly newPin: string;
  readonly options?: CounterOptions;
}

/** Resets the user-authentication PIN of the SIM on `terminal` (tapped already) after the identity check. */
export async function unblockPinAtCounter(
  authority: Authority,
  terminal: CounterTerminal,
  input: PinUnblockInput,
): Promise<PinUnblockResult> {
  const identity = await identifyAtCounter(authority, input.clerkToken, input.identity, "pin-unblock");
  return resetSimPinAtCounter(
    authority,
    terminal.relayForJlis(),
    { clerkToken: input.clerkToken, identity, iccid: terminal.sim.iccid, newPin: input.newPin },
    input.options ?? {},
  );
}
