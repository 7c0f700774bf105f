/** The host's CardTransport over an emulated card in the same process (no PC/SC). */
import { JpkiError } from "../errors.js";
import type { CardTransport, EmulatedCard } from "./card.js";

export class InProcessTransport implements CardTransport {
  private closed = false;

  /** Powers the card on: whatever was volatile in it is gone. */
  constructor(private readonly card: EmulatedCard) {
    card.reset();
  }

  private open(): EmulatedCard {
    if (this.closed) throw new JpkiError("conflict", "the card transport is closed");
    return this.card;
  }

  async atr(): Promise<Buffer> {
    return Buffer.from(this.open().atr);
  }

  /** Copies in both directions, as a reader would: neither side can alter the other's buffers. */
  async transmit(command: Uint8Array): Promise<Buffer> {
    return Buffer.from(await this.open().transmit(Uint8Array.from(command)));
  }

  async reset(): Promise<void> {
    this.open().reset();
  }

  /** Powers the card off. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.card.powerOff();
  }
}
