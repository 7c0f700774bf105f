/**
 * What an emulated card and a host program see of any GP secure channel (SCP03 or SCP11), and the
 * host-side helpers that run a whole session over a CardTransport (src/card/card.ts).
 *
 * Card side, per command APDU, once a session is authenticated:
 *   plain = channel.unwrapCommand(apdu)      // SecureChannelError: answer channel.wrapResponse([], e.sw)
 *   ... process plain ...
 *   return channel.wrapResponse(data, sw)
 */

import { responseApdu } from "../apdu.js";
import type { CardTransport } from "../card.js";
import { CardStatusError, completedResponse, SW } from "../status-words.js";
import type { Scp03Host } from "./scp03.js";
import type { Scp11Host } from "./scp11.js";
import { SecureChannelError } from "./secure-messaging.js";

/** The card's half of an open secure channel. */
export interface CardSecureChannel {
  readonly authenticated: boolean;
  unwrapCommand(command: Uint8Array): Buffer;
  wrapResponse(data: Uint8Array, sw: number): Buffer;
  reset(): void;
  /** The DEK for keys sent inside the channel. */
  readonly dek: Buffer | undefined;
}

/** The host's half of an open secure channel. */
export interface HostSecureChannel {
  wrapCommand(command: Uint8Array): Buffer;
  unwrapResponse(response: Uint8Array): Buffer;
  /** Protects commands sent together; each response is read with its command's state. */
  wrapScript?(commands: readonly Uint8Array[]): {
    apdus: Buffer[];
    unwrap(index: number, response: Uint8Array): Buffer;
  };
}

/**
 * Runs a card-side step and answers a CardStatusError (SecureChannelError included) with its status
 * word alone, for emulations that do not already do so in their `transmit`.
 */
export function answerOrStatus(step: () => Buffer): Buffer {
  try {
    return step();
  } catch (error) {
    if (error instanceof CardStatusError) return responseApdu(error.sw);
    throw error;
  }
}

type Transmit = Pick<CardTransport, "transmit">;

/** Sends one command through the channel: wrap, transmit, unwrap. */
export async function transmitSecure(
  transport: Transmit,
  channel: HostSecureChannel,
  command: Uint8Array,
): Promise<Buffer> {
  return channel.unwrapResponse(await transport.transmit(channel.wrapCommand(command)));
}

/**
 * Sends commands through the channel as one script when the transport carries scripts (an OTA
 * gateway: one round trip to the phone instead of one per command), else one by one. Returns the
 * plain responses, in order: fewer than the commands when the card refused one and the script
 * stopped there.
 */
export async function transmitSecureScript(
  transport: Transmit & { transmitScript?(commands: readonly Uint8Array[]): Promise<Buffer[]> },
  channel: HostSecureChannel,
  commands: readonly Uint8Array[],
): Promise<Buffer[]> {
  if (!transport.transmitScript || !channel.wrapScript) {
    const responses: Buffer[] = [];
    for (const command of commands) {
      const response = await transmitSecure(transport, channel, command);
      responses.push(response);
      if (!completedResponse(response)) break;
    }
    return responses;
  }
  const script = channel.wrapScript(commands);
  const responses = await transport.transmitScript(script.apdus);
  return responses.map((response, i) => script.unwrap(i, response));
}

/** INITIALIZE UPDATE then EXTERNAL AUTHENTICATE at `securityLevel` (Amd D §7.1) over a transport. */
export async function openScp03(transport: Transmit, host: Scp03Host, securityLevel: number): Promise<void> {
  host.processInitializeUpdateResponse(await transport.transmit(host.initializeUpdate()));
  host.processExternalAuthenticateResponse(
    await transport.transmit(host.externalAuthenticate(securityLevel)),
  );
}

/** SCP11a's certificates (PERFORM SECURITY OPERATION) then MUTUAL or INTERNAL AUTHENTICATE, over a transport. */
export async function openScp11(transport: Transmit, host: Scp11Host): Promise<void> {
  for (const command of host.performSecurityOperationCommands()) {
    const response = await transport.transmit(command);
    const sw = response.length >= 2 ? response.readUInt16BE(response.length - 2) : SW.WRONG_LENGTH;
    if (sw !== SW.OK) throw new SecureChannelError(sw, "host certificate refused by the card");
  }
  host.processAuthenticateResponse(await transport.transmit(host.authenticate()));
}
