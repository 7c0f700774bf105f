/**
 * The JPKI app's postal application (郵送申請, DESIGN §4 flow 4), on top of the app of app.ts:
 *
 * 1. `applyByPost`: the citizen fills in the form (basic 4 information as on the residence record)
 *    and the app adds its SIM (ICCID, EID, carrier). No card signature: J-LIS matches the form with
 *    the registry and sends the access code by restricted-delivery mail to the address of record.
 * 2. `completeWithAccessCode`: with the letter in hand, the citizen types the application number and
 *    the access code. The app checks the code's form (a typing mistake costs no attempt), gets a
 *    nonce, has J-LIS generate the key on the SIM over the carrier's relay (attested over the nonce),
 *    and sends the code with the SIM's claim: the code completes the application only together with
 *    the attestation of the SIM the request named. J-LIS issues and writes the certificate to the SIM.
 */

import { parseAccessCode } from "../ra/access-codes.js";
import { parseApplicationNumber } from "../ra/applications.js";
import type { SimKeyClaim } from "../ra/evidence.js";
import type { ApplicationAnswer, AppStep, JlisClient, PhoneSim } from "./app.js";
import { JpkiApp } from "./app.js";

/** The postal form: the basic 4 information (基本4情報) exactly as on the residence record (住民票). */
export interface PostalForm {
  readonly name: string;
  /** YYYY-MM-DD */
  readonly birth: string;
  /** male | female | unknown, or JPKI's codes 1 | 2 | 3. */
  readonly sex: string;
  /** Address of record (住所). */
  readonly address: string;
}

/** The form as J-LIS receives it: with the SIM the certificate is for. */
export interface PostalRequest extends PostalForm {
  readonly sim: { readonly iccid: string; readonly eid: string; readonly carrier: string };
}

export interface PostalRequestAnswer extends ApplicationAnswer {
  /** The restricted-delivery item carrying the access code. */
  readonly trackingNumber: string;
  readonly codeExpiresAt: string;
}

/** The completion: the number and code from the letter, and the SIM's attested key. */
export interface AccessCodeCompletion {
  readonly applicationId: string;
  readonly accessCode: string;
  readonly claim: SimKeyClaim;
}

/** What the app asks of J-LIS for the postal channel, besides the online operations. */
export interface PostalJlisClient extends JlisClient {
  postalRequest(request: PostalRequest): Promise<PostalRequestAnswer>;
  completeWithAccessCode(completion: AccessCodeCompletion): Promise<ApplicationAnswer>;
}

export type PostalStep = "postal-request" | "access-code";

export class PostalJpkiApp extends JpkiApp {
  private readonly report: (step: AppStep | PostalStep) => void;

  constructor(
    sim: PhoneSim,
    readonly postal: PostalJlisClient,
    onStep: (step: AppStep | PostalStep) => void = () => undefined,
  ) {
    super(sim, postal, onStep);
    this.report = onStep;
  }

  /** Sends the postal form for this phone's SIM; the answer carries the application number. */
  async applyByPost(form: PostalForm): Promise<PostalRequestAnswer> {
    const answer = await this.postal.postalRequest({
      ...form,
      sim: { iccid: this.sim.iccid, eid: this.sim.eid, carrier: this.sim.carrier },
    });
    this.report("postal-request");
    return answer;
  }

  /**
   * Completes a postal application with the letter's access code, then has the certificate written
   * to the SIM. A mistyped number or code is refused here, before the SIM or J-LIS is involved.
   */
  async completeWithAccessCode(applicationNumber: string, accessCode: string): Promise<ApplicationAnswer> {
    const applicationId = parseApplicationNumber(applicationNumber);
    const code = parseAccessCode(accessCode);
    this.report("nonce");
    const nonce = await this.postal.nonce();
    this.report("key-generation");
    const key = await this.postal.generateKey(this.sim.iccid, nonce);
    const completed = await this.postal.completeWithAccessCode({
      applicationId,
      accessCode: code,
      claim: {
        iccid: this.sim.iccid,
        eid: this.sim.eid,
        appletInstance: await this.appletInstance(),
        publicKey: key.spki,
        attestation: key.attestation,
        nonce,
      },
    });
    this.report("access-code");
    const delivered = await this.postal.deliver(completed.applicationId);
    this.report("delivered");
    return delivered;
  }
}
