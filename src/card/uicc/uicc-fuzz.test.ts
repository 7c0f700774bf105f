/**
 * Robustness of the SIM (UICC) under random and mutated APDUs (fast-check).
 *
 * From outside any secure channel, in every context a command can meet (nothing selected: MF, EF ICCID;
 * the card manager before and after its SCP03 session opens; the J-LIS security domain before and after
 * an SCP11a session; the JPKI applet): transmit never throws nor faults (6F 00); every answer ends in a
 * valid status word and an error carries no data; a rejected command leaves the state file byte-identical,
 * and only the phone's PIN commands (VERIFY, CHANGE REFERENCE DATA) change it at all, since no random
 * command carries a valid C-MAC. After a run, a channel opened before it is either ended or still in
 * step with its host; the carrier, J-LIS and the phone still complete honest sessions on the same, still
 * powered, card (one run in three: they are most of a run's time).
 *
 * Inside the channels: a genuine protected command altered in any byte the C-MAC covers is refused and
 * changes nothing; mutated commands that the authenticated host itself wraps reach the card manager's
 * and the J-LIS domain's parsers, which answer them without faults and change nothing when they refuse.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { parseCertificate } from "../../pki/certificate.js";
import { type CommandApduInit, encodeCommandApdu, hex, parseCommandApdu } from "../apdu.js";
import type { CardTransport } from "../card.js";
import { openScp03, openScp11, transmitSecure } from "../gp/channel.js";
import { Scp03Host } from "../gp/scp03.js";
import { Scp11Host } from "../gp/scp11.js";
import { JPKI_AP_AID } from "../jpki-applet.js";
import { isValidStatusWord, SW, statusWordName } from "../status-words.js";
import { CARD_MANAGER_SECURITY_LEVEL, CardManagerSession, JlisDomainSession } from "./host.js";
import { loadUiccState, type UiccState } from "./state.js";
import { ISD_AID, JLIS_SD_AID, JLIS_SD_SCP11_KEY_VERSION, openUicc, type Uicc } from "./uicc.js";
import { makeSimStateFile, personaliseSim, type SimFixture, TEST_SIM_PIN } from "./uicc-fixture.js";

type Transmit = Pick<CardTransport, "transmit">;

const swOf = (response: Buffer) => response.readUInt16BE(response.length - 2);
const ascii = (text: string) => Buffer.from(text, "latin1").toString("hex");
const signedMessage = Buffer.from("fuzz");
const digestInfo = Buffer.concat([
  hex("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"),
  createHash("sha256").update(signedMessage).digest(),
]).toString("hex");

/** The card itself as a transport: no reset at connection, so what fuzzing left in volatile memory stays. */
const direct = (card: Uicc): Transmit => ({ transmit: (command) => card.transmit(command) });

/** Hex as the specifications show it; each one must be a well-formed APDU. */
function apdu(text: string): Buffer {
  const bytes = hex(text);
  parseCommandApdu(bytes);
  return bytes;
}

/** Commands written from the specifications, besides those recorded from real sessions. */
const WRITTEN = [
  // MF and EF ICCID (ETSI TS 102 221 §11.1.1, §13.2).
  "00 A4 00 0C 02 3F 00",
  "00 A4 00 04 02 2F E2",
  "00 B0 00 00 0A",
  "00 B0 00 05 00",
  // Card manager: SELECT (GPCS §11.9), GET EID (SGP.22 §5.7.20), INITIALIZE UPDATE (Amd D §7.1.1),
  // GET STATUS, DELETE and INSTALL [for extradition] (GPCS §11.4, §11.2, §11.5).
  "00 A4 04 00 08 A0 00 00 01 51 00 00 00 00",
  "80 E2 91 00 06 BF 3E 03 5C 01 5A 00",
  "80 50 00 00 08 01 02 03 04 05 06 07 08 00",
  "80 50 30 00 08 01 02 03 04 05 06 07 08 00",
  "80 F2 40 02 02 4F 00 00",
  "80 E4 00 80 0A 4F 08 D3 92 F0 00 26 53 44 01 00",
  "80 E6 10 00 17 08 D3 92 F0 00 26 53 44 01 00 0A D3 92 F0 00 26 01 00 00 00 01 00 00",
  // J-LIS security domain: GET DATA 'BF21' (Amd F §7.4), RESET RETRY COUNTER, wipe.
  "00 A4 04 00 08 D3 92 F0 00 26 53 44 01 00",
  "80 CA BF 21 00",
  "84 2C 02 18 04 31 32 33 34",
  "84 E4 00 00 0C 4F 0A D3 92 F0 00 26 01 00 00 00 01 00",
  // The JPKI applet (JPKI-FACTS §1) and this UICC's GET DATA of the instance identifier.
  "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
  "00 A4 02 0C 02 00 18",
  "00 A4 02 0C 02 00 17",
  "00 A4 02 0C 02 00 0A",
  "00 A4 02 0C 02 00 1B",
  "00 B0 00 00 00",
  "00 20 00 80",
  `00 20 00 80 04 ${ascii(TEST_SIM_PIN)}`,
  `00 20 00 80 04 ${ascii("9999")}`,
  `00 24 01 80 04 ${ascii("1357")}`,
  "80 CA 00 C1 00",
  `80 2A 00 80 33 ${digestInfo} 00`,
].map(apdu);

/** Every instruction some part of the UICC answers. */
const KNOWN_INS = [0xa4, 0xb0, 0x20, 0x24, 0x2a, 0xca, 0xe2, 0xe6, 0xe4, 0xf2, 0x50, 0x82, 0x88, 0x46, 0x2c];
/** The same without GENERATE ASYMMETRIC KEY PAIR: one that succeeds costs an RSA key generation. */
const INS_BUT_KEY_GENERATION = KNOWN_INS.filter((ins) => ins !== 0x46);

const byte = fc.integer({ min: 0, max: 255 });
/** Mostly short, sometimes up to 300 bytes (past the short Lc, into extended lengths). */
const someBytes = fc
  .oneof(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 300, size: "max" }))
  .map((b) => Buffer.from(b));
const someNe = fc.option(fc.integer({ min: 1, max: 65536 }), { nil: undefined });

/** `arbitrary` in `weight` draws out of `outOf`, undefined otherwise. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>, weight: number, outOf: number) =>
  fc.oneof({ weight, arbitrary }, { weight: outOf - weight, arbitrary: fc.constant(undefined) });

type Mutation =
  | { kind: "set"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "delete"; at: number }
  | { kind: "append"; bytes: Uint8Array };

const mutations = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: byte }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  ),
  { minLength: 1, maxLength: 3 },
);

function mutate(bytes: Buffer, changes: readonly Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const m of changes) {
    if (m.kind === "set" && out.length > 0) out[m.at % out.length] = m.value;
    else if (m.kind === "truncate") out = out.subarray(0, m.at % (out.length + 1));
    else if (m.kind === "delete" && out.length > 0) {
      const at = m.at % out.length;
      out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    } else if (m.kind === "append") out = Buffer.concat([out, m.bytes]);
  }
  return out;
}

/** Random bytes; random headers; real headers with random P1, P2 and lengths; mutated and whole seeds. */
function commandArbitrary(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  const structured = fc
    .record({
      cla: fc.oneof(fc.constantFrom(0x00, 0x80, 0x84), byte),
      ins: fc.oneof(fc.constantFrom(...KNOWN_INS), byte),
      p1: fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x04, 0x08, 0x0c, 0x10, 0x20, 0x40, 0x80, 0x91), byte),
      p2: fc.oneof(fc.constantFrom(0x00, 0x02, 0x0c, 0x17, 0x18, 0x1a, 0x1b, 0x21, 0x80, 0xc1), byte),
      data: someBytes,
      ne: someNe,
      extended: fc.boolean(),
    })
    .map((init) => encodeCommandApdu(init));
  const reparametrised = fc
    .record({
      seed: fc.constantFrom(...seeds),
      p1: byte,
      p2: byte,
      data: fc.option(someBytes, { nil: undefined }),
      ne: someNe,
    })
    .map(({ seed, p1, p2, data, ne }) => {
      const { cla, ins, data: seedData } = parseCommandApdu(seed);
      return encodeCommandApdu({ cla, ins, p1, p2, data: data ?? seedData, ne });
    });
  return fc.oneof(
    { weight: 2, arbitrary: someBytes },
    { weight: 2, arbitrary: structured },
    { weight: 2, arbitrary: reparametrised },
    {
      weight: 5,
      arbitrary: fc.tuple(fc.constantFrom(...seeds), mutations).map(([seed, m]) => mutate(seed, m)),
    },
    { weight: 2, arbitrary: fc.constantFrom(...seeds) },
  );
}

/** VERIFY and CHANGE REFERENCE DATA to the applet: the only commands that may change the state without a secure channel. */
const isPinCommand = (command: Buffer) => command[0] === 0x00 && (command[1] === 0x20 || command[1] === 0x24);

/** 90 00, 61 xx or 63 Cx: the command was carried out (63 Cx: a PIN try was spent). */
const isAccepted = (sw: number) => sw === SW.OK || sw >> 8 === 0x61 || (sw & 0xfff0) === 0x63c0;

/**
 * Sends one command and checks what holds for every command: an answer with a valid status word, no
 * fault, no data with an error, no state change when rejected.
 */
async function sendChecked(
  card: Uicc,
  statePath: string,
  command: Buffer,
): Promise<{ response: Buffer; sw: number; changed: boolean }> {
  const name = command.toString("hex");
  const before = readFileSync(statePath);
  const response = await card.transmit(command); // a throw fails the property
  assert.ok(Buffer.isBuffer(response) && response.length >= 2, `no status word for ${name}`);
  const sw = swOf(response);
  assert.ok(isValidStatusWord(sw), `invalid SW ${sw.toString(16)} for ${name}`);
  assert.notEqual(sw, SW.NO_DIAGNOSIS, `emulator fault for ${name}`);
  const changed = !readFileSync(statePath).equals(before);
  if (!isAccepted(sw)) {
    assert.equal(response.length, 2, `${statusWordName(sw)} carries no data (${name})`);
    assert.ok(!changed, `rejected ${name} (${statusWordName(sw)}) changed the state`);
  }
  return { response, sw, changed };
}

/** What a run of fuzzed commands did that the checks afterwards must allow for. */
interface RunLog {
  /** CHANGE REFERENCE DATA answered 90 00: the PIN may be another one. */
  pinChanged: boolean;
}

/** A command from outside any channel: on top of sendChecked, only PIN commands may change the state. */
async function sendFuzzed(card: Uicc, statePath: string, command: Buffer, log: RunLog): Promise<void> {
  const { sw, changed } = await sendChecked(card, statePath, command);
  if (!isAccepted(sw)) return;
  const name = command.toString("hex");
  // Bit b3 of CLA announces GP secure messaging: without the session keys no C-MAC can be right.
  assert.ok(!(command[0]! & 0x04), `${name} succeeded with a C-MAC no one computed`);
  assert.ok(!changed || isPinCommand(command), `${name} changed the state`);
  if (command[1] === 0x24 && sw === SW.OK) log.pinChanged = true;
}

/** The state without the applet's PINs, which the phone's own commands may change. */
function withoutPins(state: UiccState): UiccState {
  const copy = structuredClone(state);
  copy.applet!.jpki.pins = {};
  return copy;
}

async function selectByName(t: Transmit, aid: Buffer, p2 = 0x00): Promise<void> {
  const response = await t.transmit(
    encodeCommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2, data: aid, ne: p2 === 0x0c ? undefined : 256 }),
  );
  assert.equal(swOf(response), SW.OK, `SELECT ${aid.toString("hex")}`);
}

/** The carrier's side of SCP03 on the card manager (as CardManagerSession, keeping the host at hand). */
async function openCarrierChannel(t: Transmit, sim: SimFixture): Promise<Scp03Host> {
  await selectByName(t, ISD_AID);
  const host = new Scp03Host({ keys: sim.carrierKeys, keyVersion: sim.carrierKeys.keyVersion });
  await openScp03(t, host, CARD_MANAGER_SECURITY_LEVEL);
  return host;
}

/** J-LIS's side of SCP11a on its security domain (as JlisDomainSession, keeping the host at hand). */
async function openJlisChannel(t: Transmit, sim: SimFixture): Promise<Scp11Host> {
  await selectByName(t, JLIS_SD_AID);
  const host = new Scp11Host({
    variant: "a",
    cardPublicKey: createPublicKey({
      key: parseCertificate(sim.sdCertificate).spki,
      format: "der",
      type: "spki",
    }),
    keyVersion: JLIS_SD_SCP11_KEY_VERSION,
    hostKey: sim.jlis.key,
    hostCertificates: sim.jlis.chain,
  });
  await openScp11(t, host);
  return host;
}

type OpenChannel = (t: Transmit, sim: SimFixture) => Promise<Scp03Host | Scp11Host>;

/** GET STATUS of the applications (P1 40, TLV): harmless, answered inside the carrier's channel. */
const GET_STATUS = apdu("80 F2 40 02 02 4F 00 00");
/** INSTALL [for personalization] of the applet: harmless (volatile), answered inside J-LIS's channel. */
const INSTALL_FOR_PERSONALIZATION = apdu("80 E6 20 00 0F 00 00 0A D3 92 F0 00 26 01 00 00 00 01 00 00");

/** The phone's session: select, VERIFY, SIGN; the signature must verify under the certificate in EF 000A. */
async function phoneSigns(t: Transmit, state: UiccState, pin: string): Promise<void> {
  const send = async (text: string) => swOf(await t.transmit(hex(text)));
  assert.equal(await send("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"), SW.OK);
  assert.equal(await send("00 A4 02 0C 02 00 18"), SW.OK);
  assert.equal(await send(`00 20 00 80 04 ${ascii(pin)}`), SW.OK, "VERIFY of the PIN");
  assert.equal(await send("00 A4 02 0C 02 00 17"), SW.OK);
  const answer = await t.transmit(hex(`80 2A 00 80 33 ${digestInfo} 00`));
  assert.equal(swOf(answer), SW.OK, "SIGN");
  const certificate = Buffer.from(state.applet!.jpki.files["000A"]!, "base64");
  const key = createPublicKey({ key: parseCertificate(certificate).spki, format: "der", type: "spki" });
  assert.ok(verify("sha256", signedMessage, key, answer.subarray(0, -2)), "the signature verifies");
}

/** A host channel opened before fuzzing, and a harmless protected command to send through it afterwards. */
interface SessionCheck {
  host: Scp03Host | Scp11Host;
  command: Buffer;
}

interface FuzzContext {
  name: string;
  /** Longest prefix of honest commands `enter` may send after the context's own SELECT. */
  prefixes: number;
  /** Brings a freshly powered card into the context; returns the open host channel, if any. */
  enter(t: Transmit, sim: SimFixture, prefix: number): Promise<SessionCheck | undefined>;
}

const CONTEXTS: FuzzContext[] = [
  {
    name: "nothing selected (MF, EF ICCID)",
    prefixes: 1,
    async enter(t, _sim, prefix) {
      if (prefix > 0) assert.equal(swOf(await t.transmit(hex("00 A4 00 0C 02 2F E2"))), SW.OK);
      return undefined;
    },
  },
  {
    name: "the card manager, no session",
    prefixes: 0,
    async enter(t) {
      await selectByName(t, ISD_AID);
      return undefined;
    },
  },
  {
    name: "the card manager in the carrier's SCP03 session",
    prefixes: 0,
    async enter(t, sim) {
      return { host: await openCarrierChannel(t, sim), command: GET_STATUS };
    },
  },
  {
    name: "the J-LIS domain, no session",
    prefixes: 0,
    async enter(t) {
      await selectByName(t, JLIS_SD_AID);
      return undefined;
    },
  },
  {
    name: "the J-LIS domain in J-LIS's SCP11a session",
    prefixes: 0,
    async enter(t, sim) {
      return { host: await openJlisChannel(t, sim), command: INSTALL_FOR_PERSONALIZATION };
    },
  },
  {
    name: "the JPKI applet",
    // SELECT the PIN EF, VERIFY, SELECT the key: fuzzing also starts from the verified state.
    prefixes: 3,
    async enter(t, _sim, prefix) {
      await selectByName(t, JPKI_AP_AID, 0x0c);
      const steps = ["00 A4 02 0C 02 00 18", `00 20 00 80 04 ${ascii(TEST_SIM_PIN)}`, "00 A4 02 0C 02 00 17"];
      for (const step of steps.slice(0, prefix)) assert.equal(swOf(await t.transmit(hex(step))), SW.OK);
      return undefined;
    },
  },
];

/** Genuine commands of each owner that change the state; tampered copies of them must not. */
const CARRIER_COMMANDS = [
  // DELETE the applet.
  "80 E4 00 00 0C 4F 0A D3 92 F0 00 26 01 00 00 00 01 00",
  // INSTALL [for extradition] of the applet back to the card manager.
  "80 E6 10 00 17 08 A0 00 00 01 51 00 00 00 00 0A D3 92 F0 00 26 01 00 00 00 01 00 00",
].map(apdu);
const JLIS_COMMANDS = [
  // RESET RETRY COUNTER of the user-authentication PIN to "2468".
  "80 2C 02 18 04 32 34 36 38",
  // Wipe the applet.
  "80 E4 00 00 0C 4F 0A D3 92 F0 00 26 01 00 00 00 01 00",
  // GENERATE ASYMMETRIC KEY PAIR 17, nonce '81' of 16 bytes, extended Le.
  "80 46 00 17 00 00 12 81 10 00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00 00",
].map(apdu);

/** The bytes of a wrapped command the C-MAC covers: all but Le (Amd D §6.2.4). */
function macCoveredLength(wrapped: Buffer): number {
  const { ne, extended } = parseCommandApdu(wrapped);
  return wrapped.length - (ne === undefined ? 0 : extended ? 2 : 1);
}

describe("fuzzing the SIM (UICC)", () => {
  let sim: SimFixture;
  let personalised: Buffer;
  let personalisedState: UiccState;
  const seeds: Buffer[] = [...WRITTEN];

  before(async () => {
    sim = makeSimStateFile();
    const card = openUicc(sim.statePath);
    // Every command of a real personalisation and of the sessions after it becomes a seed.
    const recording: Transmit = {
      transmit: (command) => {
        seeds.push(Buffer.from(command));
        return card.transmit(command);
      },
    };
    await personaliseSim(recording, sim);
    const jlis = await JlisDomainSession.open(recording, {
      sdCertificate: sim.sdCertificate,
      credentials: sim.jlis,
    });
    await jlis.resetRetryCounter(0x18, TEST_SIM_PIN);
    await JlisDomainSession.open(recording, {
      sdCertificate: sim.sdCertificate,
      credentials: sim.jlis,
      variant: "b",
    });
    await (await CardManagerSession.open(recording, sim.carrierKeys)).status();
    personalisedState = loadUiccState(sim.statePath);
    await phoneSigns(recording, personalisedState, TEST_SIM_PIN);
    personalised = readFileSync(sim.statePath);
  });
  after(() => sim.cleanup());

  /** A freshly powered card on the personalised state. */
  function freshCard(): { card: Uicc; t: Transmit } {
    writeFileSync(sim.statePath, personalised);
    const card = openUicc(sim.statePath);
    return { card, t: direct(card) };
  }

  for (const context of CONTEXTS) {
    test(`in ${context.name}: valid answers, rejected commands change nothing, honest sessions still work`, async () => {
      let oldSessionsKept = 0;
      let oldSessionsEnded = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.nat(context.prefixes),
          fc.array(commandArbitrary(seeds), { minLength: 1, maxLength: 20 }),
          // One run in three ends with the honest sessions (a card manager, a J-LIS and a phone session).
          fc.nat(2).map((n) => n === 0),
          async (prefix, commands, honestSessions) => {
            const { card, t } = freshCard();
            const session = await context.enter(t, sim, prefix);
            const log: RunLog = { pinChanged: false };
            for (const command of commands) await sendFuzzed(card, sim.statePath, command, log);

            const state = loadUiccState(sim.statePath);
            assert.deepEqual(
              withoutPins(state),
              withoutPins(personalisedState),
              "only PINs may have changed",
            );
            const pin = state.applet!.jpki.pins["0018"]!;
            const original = personalisedState.applet!.jpki.pins["0018"]!;
            if (!log.pinChanged) assert.deepEqual([pin.hash, pin.salt], [original.hash, original.salt]);

            if (session) {
              // The channel opened before fuzzing: ended (a secure channel error, a SELECT, a new
              // authentication) or still in step with the host, whose checks its answer then passes.
              const response = await t.transmit(session.host.wrapCommand(session.command));
              if (swOf(response) === SW.OK) {
                assert.equal(swOf(session.host.unwrapResponse(response)), SW.OK);
                oldSessionsKept++;
              } else oldSessionsEnded++;
            }
            if (!honestSessions) return;
            // Fresh honest sessions on the same card: the carrier, J-LIS, then the phone.
            const carrier = await openCarrierChannel(t, sim);
            assert.equal(swOf(await transmitSecure(t, carrier, GET_STATUS)), SW.OK);
            const jlis = await JlisDomainSession.open(t, {
              sdCertificate: sim.sdCertificate,
              credentials: sim.jlis,
            });
            if (log.pinChanged || pin.triesLeft === 0) await jlis.resetRetryCounter(0x18, TEST_SIM_PIN);
            await phoneSigns(t, state, TEST_SIM_PIN);
          },
        ),
        { numRuns: 100 },
      );
      if (oldSessionsKept + oldSessionsEnded > 0) {
        assert.ok(oldSessionsKept > 0, "some runs left the channel open");
        assert.ok(oldSessionsEnded > 0, "some runs ended the channel");
      }
    });
  }

  const OWNERS: { name: string; open: OpenChannel; commands: Buffer[] }[] = [
    { name: "the carrier's SCP03 channel", open: openCarrierChannel, commands: CARRIER_COMMANDS },
    { name: "J-LIS's SCP11a channel", open: openJlisChannel, commands: JLIS_COMMANDS },
  ];

  for (const { name, open, commands } of OWNERS) {
    test(`in ${name}: a genuine command altered in any byte its C-MAC covers is refused`, async () => {
      const { card, t } = freshCard();
      /** Wraps `plain` in a new session, alters it, sends it: refused, nothing written. */
      const sendTampered = async (plain: Buffer, at: number, mask: number) => {
        const host = await open(t, sim);
        const wrapped = host.wrapCommand(plain);
        wrapped[at % macCoveredLength(wrapped)]! ^= mask;
        const { sw } = await sendChecked(card, sim.statePath, wrapped);
        assert.ok(!isAccepted(sw), `${wrapped.toString("hex")} accepted (${statusWordName(sw)})`);
      };
      for (const plain of commands) {
        // The command as sent is accepted and changes the state: what the tampered copies must not do.
        const host = await open(t, sim);
        assert.equal(swOf(await transmitSecure(t, host, plain)), SW.OK, plain.toString("hex"));
        assert.notDeepEqual(readFileSync(sim.statePath), personalised);
        writeFileSync(sim.statePath, personalised);
        card.reset();
        // Every single-bit change of CLA, INS, P1, P2 and Lc (the first length byte).
        for (let at = 0; at < 5; at++)
          for (let bit = 0; bit < 8; bit++) await sendTampered(plain, at, 1 << bit);
      }
      // Any change of any covered byte: header, data, C-MAC.
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...commands),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          sendTampered,
        ),
        { numRuns: 100 },
      );
      assert.deepEqual(readFileSync(sim.statePath), personalised);
    });
  }

  /** Plain commands of each owner, as the authenticated host would send them, to be mutated. */
  function plainSeeds(owner: "carrier" | "jlis"): CommandApduInit[] {
    const certificate = Buffer.from(personalisedState.applet!.jpki.files["000A"]!, "base64");
    const dgi = (tag: string, value: Buffer) =>
      Buffer.concat([
        hex(tag),
        value.length < 0xff
          ? Buffer.from([value.length])
          : hex(`FF ${value.length.toString(16).padStart(4, "0")}`),
        value,
      ]);
    const written =
      owner === "carrier"
        ? [
            // INSTALL [for install and make selectable] of the J-LIS domain and of the applet (both exist).
            "80 E6 0C 00 22 07 A0 00 00 01 51 53 50 08 A0 00 00 01 51 53 50 41 08 D3 92 F0 00 26 53 44 01 03 80 00 00 02 C9 00 00",
            "80 E6 0C 00 28 09 D3 92 F0 00 26 01 00 00 00 0A D3 92 F0 00 26 01 00 00 00 01 0A D3 92 F0 00 26 01 00 00 00 01 03 00 00 00 02 C9 00 00",
            "80 E6 08 00 0F 00 00 0A D3 92 F0 00 26 01 00 00 00 01 00 00",
            ...CARRIER_COMMANDS.map((c) => c.toString("hex")),
            "80 E4 00 80 0A 4F 08 D3 92 F0 00 26 53 44 01 00",
            "80 F2 80 02 02 4F 00 00",
            GET_STATUS.toString("hex"),
          ]
        : [
            INSTALL_FOR_PERSONALIZATION.toString("hex"),
            "80 2C 02 18 04 32 34 36 38",
            "80 2C 02 1B 06 41 42 43 31 32 33",
            "80 E4 00 00 0C 4F 0A D3 92 F0 00 26 01 00 00 00 01 00",
          ];
    const parsed: CommandApduInit[] = written.map((text) => parseCommandApdu(apdu(text)));
    if (owner === "jlis")
      // STORE DATA, one block, last (P1 b8) in DGI format: the certificate again, the CA certificate,
      // an encrypted key that does not decrypt.
      for (const data of [
        dgi("000A", certificate),
        Buffer.concat([dgi("000B", sim.hierarchy.authCa), dgi("0002", sim.hierarchy.authCa)]),
        dgi("8017", Buffer.alloc(32, 0x5a)),
      ])
        parsed.push({ cla: 0x80, ins: 0xe2, p1: 0x88, p2: 0x00, data });
    return parsed;
  }

  const PLAIN_OWNERS = [
    { name: "the card manager", owner: "carrier", open: openCarrierChannel },
    { name: "the J-LIS domain", owner: "jlis", open: openJlisChannel },
  ] as const;

  for (const { name, owner, open } of PLAIN_OWNERS) {
    test(`${name} answers mutated commands from its authenticated host without faults`, async () => {
      const seedsOfOwner = plainSeeds(owner);
      const plain = fc.oneof(
        fc
          .record({
            seed: fc.constantFrom(...seedsOfOwner),
            ins: sometimes(fc.constantFrom(...INS_BUT_KEY_GENERATION), 1, 5),
            p1: sometimes(byte, 1, 3),
            p2: sometimes(byte, 1, 3),
            data: sometimes(mutations, 1, 2),
          })
          .map(({ seed, ins, p1, p2, data }) => ({
            ...seed,
            ins: ins ?? seed.ins,
            p1: p1 ?? seed.p1,
            p2: p2 ?? seed.p2,
            data: data ? mutate(Buffer.from(seed.data ?? []), data) : seed.data,
          })),
        fc.record({
          cla: fc.constant(0x80),
          ins: fc.constantFrom(...INS_BUT_KEY_GENERATION),
          p1: byte,
          p2: byte,
          data: someBytes,
        }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(plain, { minLength: 1, maxLength: 8 }), async (commands) => {
          const { card, t } = freshCard();
          const host = await open(t, sim);
          // J-LIS's STORE DATA go to the applet only after INSTALL [for personalization].
          if (owner === "jlis")
            assert.equal(swOf(await transmitSecure(t, host, INSTALL_FOR_PERSONALIZATION)), SW.OK);
          for (const command of commands) {
            const wrapped = host.wrapCommand(encodeCommandApdu(command));
            const { response, sw } = await sendChecked(card, sim.statePath, wrapped);
            // What the card protects (90 00, 62 xx, 63 xx) passes the host's R-MAC check and decrypts.
            if (sw === SW.OK || sw >> 8 === 0x62 || sw >> 8 === 0x63) host.unwrapResponse(response);
          }
          loadUiccState(sim.statePath);
        }),
        { numRuns: 100 },
      );
    });
  }
});
