import assert from "node:assert/strict";
import { createHash, verify as cryptoVerify, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { hex } from "./apdu.js";
import type { EmulatedCard } from "./card.js";
import {
  type CardStateFixture,
  makeCardStateFile,
  TEST_AUTH_PIN,
  TEST_SIGN_PASSWORD,
} from "./card-fixture.js";
import { InProcessTransport } from "./in-process-transport.js";
import { openMyNumberCard } from "./mynacard.js";
import { openSimAppletCard, SIM_ATR } from "./sim-applet-card.js";
import { loadCardState } from "./state.js";

const SELECT_AP = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01";
const selectEf = (fid: string) => `00 A4 02 0C 02 ${fid}`;
const ascii = (text: string) => Buffer.from(text, "latin1").toString("hex");
const verifyPin = (pin: string) => `00 20 00 80 ${pin.length.toString(16).padStart(2, "0")} ${ascii(pin)}`;
const SHA256_DIGEST_INFO_PREFIX = "30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20";

function digestInfo(message: Buffer): Buffer {
  return Buffer.concat([hex(SHA256_DIGEST_INFO_PREFIX), createHash("sha256").update(message).digest()]);
}

interface Answer {
  data: Buffer;
  /** "9000", "63C2", ... */
  sw: string;
}

async function send(card: EmulatedCard, apdu: string | Buffer): Promise<Answer> {
  const response = await card.transmit(typeof apdu === "string" ? hex(apdu) : apdu);
  assert.ok(response.length >= 2);
  return {
    data: response.subarray(0, -2),
    sw: response.subarray(-2).toString("hex").toUpperCase(),
  };
}

async function expectSw(card: EmulatedCard, apdu: string | Buffer, sw: string): Promise<Buffer> {
  const answer = await send(card, apdu);
  assert.equal(answer.sw, sw, `${typeof apdu === "string" ? apdu : apdu.toString("hex")} → ${answer.sw}`);
  return answer.data;
}

/** Reads an EF the way OpenSC does: 4 bytes for the DER size, then 256-byte chunks, the last exact. */
async function readCertificate(card: EmulatedCard, fid: string): Promise<Buffer> {
  await expectSw(card, selectEf(fid), "9000");
  const head = await expectSw(card, "00 B0 00 00 04", "9000");
  assert.equal(head[0], 0x30);
  assert.equal(head[1], 0x82);
  const size = head.readUInt16BE(2) + 4;
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < size; offset += 256) {
    const le = Math.min(256, size - offset) & 0xff;
    const p = offset.toString(16).padStart(4, "0");
    chunks.push(await expectSw(card, `00 B0 ${p} ${le.toString(16).padStart(2, "0")}`, "9000"));
  }
  return Buffer.concat(chunks);
}

function triesLeft(statePath: string, fid: string): number {
  return loadCardState(statePath).pins[fid]!.triesLeft;
}

describe("My Number card", () => {
  let fixture: CardStateFixture;
  before(async () => {
    fixture = await makeCardStateFile();
  });
  after(() => fixture.cleanup());

  /** A card on a fresh copy of the state (own PIN counters). */
  async function freshCard(): Promise<{ card: EmulatedCard; statePath: string; cleanup: () => void }> {
    const own = await makeCardStateFile();
    const card = openMyNumberCard(own.statePath);
    return { card, statePath: own.statePath, cleanup: own.cleanup };
  }

  test("ATR is 3B E0 00 FF 81 31 FE 45 14", () => {
    const card = openMyNumberCard(fixture.statePath);
    assert.equal(card.atr.toString("hex").toUpperCase(), "3BE000FF8131FE4514");
  });

  test("SELECT of the JPKI-AP by DF name with P2=0C answers a bare 90 00; other P2 6A86", async () => {
    const card = openMyNumberCard(fixture.statePath);
    assert.equal((await expectSw(card, SELECT_AP, "9000")).length, 0);
    await expectSw(card, "00 A4 04 00 0A D3 92 F0 00 26 01 00 00 00 01", "6A86");
    // T=1 form with Le: still no FCI.
    assert.equal((await expectSw(card, `${SELECT_AP} 00`, "9000")).length, 0);
  });

  test("other drivers' probes get errors, never 90 00 (JPKI-FACTS §1)", async () => {
    const card = openMyNumberCard(fixture.statePath);
    const probes: [string, string][] = [
      ["00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08", "6A82"], // 券面事項入力補助AP
      ["00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00", "6A82"], // PIV
      ["00 A4 04 00 06 D2 76 00 01 24 01 00", "6A82"], // OpenPGP
      ["00 A4 04 00 0C A0 00 00 00 63 50 4B 43 53 2D 31 35", "6A82"], // PKCS#15
      ["00 A4 04 00 00", "6A82"], // default application
      ["00 A4 00 0C 02 3F 00", "6A86"], // MF by FID
      ["00 A4 08 0C 02 00 0A", "6A86"], // path from MF
      ["00 A4 02 0C 02 00 0A", "6A82"], // EF before the AP is selected
      ["00 B0 00 00 04", "6986"],
      ["00 CA 01 00 00", "6D00"], // GET DATA
      ["00 C0 00 00 00", "6D00"], // GET RESPONSE
      ["00 84 00 00 08", "6D00"], // GET CHALLENGE
      ["80 CA 9F 7F 00", "6D00"], // GlobalPlatform CPLC
      ["A0 A4 00 00 02 3F 00", "6E00"], // GSM SIM class
      ["0C A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "6E00"], // secure messaging
      ["10 2A 00 80 01 00", "6E00"], // command chaining
      ["FF CA 00 00 00", "6E00"], // PC/SC pseudo-APDU
      ["00 A4", "6700"],
      ["", "6700"],
    ];
    for (const [apdu, sw] of probes) await expectSw(card, apdu, sw);
    await expectSw(card, SELECT_AP, "9000");
    await expectSw(card, "00 A4 08 0C 02 00 0A", "6A86");
    await expectSw(card, "00 A4 09 0C 02 00 0A", "6A86");
    await expectSw(card, "00 A4 02 00 02 00 0A", "6A86");
    await expectSw(card, "00 A4 02 0C 03 00 0A 00", "6700");
    await expectSw(card, selectEf("0003"), "6A82");
    await expectSw(card, selectEf("3F00"), "6A82");
  });

  test("READ BINARY: certificate EFs hold exactly the DER; 15-bit offsets; Le 00 = 256; end of file", async () => {
    const card = openMyNumberCard(fixture.statePath);
    await expectSw(card, SELECT_AP, "9000");
    for (const fid of ["000A", "000B", "0002"]) {
      const der = await readCertificate(card, fid);
      assert.deepEqual(der, Buffer.from(fixture.state.files[fid]!, "base64"));
      new X509Certificate(der);
    }
    const der = Buffer.from(fixture.state.files["000A"]!, "base64");
    await expectSw(card, selectEf("000A"), "9000");
    assert.equal((await expectSw(card, "00 B0 00 00 00", "9000")).length, 256);
    assert.deepEqual(await expectSw(card, "00 B0 01 00 10", "9000"), der.subarray(256, 272));
    const near = der.length - 10;
    const at = (offset: number) => offset.toString(16).padStart(4, "0");
    assert.deepEqual(await expectSw(card, `00 B0 ${at(near)} 00`, "9000"), der.subarray(near));
    await expectSw(card, `00 B0 ${at(der.length)} 01`, "6B00");
    await expectSw(card, "00 B0 7F FF 01", "6B00");
    await expectSw(card, "00 B0 80 00 01", "6A86"); // P1 bit 8: short EF identifier
    await expectSw(card, "00 B0 00 00", "6700"); // no Le
    await expectSw(card, "00 B0 00 00 01 00 00", "6700"); // data in a case 2 command
    await expectSw(card, "00 B0 00 00 05 01", "6700"); // Lc longer than the body
    await expectSw(card, "00 B0 00 00 00 01 00", "6700"); // extended Le: short APDUs only
    await expectSw(card, selectEf("0017"), "9000");
    await expectSw(card, "00 B0 00 00 00", "6981"); // a key EF is never read
    await expectSw(card, selectEf("0018"), "9000");
    await expectSw(card, "00 B0 00 00 00", "6981");
  });

  test("EF 0006 token info: 32 bytes, JPKIAPICCTOKEN2 space padded", async () => {
    const card = openMyNumberCard(fixture.statePath);
    await expectSw(card, SELECT_AP, "9000");
    await expectSw(card, selectEf("0006"), "9000");
    const info = await expectSw(card, "00 B0 00 00 00", "9000");
    assert.equal(info.toString("latin1"), "JPKIAPICCTOKEN2".padEnd(32, " "));
  });

  test("EF 0001 (signing certificate) needs the signing password; verification is lost on reset", async () => {
    const { card, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0001"), "9000");
      await expectSw(card, "00 B0 00 00 04", "6982");
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD), "9000");
      const der = await readCertificate(card, "0001");
      assert.deepEqual(der, Buffer.from(fixture.state.files["0001"]!, "base64"));
      card.reset();
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0001"), "9000");
      await expectSw(card, "00 B0 00 00 04", "6982");
      card.powerOff();
      await expectSw(card, "00 B0 00 00 04", "6986");
    } finally {
      cleanup();
    }
  });

  test("VERIFY: the status query always answers 63 Cn, also when verified (both T=1 and T=0 forms)", async () => {
    const { card, statePath, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, "00 20 00 80", "6986"); // no PIN EF selected
      await expectSw(card, selectEf("000A"), "9000");
      await expectSw(card, "00 20 00 80", "6981");
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, "00 20 00 80", "63C3");
      await expectSw(card, "00 20 00 80 00", "63C3");
      await expectSw(card, "00 20 00 81", "6A86");
      await expectSw(card, "00 20 01 80", "6A86");
      await expectSw(card, verifyPin("0000"), "63C2");
      assert.equal(triesLeft(statePath, "0018"), 2);
      await expectSw(card, "00 20 00 80", "63C2");
      await expectSw(card, verifyPin("123"), "6700"); // wrong length: no try spent
      await expectSw(card, verifyPin("12345"), "6700");
      await expectSw(card, "00 20 00 80", "63C2");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "9000");
      assert.equal(triesLeft(statePath, "0018"), 3);
      await expectSw(card, "00 20 00 80", "63C3");
      await expectSw(card, "00 20 00 80 00", "63C3");
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, "00 20 00 80", "63C5");
    } finally {
      cleanup();
    }
  });

  test("auth PIN blocks after 3 wrong tries: 63 C2, 63 C1, 63 C0, then 69 83; persisted across power-on", async () => {
    const { card, statePath, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0018"), "9000");
      for (const sw of ["63C2", "63C1", "63C0"]) await expectSw(card, verifyPin("9999"), sw);
      await expectSw(card, "00 20 00 80", "63C0");
      await expectSw(card, "00 20 00 80 00", "63C0");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "6983");
      assert.equal(triesLeft(statePath, "0018"), 0);
      await expectSw(card, selectEf("0017"), "9000");
      await expectSw(card, `80 2A 00 80 33 ${digestInfo(Buffer.from("x")).toString("hex")} 00`, "6982");
      const again = openMyNumberCard(statePath);
      await expectSw(again, SELECT_AP, "9000");
      await expectSw(again, selectEf("0018"), "9000");
      await expectSw(again, "00 20 00 80", "63C0");
      await expectSw(again, verifyPin(TEST_AUTH_PIN), "6983");
      // The signing password is unaffected.
      await expectSw(again, selectEf("001B"), "9000");
      await expectSw(again, "00 20 00 80", "63C5");
    } finally {
      cleanup();
    }
  });

  test("a try that cannot be written is not compared: the right PIN answers 65 81 and verifies nothing", async () => {
    const { card, statePath, cleanup } = await freshCard();
    await expectSw(card, SELECT_AP, "9000");
    await expectSw(card, selectEf("0018"), "9000");
    cleanup(); // the card's storage is gone: every write fails
    assert.throws(() => readFileSync(statePath));
    await expectSw(card, verifyPin(TEST_AUTH_PIN), "6581");
    await expectSw(card, "00 20 00 80", "63C3");
    await expectSw(card, selectEf("0017"), "9000");
    await expectSw(card, `80 2A 00 80 33 ${digestInfo(Buffer.from("x")).toString("hex")} 00`, "6982");
  });

  test("signing password blocks after 5 wrong tries; a lower-case password is a wrong one", async () => {
    const { card, statePath, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD.toLowerCase()), "63C4");
      for (const sw of ["63C3", "63C2", "63C1", "63C0"]) await expectSw(card, verifyPin("WRONG1"), sw);
      await expectSw(card, "00 20 00 80", "63C0");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD), "6983");
      await expectSw(card, "00 24 01 80 06 414243313233", "6983");
      assert.equal(triesLeft(statePath, "001B"), 0);
    } finally {
      cleanup();
    }
  });

  test("a right PIN restores the counter; a wrong one cancels an earlier verification", async () => {
    const { card, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, verifyPin("WRONG1"), "63C4");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD), "9000");
      await expectSw(card, "00 20 00 80", "63C5");
      await expectSw(card, verifyPin("WRONG1"), "63C4");
      await expectSw(card, selectEf("0001"), "9000");
      await expectSw(card, "00 B0 00 00 04", "6982");
    } finally {
      cleanup();
    }
  });

  test("CHANGE REFERENCE DATA 00 24 01 80 after VERIFY", async () => {
    const { card, statePath, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, `00 24 01 80 04 ${ascii("5678")}`, "6982");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "9000");
      await expectSw(card, `00 24 00 80 04 ${ascii("5678")}`, "6A86");
      await expectSw(card, `00 24 01 80 04 ${ascii("12a4")}`, "6A80");
      await expectSw(card, `00 24 01 80 05 ${ascii("56789")}`, "6A80");
      await expectSw(card, "00 24 01 80", "6700");
      const before = readFileSync(statePath);
      await expectSw(card, `00 24 01 80 04 ${ascii("5678")}`, "9000");
      assert.notDeepEqual(readFileSync(statePath), before);
      assert.ok(!readFileSync(statePath, "utf8").includes("5678"), "the PIN is stored hashed");
      card.reset();
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "63C2");
      await expectSw(card, verifyPin("5678"), "9000");
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, `00 24 01 80 06 ${ascii("NEWPW9")}`, "6982");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD), "9000");
      await expectSw(card, `00 24 01 80 06 ${ascii("NEWPW9")}`, "9000");
      await expectSw(card, verifyPin("NEWPW9"), "9000");
    } finally {
      cleanup();
    }
  });

  test("SIGN with both keys: PKCS#1 v1.5 over the host's DigestInfo, verified by Node and OpenSSL", async () => {
    const { card, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      const message = Buffer.from("日本国 公的個人認証サービス 署名テスト", "utf8");
      const di = digestInfo(message);
      const sign = `80 2A 00 80 33 ${di.toString("hex")}`;
      const keys = [
        { key: "0017", pin: "0018", secret: TEST_AUTH_PIN, cert: "000A" },
        { key: "001A", pin: "001B", secret: TEST_SIGN_PASSWORD, cert: "0001" },
      ];
      for (const k of keys) {
        await expectSw(card, selectEf(k.key), "9000");
        await expectSw(card, `${sign} 00`, "6982");
        await expectSw(card, selectEf(k.pin), "9000");
        await expectSw(card, verifyPin(k.secret), "9000");
        const der = await readCertificate(card, k.cert);
        await expectSw(card, selectEf(k.key), "9000");
        const signature = await expectSw(card, `${sign} 00`, "9000"); // T=1: with Le
        assert.equal(signature.length, 256);
        assert.deepEqual(await expectSw(card, sign, "9000"), signature); // T=0: no Le; deterministic
        const certificate = new X509Certificate(der);
        assert.ok(cryptoVerify("sha256", message, certificate.publicKey, signature), `${k.key} Node verify`);
        withTempDir((dir) => {
          const { pem } = writeCertificate(dir, "cert", der);
          writeFileSync(path.join(dir, "message"), message);
          writeFileSync(path.join(dir, "signature"), signature);
          const pub = runTool("openssl", [
            "x509",
            "-in",
            pem,
            "-pubkey",
            "-noout",
            "-out",
            path.join(dir, "pub.pem"),
          ]);
          assert.equal(pub.code, 0, pub.stderr);
          const checked = runTool("openssl", [
            "dgst",
            "-sha256",
            "-verify",
            path.join(dir, "pub.pem"),
            "-signature",
            path.join(dir, "signature"),
            path.join(dir, "message"),
          ]);
          assert.equal(checked.code, 0, checked.stderr);
          assert.match(checked.stdout, /Verified OK/);
        });
      }
    } finally {
      cleanup();
    }
  });

  test("SIGN: 245 bytes of data are the most a 2048-bit key takes (256 − 11); more is 67 00", async () => {
    const { card, cleanup } = await freshCard();
    try {
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "9000");
      await expectSw(card, selectEf("0017"), "9000");
      assert.equal((await expectSw(card, `80 2A 00 80 F5 ${"AB".repeat(245)} 00`, "9000")).length, 256);
      await expectSw(card, `80 2A 00 80 F6 ${"AB".repeat(246)} 00`, "6700");
      await expectSw(card, "80 2A 00 80 00", "6700");
      await expectSw(card, "80 2A 00 80", "6700");
      await expectSw(card, "80 2A 00 00 01 00", "6A86");
      await expectSw(card, "00 2A 00 80 01 00", "6D00");
      await expectSw(card, "80 B0 00 00 00", "6D00");
      await expectSw(card, selectEf("000A"), "9000");
      await expectSw(card, "80 2A 00 80 01 00", "6981");
      // The auth PIN does not open the signing key.
      await expectSw(card, selectEf("001A"), "9000");
      await expectSw(card, "80 2A 00 80 01 00", "6982");
    } finally {
      cleanup();
    }
  });

  test("openMyNumberCard refuses a SIM state and a missing file; openSimAppletCard a card state", async () => {
    assert.throws(() => openSimAppletCard(fixture.statePath), /not a SIM/);
    const sim = await makeCardStateFile({ product: "sim" });
    try {
      assert.throws(() => openMyNumberCard(sim.statePath), /not a My Number card/);
      assert.throws(() => openMyNumberCard(path.join(sim.dir, "missing.json")), /cannot read/);
    } finally {
      sim.cleanup();
    }
  });
});

describe("SIM applet card", () => {
  test("SIM ATR with a valid TCK; label JPKIAPUICCTOKEN; EF 000A needs the auth PIN", async () => {
    const sim = await makeCardStateFile({ product: "sim" });
    try {
      const card = openSimAppletCard(sim.statePath);
      assert.equal(card.atr, SIM_ATR);
      assert.equal(
        card.atr.subarray(1).reduce((x, b) => x ^ b, 0),
        0,
        "T0..TCK XOR to 00",
      );
      await expectSw(card, SELECT_AP, "9000");
      await expectSw(card, selectEf("0006"), "9000");
      assert.equal(
        (await expectSw(card, "00 B0 00 00 00", "9000")).toString("latin1").trimEnd(),
        "JPKIAPUICCTOKEN",
      );
      await expectSw(card, selectEf("000A"), "9000");
      await expectSw(card, "00 B0 00 00 04", "6982");
      await expectSw(card, selectEf("000B"), "9000");
      await expectSw(card, "00 B0 00 00 04", "9000");
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, "00 20 00 80", "63C3");
      await expectSw(card, verifyPin(TEST_AUTH_PIN), "9000");
      const der = await readCertificate(card, "000A");
      assert.deepEqual(der, Buffer.from(sim.state.files["000A"]!, "base64"));
    } finally {
      sim.cleanup();
    }
  });

  test("a SIM without a signing certificate: no EF 0001/0002/001A; password 001B reads as blocked", async () => {
    const sim = await makeCardStateFile({ product: "sim", withoutSigning: true });
    try {
      const card = openSimAppletCard(sim.statePath);
      const before = readFileSync(sim.statePath);
      await expectSw(card, SELECT_AP, "9000");
      for (const fid of ["0001", "0002", "001A"]) await expectSw(card, selectEf(fid), "6A82");
      // OpenSC queries both PINs at every bind: 63 C0 keeps the auth key usable (JPKI-FACTS §1).
      await expectSw(card, selectEf("001B"), "9000");
      await expectSw(card, "00 20 00 80", "63C0");
      await expectSw(card, "00 20 00 80 00", "63C0");
      await expectSw(card, verifyPin(TEST_SIGN_PASSWORD), "6983");
      await expectSw(card, `00 24 01 80 06 ${ascii("NEWPW9")}`, "6983");
      assert.deepEqual(readFileSync(sim.statePath), before);
      await expectSw(card, selectEf("0018"), "9000");
      await expectSw(card, "00 20 00 80", "63C3");
      await expectSw(card, selectEf("0017"), "9000");
    } finally {
      sim.cleanup();
    }
  });
});

describe("InProcessTransport", () => {
  test("ATR, transmit, reset and close", async () => {
    const own = await makeCardStateFile();
    try {
      const transport = new InProcessTransport(openMyNumberCard(own.statePath));
      assert.equal((await transport.atr()).toString("hex"), "3be000ff8131fe4514");
      assert.equal((await transport.transmit(hex(SELECT_AP))).toString("hex"), "9000");
      assert.equal((await transport.transmit(hex(selectEf("001B")))).toString("hex"), "9000");
      assert.equal((await transport.transmit(hex(verifyPin(TEST_SIGN_PASSWORD)))).toString("hex"), "9000");
      await transport.reset();
      assert.equal((await transport.transmit(hex("00 20 00 80"))).toString("hex"), "6986");
      await transport.close();
      await transport.close();
      await assert.rejects(transport.transmit(hex(SELECT_AP)), /closed/);
    } finally {
      own.cleanup();
    }
  });
});
