/**
 * Test fixture for the RA: a throw-away authority (`ca init` in a temporary directory, on the
 * registry URL given), a citizen with a My Number card, and a phone whose SIM a carrier made and
 * prepared (J-LIS security domain and JPKI applet installed with the carrier's card-manager keys),
 * with the carrier's OTA relay and the phone's relay agent running. Not used by production code.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InProcessTransport } from "../card/in-process-transport.js";
import { openMyNumberCard } from "../card/mynacard.js";
import { CardManagerSession } from "../card/uicc/host.js";
import { openUicc } from "../card/uicc/uicc.js";
import { cardManagerKeys } from "../mno/carriers.js";
import { OtaRelay, relayForPhone } from "../mno/ota-relay.js";
import { type CreatedSim, createSim } from "../mno/sim-factory.js";
import { type JlisClient, JpkiApp } from "../phone/app.js";
import { type Authority, initAuthority } from "../server/authority.js";
import { DEFAULT_SIGN_PASSWORD, type IssuedCard, issueMyNumberCard } from "./card-issuance.js";
import { inProcessJlis } from "./jlis-client.js";

export const FIXTURE_SIGN_PASSWORD = DEFAULT_SIGN_PASSWORD;

export interface Citizen extends IssuedCard {
  /** The citizen's My Number card on an NFC reader. */
  readonly card: InProcessTransport;
}

export interface Phone {
  readonly sim: CreatedSim;
  /** The SIM as the phone's OS reaches it (OMAPI). */
  readonly uicc: InProcessTransport;
  /** The carrier's OTA relay for this SIM (J-LIS submits there). */
  readonly relay: OtaRelay;
  stopRelay(): void;
  /** The JPKI app on this phone, talking to `jlis` (default: the sandbox's J-LIS, through the relay). */
  app(jlis?: JlisClient): JpkiApp;
}

export interface RaSandbox {
  readonly authority: Authority;
  readonly dir: string;
  citizen(name?: string): Promise<Citizen>;
  /** A phone with a new SIM of `carrier` (default sakura), its JPKI applet installed by the carrier. */
  phone(carrier?: string): Promise<Phone>;
  close(): Promise<void>;
}

export async function openRaSandbox(db?: string): Promise<RaSandbox> {
  process.env["JPKI_CA_PASSPHRASE"] ??= "ra sandbox";
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-ra-"));
  const authority = await initAuthority({ dataDir: dir, ...(db ? { db } : {}) });
  const stops: (() => void)[] = [];
  return {
    authority,
    dir,
    async citizen(name = "試験 一郎") {
      const issued = await issueMyNumberCard(authority, {
        name,
        birth: "1988-06-15",
        sex: "male",
        address: "東京都千代田区霞が関二丁目1番2号",
      });
      return { ...issued, card: new InProcessTransport(openMyNumberCard(issued.cardState)) };
    },
    async phone(carrier = "sakura") {
      const sim = await createSim(authority, { carrier });
      const uicc = new InProcessTransport(openUicc(sim.simState));
      const manager = await CardManagerSession.open(uicc, cardManagerKeys(dir, sim.carrier, sim.iccid));
      await manager.installJpki();
      await uicc.reset();
      const relay = new OtaRelay(sim.carrier, { timeoutMs: 10_000 });
      const stopRelay = relayForPhone(relay, sim.iccid, uicc);
      stops.push(stopRelay);
      const app = (jlis: JlisClient = inProcessJlis(authority, () => relay)) =>
        new JpkiApp({ transport: uicc, iccid: sim.iccid, eid: sim.eid, carrier: sim.brand }, jlis);
      return { sim, uicc, relay, stopRelay, app };
    },
    async close() {
      for (const stop of stops) stop();
      try {
        await authority.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
