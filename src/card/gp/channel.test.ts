import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { answerOrStatus, type CardSecureChannel, openScp03, openScp11, transmitSecure } from "./channel.js";
import { Scp03Card, Scp03Host } from "./scp03.js";
import { generateEphemeralEckaKey, Scp11Card, Scp11Host } from "./scp11.js";

const h = (hex: string) => Buffer.from(hex, "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/**
 * A toy security domain as a UICC emulation would write one: INS dispatch to the channel's
 * handshake methods, then every other command unwrapped, answered, and its response wrapped.
 */
function toySecurityDomain(scp03: Scp03Card, scp11: Scp11Card) {
  let active: CardSecureChannel | undefined;
  const answer = (plain: Buffer): [Buffer, number] =>
    plain[1] === 0xca ? [h("5f2001ab"), 0x9000] : [Buffer.alloc(0), 0x6d00];
  return {
    async transmit(command: Uint8Array): Promise<Buffer> {
      const ins = command[1];
      return answerOrStatus(() => {
        switch (ins) {
          case 0x50:
            active = scp03;
            return scp03.processInitializeUpdate(command);
          case 0x2a:
            return scp11.processPerformSecurityOperation(command);
          case 0x88:
            active = scp11;
            return scp11.processInternalAuthenticate(command);
          case 0x82:
            // EXTERNAL AUTHENTICATE after INITIALIZE UPDATE; otherwise SCP11a's MUTUAL AUTHENTICATE.
            if (active === scp03 && !scp03.authenticated) return scp03.processExternalAuthenticate(command);
            active = scp11;
            return scp11.processMutualAuthenticate(command);
        }
        const channel = active;
        if (!channel) return h("6982");
        return answerOrStatus(() => channel.wrapResponse(...answer(channel.unwrapCommand(command))));
      });
    },
  };
}

describe("secure channel sessions over a transport", () => {
  const keys = {
    enc: h("404142434445464748494a4b4c4d4e4f"),
    mac: h("404142434445464748494a4b4c4d4e4f"),
    dek: h("404142434445464748494a4b4c4d4e4f"),
  };
  const sdKey = generateEphemeralEckaKey();
  const scp11Card = () => new Scp11Card({ staticKey: sdKey, keyVersion: 1, variants: ["b"] });
  const scp03Card = () =>
    new Scp03Card({ keySet: () => ({ keyVersion: 0x30, keys }), keyDiversificationData: Buffer.alloc(10) });

  it("opens SCP03 at level 0x33 and exchanges a GET DATA", async () => {
    const sd = toySecurityDomain(scp03Card(), scp11Card());
    const host = new Scp03Host({ keys });
    await openScp03(sd, host, 0x33);
    assert.equal(hex(await transmitSecure(sd, host, h("80ca005f00"))), "5f2001ab9000");
    assert.equal(hex(await transmitSecure(sd, host, h("80ff000000"))), "6d00");
  });

  it("opens SCP11b and exchanges a GET DATA; a forged command gets 6982", async () => {
    const sd = toySecurityDomain(scp03Card(), scp11Card());
    const host = new Scp11Host({ variant: "b", cardPublicKey: sdKey.publicPoint, keyVersion: 1 });
    await openScp11(sd, host);
    assert.equal(hex(await transmitSecure(sd, host, h("80ca005f00"))), "5f2001ab9000");
    const forged = host.wrapCommand(h("80ca005f00"));
    forged[6]! ^= 0x01;
    assert.equal(hex(await sd.transmit(forged)), "6982");
  });
});
