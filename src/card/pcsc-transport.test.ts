/** PcscTransport through the real pcscd, with a stand-in card plugged into vpcd. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JpkiError } from "../errors.js";
import { EchoCard, pcscSkipReason, withVpcdSlot } from "../testing/pcsc.js";
import { connectPcscCard, listPcscReaders } from "./pcsc-transport.js";
import { SIM_ATR } from "./sim-applet-card.js";
import { serveCardOverVpcd } from "./vpcd.js";

const skip = await pcscSkipReason();

describe("PcscTransport", { skip, timeout: 600_000 }, () => {
  test("lists the vpcd reader; waits for a card inserted after the call; T=1 from the JPKI ATR", async () => {
    await withVpcdSlot(async (slot) => {
      assert.ok((await listPcscReaders()).includes(slot.readerName));
      const connecting = connectPcscCard({ reader: slot.readerName, timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 300));
      const link = serveCardOverVpcd(new EchoCard(), { port: slot.port });
      const transport = await connecting;
      try {
        assert.equal(transport.reader, slot.readerName);
        assert.equal(transport.protocol, "T=1");
        assert.equal((await transport.atr()).toString("hex").toUpperCase(), "3BE000FF8131FE4514");
      } finally {
        await link.close(); // first: a blocking SCardDisconnect must not wait on this thread's card
        await transport.close();
      }
    });
  });

  test("T=0 for a SIM's ATR (ISO/IEC 7816-3: TD1 80 announces T=0 first)", async () => {
    await withVpcdSlot(async (slot) => {
      const link = serveCardOverVpcd(new EchoCard(SIM_ATR), { port: slot.port });
      await link.waitUntilActive();
      const transport = await connectPcscCard({ reader: slot.readerName });
      try {
        assert.equal(transport.protocol, "T=0");
        assert.deepEqual(await transport.atr(), SIM_ATR);
      } finally {
        await link.close(); // first: a blocking SCardDisconnect must not wait on this thread's card
        await transport.close();
      }
    });
  });

  test("commands issued together are answered in order; close is final", async () => {
    await withVpcdSlot(async (slot) => {
      const card = new EchoCard();
      const link = serveCardOverVpcd(card, { port: slot.port });
      await link.waitUntilActive();
      const transport = await connectPcscCard({ reader: slot.readerName });
      try {
        const commands = Array.from({ length: 8 }, (_, i) => Buffer.from([0x00, 0xb0, 0x00, i, 0x01]));
        const answers = await Promise.all(commands.map((c) => transport.transmit(c)));
        answers.forEach((answer, i) => {
          assert.equal(answer.toString("hex"), `00b000${i.toString(16).padStart(2, "0")}019000`);
        });
        assert.deepEqual(card.commands.slice(-8), commands);
      } finally {
        await transport.close();
        await link.close(); // first: a blocking SCardDisconnect must not wait on this thread's card
        await transport.close();
      }
      await assert.rejects(transport.transmit(Buffer.from("00B0000001", "hex")), /closed/);
    });
  });

  test("no card within the timeout: a not-found JpkiError naming the reader", async () => {
    await withVpcdSlot(async () => {
      await assert.rejects(
        connectPcscCard({ reader: "Virtual PCD 00 01", timeoutMs: 300 }),
        (error: unknown) => {
          assert.ok(error instanceof JpkiError);
          assert.equal(error.code, "not-found");
          assert.match(error.message, /no card in reader Virtual PCD 00 01 within 300 ms/);
          return true;
        },
      );
    });
  });
});
