/**
 * The card side of vsmartcard's vpcd protocol (JPKI-FACTS §5): plugs an EmulatedCard into pcscd's
 * "Virtual PCD" reader, so real PC/SC middleware (OpenSC, pcsc_scan, our own PcscTransport) talks to it.
 *
 * vpcd, loaded by pcscd, listens on TCP (127.0.0.1:35963 for slot 0, 35963+n for slot n); the virtual
 * card connects to it. Every message, both ways, is a 2-byte big-endian length and a payload. From
 * vpcd, a 1-byte payload is a control message: 00 power off, 01 power on, 02 reset (no reply), 04 get
 * ATR (reply: the ATR). vpcd sends 04 at every presence poll (about every 400 ms), so an idle link
 * still sees traffic. Anything longer is a command APDU, answered by the response APDU.
 * Messages are strictly request/response: vpcd holds a lock around each exchange, and we answer
 * in arrival order.
 *
 * When vpcd goes away (pcscd stopped or restarted) or the connection drops, the card is powered off
 * (as if pulled from the reader) and the link reconnects with exponential backoff.
 *
 * Speed: Debian's vpcd (vsmartcard 3.3) writes the 2-byte length and the payload with two send()
 * calls on a socket with Nagle's algorithm on, so every message from vpcd waits for our delayed ACK
 * of the length (about 40 ms on Linux): about 20 APDUs/s whatever the card does. Newer vpcd sends
 * one buffer. Node cannot set TCP_QUICKACK, so nothing on this side removes the wait.
 */
import { connect, type Socket } from "node:net";
import { JpkiError } from "../errors.js";
import type { EmulatedCard } from "./card.js";

export const VPCD_DEFAULT_HOST = "127.0.0.1";
/** vpcd's default port for slot 0 (vsmartcard's reader.conf: CHANNELID 0x8C7B). */
export const VPCD_DEFAULT_PORT = 35963;

/** Control bytes sent by vpcd (vsmartcard virtualsmartcard/src/vpcd/vpcd.h, VPCD_CTRL_*). */
const CONTROL = { powerOff: 0x00, powerOn: 0x01, reset: 0x02, atr: 0x04 } as const;

/** "6F 00": no precise diagnosis (ISO/IEC 7816-4 §5.6), if a card breaks its never-throw promise. */
const SW_NO_PRECISE_DIAGNOSIS = Buffer.from([0x6f, 0x00]);

export interface VpcdAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses `HOST:PORT`, `HOST`, `:PORT` or `[IPv6]:PORT`; missing parts take vpcd's defaults. */
export function parseVpcdAddress(text: string): VpcdAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text.trim());
  if (!match) throw new JpkiError("bad-input", `not a vpcd address (HOST:PORT): ${text}`);
  const host = match[1] ?? (match[2] || VPCD_DEFAULT_HOST);
  const port = match[3] === undefined ? VPCD_DEFAULT_PORT : Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new JpkiError("bad-input", `not a TCP port: ${match[3]}`);
  return { host, port };
}

export function formatVpcdAddress(address: VpcdAddress): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** What the link reports about its connection to vpcd (for logs and tests). */
export type VpcdEvent =
  | { readonly type: "connecting"; readonly attempt: number }
  | { readonly type: "connected" }
  /** vpcd spoke first on this connection: pcscd now sees the card in its reader. */
  | { readonly type: "active" }
  | { readonly type: "disconnected"; readonly reason: string; readonly retryInMs: number }
  | { readonly type: "card-error"; readonly error: unknown };

export interface VpcdOptions {
  readonly host?: string;
  readonly port?: number;
  /** Called with one line per exchange (`> C-APDU`, `< R-APDU (ms)`, power events). */
  readonly trace?: (line: string) => void;
  readonly onEvent?: (event: VpcdEvent) => void;
  /** First reconnection delay; doubles up to `maxBackoffMs` until vpcd speaks again. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export interface VpcdStats {
  /** TCP connections that vpcd answered (one per card insertion as PC/SC sees it). */
  readonly sessions: number;
  readonly apdus: number;
  readonly resets: number;
  readonly powerOns: number;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex").toUpperCase();

/**
 * A live link between one emulated card and one vpcd slot. Created by `serveCardOverVpcd`; runs until
 * `close()`.
 */
export class VpcdLink {
  readonly address: VpcdAddress;
  private socket: Socket | undefined;
  private active = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private attempt = 0;
  /** Frames are handled one after another, in arrival order (card.transmit is asynchronous). */
  private queue: Promise<void> = Promise.resolve();
  private activeWaiters: (() => void)[] = [];
  private counters = { sessions: 0, apdus: 0, resets: 0, powerOns: 0 };
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly card: EmulatedCard,
    private readonly options: VpcdOptions = {},
  ) {
    this.address = { host: options.host ?? VPCD_DEFAULT_HOST, port: options.port ?? VPCD_DEFAULT_PORT };
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.backoffMs = this.minBackoffMs;
    this.connect();
  }

  /** True while vpcd is talking to the card on the current connection (the card is "inserted"). */
  get isActive(): boolean {
    return this.active;
  }

  get stats(): VpcdStats {
    return { ...this.counters };
  }

  /** Resolves once vpcd has spoken on a connection (pcscd sees the card); rejects after `timeoutMs`. */
  waitUntilActive(timeoutMs = 10_000): Promise<void> {
    if (this.active) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.activeWaiters = this.activeWaiters.filter((w) => w !== done);
        reject(
          new JpkiError(
            "not-found",
            `vpcd at ${formatVpcdAddress(this.address)} did not poll the card within ${timeoutMs} ms (is pcscd running with the vpcd reader?)`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.activeWaiters.push(done);
    });
  }

  /** Drops the TCP connection as a vpcd restart would (the card is pulled), then reconnects. */
  dropConnection(): void {
    this.socket?.destroy();
  }

  /** Stops serving: closes the connection (PC/SC sees the card removed) and stops reconnecting. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.destroy();
      });
    }
    await this.queue;
  }

  private emit(event: VpcdEvent): void {
    this.options.onEvent?.(event);
  }

  private connect(): void {
    if (this.closed) return;
    this.attempt += 1;
    this.emit({ type: "connecting", attempt: this.attempt });
    const socket = connect({ host: this.address.host, port: this.address.port });
    this.socket = socket;
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on("connect", () => this.emit({ type: "connected" }));
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const frame = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        if (!this.active) this.becomeActive();
        this.queue = this.queue.then(() => this.handle(socket, frame));
      }
    });
    let lastError = "connection closed by vpcd";
    socket.on("error", (error) => {
      lastError = error.message;
    });
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      const wasActive = this.active;
      this.active = false;
      // The card left the reader: volatile state (selected files, verified PINs) is gone.
      if (wasActive) this.queue = this.queue.then(() => this.powerOffQuietly());
      if (this.closed) return;
      const retryInMs = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
      this.emit({ type: "disconnected", reason: lastError, retryInMs });
      this.retryTimer = setTimeout(() => this.connect(), retryInMs);
    });
  }

  private becomeActive(): void {
    this.active = true;
    this.attempt = 0;
    this.backoffMs = this.minBackoffMs;
    this.counters.sessions += 1;
    this.emit({ type: "active" });
    const waiters = this.activeWaiters;
    this.activeWaiters = [];
    for (const waiter of waiters) waiter();
  }

  private powerOffQuietly(): void {
    try {
      this.card.powerOff();
    } catch (error) {
      this.emit({ type: "card-error", error });
    }
  }

  private async handle(socket: Socket, frame: Buffer): Promise<void> {
    const trace = this.options.trace;
    if (frame.length === 1) {
      const control = frame[0];
      try {
        switch (control) {
          case CONTROL.powerOff:
            trace?.("power off");
            this.card.powerOff();
            return;
          case CONTROL.powerOn:
            trace?.("power on");
            this.counters.powerOns += 1;
            this.card.reset();
            return;
          case CONTROL.reset:
            trace?.("reset");
            this.counters.resets += 1;
            this.card.reset();
            return;
          case CONTROL.atr:
            // Polled every ~400 ms: not traced, or the trace would be all ATRs.
            this.reply(socket, this.card.atr);
            return;
          default:
            trace?.(`unknown control byte ${control?.toString(16).padStart(2, "0")}: ignored`);
            return;
        }
      } catch (error) {
        this.emit({ type: "card-error", error });
        return;
      }
    }
    if (frame.length === 0) return;
    const started = performance.now();
    trace?.(`> ${hex(frame)}`);
    let response: Buffer;
    try {
      response = await this.card.transmit(frame);
    } catch (error) {
      this.emit({ type: "card-error", error });
      response = SW_NO_PRECISE_DIAGNOSIS;
    }
    if (response.length > 0xffff) response = SW_NO_PRECISE_DIAGNOSIS;
    this.counters.apdus += 1;
    trace?.(`< ${hex(response)} (${(performance.now() - started).toFixed(1)} ms)`);
    this.reply(socket, response);
  }

  private reply(socket: Socket, payload: Uint8Array): void {
    if (socket.destroyed || this.socket !== socket) return;
    const message = Buffer.allocUnsafe(2 + payload.length);
    message.writeUInt16BE(payload.length, 0);
    message.set(payload, 2);
    socket.write(message);
  }
}

/**
 * Connects `card` to vpcd and keeps it connected (reconnecting with backoff) until the link is closed.
 * Returns at once; `waitUntilActive()` tells when pcscd sees the card.
 */
export function serveCardOverVpcd(card: EmulatedCard, options: VpcdOptions = {}): VpcdLink {
  return new VpcdLink(card, options);
}
