/**
 * `jpki-mobile bench issue`: complete online applications per second on J-LIS's side, through the
 * production path (the RA's desk, src/ra/ra.ts, with the online channel, as the HTTP API uses it):
 * applications submitted by many phones at once are examined in batches. CMS verification, the
 * signing certificate's chain and status, the content, the SIM's inventory record and attestation
 * (security domain certificate and signature), the nonce, the policy (double issuance), the
 * application's record, the registry's crash-safe issuance, the CA's signature, and the audit
 * entries of every step. On embedded SQLite, beside `openssl speed rsa2048` in the same run.
 *
 * Made ahead of the timed part, as the phones and cards would have: the citizens and their cards,
 * the SIMs (registered with their attestation certificates), the nonces, and each application:
 * its key pair (from a small pool: a SIM generates its own, which costs the SIM, not J-LIS), the
 * attestation signed with the SIM's security domain key exactly as the SIM signs it, and the card's
 * signature (the card's key, from its state file). Several citizens apply several times each, so
 * the one-per-medium policy supersedes on most issuances, as on a re-issuance.
 *
 * Also one complete application seen from the phone, with OTA delivery (nonce, key generation on
 * the SIM over the relay, card signature, examination and issuance, delivery): the median of 20,
 * with the time the SIM spends generating its RSA key taken out.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InProcessTransport } from "../src/card/in-process-transport.js";
import { openMyNumberCard } from "../src/card/mynacard.js";
import { loadCardState } from "../src/card/state.js";
import { signKeyAttestation, spkiSha256 } from "../src/card/uicc/attestation.js";
import { CardManagerSession } from "../src/card/uicc/host.js";
import { loadUiccState } from "../src/card/uicc/state.js";
import { openUicc } from "../src/card/uicc/uicc.js";
import { cardManagerKeys } from "../src/mno/carriers.js";
import { OtaRelay, relayForPhone } from "../src/mno/ota-relay.js";
import { type CreatedSim, createSim } from "../src/mno/sim-factory.js";
import { JpkiApp } from "../src/phone/app.js";
import { buildSignedData, softwareDigestInfoSigner } from "../src/pki/cms.js";
import { encodeApplicationContent } from "../src/ra/application-content.js";
import { DEFAULT_SIGN_PASSWORD, issueMyNumberCard } from "../src/ra/card-issuance.js";
import { AUTH_KEY_REFERENCE } from "../src/ra/evidence.js";
import { inProcessJlis } from "../src/ra/jlis-client.js";
import { issueNonce } from "../src/ra/nonces.js";
import { OnlineChannel } from "../src/ra/online.js";
import { ApplicationDesk } from "../src/ra/ra.js";
import { type Authority, initAuthority } from "../src/server/authority.js";
import { measureCores, opensslRsa2048SignsPerSecond } from "./baseline.js";

export interface IssueBenchOptions {
  /** Applications in the timed part (default 1000). */
  applications?: number;
  /** Citizens applying (default 50); each applies applications/citizens times. */
  citizens?: number;
  /** Applications submitted at once, as many phones would (default 128); the RA's desk batches them. */
  concurrency?: number;
  /** Complete applications with OTA delivery timed one by one (default 20). */
  latencySamples?: number;
  opensslSeconds?: number;
  onProgress?: (label: string, done: number, total: number) => void;
  /** Wraps the timed part (a profiler can start and stop around it). */
  aroundTimed?: <T>(work: () => Promise<T>) => Promise<T>;
}

export interface IssueBenchResult {
  applications: number;
  seconds: number;
  applicationsPerSecond: number;
  /** Cores this process kept busy during the timed part. */
  cores: number;
  /** OpenSSL's single-core RSA-2048 signing rate: the mean of the measurements before and after. */
  opensslRsa2048SignsPerSecond: number;
  /** applicationsPerSecond / opensslRsa2048SignsPerSecond: each application costs one CA signature. */
  ratioToOpenssl: number;
  goalApplicationsPerSecond: number;
  /** One complete online application with OTA delivery, the SIM's key generation taken out. */
  latency: {
    samples: number;
    medianMs: number;
    p90Ms: number;
    keyGenerationMedianMs: number;
    goalMs: number;
  };
}

export const GOAL_APPLICATIONS_PER_SECOND = 1000;
export const GOAL_LATENCY_MS = 200;

interface Citizen {
  signKey: KeyObject;
  signCertificate: Buffer;
}

/** A citizen's card signing key and certificate, read from the card state file `citizen add` wrote. */
function cardSigner(cardState: string): Citizen {
  const state = loadCardState(cardState);
  return {
    signKey: createPrivateKey({
      key: Buffer.from(state.keys["001A"]!, "base64"),
      format: "der",
      type: "pkcs8",
    }),
    signCertificate: Buffer.from(state.files["0001"]!, "base64"),
  };
}

/** An application as the phone would submit it: key, SIM attestation over the nonce, card signature. */
async function prepareApplication(
  authority: Authority,
  citizen: Citizen,
  sim: CreatedSim,
  sdKey: KeyObject,
  subjectKey: Buffer,
): Promise<Buffer> {
  const { nonce } = await issueNonce(authority.registry.db);
  const instanceId = randomBytes(16);
  const attestation = signKeyAttestation(
    {
      publicKeySha256: spkiSha256(subjectKey),
      iccid: sim.iccid,
      eid: sim.eid,
      instanceAid: Buffer.from("D392F000260100000001", "hex"),
      instanceId,
      keyReference: AUTH_KEY_REFERENCE,
      nonce,
    },
    sdKey,
  );
  const content = encodeApplicationContent({
    iccid: sim.iccid,
    eid: sim.eid,
    carrier: sim.brand,
    appletInstance: instanceId.toString("hex"),
    keyGeneration: "on-card",
    publicKey: subjectKey,
    attestation,
    nonce,
    requested: "phone-auth",
    time: new Date(),
  });
  return buildSignedData({
    content,
    signerCertificate: citizen.signCertificate,
    signingTime: new Date(),
    sign: softwareDigestInfoSigner(citizen.signKey),
  });
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

/** One complete application from the phone, with OTA delivery; the SIM's key generation timed apart. */
async function completeApplicationLatency(
  authority: Authority,
  samples: number,
  report: IssueBenchOptions["onProgress"],
) {
  const totals: number[] = [];
  const keyGenerations: number[] = [];
  for (let i = 0; i < samples; i++) {
    const card = await issueMyNumberCard(authority, {
      name: `試験 ${i}`,
      birth: "1980-01-01",
      sex: "female",
      address: "東京都千代田区1-1",
    });
    const sim = await createSim(authority, { carrier: "sakura" });
    const uicc = new InProcessTransport(openUicc(sim.simState));
    const relay = new OtaRelay(sim.carrier);
    const manager = await CardManagerSession.open(
      uicc,
      cardManagerKeys(authority.dataDir, sim.carrier, sim.iccid),
    );
    await manager.installJpki();
    await uicc.reset();
    // The SIM as the phone reaches it, with the time spent in GENERATE ASYMMETRIC KEY PAIR (INS 46) measured.
    let keyGeneration = 0;
    const timed = {
      atr: () => uicc.atr(),
      reset: () => uicc.reset(),
      close: () => uicc.close(),
      async transmit(command: Uint8Array) {
        const started = performance.now();
        const response = await uicc.transmit(command);
        if (command[1] === 0x46) keyGeneration += performance.now() - started;
        return response;
      },
    };
    const stopRelay = relayForPhone(relay, sim.iccid, timed);
    try {
      const app = new JpkiApp(
        { transport: timed, iccid: sim.iccid, eid: sim.eid, carrier: sim.brand },
        inProcessJlis(authority, () => relay),
      );
      const cardTransport = new InProcessTransport(openMyNumberCard(card.cardState));
      const started = performance.now();
      const answer = await app.applyOnline({ card: cardTransport, signPassword: DEFAULT_SIGN_PASSWORD });
      const total = performance.now() - started;
      if (answer.status !== "delivered")
        throw new Error(`application ${answer.applicationId} ended ${answer.status}`);
      totals.push(total - keyGeneration);
      keyGenerations.push(keyGeneration);
    } finally {
      stopRelay();
    }
    report?.("complete applications with OTA delivery", i + 1, samples);
  }
  return {
    samples,
    medianMs: Math.round(median(totals) * 10) / 10,
    p90Ms: Math.round(percentile(totals, 0.9) * 10) / 10,
    keyGenerationMedianMs: Math.round(median(keyGenerations) * 10) / 10,
    goalMs: GOAL_LATENCY_MS,
  };
}

export async function runIssueBench(options: IssueBenchOptions = {}): Promise<IssueBenchResult> {
  const count = options.applications ?? 1000;
  const citizenCount = Math.min(options.citizens ?? 50, count);
  const report = options.onProgress;
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-bench-issue-"));
  process.env["JPKI_CA_PASSPHRASE"] ??= "bench issue";
  const authority = await initAuthority({ dataDir: dir });
  try {
    const citizens: Citizen[] = [];
    for (let i = 0; i < citizenCount; i++) {
      const card = await issueMyNumberCard(authority, {
        name: `試験 ${i}`,
        birth: "1985-06-15",
        sex: "male",
        address: "東京都千代田区1-1",
      });
      citizens.push(cardSigner(card.cardState));
      report?.("citizens and cards", i + 1, citizenCount);
    }
    const subjectKeys = Array.from({ length: 8 }, () =>
      generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" }),
    );
    const applications: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const sim = await createSim(authority, { carrier: i % 3 === 0 ? "hibari" : "sakura" });
      const sdKey = createPrivateKey({
        key: Buffer.from(loadUiccState(sim.simState).maker.sdKey, "base64"),
        format: "der",
        type: "pkcs8",
      });
      applications.push(
        await prepareApplication(
          authority,
          citizens[i % citizenCount]!,
          sim,
          sdKey,
          subjectKeys[i % subjectKeys.length]!,
        ),
      );
      if (i % 50 === 49 || i === count - 1) report?.("SIMs and signed applications", i + 1, count);
    }

    const before = opensslRsa2048SignsPerSecond(options.opensslSeconds ?? 3);
    const desk = new ApplicationDesk(authority, new OnlineChannel());
    let done = 0;
    const around = options.aroundTimed ?? (<T>(work: () => Promise<T>) => work());
    const measured = await around(() =>
      measureCores(() =>
        pool(applications, options.concurrency ?? 128, async (signedData) => {
          const { application } = await desk.submit({ signedData });
          if (application.status !== "issued")
            throw new Error(`application ${application.id} is ${application.status}`);
          done++;
          if (done % 100 === 0 || done === count) report?.("applications examined and issued", done, count);
        }),
      ),
    );
    const after = opensslRsa2048SignsPerSecond(options.opensslSeconds ?? 3);
    const openssl = (before + after) / 2;
    const applicationsPerSecond = count / measured.seconds;
    const latency = await completeApplicationLatency(authority, options.latencySamples ?? 20, report);
    return {
      applications: count,
      seconds: Math.round(measured.seconds * 1000) / 1000,
      applicationsPerSecond: Math.round(applicationsPerSecond),
      cores: Math.round(measured.processCores * 100) / 100,
      opensslRsa2048SignsPerSecond: Math.round(openssl),
      ratioToOpenssl: Math.round((applicationsPerSecond / openssl) * 100) / 100,
      goalApplicationsPerSecond: GOAL_APPLICATIONS_PER_SECOND,
      latency,
    };
  } finally {
    await authority.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
