/**
 * What every emulated card (the My Number card, the SIM) offers a reader, and what every host-side
 * program uses to talk to a card (the phone app, the counter terminal, tests): one interface each, so
 * the same code runs in process or through real PC/SC.
 */

/** An emulated card as a reader sees it (the card's side of ISO/IEC 7816-3 and -4). */
export interface EmulatedCard {
  /** Answer to reset (ISO/IEC 7816-3 §8), sent to the reader at power-on. */
  readonly atr: Buffer;
  /** Cold or warm reset: volatile state (selected application and file, verified PINs, secure channels) is lost. */
  reset(): void;
  /** Power off: as reset, for the card. */
  powerOff(): void;
  /**
   * One command APDU in, one response APDU out (data || SW1 SW2). Never throws: malformed input gets
   * a status word. Persistent changes are written before the answer is returned.
   */
  transmit(command: Uint8Array): Promise<Buffer>;
}

/** The host's side: a card in a reader, in process or through PC/SC. */
export interface CardTransport {
  /** The ATR of the card now present. */
  atr(): Promise<Buffer>;
  /** Sends one command APDU; returns the response APDU (data || SW1 SW2). */
  transmit(command: Uint8Array): Promise<Buffer>;
  /** Resets the card (volatile state lost). */
  reset(): Promise<void>;
  close(): Promise<void>;
}
