/**
 * `jpki-mobile bench card`: the emulated secure hardware. APDU round trips per second to an emulated
 * My Number card in process, over our vpcd link alone (a TCP peer in this process speaking vpcd's
 * protocol, framing messages as newer vpcd and as Debian's vpcd do), and through real PC/SC (pcscd →
 * vpcd → the card); then SIGN latency beside the same RSA-2048 signature in Node's crypto, measured in
 * the same run.
 *
 * The round trips are a cheap pair the JPKI-AP answers from memory (SELECT EF 0006, READ BINARY of its
 * 32-byte token label), so they measure the path to the card, not the card's work. The in-process rate
 * is the peer of the vpcd rates.
 */

import { constants, createHash, createPrivateKey, privateEncrypt } from "node:crypto";
import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { hex, responseApdu } from "../src/card/apdu.js";
import { makeCardStateFile, TEST_AUTH_PIN } from "../src/card/card-fixture.js";
import { InProcessTransport } from "../src/card/in-process-transport.js";
import { JPKI_EF } from "../src/card/jpki-applet.js";
import { type JpkiApplicationCard, openMyNumberCard } from "../src/card/mynacard.js";
import { connectPcscCard } from "../src/card/pcsc-transport.js";
import { TOKEN_LABEL } from "../src/card/state.js";
import { SW } from "../src/card/status-words.js";
import { serveCardOverVpcd } from "../src/card/vpcd.js";
import { JpkiCard } from "../src/phone/jpki-card.js";
import { sha256DigestInfo } from "../src/pki/cms.js";
import { pcscMissing, withVpcdSlot } from "../src/testing/pcsc.js";

export interface CardBenchOptions {
  /** Time spent on each round-trip measurement (default 2 s). */
  seconds?: number;
  /** Signatures by the card, and as many by Node's crypto (default 2000). */
  signatures?: number;
  /** Measure over vpcd: the link alone and through pcscd (default true). */
  vpcd?: boolean;
  /** `done` and `total` count milliseconds for the round trips, signatures for SIGN. */
  onProgress?: (phase: CardBenchPhase, done: number, total: number) => void;
}

export type CardBenchPhase = "in process" | `vpcd link, ${VpcdFraming}` | "pcscd" | "sign";

export interface RoundTripRate {
  roundTrips: number;
  seconds: number;
  roundTripsPerSecond: number;
}

/** A figure that could not be measured here says why instead. */
export type Availability<T> = ({ available: true } & T) | { available: false; reason: string };

export interface Latency {
  medianMicroseconds: number;
  p99Microseconds: number;
}

export interface CardBenchResult {
  /** The APDUs the round trips alternate, as hex. */
  roundTripApdus: string[];
  inProcess: RoundTripRate;
  /** Our vpcd link with a vpcd peer in this process, without pcscd, for each framing. */
  vpcdLink: Availability<Record<"oneWrite" | "splitWrites", RoundTripRate>>;
  /** A PC/SC client through pcscd and vsmartcard's vpcd to the card. */
  pcsc: Availability<RoundTripRate & { reader: string }>;
  sign: {
    signatures: number;
    /** `80 2A 00 80` through the in-process transport: APDU handling and the RSA signature. */
    card: Latency;
    /** Node's privateEncrypt with the same key over the same DigestInfo: the RSA signature alone. */
    node: Latency;
    /** card / node, for the median and for the p99. */
    ratio: { median: number; p99: number };
  };
}

type Transmit = (command: Buffer) => Promise<Buffer>;

const SELECT_TOKEN_INFO = hex(`00 A4 02 0C 02 ${JPKI_EF.tokenInfo}`);
const READ_TOKEN_LABEL = hex("00 B0 00 00 20");

const OK = responseApdu(SW.OK);
/** EF 0006 starts with the token label, space padded to 32 bytes. */
const TOKEN_LABEL_ANSWER = responseApdu(
  SW.OK,
  Buffer.from(TOKEN_LABEL.myNumberCard.padEnd(32, " "), "latin1"),
);

/** How often long loops report progress. */
const PROGRESS_EVERY_MS = 100;

async function expectAnswer(transmit: Transmit, command: Buffer, expected: Buffer): Promise<Buffer> {
  const answer = await transmit(command);
  if (!answer.equals(expected))
    throw new Error(
      `the card answered ${answer.toString("hex").toUpperCase()} to ${command.toString("hex").toUpperCase()}`,
    );
  return answer;
}

/** Alternates SELECT EF 0006 and READ BINARY for `seconds`, checking every answer. */
async function measureRoundTrips(
  transmit: Transmit,
  seconds: number,
  report: (doneMs: number, totalMs: number) => void,
): Promise<RoundTripRate> {
  await JpkiCard.open({ transmit });
  const budgetMs = seconds * 1000;
  const started = performance.now();
  let now = started;
  let reported = started;
  let roundTrips = 0;
  while (now - started < budgetMs) {
    await expectAnswer(transmit, SELECT_TOKEN_INFO, OK);
    await expectAnswer(transmit, READ_TOKEN_LABEL, TOKEN_LABEL_ANSWER);
    roundTrips += 2;
    now = performance.now();
    if (now - reported >= PROGRESS_EVERY_MS) {
      report(Math.round(Math.min(now - started, budgetMs)), Math.round(budgetMs));
      reported = now;
    }
  }
  report(Math.round(budgetMs), Math.round(budgetMs));
  const elapsed = (now - started) / 1000;
  return { roundTrips, seconds: elapsed, roundTripsPerSecond: roundTrips / elapsed };
}

/**
 * How a vpcd frames its messages: one write of length and payload with Nagle's algorithm off (newer
 * vsmartcard), or Debian's vpcd (vsmartcard 3.3): the 2-byte length and the payload in two send()
 * calls on a socket with Nagle's algorithm on.
 */
export type VpcdFraming = "one write" | "split writes";

/**
 * vpcd's side of the protocol (JPKI-FACTS §5), as much as the benchmark needs: on the card's
 * connection, sends a framed message (2-byte big-endian length, payload) and waits for the framed
 * answer.
 */
class VpcdPeer {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly framing: VpcdFraming,
  ) {
    socket.setNoDelay(framing === "one write");
    socket.on("data", (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("the card closed the vpcd connection")));
  }

  send(payload: Buffer): void {
    const length = Buffer.allocUnsafe(2);
    length.writeUInt16BE(payload.length, 0);
    if (this.framing === "one write") this.socket.write(Buffer.concat([length, payload]));
    else {
      this.socket.write(length);
      this.socket.write(payload);
    }
  }

  exchange(payload: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.send(payload);
    });
  }

  private deliver(): void {
    if (!this.waiting || this.buffered.length < 2) return;
    const length = this.buffered.readUInt16BE(0);
    if (this.buffered.length < 2 + length) return;
    const frame = this.buffered.subarray(2, 2 + length);
    this.buffered = this.buffered.subarray(2 + length);
    const { resolve } = this.waiting;
    this.waiting = undefined;
    resolve(frame);
  }

  private fail(error: Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(error);
  }
}

/** Our vpcd link alone: the card served with serveCardOverVpcd to a vpcd peer in this process. */
async function measureVpcdLink(
  card: JpkiApplicationCard,
  framing: VpcdFraming,
  seconds: number,
  report: (doneMs: number, totalMs: number) => void,
): Promise<RoundTripRate> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const connection = once(server, "connection") as Promise<[Socket]>;
  const link = serveCardOverVpcd(card, { port });
  try {
    const [socket] = await connection;
    try {
      const peer = new VpcdPeer(socket, framing);
      // What vpcd does when a card connects: ask the ATR, then power the card on (no answer).
      const atr = await peer.exchange(Buffer.from([0x04]));
      if (!atr.equals(card.atr)) throw new Error(`the vpcd link answered ATR ${atr.toString("hex")}`);
      peer.send(Buffer.from([0x01]));
      return await measureRoundTrips((command) => peer.exchange(command), seconds, report);
    } finally {
      socket.destroy();
    }
  } finally {
    await link.close();
    server.close();
  }
}

/**
 * Through pcscd and vsmartcard's vpcd, holding the vpcd reader lock the PC/SC tests take, so neither
 * sees the other's card. Unavailable (with the reason) when pcscd, vpcd or the PC/SC addon is missing
 * or pcscd cannot be started; a wrong answer once connected is an error, not unavailability.
 */
async function measurePcsc(
  card: JpkiApplicationCard,
  seconds: number,
  report: (doneMs: number, totalMs: number) => void,
): Promise<CardBenchResult["pcsc"]> {
  const missing = await pcscMissing();
  if (missing) return { available: false, reason: missing };
  // Shown while waiting for the reader, which PC/SC tests may hold.
  report(0, Math.round(seconds * 1000));
  let connected = false;
  try {
    return await withVpcdSlot(async (slot) => {
      const link = serveCardOverVpcd(card, { port: slot.port });
      let transport: Awaited<ReturnType<typeof connectPcscCard>> | undefined;
      try {
        await link.waitUntilActive();
        transport = await connectPcscCard({ reader: slot.readerName });
        connected = true;
        const t = transport;
        const rate = await measureRoundTrips((command) => t.transmit(command), seconds, report);
        return { available: true, reader: slot.readerName, ...rate };
      } finally {
        // The card leaves the reader first: SCardDisconnect blocks this thread, which also serves the
        // card, and pcscd may be waiting on the card (a presence poll) before it answers.
        await link.close();
        await transport?.close();
      }
    });
  } catch (error) {
    if (connected) throw error;
    return { available: false, reason: (error as Error).message };
  }
}

/** Median and 99th percentile (nearest rank) of durations in milliseconds, as microseconds. */
export function latency(samplesMs: readonly number[]): Latency {
  if (samplesMs.length === 0) throw new RangeError("no samples");
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  const median = Number.isInteger(middle)
    ? (sorted[middle - 1]! + sorted[middle]!) / 2
    : sorted[Math.floor(middle)]!;
  const p99 = sorted[Math.ceil(sorted.length * 0.99) - 1]!;
  return { medianMicroseconds: median * 1000, p99Microseconds: p99 * 1000 };
}

/**
 * SIGN with the user-authentication key after VERIFY of its PIN, and Node's privateEncrypt (PKCS#1
 * v1.5 type 01 padding, the primitive the card applies to the host's DigestInfo) with the same key,
 * alternately, so both see the same machine. Every card signature must equal Node's.
 */
async function measureSign(
  card: JpkiApplicationCard,
  keyPkcs8: Buffer,
  signatures: number,
  report: (done: number, total: number) => void,
): Promise<CardBenchResult["sign"]> {
  const transport = new InProcessTransport(card);
  try {
    const transmit: Transmit = (command) => transport.transmit(command);
    const digestInfo = sha256DigestInfo(createHash("sha256").update("jpki-mobile bench card").digest());
    const key = createPrivateKey({ key: keyPkcs8, format: "der", type: "pkcs8" });
    const nodeSign = () => privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, digestInfo);
    const expected = responseApdu(SW.OK, nodeSign());
    // The phone app's path once: select the JPKI-AP, VERIFY the PIN, select the key EF and SIGN. The
    // key EF stays current, so the measured loop below is the one APDU `80 2A 00 80 Lc DigestInfo 00`.
    const jpki = await JpkiCard.open(transport);
    await jpki.verify("auth", TEST_AUTH_PIN);
    if (!(await jpki.signDigestInfo("auth", digestInfo)).equals(expected.subarray(0, -2)))
      throw new Error("the card's signature differs from Node's");
    const sign = Buffer.concat([hex("80 2A 00 80"), Buffer.from([digestInfo.length]), digestInfo, hex("00")]);
    // The first signatures build the card's key object and warm both paths up.
    for (let i = 0; i < 10; i++) {
      await expectAnswer(transmit, sign, expected);
      nodeSign();
    }

    const cardMs: number[] = [];
    const nodeMs: number[] = [];
    const timeCard = async () => {
      const t0 = performance.now();
      const answer = await transmit(sign);
      cardMs.push(performance.now() - t0);
      if (!answer.equals(expected)) throw new Error("the card's signature differs from Node's");
    };
    const timeNode = () => {
      const t0 = performance.now();
      nodeSign();
      nodeMs.push(performance.now() - t0);
    };
    let reported = performance.now();
    for (let i = 0; i < signatures; i++) {
      // Alternate which goes first, so neither always runs right after the other.
      if (i % 2 === 0) {
        await timeCard();
        timeNode();
      } else {
        timeNode();
        await timeCard();
      }
      if (performance.now() - reported >= PROGRESS_EVERY_MS) {
        report(i + 1, signatures);
        reported = performance.now();
      }
    }
    report(signatures, signatures);
    const cardLatency = latency(cardMs);
    const nodeLatency = latency(nodeMs);
    return {
      signatures,
      card: cardLatency,
      node: nodeLatency,
      ratio: {
        median: cardLatency.medianMicroseconds / nodeLatency.medianMicroseconds,
        p99: cardLatency.p99Microseconds / nodeLatency.p99Microseconds,
      },
    };
  } finally {
    await transport.close();
  }
}

export async function benchCard(options: CardBenchOptions = {}): Promise<CardBenchResult> {
  const seconds = options.seconds ?? 2;
  const signatures = options.signatures ?? 2000;
  const reporter = (phase: CardBenchPhase) => (done: number, total: number) =>
    options.onProgress?.(phase, done, total);
  const fixture = await makeCardStateFile();
  try {
    const card = openMyNumberCard(fixture.statePath);
    const transport = new InProcessTransport(card);
    let inProcess: RoundTripRate;
    try {
      inProcess = await measureRoundTrips(
        (command) => transport.transmit(command),
        seconds,
        reporter("in process"),
      );
    } finally {
      await transport.close();
    }
    const link = (framing: VpcdFraming) =>
      measureVpcdLink(card, framing, seconds, reporter(`vpcd link, ${framing}`));
    const notMeasured = { available: false, reason: "not measured (vpcd turned off)" } as const;
    const vpcdLink: CardBenchResult["vpcdLink"] =
      options.vpcd === false
        ? notMeasured
        : { available: true, oneWrite: await link("one write"), splitWrites: await link("split writes") };
    const pcsc = options.vpcd === false ? notMeasured : await measurePcsc(card, seconds, reporter("pcscd"));
    const keyPkcs8 = Buffer.from(fixture.state.keys[JPKI_EF.authKey] ?? "", "base64");
    const sign = await measureSign(card, keyPkcs8, signatures, reporter("sign"));
    return {
      roundTripApdus: [SELECT_TOKEN_INFO, READ_TOKEN_LABEL].map((apdu) => apdu.toString("hex").toUpperCase()),
      inProcess,
      vpcdLink,
      pcsc,
      sign,
    };
  } finally {
    fixture.cleanup();
  }
}
