/**
 * `jpki-mobile demo`: the whole story of DESIGN §4 on a fresh temporary data directory, every party
 * in this process (J-LIS's CA, registry and RA, the status server, the carriers' relays, the phones
 * with their SIMs, the citizens' My Number cards), each step checked: a step passes only when the
 * outcome is the expected one, a refusal included. The story ends with the audit log verified.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InProcessTransport } from "../card/in-process-transport.js";
import { openMyNumberCard } from "../card/mynacard.js";
import { CardManagerSession } from "../card/uicc/host.js";
import { openUicc } from "../card/uicc/uicc.js";
import { JpkiError } from "../errors.js";
import { billingMonth, closeMonth, ledgerReport, ratesOf } from "../ledger/ledger.js";
import type { CarrierEventKind } from "../mno/carrier-events.js";
import { cardManagerKeys } from "../mno/carriers.js";
import { OtaRelay, relayForPhone } from "../mno/ota-relay.js";
import { createSim } from "../mno/sim-factory.js";
import { addClerk } from "../municipality/clerks.js";
import { applyAtCounter } from "../municipality/console.js";
import { CounterTerminal } from "../municipality/terminal.js";
import { JpkiApp } from "../phone/app.js";
import { PostalJpkiApp } from "../phone/postal.js";
import { loginToRelyingParty } from "../phone/rp-login.js";
import { envelopeKey } from "../post/envelope.js";
import { RestrictedDeliveryService } from "../post/restricted-delivery.js";
import { DEFAULT_SIGN_PASSWORD, issueMyNumberCard } from "../ra/card-issuance.js";
import { reportCarrierEvent } from "../ra/carrier-events.js";
import { inProcessJlis } from "../ra/jlis-client.js";
import { OnlineChannel } from "../ra/online.js";
import { inProcessPostalJlis, readAccessCodeLetter, referReturnedApplications } from "../ra/postal.js";
import { submitApplication } from "../ra/ra.js";
import { getCertificate } from "../registry/issuance.js";
import { resumeCertificate, suspendCertificate } from "../registry/lifecycle.js";
import { addVerifier } from "../registry/verifiers.js";
import { createDemoRelyingParty } from "../rp/demo-server.js";
import { type Authority, initAuthority } from "../server/authority.js";
import { createStatusService } from "../server/http.js";

export interface DemoStep {
  readonly title: string;
  /** Whether the outcome was the expected one (a refusal, for a step that expects one). */
  readonly ok: boolean;
  readonly outcome: string;
  readonly ms: number;
}

export interface DemoOptions {
  /** Called after each step (the command prints it). */
  readonly onStep?: (step: DemoStep, index: number) => void;
  /** Keep the data directory (its path is in the result) instead of removing it. */
  readonly keep?: boolean;
}

export interface DemoResult {
  readonly ok: boolean;
  readonly steps: readonly DemoStep[];
  readonly dataDir: string;
}

/** A phone: its SIM (made by the carrier, JPKI applet installed over the air), relay and JPKI app. */
async function newPhone(authority: Authority, carrier: string) {
  const sim = await createSim(authority, { carrier });
  const uicc = new InProcessTransport(openUicc(sim.simState));
  const relay = new OtaRelay(sim.carrier);
  const stopRelay = relayForPhone(relay, sim.iccid, uicc);
  const manager = await CardManagerSession.open(
    relay.transportFor(sim.iccid),
    cardManagerKeys(authority.dataDir, sim.carrier, sim.iccid),
  );
  await manager.installJpki();
  await uicc.reset();
  const app = new JpkiApp(
    { transport: uicc, iccid: sim.iccid, eid: sim.eid, carrier: sim.brand },
    inProcessJlis(authority, () => relay),
  );
  return { sim, uicc, relay, stopRelay, app };
}

/** Runs the story; never throws for a step's failure (the step fails), only for a broken setup. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "jpki-demo-"));
  const steps: DemoStep[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  /** One step: `body` returns the outcome text; `expect: "refusal"` passes when it throws a JpkiError. */
  async function step(title: string, body: () => Promise<string>, expect: "success" | "refusal" = "success") {
    const started = performance.now();
    let ok: boolean;
    let outcome: string;
    try {
      outcome = await body();
      ok = expect === "success";
      if (!ok) outcome = `accepted, but a refusal was expected: ${outcome}`;
    } catch (error) {
      const refused = error instanceof JpkiError;
      ok = expect === "refusal" && refused;
      outcome = `${refused ? "refused" : "failed"}: ${(error as Error).message}`;
    }
    const result = { title, ok, outcome, ms: Math.round(performance.now() - started) };
    steps.push(result);
    options.onStep?.(result, steps.length);
    return ok;
  }

  try {
    // A throw-away passphrase for the throw-away CA keys (ca init would otherwise make a file and say so).
    process.env["JPKI_CA_PASSPHRASE"] ??= randomBytes(24).toString("base64url");
    const authority = await initAuthority({ dataDir: path.join(dataDir, "jlis") });
    cleanups.push(() => authority.close());
    const status = createStatusService(authority, { log: () => undefined });
    const statusUrl = await status.listen(0, "127.0.0.1");
    cleanups.push(() => status.close());
    const db = authority.registry.db;

    // Citizen A applies online and receives the certificate over the air.
    const a = await issueMyNumberCard(authority, {
      name: "山田 花子",
      birth: "1990-02-28",
      sex: "female",
      address: "東京都千代田区霞が関2丁目1番2号",
    });
    const aCard = new InProcessTransport(openMyNumberCard(a.cardState));
    const aPhone = await newPhone(authority, "hibari"); // a light MVNO: its host MNO relays
    cleanups.push(aPhone.stopRelay);
    let aSerial = "";
    let aApplication: Buffer = Buffer.alloc(0);
    await step(
      "citizen A applies online (card signature, key on the SIM) and gets the certificate over the air",
      async () => {
        aApplication = await aPhone.app.prepareOnlineApplication({
          card: aCard,
          signPassword: DEFAULT_SIGN_PASSWORD,
        });
        const submitted = await aPhone.app.jlis.submit(aApplication);
        const answer = await aPhone.app.jlis.deliver(submitted.applicationId);
        await aPhone.app.ensurePin("1234");
        aSerial = answer.certificateSerial ?? "";
        return `application ${answer.applicationId} ${answer.status}, certificate ${aSerial} on SIM ${aPhone.sim.iccid}`;
      },
    );

    // A demo bank, a registered verifier, logs citizens in; it asks the status server by OCSP.
    const bank = await addVerifier(db, { name: "デモ銀行 (demo bank)", kind: "auth" });
    const rp = createDemoRelyingParty({
      id: "demo-bank",
      trustAnchors: [authority.certificates.auth],
      // No cache, so a suspension shows at the next login (a real bank may keep answers a minute).
      status: { url: `${statusUrl}/ocsp`, token: bank.token, cacheTtlMs: 0 },
      log: () => undefined,
    });
    const rpUrl = await rp.listen(0, "127.0.0.1");
    cleanups.push(() => rp.close());
    const login = async (app: JpkiApp, pin: string) => {
      const session = await loginToRelyingParty(app, { rpUrl, pin });
      return `logged in to ${session.requester.rpId} as certificate ${session.serial}`;
    };
    await step("A logs in to the demo bank with the phone (the SIM signs its challenge after the PIN)", () =>
      login(aPhone.app, "1234"),
    );

    // A loses the phone: the hotline suspends, the login is refused; A resumes and logs in again.
    await step("A loses the phone: the certificate is suspended (一時利用停止)", async () => {
      const result = await suspendCertificate(db, aSerial, { actor: "support:hotline", note: "lost phone" });
      return `${result.from} → ${result.to}`;
    });
    await step(
      "the bank refuses A's login while the certificate is suspended",
      () => login(aPhone.app, "1234"),
      "refusal",
    );
    await step("A finds the phone: the hold is released", async () => {
      const result = await resumeCertificate(db, aSerial, {
        actor: "support:hotline",
        policies: authority.policies,
      });
      return `${result.from} → ${result.to}`;
    });
    await step("A logs in again", () => login(aPhone.app, "1234"));

    // Citizen B applies by post and completes with the access code of the restricted-delivery letter.
    const post = new RestrictedDeliveryService(db, { envelopeKey: envelopeKey(authority.dataDir) });
    const postalApp = (phone: Awaited<ReturnType<typeof newPhone>>) =>
      new PostalJpkiApp(
        { transport: phone.uicc, iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand },
        inProcessPostalJlis(authority, post, () => phone.relay),
      );
    const bForm = {
      name: "佐藤 次郎",
      birth: "1975-11-03",
      sex: "male",
      address: "東京都千代田区永田町一丁目7番1号",
    };
    await issueMyNumberCard(authority, bForm);
    const bPhone = await newPhone(authority, "kaede");
    cleanups.push(bPhone.stopRelay);
    await step(
      "citizen B applies by post; the access code comes by restricted-delivery mail (本人限定受取郵便)",
      async () => {
        const app = postalApp(bPhone);
        const requested = await app.applyByPost(bForm);
        const handed = await post.attemptDelivery({
          trackingNumber: requested.trackingNumber,
          identityChecked: true,
          actor: "post:carrier",
        });
        if (!handed.handedOver) throw new Error(`the letter was not handed over: ${handed.reason}`);
        const letter = readAccessCodeLetter(handed.letter);
        const done = await app.completeWithAccessCode(letter.applicationId, letter.accessCode);
        await app.ensurePin("5678");
        return `application ${done.applicationId} ${done.status} (letter ${requested.trackingNumber} handed to B after the identity check)`;
      },
    );
    await step("B logs in to the demo bank", () => login(postalApp(bPhone), "5678"));

    // Citizen C lives away from the address of record: the letter comes back, the counter takes over.
    const cForm = {
      name: "鈴木 三郎",
      birth: "1969-07-20",
      sex: "male",
      address: "東京都千代田区丸の内一丁目9番1号",
    };
    const c = await issueMyNumberCard(authority, { ...cForm, residence: "大阪府大阪市北区梅田一丁目1番" });
    const cPhone = await newPhone(authority, "tsubame");
    cleanups.push(cPhone.stopRelay);
    let cApplication = "";
    await step(
      "citizen C applies by post, but lives elsewhere: the letter is not handed over and comes back",
      async () => {
        const requested = await postalApp(cPhone).applyByPost(cForm);
        cApplication = requested.applicationId;
        const attempt = await post.attemptDelivery({
          trackingNumber: requested.trackingNumber,
          identityChecked: true,
          actor: "post:carrier",
        });
        if (attempt.handedOver)
          throw new Error("the letter was handed over at an address where C does not live");
        await post.returnOverdue({ actor: "post:carrier", now: new Date(Date.now() + 8 * 86_400_000) });
        const [referred] = await referReturnedApplications(authority, post);
        return `letter ${requested.trackingNumber}: ${attempt.reason}; application ${referred?.id} ${referred?.status}`;
      },
    );
    await step(
      "C completes it at the Chiyoda city counter: card signature, the phone tapped on the terminal",
      async () => {
        const { token } = await addClerk(db, {
          municipalityCode: "131016",
          municipalityName: "東京都千代田区",
          label: "窓口 1",
          actor: "demo",
        });
        const terminal = new CounterTerminal("131016");
        await terminal.tap(cPhone.uicc);
        const done = await applyAtCounter(authority, terminal, {
          clerkToken: token,
          identity: {
            method: "card-signature",
            card: new InProcessTransport(openMyNumberCard(c.cardState)),
            signPassword: DEFAULT_SIGN_PASSWORD,
          },
          continues: cApplication,
        });
        await cPhone.app.ensurePin("2468");
        return `application ${done.id} ${done.status} (stored through the counter terminal, no carrier on the path)`;
      },
    );
    await step("C logs in to the demo bank", () => login(cPhone.app, "2468"));

    // Forged and replayed applications.
    const forged = Buffer.from(aApplication);
    const at = forged.indexOf('"publicKey":"') + 40;
    forged[at] = forged[at] === 0x41 ? 0x42 : 0x41;
    await step(
      "a forged application (the card's signature over other data) is refused",
      async () =>
        `issued ${(await submitApplication(authority, new OnlineChannel(), { signedData: forged })).application.id}`,
      "refusal",
    );
    await step(
      "A's application replayed is refused",
      async () =>
        `issued ${(await submitApplication(authority, new OnlineChannel(), { signedData: aApplication })).application.id}`,
      "refusal",
    );

    // Carriers: A moves to another carrier with a new SIM; E's SIM is swapped behind E's back.
    const carrierReport = async (
      carrier: string,
      kind: CarrierEventKind,
      iccid: string,
      requested?: boolean,
    ) => {
      const { entry, acknowledgement } = await reportCarrierEvent(
        authority,
        carrier,
        kind,
        iccid,
        requested === undefined ? {} : { requestedBySubscriber: requested },
      );
      if (!acknowledgement) throw new Error(`the event did not reach J-LIS: ${entry.lastError}`);
      return { simStatus: acknowledgement.simStatus, revoked: acknowledgement.revoked ?? [] };
    };
    const aNewPhone = await newPhone(authority, "sakura");
    cleanups.push(aNewPhone.stopRelay);
    await step(
      "A moves from the light MVNO to an MNO with a new SIM: the new certificate supersedes the old one at once",
      async () => {
        const answer = await aNewPhone.app.applyOnline({
          card: aCard,
          signPassword: DEFAULT_SIGN_PASSWORD,
          linkConsent: true,
        });
        await aNewPhone.app.ensurePin("1234");
        const old = await getCertificate(db, aSerial);
        const outcome = await carrierReport("hibari", "port-out", aPhone.sim.iccid);
        return `certificate ${answer.certificateSerial} on SIM ${aNewPhone.sim.iccid}; the old one is ${old?.status} (superseded); the port-out then revoked ${outcome.revoked.length} more`;
      },
    );
    await step("A logs in with the new phone", () => login(aNewPhone.app, "1234"));
    await step(
      "the bank finds A's account: J-LIS links the old certificate to the new one (A agreed)",
      async () => {
        const response = await fetch(`${statusUrl}/api/ra/links`, {
          method: "POST",
          headers: { authorization: `Bearer ${bank.token}`, "content-type": "application/json" },
          body: JSON.stringify({ serial: aSerial }),
        });
        const body = (await response.json()) as { current?: string; reason?: string };
        if (response.status !== 200)
          throw new Error(`link query answered ${response.status}: ${body.reason}`);
        return `${aSerial} → ${body.current}`;
      },
    );
    const e = await issueMyNumberCard(authority, {
      name: "高橋 五郎",
      birth: "2001-04-01",
      sex: "male",
      address: "北海道札幌市中央区北1条西2丁目",
    });
    const ePhone = await newPhone(authority, "tsubame"); // a full MVNO: its own SIMs and OTA
    cleanups.push(ePhone.stopRelay);
    await step("citizen E applies online on a full MVNO's SIM and logs in", async () => {
      const answer = await ePhone.app.applyOnline({
        card: new InProcessTransport(openMyNumberCard(e.cardState)),
        signPassword: DEFAULT_SIGN_PASSWORD,
      });
      await ePhone.app.ensurePin("1357");
      return `${answer.status}; ${await login(ePhone.app, "1357")}`;
    });
    await step(
      "E's SIM is swapped without E asking: the carrier reports it and J-LIS revokes at once",
      async () => {
        const outcome = await carrierReport("tsubame", "sim-swap", ePhone.sim.iccid, false);
        if (outcome.revoked.length !== 1) throw new Error(`revoked ${outcome.revoked.length} certificates`);
        return `SIM ${outcome.simStatus}; certificate ${outcome.revoked[0]} revoked (cessationOfOperation)`;
      },
    );
    await step("the bank refuses a login with E's old SIM", () => login(ePhone.app, "1357"), "refusal");

    await step("the month's ledger: who pays whom", async () => {
      const month = billingMonth(new Date());
      await closeMonth(db, ratesOf(authority.dataDir), month);
      const report = await ledgerReport(db, month);
      const net = (yen: number) => (yen > 0 ? `receives ¥${yen}` : yen < 0 ? `pays ¥${-yen}` : "even");
      return report.parties.map((p) => `${p.party} ${net(p.netYen)}`).join(", ");
    });

    await step("the audit log verifies (hash chain intact)", async () => {
      const findings = await authority.registry.verifyAudit();
      if (findings.length) throw new Error(`audit findings: ${findings.map((f) => f.kind).join(", ")}`);
      return `intact; status server was at ${statusUrl}`;
    });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
    if (!options.keep) rmSync(dataDir, { recursive: true, force: true });
  }
  return { ok: steps.every((s) => s.ok), steps, dataDir };
}
