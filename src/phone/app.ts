import type { CardTransport } from "../card/card.js";
import { CardStatusError, SW } from "../card/status-words.js";
import type { GeneratedKey } from "../card/uicc/host.js";
import { parseCertificate } from "../pki/certificate.js";
import { buildSignedData, sha256DigestInfo } from "../pki/cms.js";
import { encodeApplicationContent } from "../ra/application-content.js";
import type { ApplicationStatus } from "../ra/applications.js";
import { JpkiCard } from "./jpki-card.js";

/** An application as J-LIS answers about it. */
export interface ApplicationAnswer {
  readonly applicationId: string;
  readonly status: ApplicationStatus;
  readonly certificateSerial: string | null;
  readonly failureReason: string | null;
}

/** What the app asks of J-LIS. */
export interface JlisClient {
  nonce(): Promise<Buffer>;
  /** Where this J-LIS makes the key (its policy); the app follows it unless told otherwise. */
  keyGeneration?(): Promise<"on-card" | "injected">;
  /** Has J-LIS generate the user-authentication key on the SIM (through the carrier's relay). */
  generateKey(iccid: string, nonce: Buffer): Promise<GeneratedKey>;
  /** Submits a signed online application (CMS SignedData DER). */
  submit(signedData: Buffer): Promise<ApplicationAnswer>;
  /** Has J-LIS deliver an issued application's certificate to the SIM (through the relay). */
  deliver(applicationId: string): Promise<ApplicationAnswer>;
}

/** The phone's SIM as the app knows it. */
export interface PhoneSim {
  /** The SIM through OMAPI. */
  readonly transport: CardTransport;
  readonly iccid: string;
  readonly eid: string;
  /** The carrier of the contract (the brand). */
  readonly carrier: string;
}

export interface OnlineApplicationInput {
  /** The My Number card on the NFC reader. */
  readonly card: CardTransport;
  readonly signPassword: string;
  /**
   * `on-card` (default): J-LIS has the SIM generate the key first and the application carries it
   * with the SIM's attestation; `injected`: J-LIS makes the key after the examination and writes it
   * to the SIM with the certificate. Default: what J-LIS says its policy is.
   */
  readonly keyGeneration?: "on-card" | "injected";
  /** The citizen lets relying parties that know an earlier certificate find this one (the link query). */
  readonly linkConsent?: boolean;
  readonly now?: Date;
}

const REPROVISION_ADVICE =
  "the JPKI applet is not on this SIM (a new SIM, or its eSIM profile was deleted or downloaded again, " +
  "which ends any certificate it held): apply again, and the carrier installs the applet";

export type CredentialStatus =
  | { readonly state: "no-applet"; readonly advice: string }
  | { readonly state: "present" }
  | { readonly state: "installed"; readonly serial: string };

/** Steps the app reports while it works (for a progress display). */
export type AppStep = "nonce" | "key-generation" | "card-signature" | "submitted" | "delivered";

export class JpkiApp {
  constructor(
    readonly sim: PhoneSim,
    readonly jlis: JlisClient,
    private readonly onStep: (step: AppStep) => void = () => undefined,
  ) {}

  /** The JPKI applet's instance id on the SIM, which the SIM's attestation names. */
  async appletInstance(): Promise<string> {
    return (await JpkiCard.open(this.sim.transport)).instanceId();
  }

  /**
   * Prepares and signs an online application: returns the CMS SignedData, not yet submitted. The
   * card is asked for the signing certificate and the signature with the signing password.
   */
  async prepareOnlineApplication(input: OnlineApplicationInput): Promise<Buffer> {
    // The signing password first: a wrong one must fail before J-LIS replaces the SIM's key.
    const card = await JpkiCard.open(input.card);
    await card.verify("sign", input.signPassword);
    this.onStep("nonce");
    const nonce = await this.jlis.nonce();
    const mode = input.keyGeneration ?? (await this.jlis.keyGeneration?.()) ?? "on-card";
    const onCard = mode === "on-card";
    let key: { spki: Buffer; attestation: Buffer } | undefined;
    if (onCard) {
      this.onStep("key-generation");
      key = await this.jlis.generateKey(this.sim.iccid, nonce);
    }
    const content = encodeApplicationContent({
      iccid: this.sim.iccid,
      eid: this.sim.eid,
      carrier: this.sim.carrier,
      appletInstance: await this.appletInstance(),
      ...(key
        ? { keyGeneration: "on-card" as const, publicKey: key.spki, attestation: key.attestation }
        : { keyGeneration: "injected" as const }),
      nonce,
      requested: "phone-auth",
      time: input.now ?? new Date(),
      ...(input.linkConsent ? { linkConsent: true } : {}),
    });
    this.onStep("card-signature");
    return buildSignedData({
      content,
      signerCertificate: await card.readCertificate("sign"),
      signingTime: input.now ?? new Date(),
      sign: card.signer("sign", input.signPassword),
    });
  }

  /** The whole online application: prepared, signed, submitted, and the certificate delivered to the SIM. */
  async applyOnline(input: OnlineApplicationInput): Promise<ApplicationAnswer> {
    const submitted = await this.jlis.submit(await this.prepareOnlineApplication(input));
    this.onStep("submitted");
    const delivered = await this.jlis.deliver(submitted.applicationId);
    this.onStep("delivered");
    return delivered;
  }

  /**
   * Sets the SIM's user-authentication PIN the first time (the key was generated without one: only
   * the citizen chooses it, here in the phone, never relayed), or changes it with the current one.
   */
  async setPin(newPin: string, currentPin?: string): Promise<void> {
    const sim = await JpkiCard.open(this.sim.transport);
    if (currentPin !== undefined) await sim.verify("auth", currentPin);
    await sim.changePin("auth", newPin);
  }

  /**
   * After a delivery: sets `pin` as the first PIN, or, when the SIM already has one (an earlier
   * certificate's), checks that `pin` is it. Returns which.
   */
  async ensurePin(pin: string): Promise<"set" | "kept"> {
    const sim = await JpkiCard.open(this.sim.transport);
    try {
      await sim.changePin("auth", pin);
      return "set";
    } catch (error) {
      if (!(error instanceof CardStatusError) || error.sw !== SW.SECURITY_NOT_SATISFIED) throw error;
    }
    await sim.verify("auth", pin);
    return "kept";
  }

  /**
   * What the SIM holds, as the app shows it on start: no JPKI applet (a new SIM, or an eSIM profile
   * deleted or downloaded again: the carrier installs the applet and the citizen applies again), or
   * the applet; with the PIN, the certificate's serial (the SIM shows its certificate only after it).
   */
  async credentialStatus(pin?: string): Promise<CredentialStatus> {
    let sim: JpkiCard;
    try {
      sim = await JpkiCard.open(this.sim.transport);
    } catch (error) {
      if (error instanceof CardStatusError && error.sw === SW.FILE_NOT_FOUND)
        return { state: "no-applet", advice: REPROVISION_ADVICE };
      throw error;
    }
    if (pin === undefined) return { state: "present" };
    await sim.verify("auth", pin);
    return { state: "installed", serial: parseCertificate(await sim.readCertificate("auth")).serialHex };
  }

  /** The SIM's user-authentication certificate (after the PIN). */
  async certificate(pin: string): Promise<Buffer> {
    const sim = await JpkiCard.open(this.sim.transport);
    await sim.verify("auth", pin);
    return sim.readCertificate("auth");
  }

  /** Signs a SHA-256 hash with the SIM's user-authentication key (PKCS#1 v1.5), after the PIN. */
  async signHash(hash: Buffer, pin: string): Promise<Buffer> {
    const sim = await JpkiCard.open(this.sim.transport);
    await sim.verify("auth", pin);
    return sim.signDigestInfo("auth", sha256DigestInfo(hash));
  }
}
