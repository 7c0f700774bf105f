/**
 * The vpcd link (JPKI-FACTS §5): first against a stand-in vpcd in this process (framing, control
 * bytes, reconnection), then through the real thing: PC/SC client → pcscd → vpcd → our card.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { describe, test } from "node:test";
import { main } from "../cli/main.js";
import { EchoCard, pcscSkipReason, restartPcscd, withVpcdSlot } from "../testing/pcsc.js";
import { makeCardStateFile } from "./card-fixture.js";
import { connectPcscCard } from "./pcsc-transport.js";
import { parseVpcdAddress, serveCardOverVpcd, VPCD_DEFAULT_PORT, type VpcdLink } from "./vpcd.js";

const frame = (hex: string) => {
  const payload = Buffer.from(hex.replace(/ /g, ""), "hex");
  const length = Buffer.alloc(2);
  length.writeUInt16BE(payload.length);
  return Buffer.concat([length, payload]);
};

/** A stand-in for vpcd: accepts the card's connections and reads its framed answers. */
class FakeVpcd {
  readonly connections: Socket[] = [];
  private waiting: ((socket: Socket) => void)[] = [];
  private buffered = new Map<Socket, Buffer>();
  private constructor(readonly server: Server) {
    server.on("connection", (socket) => {
      this.connections.push(socket);
      this.buffered.set(socket, Buffer.alloc(0));
      socket.on("data", (chunk) =>
        this.buffered.set(socket, Buffer.concat([this.buffered.get(socket)!, chunk])),
      );
      socket.on("error", () => undefined);
      this.waiting.shift()?.(socket);
    });
  }
  static async listen(port = 0): Promise<FakeVpcd> {
    const server = createServer();
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return new FakeVpcd(server);
  }
  get port(): number {
    return (this.server.address() as { port: number }).port;
  }
  nextConnection(): Promise<Socket> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  /** Reads one framed reply (waits for it). */
  async reply(socket: Socket): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const data = this.buffered.get(socket)!;
      if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
        const length = data.readUInt16BE(0);
        this.buffered.set(socket, data.subarray(2 + length));
        return data
          .subarray(2, 2 + length)
          .toString("hex")
          .toUpperCase();
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("no reply from the card");
  }
  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe("parseVpcdAddress", () => {
  test("HOST:PORT, HOST, :PORT and [IPv6]:PORT; defaults are vpcd's", () => {
    assert.deepEqual(parseVpcdAddress("127.0.0.1:35964"), { host: "127.0.0.1", port: 35964 });
    assert.deepEqual(parseVpcdAddress("vpcd.local"), { host: "vpcd.local", port: VPCD_DEFAULT_PORT });
    assert.deepEqual(parseVpcdAddress(":35965"), { host: "127.0.0.1", port: 35965 });
    assert.deepEqual(parseVpcdAddress("[::1]:35963"), { host: "::1", port: 35963 });
    assert.throws(() => parseVpcdAddress("host:70000"), /not a TCP port/);
    assert.throws(() => parseVpcdAddress("a:b:c"), /not a vpcd address/);
  });
});

describe("vpcd protocol against a stand-in vpcd", () => {
  test("control bytes 04 (ATR), 01, 02, 00 and framed APDUs answered in order", async () => {
    const vpcd = await FakeVpcd.listen();
    const card = new EchoCard();
    const trace: string[] = [];
    const connection = vpcd.nextConnection();
    const link = serveCardOverVpcd(card, { port: vpcd.port, trace: (line) => trace.push(line) });
    try {
      const socket = await connection;
      socket.write(frame("04"));
      assert.equal(await vpcd.reply(socket), "3BE000FF8131FE4514");
      await link.waitUntilActive(1000);
      socket.write(frame("01"));
      socket.write(frame("02"));
      // Two APDUs in one TCP segment, then one split across segments: answers keep the order.
      socket.write(Buffer.concat([frame("00A4040C0AD392F000260100000001"), frame("00A4020C020018")]));
      const split = frame("80CA000004");
      socket.write(split.subarray(0, 3));
      await new Promise((r) => setTimeout(r, 20));
      socket.write(split.subarray(3));
      assert.equal(await vpcd.reply(socket), "00A4040C0AD392F0002601000000019000");
      assert.equal(await vpcd.reply(socket), "00A4020C0200189000");
      assert.equal(await vpcd.reply(socket), "000102039000");
      socket.write(frame("00"));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(card.resets, 2, "power on and reset both reset the card");
      assert.equal(card.powerOffs, 1);
      assert.deepEqual(trace.slice(0, 3), ["power on", "reset", "> 00A4040C0AD392F000260100000001"]);
      assert.match(trace[3] ?? "", /^< 00A4040C0AD392F0002601000000019000 \(\d+\.\d ms\)$/);
      assert.equal(trace.at(-1), "power off");
      assert.equal(link.stats.apdus, 3);
    } finally {
      await link.close();
      await vpcd.close();
    }
  });

  test("a card that throws is answered 6F00 and the link stays up", async () => {
    const vpcd = await FakeVpcd.listen();
    const card = new EchoCard();
    card.transmit = async () => {
      throw new Error("broken applet");
    };
    const errors: unknown[] = [];
    const connection = vpcd.nextConnection();
    const link = serveCardOverVpcd(card, {
      port: vpcd.port,
      onEvent: (e) => e.type === "card-error" && errors.push(e.error),
    });
    try {
      const socket = await connection;
      socket.write(frame("00B0000004"));
      assert.equal(await vpcd.reply(socket), "6F00");
      socket.write(frame("04"));
      assert.equal(await vpcd.reply(socket), "3BE000FF8131FE4514");
      assert.equal(errors.length, 1);
    } finally {
      await link.close();
      await vpcd.close();
    }
  });

  test("a dropped connection powers the card off and reconnects; a vpcd restart is waited for with backoff", async () => {
    const vpcd = await FakeVpcd.listen();
    const port = vpcd.port;
    const card = new EchoCard();
    const events: string[] = [];
    const first = vpcd.nextConnection();
    const link = serveCardOverVpcd(card, {
      port,
      minBackoffMs: 20,
      maxBackoffMs: 80,
      onEvent: (e) => events.push(e.type),
    });
    let restarted: FakeVpcd | undefined;
    try {
      const socket = await first;
      socket.write(frame("04"));
      await vpcd.reply(socket);
      // vpcd side closes (pcscd stopped the reader): the card is pulled.
      const second = vpcd.nextConnection();
      socket.destroy();
      const again = await second;
      assert.equal(card.powerOffs, 1);
      again.write(frame("00B0000002"));
      assert.equal(await vpcd.reply(again), "00B00000029000");
      // vpcd gone for a while: connection refused, retried with growing delays, then back.
      await vpcd.close();
      await new Promise((r) => setTimeout(r, 300));
      const refusals = events.filter((e) => e === "disconnected").length;
      assert.ok(refusals >= 3 && refusals <= 8, `retried ${refusals} times in 300 ms with 20..80 ms backoff`);
      restarted = await FakeVpcd.listen(port);
      const third = await restarted.nextConnection();
      third.write(frame("04"));
      assert.equal(await restarted.reply(third), "3BE000FF8131FE4514");
      await link.waitUntilActive(1000);
      assert.equal(link.stats.sessions, 3);
    } finally {
      await link.close();
      await restarted?.close();
    }
  });
});

describe("jpki-mobile card serve", () => {
  test("serves the state file's card to the given vpcd until SIGTERM", async () => {
    const fixture = await makeCardStateFile();
    const vpcd = await FakeVpcd.listen();
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) =>
      printed.push(String(chunk)) > 0) as typeof process.stdout.write;
    try {
      const connection = vpcd.nextConnection();
      const exit = main([
        "card",
        "serve",
        "--state",
        fixture.statePath,
        "--vpcd",
        `127.0.0.1:${vpcd.port}`,
        "--trace",
      ]);
      const socket = await connection;
      // pcscd's sequence at insertion: presence poll (ATR), power on, ATR again.
      socket.write(frame("04"));
      assert.equal(await vpcd.reply(socket), "3BE000FF8131FE4514");
      socket.write(Buffer.concat([frame("01"), frame("04")]));
      assert.equal(await vpcd.reply(socket), "3BE000FF8131FE4514");
      socket.write(frame("00A4040C0AD392F000260100000001"));
      assert.equal(await vpcd.reply(socket), "9000", "SELECT of the JPKI-AP");
      process.emit("SIGTERM");
      assert.equal(await exit, 0);
    } finally {
      process.stdout.write = write;
      await vpcd.close();
      fixture.cleanup();
    }
    const output = printed.join("");
    assert.match(output, /serving My Number card .* \(ATR 3BE000FF8131FE4514\) to vpcd 127\.0\.0\.1:\d+/);
    assert.match(output, /> 00A4040C0AD392F000260100000001\n< 9000 \(/);
    assert.match(output, /stopped: 1 APDUs in 1 reader session\(s\)/);
  });
});

const skip = await pcscSkipReason();

async function serveEcho(port: number, card: EchoCard, trace?: string[]): Promise<VpcdLink> {
  const link = serveCardOverVpcd(card, { port, trace: trace && ((line) => trace.push(line)) });
  await link.waitUntilActive();
  return link;
}

describe("through pcscd and vpcd", { skip, timeout: 600_000 }, () => {
  test("power on gives the ATR to PC/SC; APDUs round-trip; a PC/SC reset reaches the card", async () => {
    await withVpcdSlot(async (slot) => {
      const card = new EchoCard();
      const trace: string[] = [];
      const link = await serveEcho(slot.port, card, trace);
      const transport = await connectPcscCard({ reader: slot.readerName });
      try {
        assert.equal((await transport.atr()).toString("hex").toUpperCase(), "3BE000FF8131FE4514");
        assert.equal(transport.protocol, "T=1", "the JPKI ATR offers T=1 (TD1 = 81)");
        assert.ok(trace.includes("power on"));
        const select = Buffer.from("00A4040C0AD392F000260100000001", "hex");
        assert.equal(
          (await transport.transmit(select)).toString("hex").toUpperCase(),
          "00A4040C0AD392F0002601000000019000",
        );
        const long = await transport.transmit(Buffer.from("80CA000000", "hex"));
        assert.equal(long.length, 258);
        assert.equal(long.subarray(254).toString("hex"), "feff9000");
        const resetsBefore = card.resets;
        await transport.reset();
        assert.equal(card.resets, resetsBefore + 1);
        assert.ok(trace.includes("reset"));
        assert.equal(
          (await transport.transmit(Buffer.from("00B0000004", "hex"))).toString("hex"),
          "00b00000049000",
        );
        assert.ok(link.stats.apdus >= 3);
      } finally {
        await link.close(); // first: SCardDisconnect blocks this thread, which serves the card
        await transport.close();
      }
    });
  });

  test("after the TCP connection drops, the card comes back in the reader", async () => {
    await withVpcdSlot(async (slot) => {
      const card = new EchoCard();
      const link = await serveEcho(slot.port, card);
      try {
        const before = await connectPcscCard({ reader: slot.readerName });
        await before.transmit(Buffer.from("00B0000001", "hex"));
        link.dropConnection();
        await assert.rejects(async () => {
          // pcscd notices at its next presence poll (about 400 ms).
          for (let i = 0; i < 50; i++) {
            await before.transmit(Buffer.from("00B0000001", "hex"));
            await new Promise((r) => setTimeout(r, 50));
          }
        }, /PC\/SC transmit/);
        await before.close();
        assert.ok(card.powerOffs >= 1, "pulling the card powers it off");
        await link.waitUntilActive();
        const after = await connectPcscCard({ reader: slot.readerName });
        try {
          assert.equal(
            (await after.transmit(Buffer.from("00B0000002", "hex"))).toString("hex"),
            "00b00000029000",
          );
        } finally {
          await link.close(); // first, as above
          await after.close();
        }
        assert.equal(link.stats.sessions, 2);
      } finally {
        await link.close();
      }
    });
  });

  test("the link survives a pcscd restart", async () => {
    await withVpcdSlot(async (slot) => {
      const card = new EchoCard();
      const link = serveCardOverVpcd(card, { port: slot.port, minBackoffMs: 50, maxBackoffMs: 500 });
      try {
        await link.waitUntilActive();
        await restartPcscd();
        const transport = await connectPcscCard({ reader: slot.readerName, timeoutMs: 15_000 });
        try {
          assert.equal(
            (await transport.transmit(Buffer.from("00B0000003", "hex"))).toString("hex"),
            "00b00000039000",
          );
        } finally {
          await link.close(); // first, as above
          await transport.close();
        }
        assert.ok(link.stats.sessions >= 2);
      } finally {
        await link.close();
      }
    });
  });

  test("round trips per second (PC/SC client → pcscd → vpcd → card)", async (t) => {
    await withVpcdSlot(async (slot) => {
      const link = await serveEcho(slot.port, new EchoCard());
      const transport = await connectPcscCard({ reader: slot.readerName });
      try {
        const apdu = Buffer.from("00B0000004", "hex");
        await transport.transmit(apdu);
        const count = 40;
        const started = performance.now();
        for (let i = 0; i < count; i++) await transport.transmit(apdu);
        const seconds = (performance.now() - started) / 1000;
        t.diagnostic(
          `${(count / seconds).toFixed(1)} APDU round trips/s over vpcd (${count} in ${seconds.toFixed(2)} s)`,
        );
      } finally {
        await link.close(); // first: SCardDisconnect blocks this thread, which serves the card
        await transport.close();
      }
    });
  });
});
