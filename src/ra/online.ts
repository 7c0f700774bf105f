/**
 * The online channel (DESIGN §4 flow 2): the application is CMS SignedData made by the My Number
 * card's signing key, with the signing certificate embedded (docs/application-format.md). The RA
 * believes it only when all of these hold, checked in this order (cheapest and most telling first):
 *
 * 1. the CMS signature verifies with the embedded certificate (cms.ts);
 * 2. that certificate is the registry's own card signing certificate with that serial, byte for
 *    byte (so it chains to the signing CA, which the registry's copy was checked against), and is
 *    valid now: issued, not held, revoked or past notAfter (effectiveStatus);
 * 3. the content reads as an application, made within `clockSkewMs` of now;
 * 4. the SIM is in the carrier's inventory and active, with the EID the application names;
 * 5. the attestation verifies with the SIM's security domain certificate, which the SIM maker's CA
 *    signed, and binds the public key, the ICCID, the EID, the applet instance, the
 *    user-authentication key reference and the application's nonce;
 * 6. the nonce is the RA's, unused and fresh: used up in the transaction that records the
 *    application (nonces.ts), so a replay is refused even when everything else verifies.
 *
 * The person and the card come from the signing certificate's registry row, never from the content.
 */
import { generateKeyPair, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { JpkiError } from "../errors.js";
import { verifySignedData } from "../pki/cms.js";
import { parseApplicationContent } from "./application-content.js";
import type { ApplicationChannel, ApplicationSim, Authorisation, ChannelContext } from "./channel.js";
import { activeSim, attestedSimKey, cardLink, cardSigner } from "./evidence.js";
import { consumeNonce } from "./nonces.js";

/** The largest application accepted (a real one is about 4 KiB: content, certificate, signature). */
export const MAX_ONLINE_APPLICATION_BYTES = 64 * 1024;

const generateRsaKeyPair = promisify(generateKeyPair);

export interface OnlineApplication {
  /** ContentInfo DER of the SignedData. */
  readonly signedData: Buffer;
}

export interface OnlineChannelOptions {
  /** How far the application's time may be from the RA's clock (default 10 minutes). */
  readonly clockSkewMs?: number;
}

const refuse = (message: string): never => {
  throw new JpkiError("bad-input", message);
};
const forbid = (message: string): never => {
  throw new JpkiError("forbidden", message);
};

export class OnlineChannel implements ApplicationChannel<OnlineApplication> {
  readonly name = "online" as const;
  private readonly clockSkewMs: number;

  constructor(options: OnlineChannelOptions = {}) {
    this.clockSkewMs = options.clockSkewMs ?? 10 * 60_000;
  }

  async authorise(request: OnlineApplication, context: ChannelContext): Promise<Authorisation> {
    const { authority, now } = context;
    if (request.signedData.length > MAX_ONLINE_APPLICATION_BYTES)
      refuse(`the application is larger than ${MAX_ONLINE_APPLICATION_BYTES} octets`);
    const signed = verifySignedData(request.signedData);

    // 2. The signer: the registry's card signing certificate, valid now.
    const signer = await cardSigner(
      context,
      signed.signerCertificate,
      "the application",
      "it cannot sign an application",
    );

    // 3. The content.
    const content = parseApplicationContent(signed.content);
    if (Math.abs(content.time.getTime() - now.getTime()) > this.clockSkewMs)
      refuse(
        `the application was made at ${content.time.toISOString()}, too far from now: check the phone's clock`,
      );

    // 4 and 5. The SIM and the key it attests, or, for a key J-LIS makes, the SIM alone (its
    // genuineness is proven when J-LIS's channel to it opens: only that SIM's security domain can).
    const policy = authority.policies.keyGeneration;
    if (content.keyGeneration !== policy)
      forbid(
        `this J-LIS makes the key ${policy === "on-card" ? "on the SIM" : "itself and injects it"}: apply with keyGeneration ${policy}`,
      );
    let key: { spki: Buffer; injected?: KeyObject; attestedReference?: number };
    let sim: ApplicationSim;
    if (content.keyGeneration === "on-card") {
      const attested = await attestedSimKey(context, {
        ...content,
        publicKey: content.publicKey!,
        attestation: content.attestation!,
      });
      sim = attested.sim;
      key = { spki: content.publicKey!, attestedReference: attested.statement.keyReference };
    } else {
      sim = await activeSim(context, content);
      const { privateKey, publicKey } = await generateRsaKeyPair("rsa", { modulusLength: 2048 });
      key = { spki: publicKey.export({ type: "spki", format: "der" }), injected: privateKey };
    }

    // The person and the card behind the signing certificate.
    const link = await cardLink(context, signer.cardId, signer.personId);

    return {
      ...link,
      sim,
      subjectSpki: key.spki,
      ...(key.injected ? { injectedKey: key.injected } : {}),
      evidence: {
        signingCertificate: signer.serial,
        applicationTime: content.time.toISOString(),
        carrier: content.carrier,
        appletInstance: content.appletInstance,
        keyGeneration: content.keyGeneration,
        ...(content.linkConsent ? { linkConsent: true } : {}),
        ...(key.attestedReference !== undefined ? { attestationKeyReference: key.attestedReference } : {}),
      },
      consume: (trx, applicationId) => consumeNonce(trx, content.nonce, applicationId, now),
    };
  }
}
