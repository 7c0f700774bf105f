/**
 * CardTransport over PC/SC (the `smartcard` N-API package, talking to pcscd through libpcsclite): the
 * host side used with a real reader, or with our emulated cards plugged into vpcd (src/card/vpcd.ts).
 *
 * `smartcard` is loaded on first use, so programs that never touch PC/SC run where libpcsclite is
 * missing.
 */
import type { CardInterface, ContextInterface } from "smartcard";
import { JpkiError } from "../errors.js";
import type { CardTransport } from "./card.js";

type Pcsc = typeof import("smartcard");

let loaded: Promise<Pcsc> | undefined;

/** The `smartcard` module; a JpkiError saying what to install when the native addon cannot load. */
export function loadPcsc(): Promise<Pcsc> {
  loaded ??= import("smartcard").catch((cause: unknown) => {
    loaded = undefined;
    throw new JpkiError(
      "internal",
      `PC/SC is not available (the smartcard addon needs libpcsclite: apt-get install pcscd libpcsclite1): ${(cause as Error).message}`,
      { cause },
    );
  });
  return loaded;
}

export type PcscProtocol = "T=0" | "T=1";

export interface PcscConnectOptions {
  /**
   * Which reader: an exact name, or a substring / pattern of it (e.g. "Virtual PCD 00 00"). Default:
   * the first reader with a card.
   */
  readonly reader?: string | RegExp;
  /** How long to wait for a reader and a card in it (default 10 s). */
  readonly timeoutMs?: number;
  /** Protocols offered at connect (default both; the card's ATR decides). */
  readonly protocols?: readonly PcscProtocol[];
  /** SCARD_SHARE_EXCLUSIVE instead of SCARD_SHARE_SHARED. */
  readonly exclusive?: boolean;
}

/** Names of the readers pcscd knows now (empty when none). */
export async function listPcscReaders(): Promise<string[]> {
  const pcsc = await loadPcsc();
  const context = newContext(pcsc);
  try {
    return context.listReaders().map((reader) => reader.name);
  } finally {
    context.close();
  }
}

/**
 * Waits until the reader reports no card (`empty`: a card just taken out may still show as present
 * for a moment) or a card (`present`: pcscd notices a card at its next presence poll, after the
 * reader driver already talks to it); returns whether it did within the time.
 */
export async function waitForReaderState(
  name: string,
  state: "empty" | "present",
  timeoutMs = 5000,
): Promise<boolean> {
  const pcsc = await loadPcsc();
  const flag = state === "empty" ? pcsc.SCARD_STATE_EMPTY : pcsc.SCARD_STATE_PRESENT;
  const context = newContext(pcsc);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reader = context.listReaders().find((r) => r.name === name);
      if (reader && (reader.state & flag) !== 0) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    context.close();
  }
}

function newContext(pcsc: Pcsc): ContextInterface {
  try {
    return new pcsc.Context();
  } catch (cause) {
    throw new JpkiError(
      "internal",
      `cannot reach pcscd (is it running? \`pcscd\` as root starts it): ${(cause as Error).message}`,
      { cause },
    );
  }
}

function matches(name: string, wanted: string | RegExp | undefined): boolean {
  if (wanted === undefined) return true;
  return typeof wanted === "string" ? name === wanted || name.includes(wanted) : wanted.test(name);
}

function describeReader(wanted: string | RegExp | undefined): string {
  return wanted === undefined ? "any reader" : `reader ${String(wanted)}`;
}

/**
 * Waits (up to `timeoutMs`) for a card in a matching reader, connects to it and returns a transport.
 * Readers that appear while waiting are picked up too.
 */
export async function connectPcscCard(options: PcscConnectOptions = {}): Promise<PcscTransport> {
  const pcsc = await loadPcsc();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const context = newContext(pcsc);
  try {
    for (;;) {
      const readers = context.listReaders().filter((reader) => matches(reader.name, options.reader));
      const ready = readers.find(
        (r) => (r.state & pcsc.SCARD_STATE_PRESENT) !== 0 && (r.state & pcsc.SCARD_STATE_MUTE) === 0,
      );
      if (ready) {
        const protocols = options.protocols ?? ["T=0", "T=1"];
        const mask = protocols.reduce(
          (m, p) => m | (p === "T=0" ? pcsc.SCARD_PROTOCOL_T0 : pcsc.SCARD_PROTOCOL_T1),
          0,
        );
        const share = options.exclusive ? pcsc.SCARD_SHARE_EXCLUSIVE : pcsc.SCARD_SHARE_SHARED;
        let card: CardInterface;
        try {
          card = await ready.connect(share, mask);
        } catch (cause) {
          // The card may have gone between the listing and the connect: look again until the deadline.
          if (Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 100));
            continue;
          }
          throw new JpkiError(
            "not-found",
            `cannot connect to the card in ${ready.name}: ${(cause as Error).message}`,
            {
              cause,
            },
          );
        }
        // A card that vpcd (or a reader) powers up again right after insertion reports itself
        // removed to the first call on the new handle: check once, and look again if it went.
        try {
          card.getStatus();
        } catch (cause) {
          card.disconnect(pcsc.SCARD_LEAVE_CARD);
          if (Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 100));
            continue;
          }
          throw new JpkiError(
            "not-found",
            `the card in ${ready.name} went away: ${(cause as Error).message}`,
            {
              cause,
            },
          );
        }
        return new PcscTransport(pcsc, context, card, ready.name, share, mask);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new JpkiError(
          "not-found",
          `no card in ${describeReader(options.reader)} within ${timeoutMs} ms`,
        );
      // With no matching reader, poll (a new reader is not an event on the readers we pass).
      const slice = Math.min(remaining, readers.length === 0 ? 200 : 1000);
      if (readers.length === 0) await new Promise((r) => setTimeout(r, slice));
      else await context.waitForChange(readers, slice);
    }
  } catch (error) {
    context.close();
    throw error;
  }
}

/** A card connected through PC/SC. Commands are sent one at a time, in call order. */
export class PcscTransport implements CardTransport {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly pcsc: Pcsc,
    private readonly context: ContextInterface,
    private readonly card: CardInterface,
    /** The PC/SC reader name. */
    readonly reader: string,
    private readonly share: number,
    private readonly protocols: number,
  ) {}

  /** The protocol negotiated with the card (from the ATR; vpcd cards follow their ATR too). */
  get protocol(): PcscProtocol | "raw" {
    const p = this.card.protocol;
    return p === this.pcsc.SCARD_PROTOCOL_T0 ? "T=0" : p === this.pcsc.SCARD_PROTOCOL_T1 ? "T=1" : "raw";
  }

  async atr(): Promise<Buffer> {
    return this.serial(async () => Buffer.from(this.card.getStatus().atr));
  }

  transmit(command: Uint8Array): Promise<Buffer> {
    return this.serial(async () => {
      try {
        // Room for an extended-length answer (65536 data bytes + SW1 SW2).
        return await this.card.transmit(Buffer.from(command), { maxRecvLength: 65538 });
      } catch (cause) {
        throw new JpkiError(
          "internal",
          `PC/SC transmit on ${this.reader} failed: ${(cause as Error).message}`,
          {
            cause,
          },
        );
      }
    });
  }

  /** Warm reset through the reader (SCardReconnect with SCARD_RESET_CARD). */
  async reset(): Promise<void> {
    await this.serial(async () => {
      try {
        await this.card.reconnect(this.share, this.protocols, this.pcsc.SCARD_RESET_CARD);
      } catch (cause) {
        throw new JpkiError("internal", `PC/SC reset on ${this.reader} failed: ${(cause as Error).message}`, {
          cause,
        });
      }
    });
  }

  /** Disconnects, leaving the card powered (as OpenSC does), and releases the PC/SC context. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    try {
      this.card.disconnect(this.pcsc.SCARD_LEAVE_CARD);
    } catch {
      // The card or pcscd may be gone already; the context is released below either way.
    } finally {
      this.context.close();
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed)
      return Promise.reject(new JpkiError("internal", `the PC/SC transport on ${this.reader} is closed`));
    const result = this.queue.then(work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
