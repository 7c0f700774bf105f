/**
 * `jpki-mobile bench ota`: certificate deliveries over the air per second, end to end, with many
 * emulated SIMs at once: J-LIS opens its SCP11a session to each SIM's security domain and writes
 * the certificate (INSTALL [for personalization] and the STORE DATA blocks as one script), through
 * the carrier's OTA gateway (src/mno/ota-relay.ts) to the phone's agent, which runs each script on
 * the SIM and posts the SIM's responses back: J-LIS checks every response's R-MAC, the proof of
 * receipt. Each delivery is one J-LIS session: the handshake's scripts and the delivery script.
 *
 * Beside it, in the same run, the same deliveries with J-LIS talking to the SIMs directly (no
 * gateway, no phone): the gateway's cost is the ratio of the two. Then, one delivery at a time (so
 * that no other delivery's work runs inside a hop's time), the latency of a delivery and the share
 * of its time in each hop: J-LIS (its session keys, wrapping, checking, the registry), the gateway
 * (a script waiting to be pulled), the phone and the SIM (running the script), the way back
 * (responses posted until J-LIS has them).
 *
 * Made ahead, outside the timing: the SIMs (each of a carrier: an MNO, a full MVNO, a light MVNO on
 * its host's SIMs), each with the JPKI applet, its key and its certificate from an online
 * application, as after a first delivery: every delivery measured writes that certificate again
 * (deliveries are idempotent).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CardTransport } from "../src/card/card.js";
import { InProcessTransport } from "../src/card/in-process-transport.js";
import { openMyNumberCard } from "../src/card/mynacard.js";
import { CardManagerSession } from "../src/card/uicc/host.js";
import { openUicc } from "../src/card/uicc/uicc.js";
import { cardManagerKeys } from "../src/mno/carriers.js";
import { OtaRelay, relayForPhone, type ScriptTransport } from "../src/mno/ota-relay.js";
import { createSim } from "../src/mno/sim-factory.js";
import { JpkiApp } from "../src/phone/app.js";
import { DEFAULT_SIGN_PASSWORD, issueMyNumberCard } from "../src/ra/card-issuance.js";
import { inProcessJlis } from "../src/ra/jlis-client.js";
import { openJlisSession } from "../src/ra/provisioning.js";
import { toBuffer } from "../src/registry/db.js";
import { type Authority, initAuthority } from "../src/server/authority.js";

export interface OtaBenchOptions {
  /** SIMs served at once (default 32). */
  sims?: number;
  /** Deliveries to each SIM, one after the other (default 20). */
  deliveries?: number;
  onProgress?: (label: string, done: number, total: number) => void;
}

export interface HopShares {
  /** J-LIS's own work: ECDH and session keys, wrapping commands, checking responses, the registry. */
  jlis: number;
  /** Scripts waiting in the gateway until the phone pulled them. */
  gateway: number;
  /** The phone's agent and the SIM running the scripts. */
  phoneAndSim: number;
  /** The responses' way back, posted until J-LIS has them. */
  back: number;
}

export interface OtaBenchResult {
  sims: number;
  deliveries: number;
  seconds: number;
  deliveriesPerSecond: number;
  /** Gateway scripts delivered per second (each delivery: the handshake's scripts and the delivery's). */
  scriptsPerSecond: number;
  /** APDUs carried per second. */
  apdusPerSecond: number;
  /** Scripts and APDUs in one delivery. */
  scriptsPerDelivery: number;
  apdusPerDelivery: number;
  /** The same deliveries with J-LIS talking to the SIMs directly, in the same run. */
  directDeliveriesPerSecond: number;
  /** deliveriesPerSecond / directDeliveriesPerSecond. */
  ratioToDirect: number;
  /** Share of a delivery's time in each hop (sums to 1), measured one delivery at a time. */
  shares: HopShares;
  /** One delivery alone, from J-LIS's first command to its last check: median and p90 in ms. */
  latency: { medianMs: number; p90Ms: number };
}

interface Timings {
  /** Each script from J-LIS's submission to J-LIS having the responses. */
  roundTripMs: number;
  gatewayMs: number;
  phoneAndSimMs: number;
  backMs: number;
  scripts: number;
  apdus: number;
}

/** When each script in flight was submitted, pulled and run. */
type Clock = Map<string, { submitted: number; ran?: number }>;

interface BenchSim {
  iccid: string;
  uicc: InProcessTransport;
  relay: OtaRelay;
  certificate: Buffer;
}

/** A SIM of `carrier` with the applet, its key and its certificate, through a real online application. */
async function provisionedSim(
  authority: Authority,
  carrier: string,
  relays: Map<string, OtaRelay>,
  i: number,
) {
  const card = await issueMyNumberCard(authority, {
    name: `試験 ${i}`,
    birth: "1990-01-01",
    sex: "female",
    address: "東京都千代田区1-1",
  });
  const sim = await createSim(authority, { carrier });
  const uicc = new InProcessTransport(openUicc(sim.simState));
  let relay = relays.get(sim.carrier);
  if (!relay) {
    relay = new OtaRelay(sim.carrier);
    relays.set(sim.carrier, relay);
  }
  const manager = await CardManagerSession.open(
    uicc,
    cardManagerKeys(authority.dataDir, sim.carrier, sim.iccid),
  );
  await manager.installJpki();
  await uicc.reset();
  const stop = relayForPhone(relay, sim.iccid, uicc);
  try {
    const app = new JpkiApp(
      { transport: uicc, iccid: sim.iccid, eid: sim.eid, carrier: sim.brand },
      inProcessJlis(authority, () => relay),
    );
    const answer = await app.applyOnline({
      card: new InProcessTransport(openMyNumberCard(card.cardState)),
      signPassword: DEFAULT_SIGN_PASSWORD,
    });
    if (answer.status !== "delivered")
      throw new Error(`SIM ${sim.iccid}: the application ended ${answer.status}`);
    const row = await authority.registry.db
      .selectFrom("certificates")
      .select("der")
      .where("serial", "=", answer.certificateSerial!)
      .executeTakeFirstOrThrow();
    return { iccid: sim.iccid, uicc, relay, certificate: toBuffer(row.der!) };
  } finally {
    stop();
  }
}

/**
 * The phone's agent, timing the hops: each script's wait in the gateway (from J-LIS's submission to
 * the pull) and the time the phone and the SIM spend running it.
 */
function timedAgent(sim: BenchSim, clock: Clock, timings: Timings): () => void {
  let pulled = 0;
  return relayForPhone(sim.relay, sim.iccid, sim.uicc, {
    onPulled(id) {
      pulled = performance.now();
      const times = clock.get(id);
      if (times) timings.gatewayMs += pulled - times.submitted;
    },
    onRan(id) {
      const ran = performance.now();
      timings.phoneAndSimMs += ran - pulled;
      const times = clock.get(id);
      if (times) times.ran = ran;
    },
  });
}

/** J-LIS's transport through the gateway, timing each script's round trip and its way back. */
function timedTransport(sim: BenchSim, clock: Clock, timings: Timings): ScriptTransport {
  const send = async (commands: readonly Uint8Array[]) => {
    const id = randomUUID();
    const times = { submitted: performance.now() } as { submitted: number; ran?: number };
    clock.set(id, times);
    const responses = await sim.relay.submitScript(sim.iccid, commands, id);
    const now = performance.now();
    timings.roundTripMs += now - times.submitted;
    timings.backMs += now - (times.ran ?? now);
    timings.scripts++;
    timings.apdus += commands.length;
    clock.delete(id);
    return responses;
  };
  return {
    transmit: async (command) => (await send([command]))[0]!,
    transmitScript: send,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;
const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;

/** `count` deliveries to each SIM, the SIMs at once (or one after the other); returns the seconds taken. */
async function deliverAll(
  authority: Authority,
  sims: readonly BenchSim[],
  count: number,
  transportOf: (sim: BenchSim) => Pick<CardTransport, "transmit">,
  onDelivery: (ms: number) => void,
  together = true,
): Promise<number> {
  const started = performance.now();
  const deliver = async (sim: BenchSim) => {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const session = await openJlisSession(authority, transportOf(sim), sim.iccid);
      await session.storeAuthenticationCertificates(sim.certificate, authority.certificates.auth);
      onDelivery(performance.now() - t0);
    }
  };
  if (together) await Promise.all(sims.map(deliver));
  else for (const sim of sims) await deliver(sim);
  return (performance.now() - started) / 1000;
}

const newTimings = (): Timings => ({
  roundTripMs: 0,
  gatewayMs: 0,
  phoneAndSimMs: 0,
  backMs: 0,
  scripts: 0,
  apdus: 0,
});

export async function runOtaBench(options: OtaBenchOptions = {}): Promise<OtaBenchResult> {
  const simCount = options.sims ?? 32;
  const count = options.deliveries ?? 20;
  const report = options.onProgress;
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-bench-ota-"));
  process.env["JPKI_CA_PASSPHRASE"] ??= "bench ota";
  const authority = await initAuthority({ dataDir: dir });
  try {
    const relays = new Map<string, OtaRelay>();
    const carriers = ["sakura", "tsubame", "hibari"]; // an MNO, a full MVNO, a light MVNO on sakura's SIMs
    const sims: BenchSim[] = [];
    for (let i = 0; i < simCount; i++) {
      sims.push(await provisionedSim(authority, carriers[i % carriers.length]!, relays, i));
      report?.("SIMs with the applet, key and certificate", i + 1, simCount);
    }

    // The peer: J-LIS talking to each SIM directly.
    const directSeconds = await deliverAll(
      authority,
      sims,
      count,
      (sim) => sim.uicc,
      () => undefined,
    );
    report?.("deliveries without the gateway", 1, 1);

    // Throughput: every SIM at once.
    const timings = newTimings();
    const clock: Clock = new Map();
    const stops = sims.map((sim) => timedAgent(sim, clock, timings));
    let done = 0;
    const seconds = await deliverAll(
      authority,
      sims,
      count,
      (sim) => timedTransport(sim, clock, timings),
      () => {
        if (++done % 50 === 0 || done === simCount * count)
          report?.("deliveries over the air", done, simCount * count);
      },
    );

    // Where one delivery's time goes, and its latency: one delivery at a time, so that no other
    // delivery's work runs inside the time measured for a hop.
    const alone = newTimings();
    const latencies: number[] = [];
    for (const stop of stops) stop();
    const aloneStops = sims.map((sim) => timedAgent(sim, clock, alone));
    await deliverAll(
      authority,
      sims,
      1,
      (sim) => timedTransport(sim, clock, alone),
      (ms) => latencies.push(ms),
      false,
    );
    for (const stop of aloneStops) stop();
    report?.("deliveries one at a time", sims.length, sims.length);
    // J-LIS's share: each delivery's time outside its scripts' round trips.
    const jlisMs = Math.max(0, latencies.reduce((a, b) => a + b, 0) - alone.roundTripMs);
    const sum = jlisMs + alone.gatewayMs + alone.phoneAndSimMs + alone.backMs;
    const deliveries = simCount * count;
    const deliveriesPerSecond = deliveries / seconds;
    const directDeliveriesPerSecond = deliveries / directSeconds;
    return {
      sims: simCount,
      deliveries,
      seconds: round(seconds, 3),
      deliveriesPerSecond: round(deliveriesPerSecond),
      scriptsPerSecond: round(timings.scripts / seconds),
      apdusPerSecond: round(timings.apdus / seconds),
      scriptsPerDelivery: round(timings.scripts / deliveries, 1),
      apdusPerDelivery: round(timings.apdus / deliveries, 1),
      directDeliveriesPerSecond: round(directDeliveriesPerSecond),
      ratioToDirect: round(deliveriesPerSecond / directDeliveriesPerSecond, 2),
      shares: {
        jlis: round(jlisMs / sum, 3),
        gateway: round(alone.gatewayMs / sum, 3),
        phoneAndSim: round(alone.phoneAndSimMs / sum, 3),
        back: round(alone.backMs / sum, 3),
      },
      latency: { medianMs: round(median(latencies), 1), p90Ms: round(percentile(latencies, 0.9), 1) },
    };
  } finally {
    await authority.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
