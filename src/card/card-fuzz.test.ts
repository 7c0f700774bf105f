/**
 * Robustness and secrecy of the emulated cards: random and mutated APDUs (fast-check) never make the
 * card throw, every answer ends with a valid status word, a rejected command leaves the state file
 * byte-identical; no response of a full session contains private key bytes.
 */
import assert from "node:assert/strict";
import { createHash, createPrivateKey } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { encodeCommandApdu, hex } from "./apdu.js";
import {
  type CardStateFixture,
  makeCardStateFile,
  TEST_AUTH_PIN,
  TEST_SIGN_PASSWORD,
} from "./card-fixture.js";
import type { JpkiApplicationCard } from "./mynacard.js";
import { openMyNumberCard } from "./mynacard.js";
import { openSimAppletCard } from "./sim-applet-card.js";
import type { JpkiApState } from "./state.js";
import { isValidStatusWord, statusWordName } from "./status-words.js";

const ascii = (text: string) => Buffer.from(text, "latin1").toString("hex");
const digestInfo = Buffer.concat([
  hex("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"),
  createHash("sha256").update("fuzz").digest(),
]).toString("hex");

/** Commands a real session sends, used whole and as seeds for mutation. */
const VALID = [
  "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
  "00 A4 02 0C 02 00 01",
  "00 A4 02 0C 02 00 02",
  "00 A4 02 0C 02 00 06",
  "00 A4 02 0C 02 00 0A",
  "00 A4 02 0C 02 00 0B",
  "00 A4 02 0C 02 00 17",
  "00 A4 02 0C 02 00 18",
  "00 A4 02 0C 02 00 1A",
  "00 A4 02 0C 02 00 1B",
  "00 B0 00 00 04",
  "00 B0 00 00 00",
  "00 B0 01 00 00",
  "00 20 00 80",
  "00 20 00 80 00",
  `00 20 00 80 04 ${ascii(TEST_AUTH_PIN)}`,
  `00 20 00 80 06 ${ascii(TEST_SIGN_PASSWORD)}`,
  `00 20 00 80 04 ${ascii("0000")}`,
  `00 24 01 80 04 ${ascii("4321")}`,
  `00 24 01 80 06 ${ascii("ZZZ999")}`,
  `80 2A 00 80 33 ${digestInfo} 00`,
  `80 2A 00 80 33 ${digestInfo}`,
].map((text) => hex(text));

const byte = fc.integer({ min: 0, max: 255 });

const structured = fc
  .record({
    cla: fc.oneof(fc.constantFrom(0x00, 0x80), byte),
    ins: fc.oneof(fc.constantFrom(0xa4, 0xb0, 0x20, 0x24, 0x2a), byte),
    p1: fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x04, 0x08), byte),
    p2: fc.oneof(fc.constantFrom(0x00, 0x0c, 0x80), byte),
    data: fc.uint8Array({ maxLength: 300 }),
    ne: fc.option(fc.integer({ min: 1, max: 65536 }), { nil: undefined }),
    extended: fc.boolean(),
  })
  .map((init) => encodeCommandApdu(init));

const mutated = fc
  .tuple(
    fc.constantFrom(...VALID),
    fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), value: byte }),
        fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
        fc.record({
          kind: fc.constant("append" as const),
          bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
        }),
      ),
      { maxLength: 3 },
    ),
  )
  .map(([seed, mutations]) => {
    let apdu = Buffer.from(seed);
    for (const m of mutations) {
      if (m.kind === "flip" && apdu.length > 0) apdu[m.at % apdu.length] = m.value;
      else if (m.kind === "truncate") apdu = apdu.subarray(0, m.at % (apdu.length + 1));
      else if (m.kind === "append") apdu = Buffer.concat([apdu, m.bytes]);
    }
    return apdu;
  });

const command = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  { weight: 3, arbitrary: structured },
  { weight: 5, arbitrary: mutated },
  { weight: 3, arbitrary: fc.constantFrom(...VALID) },
);

/** Whether a command with this answer may change the persistent state: PIN tries and PIN changes only. */
function mayChangeState(apdu: Buffer, sw: number): boolean {
  if (apdu[0] !== 0x00) return false;
  if (apdu[1] === 0x20) return sw === 0x9000 || (sw & 0xfff0) === 0x63c0;
  if (apdu[1] === 0x24) return sw === 0x9000;
  return false;
}

/**
 * The private parts of every key: d, p, q, dP, dQ, qInv (RFC 8017 §3.2). The PKCS#8 as a whole is
 * checked separately: its windows would also match the modulus, which the certificates rightly carry.
 */
function secretsOf(state: JpkiApState): Buffer[] {
  const secrets: Buffer[] = [];
  for (const pkcs8 of Object.values(state.keys)) {
    const der = Buffer.from(pkcs8, "base64");
    const jwk = createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({ format: "jwk" });
    for (const part of [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi])
      secrets.push(Buffer.from(part!, "base64url"));
  }
  return secrets;
}

/** Fails when any 16-byte run of any private part, or a whole PKCS#8 key, appears in `haystack`. */
function assertNoSecret(haystack: Buffer, state: JpkiApState): void {
  for (const pkcs8 of Object.values(state.keys))
    assert.equal(haystack.indexOf(Buffer.from(pkcs8, "base64")), -1, "a PKCS#8 key found in the responses");
  const secrets = secretsOf(state);
  assert.equal(secrets.length, 6 * Object.keys(state.keys).length, "six private parts per key");
  for (const secret of secrets)
    for (let i = 0; i + 16 <= secret.length; i++)
      assert.equal(
        haystack.indexOf(secret.subarray(i, i + 16)),
        -1,
        `key bytes found in the responses (offset ${i})`,
      );
}

/** A valid session start; each run replays a random prefix of it, so fuzzing also reaches verified states. */
const SETUP = [
  "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
  "00 A4 02 0C 02 00 18",
  `00 20 00 80 04 ${ascii(TEST_AUTH_PIN)}`,
  "00 A4 02 0C 02 00 1B",
  `00 20 00 80 06 ${ascii(TEST_SIGN_PASSWORD)}`,
  "00 A4 02 0C 02 00 17",
].map((text) => hex(text));

const CONFIGS = [
  { name: "My Number card", product: "my-number-card", withoutSigning: false },
  { name: "SIM applet", product: "sim", withoutSigning: false },
  { name: "SIM applet without signing key", product: "sim", withoutSigning: true },
] as const;

for (const { name, product, withoutSigning } of CONFIGS) {
  describe(`fuzzing the ${name}`, () => {
    let fixture: CardStateFixture;
    let original: Buffer;
    const open = (path: string): JpkiApplicationCard =>
      product === "sim" ? openSimAppletCard(path) : openMyNumberCard(path);
    before(async () => {
      fixture = await makeCardStateFile({ product, withoutSigning });
      original = readFileSync(fixture.statePath);
    });
    after(() => fixture.cleanup());

    test("random and mutated APDUs: no exception, valid status words, rejected commands change nothing", async () => {
      const responses: Buffer[] = [];
      let signatures = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.nat(SETUP.length),
          fc.array(command, { minLength: 1, maxLength: 40 }),
          async (setup, commands) => {
            writeFileSync(fixture.statePath, original);
            const card = open(fixture.statePath);
            for (const apdu of SETUP.slice(0, setup)) responses.push(await card.transmit(apdu));
            for (const apdu of commands) {
              const before = readFileSync(fixture.statePath);
              const response = await card.transmit(apdu);
              responses.push(response);
              assert.ok(Buffer.isBuffer(response) && response.length >= 2, "a response has a status word");
              const sw = response.readUInt16BE(response.length - 2);
              assert.ok(isValidStatusWord(sw), `invalid SW ${sw.toString(16)} for ${apdu.toString("hex")}`);
              if (sw === 0x9000 && apdu[0] === 0x80 && apdu[1] === 0x2a) signatures++;
              if (sw !== 0x9000) assert.equal(response.length, 2, `${statusWordName(sw)} carries no data`);
              if (!mayChangeState(apdu, sw))
                assert.deepEqual(
                  readFileSync(fixture.statePath),
                  before,
                  `state changed by ${apdu.toString("hex")}`,
                );
            }
          },
        ),
        // One run always completes the session and signs, so the deepest state is fuzzed from every time.
        { numRuns: 150, examples: [[SETUP.length, [hex(`80 2A 00 80 33 ${digestInfo} 00`)]]] },
      );
      const all = Buffer.concat(responses);
      assertNoSecret(all, fixture.state);
      assert.ok(signatures > 0, "some runs reached a signature");
    });
  });
}

test("a full session's responses never contain private key bytes", async () => {
  const own = await makeCardStateFile();
  try {
    const card = openMyNumberCard(own.statePath);
    const responses: Buffer[] = [];
    const send = async (text: string) => {
      const response = await card.transmit(hex(text));
      responses.push(response);
      return response;
    };
    await send("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01");
    await send("00 A4 02 0C 02 00 18");
    await send(`00 20 00 80 04 ${ascii(TEST_AUTH_PIN)}`);
    await send("00 A4 02 0C 02 00 1B");
    await send(`00 20 00 80 06 ${ascii(TEST_SIGN_PASSWORD)}`);
    // Every EF, every offset a 15-bit P1-P2 can name in 256-byte steps, including the key and PIN EFs.
    for (const fid of ["0001", "0002", "0006", "000A", "000B", "0017", "0018", "001A", "001B"]) {
      await send(`00 A4 02 0C 02 ${fid}`);
      for (let offset = 0; offset < 0x8000; offset += 0x100)
        await send(`00 B0 ${offset.toString(16).padStart(4, "0")} 00`);
    }
    for (const key of ["0017", "001A"]) {
      await send(`00 A4 02 0C 02 ${key}`);
      for (let i = 0; i < 20; i++)
        await send(`80 2A 00 80 33 ${digestInfo.slice(0, -2)}${i.toString(16).padStart(2, "0")} 00`);
      await send("80 2A 00 80 01 00 00");
      await send(`80 2A 00 80 F5 ${"FF".repeat(245)} 00`);
    }
    const all = Buffer.concat(responses);
    assert.ok(all.length > 20 * 256 * 2, "the session did read and sign");
    assertNoSecret(all, own.state);
    // The scan itself finds a private part when one is there.
    assert.throws(() =>
      assertNoSecret(Buffer.concat([all, secretsOf(own.state)[0]!.subarray(40, 60)]), own.state),
    );
  } finally {
    own.cleanup();
  }
});
