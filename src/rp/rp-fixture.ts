/**
 * Test fixture for relying parties: a throw-away authority with its status server (the real OCSP
 * responder over HTTP, on a free port), a citizen whose phone applied online through the RA
 * (card-signed application, key generated on the SIM, certificate delivered over the carrier's relay)
 * and whose SIM PIN is set, and a registered verifier's token. Demo relying parties are made on
 * demand. Not used by production code.
 */
import { JpkiApp } from "../phone/app.js";
import { inProcessJlis } from "../ra/jlis-client.js";
import {
  type Citizen,
  FIXTURE_SIGN_PASSWORD,
  openRaSandbox,
  type Phone,
  type RaSandbox,
} from "../ra/ra-fixture.js";
import { addVerifier } from "../registry/verifiers.js";
import { createStatusService, type StatusService } from "../server/http.js";
import {
  createDemoRelyingParty,
  type DemoRelyingParty,
  type DemoRelyingPartyOptions,
} from "./demo-server.js";
import type { OcspClientOptions } from "./ocsp-client.js";

export const SIM_PIN = "4321";

export interface LoginSandbox {
  readonly ra: RaSandbox;
  readonly status: StatusService;
  /** The OCSP responder's URL. */
  readonly ocspUrl: string;
  /** A verifier registered for user-authentication certificates. */
  readonly token: string;
  readonly citizen: Citizen;
  readonly phone: Phone;
  /** The JPKI app on the citizen's phone. */
  readonly app: JpkiApp;
  /** The phone's user-authentication certificate, and its serial. */
  readonly certificate: Buffer;
  readonly serial: string;
  /** A demo relying party listening on a free port; closed with the sandbox. */
  relyingParty(
    id: string,
    options?: Partial<Omit<DemoRelyingPartyOptions, "status">> & { status?: Partial<OcspClientOptions> },
  ): Promise<{ demo: DemoRelyingParty; url: string }>;
  close(): Promise<void>;
}

export async function openLoginSandbox(db?: string): Promise<LoginSandbox> {
  const ra = await openRaSandbox(db);
  const closers: (() => Promise<void>)[] = [];
  try {
    const { authority } = ra;
    const logged: string[] = [];
    const status = createStatusService(authority, {
      refresher: false,
      lookupFlushIntervalMs: 0,
      log: (line) => logged.push(line),
    });
    const baseUrl = await status.listen(0);
    closers.push(() => status.close(1000));
    const citizen = await ra.citizen();
    const phone = await ra.phone();
    const app = new JpkiApp(
      { transport: phone.uicc, iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand },
      inProcessJlis(authority, () => phone.relay),
    );
    const answer = await app.applyOnline({ card: citizen.card, signPassword: FIXTURE_SIGN_PASSWORD });
    if (answer.status !== "delivered" || !answer.certificateSerial)
      throw new Error(`the online application ended ${answer.status}: ${answer.failureReason}`);
    await app.setPin(SIM_PIN);
    const certificate = await app.certificate(SIM_PIN);
    const { token } = await addVerifier(authority.registry.db, { name: "Example Bank", kind: "auth" });
    const ocspUrl = `${baseUrl}/ocsp`;
    return {
      ra,
      status,
      ocspUrl,
      token,
      citizen,
      phone,
      app,
      certificate,
      serial: answer.certificateSerial,
      async relyingParty(id, options = {}) {
        const { status: statusOptions, ...rest } = options;
        const demo = createDemoRelyingParty({
          id,
          trustAnchors: [authority.certificates.auth],
          log: (line) => logged.push(line),
          ...rest,
          status: { url: ocspUrl, token, ...statusOptions },
        });
        const url = await demo.listen(0);
        closers.push(() => demo.close());
        return { demo, url };
      },
      async close() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
        await ra.close();
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await ra.close();
    throw error;
  }
}
