/**
 * A carrier's OTA relay, in its first form: J-LIS hands it command APDUs for a SIM, already secured
 * inside J-LIS's SCP11a channel, and the phone of that SIM pulls them (SCP81 / GP SERAM style: the
 * device opens the admin session; the carrier never reaches into the SIM on its own), runs them on
 * the SIM and posts the SIM's responses back, which J-LIS reads. Each response, MAC'd under session
 * keys only the SIM and J-LIS hold, is the proof that the SIM received the command.
 *
 * The relay sees every byte and keeps a record of them (`relayed`): what a carrier could store. It
 * holds no key that opens them (the security test in src/ra/provisioning.test.ts works from it).
 * Commands are numbered per SIM; a response posted twice (a retried upload) is accepted once.
 */
import type { CardTransport } from "../card/card.js";
import { JpkiError } from "../errors.js";

export interface RelayedExchange {
  readonly iccid: string;
  readonly id: number;
  readonly command: Buffer;
  response?: Buffer;
}

interface Waiting {
  readonly exchange: RelayedExchange;
  resolve(response: Buffer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export interface OtaRelayOptions {
  /** How long a command may wait for the phone before J-LIS's call fails (default 60 s). */
  readonly timeoutMs?: number;
}

export class OtaRelay {
  /** Everything relayed, in order: the carrier's view. */
  readonly relayed: RelayedExchange[] = [];
  private readonly waiting = new Map<string, Waiting[]>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private nextId = 1;
  private readonly timeoutMs: number;

  constructor(
    readonly carrier: string,
    options: OtaRelayOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  /** J-LIS's side: one command for the SIM; resolves with the SIM's response once the phone posted it. */
  submit(iccid: string, command: Uint8Array): Promise<Buffer> {
    const exchange: RelayedExchange = { iccid, id: this.nextId++, command: Buffer.from(command) };
    this.relayed.push(exchange);
    return new Promise((resolve, reject) => {
      const entry: Waiting = {
        exchange,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.remove(iccid, exchange.id);
          reject(
            new JpkiError(
              "signer-unavailable",
              `the phone with SIM ${iccid} did not fetch command ${exchange.id} from ${this.carrier} within ${this.timeoutMs} ms`,
            ),
          );
        }, this.timeoutMs),
      };
      const queue = this.waiting.get(iccid) ?? [];
      queue.push(entry);
      this.waiting.set(iccid, queue);
      for (const notify of this.listeners.get(iccid) ?? []) notify();
    });
  }

  /** A transport for J-LIS's host code (JlisDomainSession) that goes through this relay. */
  transportFor(iccid: string): Pick<CardTransport, "transmit"> {
    return { transmit: (command) => this.submit(iccid, command) };
  }

  /** The phone's side: the commands waiting for its SIM, oldest first. */
  pull(iccid: string): { id: number; command: Buffer }[] {
    return (this.waiting.get(iccid) ?? []).map((w) => ({ id: w.exchange.id, command: w.exchange.command }));
  }

  /** The phone's side: the SIM's response to command `id`; false when it was posted already. */
  respond(iccid: string, id: number, response: Uint8Array): boolean {
    const entry = this.remove(iccid, id);
    if (!entry) return false;
    entry.exchange.response = Buffer.from(response);
    entry.resolve(entry.exchange.response);
    return true;
  }

  /** Calls `notify` whenever a command for `iccid` arrives (the push trigger); returns the unsubscribe. */
  onCommand(iccid: string, notify: () => void): () => void {
    const set = this.listeners.get(iccid) ?? new Set();
    set.add(notify);
    this.listeners.set(iccid, set);
    return () => set.delete(notify);
  }

  private remove(iccid: string, id: number): Waiting | undefined {
    const queue = this.waiting.get(iccid) ?? [];
    const index = queue.findIndex((w) => w.exchange.id === id);
    if (index < 0) return undefined;
    const [entry] = queue.splice(index, 1);
    clearTimeout(entry!.timer);
    return entry;
  }
}

/**
 * The phone's relay agent: whenever the carrier has commands for its SIM, pulls them, runs each on
 * the SIM in order and posts the response. Returns a stop function.
 */
export function relayForPhone(
  relay: OtaRelay,
  iccid: string,
  sim: Pick<CardTransport, "transmit">,
): () => void {
  let running = false;
  const drain = async () => {
    if (running) return;
    running = true;
    try {
      for (let batch = relay.pull(iccid); batch.length > 0; batch = relay.pull(iccid))
        for (const { id, command } of batch) relay.respond(iccid, id, await sim.transmit(command));
    } finally {
      running = false;
    }
  };
  // A SIM that stops answering leaves the command waiting: J-LIS's call times out and is retried.
  const run = () => void drain().catch(() => undefined);
  const stop = relay.onCommand(iccid, run);
  run();
  return stop;
}
