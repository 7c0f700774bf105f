/**
 * A carrier's OTA gateway (DESIGN §4 flow 3): J-LIS submits scripts for a SIM, each an ordered list
 * of command APDUs already secured inside J-LIS's SCP11a channel, under an id of its choosing; the
 * phone of that SIM pulls them (SCP81 / GP SERAM style: the device opens the admin session, the
 * carrier never reaches into the SIM on its own; `onCommand` is the simulated push trigger), runs
 * each script's commands on the SIM in order, and posts the SIM's responses back. Those responses,
 * MAC'd under session keys only the SIM and J-LIS hold, are the SIM's proof of receipt, kept with
 * the script's status for J-LIS to read.
 *
 * Exactly once: a script submitted again under the same id is the same script (J-LIS retrying after
 * a lost answer); responses posted twice are taken once; the phone keeps the responses of the
 * scripts it ran and posts them again rather than running a script twice. The SIM stops a script at
 * the first command it refuses, and the responses up to it come back.
 *
 * The gateway sees every byte and keeps a record of them (`relayed`): what a carrier could store. It
 * holds no key that opens them (the security test in src/ra/relay-security.test.ts works from it).
 */
import { randomUUID } from "node:crypto";
import type { CardTransport } from "../card/card.js";
import { completedResponse } from "../card/status-words.js";
import { JpkiError } from "../errors.js";

/** One command and its response as the gateway carried them. */
export interface RelayedExchange {
  readonly iccid: string;
  readonly script: string;
  readonly index: number;
  readonly command: Buffer;
  response?: Buffer;
}

export type ScriptState = "queued" | "fetched" | "executed" | "expired";

export interface ScriptStatus {
  readonly id: string;
  readonly iccid: string;
  readonly state: ScriptState;
  readonly commands: number;
  /** The SIM's responses (the proof of receipt), once executed. */
  readonly responses?: readonly Buffer[];
}

interface Script {
  readonly id: string;
  readonly iccid: string;
  readonly commands: readonly Buffer[];
  readonly exchanges: RelayedExchange[];
  state: ScriptState;
  responses?: Buffer[];
  readonly done: Promise<Buffer[]>;
  resolve(responses: Buffer[]): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
}

export interface OtaRelayOptions {
  /** How long a script may wait for the phone before J-LIS's call fails (default 60 s). */
  readonly timeoutMs?: number;
  /** Scripts whose status is kept after they ended (default 100,000): older ones are forgotten. */
  readonly keptScripts?: number;
}

/** A transport that also sends a whole script at once (the gateway's transport for J-LIS's host code). */
export type ScriptTransport = Pick<CardTransport, "transmit"> & {
  transmitScript(commands: readonly Uint8Array[]): Promise<Buffer[]>;
};

/** What J-LIS needs of a carrier's OTA gateway, in this process (OtaRelay) or another (http-gateway.ts). */
export interface OtaGateway {
  readonly carrier: string;
  transportFor(iccid: string): ScriptTransport;
}

export class OtaRelay implements OtaGateway {
  /** Everything relayed, in order: the carrier's view. */
  readonly relayed: RelayedExchange[] = [];
  private readonly scripts = new Map<string, Script>();
  /** Scripts waiting for each SIM's phone, oldest first. */
  private readonly queues = new Map<string, Script[]>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly timeoutMs: number;
  private readonly keptScripts: number;

  constructor(
    readonly carrier: string,
    options: OtaRelayOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.keptScripts = options.keptScripts ?? 100_000;
  }

  /**
   * J-LIS's side: a script for SIM `iccid`; resolves with the SIM's responses once the phone posted
   * them (fewer than the commands when the SIM refused one). The same id again is the same script.
   */
  submitScript(iccid: string, commands: readonly Uint8Array[], id: string = randomUUID()): Promise<Buffer[]> {
    const existing = this.scripts.get(id);
    if (existing) {
      const same =
        existing.iccid === iccid &&
        existing.commands.length === commands.length &&
        existing.commands.every((c, i) => c.equals(commands[i]!));
      if (!same) throw new JpkiError("conflict", `script ${id} was submitted before with other commands`);
      return existing.done;
    }
    if (commands.length === 0) throw new JpkiError("bad-input", "a script has at least one command");
    let resolve!: (responses: Buffer[]) => void;
    let reject!: (error: Error) => void;
    const done = new Promise<Buffer[]>((ok, fail) => {
      resolve = ok;
      reject = fail;
    });
    const script: Script = {
      id,
      iccid,
      commands: commands.map((c) => Buffer.from(c)),
      exchanges: [],
      state: "queued",
      done,
      resolve,
      reject,
    };
    script.exchanges.push(
      ...script.commands.map((command, index) => ({ iccid, script: id, index, command })),
    );
    this.relayed.push(...script.exchanges);
    script.timer = setTimeout(() => {
      if (script.state === "executed") return;
      script.state = "expired";
      this.dequeue(script);
      reject(
        new JpkiError(
          "signer-unavailable",
          `the phone with SIM ${iccid} did not run script ${id} from ${this.carrier} within ${this.timeoutMs} ms`,
        ),
      );
    }, this.timeoutMs);
    this.remember(script);
    const queue = this.queues.get(iccid) ?? [];
    queue.push(script);
    this.queues.set(iccid, queue);
    for (const notify of this.listeners.get(iccid) ?? []) notify();
    return done;
  }

  /** A one-command script. */
  async submit(iccid: string, command: Uint8Array): Promise<Buffer> {
    const [response] = await this.submitScript(iccid, [command]);
    if (!response) throw new JpkiError("internal", `SIM ${iccid} answered nothing`);
    return response;
  }

  /** A transport for J-LIS's host code (JlisDomainSession) that goes through this gateway. */
  transportFor(iccid: string): ScriptTransport {
    return {
      transmit: (command) => this.submit(iccid, command),
      transmitScript: (commands) => this.submitScript(iccid, commands),
    };
  }

  /** The phone's side: the scripts waiting for its SIM, oldest first (each now `fetched`). */
  pull(iccid: string): { id: string; commands: Buffer[] }[] {
    return (this.queues.get(iccid) ?? []).map((script) => {
      if (script.state === "queued") script.state = "fetched";
      return { id: script.id, commands: [...script.commands] };
    });
  }

  /**
   * The phone's side: the SIM's responses to script `id`, in order (up to the first refusal). False
   * when the script is not waiting for them (posted already, expired, unknown).
   */
  respond(iccid: string, id: string, responses: readonly Uint8Array[]): boolean {
    const script = this.scripts.get(id);
    if (!script || script.iccid !== iccid || (script.state !== "queued" && script.state !== "fetched"))
      return false;
    if (responses.length === 0 || responses.length > script.commands.length)
      throw new JpkiError("bad-input", `script ${id} has ${script.commands.length} commands`);
    const last = responses[responses.length - 1]!;
    if (responses.length < script.commands.length && completedResponse(last))
      throw new JpkiError("bad-input", `script ${id}: responses stop before a refusal`);
    script.state = "executed";
    script.responses = responses.map((r) => Buffer.from(r));
    script.responses.forEach((response, i) => {
      script.exchanges[i]!.response = response;
    });
    clearTimeout(script.timer);
    this.dequeue(script);
    script.resolve(script.responses);
    return true;
  }

  /** A script's state and, once executed, the SIM's responses. */
  status(id: string): ScriptStatus | undefined {
    const script = this.scripts.get(id);
    if (!script) return undefined;
    return {
      id,
      iccid: script.iccid,
      state: script.state,
      commands: script.commands.length,
      ...(script.responses ? { responses: script.responses } : {}),
    };
  }

  /** The gateway stops: every script still waiting expires, and J-LIS's calls for them fail. */
  close(): void {
    for (const script of this.scripts.values())
      if (script.state === "queued" || script.state === "fetched") {
        clearTimeout(script.timer);
        script.state = "expired";
        this.dequeue(script);
        script.done.catch(() => undefined);
        script.reject(
          new JpkiError(
            "signer-unavailable",
            `the ${this.carrier} gateway stopped before script ${script.id} ran`,
          ),
        );
      }
  }

  /** Calls `notify` whenever a script for `iccid` arrives (the push trigger); returns the unsubscribe. */
  onCommand(iccid: string, notify: () => void): () => void {
    const set = this.listeners.get(iccid) ?? new Set();
    set.add(notify);
    this.listeners.set(iccid, set);
    return () => set.delete(notify);
  }

  private dequeue(script: Script): void {
    const queue = this.queues.get(script.iccid) ?? [];
    const index = queue.indexOf(script);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) this.queues.delete(script.iccid);
  }

  /** Keeps the script's status; forgets the oldest ended one beyond `keptScripts`. */
  private remember(script: Script): void {
    this.scripts.set(script.id, script);
    if (this.scripts.size <= this.keptScripts) return;
    for (const [id, old] of this.scripts)
      if (old.state === "executed" || old.state === "expired") {
        this.scripts.delete(id);
        return;
      }
  }
}

/**
 * Runs a script's commands on the SIM in order, stopping at the first one the SIM refuses; returns
 * the responses.
 */
export async function runScript(
  sim: Pick<CardTransport, "transmit">,
  commands: readonly Uint8Array[],
): Promise<Buffer[]> {
  const responses: Buffer[] = [];
  for (const command of commands) {
    const response = Buffer.from(await sim.transmit(command));
    responses.push(response);
    if (!completedResponse(response)) break;
  }
  return responses;
}

/** Responses of the scripts the phone ran, by script id, so a script is never run twice. */
export class ScriptJournal {
  private readonly ran = new Map<string, Buffer[]>();

  constructor(private readonly capacity = 1000) {}

  async run(
    sim: Pick<CardTransport, "transmit">,
    script: { id: string; commands: readonly Uint8Array[] },
  ): Promise<Buffer[]> {
    const earlier = this.ran.get(script.id);
    if (earlier) return earlier;
    const responses = await runScript(sim, script.commands);
    this.ran.set(script.id, responses);
    if (this.ran.size > this.capacity) this.ran.delete(this.ran.keys().next().value as string);
    return responses;
  }
}

/** What a phone's agent tells as it works (a benchmark times the hops with it). */
export interface PhoneAgentHooks {
  /** A script was taken from the gateway. */
  onPulled?(scriptId: string): void;
  /** The SIM ran it; its responses go back next. */
  onRan?(scriptId: string): void;
}

/**
 * The phone's agent: whenever the carrier has scripts for its SIM, pulls them, runs each once on
 * the SIM and posts the responses. Returns a stop function.
 */
export function relayForPhone(
  relay: OtaRelay,
  iccid: string,
  sim: Pick<CardTransport, "transmit">,
  hooks: PhoneAgentHooks = {},
): () => void {
  const journal = new ScriptJournal();
  let running = false;
  const drain = async () => {
    if (running) return;
    running = true;
    try {
      for (let batch = relay.pull(iccid); batch.length > 0; batch = relay.pull(iccid))
        for (const script of batch) {
          hooks.onPulled?.(script.id);
          const responses = await journal.run(sim, script);
          hooks.onRan?.(script.id);
          relay.respond(iccid, script.id, responses);
        }
    } finally {
      running = false;
    }
  };
  // A SIM that stops answering leaves the script waiting: J-LIS's call times out and is retried.
  const run = () => void drain().catch(() => undefined);
  const stop = relay.onCommand(iccid, run);
  run();
  return stop;
}
