/**
 * Power cuts on the SIM (UICC): a child process (uicc-power-cut.child.ts) uses one SIM in a loop as its
 * owners do (the carrier installs, J-LIS generates keys, writes certificates and resets the PIN, the
 * phone sets the PIN, misses it and signs) and is killed (SIGKILL, the nearest thing to pulling the SIM)
 * at random moments, often inside an RSA key generation. The next child powers the same SIM on again.
 *
 * After each cut: the state file parses; with no command in flight it is the state the last answer
 * left; with one in flight it is the state before that command or the state that command makes, never
 * one in between: no new key beside its predecessor's certificate, no half of a STORE DATA sequence,
 * no PIN try given back. The only state between the two is the one VERIFY of the right PIN passes
 * through by design (the try spent before the comparison, jpki-applet.ts). The same check runs on every
 * state the file took while a command ran (the child logs each rename into place), so it covers each
 * write, not only those a cut happened to hit; and every command answered made exactly its own change,
 * which also shows the checks accept what the card does.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  randomInt,
} from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseCertificate } from "../../pki/certificate.js";
import { jlisOceCertificateTbs } from "../../pki/profiles.js";
import { randomSerial } from "../../pki/serial.js";
import { signTbs } from "../../pki/test-hierarchy.js";
import { shortValidity } from "../../pki/validity.js";
import { parseCommandApdu } from "../apdu.js";
import { JPKI_AP_AID } from "../jpki-applet.js";
import { pinMatches } from "../state.js";
import { SW } from "../status-words.js";
import { LifeCycle, loadUiccState, type UiccState } from "./state.js";
import { ISD_AID, JLIS_SD_AID, JLIS_SD_SCP11_KEY_VERSION } from "./uicc.js";
import { makeSimStateFile, type SimFixture } from "./uicc-fixture.js";

const here = fileURLToPath(import.meta.url);
/** The child next to this file, .ts under tsx and .js once compiled. */
const childScript = path.join(path.dirname(here), `uicc-power-cut.child${path.extname(here)}`);
/** Node flags of this process (e.g. `--import tsx`), without the test runner's own. */
const nodeFlags = process.execArgv.filter((flag) => !flag.startsWith("--test"));

const ROUNDS = 12;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const upperHex = (aid: Buffer) => aid.toString("hex").toUpperCase();

/** J-LIS's SCP11a credentials with a key the child can be given: the fixture's stays inside a closure. */
function exportableJlisCredentials(sim: SimFixture): { key: KeyObject; chain: Buffer[] } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const h = sim.hierarchy;
  const certificate = signTbs(
    jlisOceCertificateTbs({
      serial: randomSerial(),
      issuer: h.simMakerIssuer,
      subjectSpki: publicKey.export({ type: "spki", format: "der" }),
      validity: shortValidity(new Date(), 30),
    }),
    h.keys.simMaker,
  );
  return { key: privateKey, chain: [certificate] };
}

/** The fixture as the child reads it: Buffers as { base64 }, private keys as { pkcs8 } (PKCS#8 DER). */
function fixtureJson(sim: SimFixture): string {
  const { cleanup: _, ...rest } = sim;
  return JSON.stringify(
    { ...rest, jlis: exportableJlisCredentials(sim) },
    function (this: Record<string, unknown>, key, value: unknown) {
      const original = this[key]; // before Buffer's toJSON
      if (Buffer.isBuffer(original)) return { base64: original.toString("base64") };
      if (original instanceof KeyObject)
        return { pkcs8: original.export({ type: "pkcs8", format: "der" }).toString("base64") };
      return value;
    },
  );
}

interface LoggedCommand {
  command: Buffer;
  note: string[];
  /** Each state the file took while the command ran (hashes, in order). */
  written: string[];
  /** Absent when the cut fell before the answer. */
  answer?: { sw: number; stateHash: string };
}

interface Round {
  signal: NodeJS.Signals | null;
  stderr: string;
  readyHash: string;
  states: Map<string, Buffer>;
  commands: LoggedCommand[];
}

/** When to pull the power: some time after the child is ready, or as soon as it logs a given command. */
type Cut = { afterMs: number } | { atCommand: (command: Buffer, index: number) => boolean };

function runAndKill(configPath: string, cut: Cut): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, childScript, configPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const round: Round = { signal: null, stderr: "", readyHash: "", states: new Map(), commands: [] };
    let timer: NodeJS.Timeout | undefined;
    let problem: Error | undefined;
    const powerCut = () => child.kill("SIGKILL");
    const onLine = (line: string) => {
      const [kind, first = "", ...rest] = line.split(" ");
      if (kind === "state") {
        const content = Buffer.from(first, "base64");
        round.states.set(sha256(content), content);
      } else if (kind === "ready") {
        round.readyHash = first;
        if ("afterMs" in cut) timer = setTimeout(powerCut, cut.afterMs);
      } else if (kind === "sent") {
        const command = Buffer.from(first, "hex");
        round.commands.push({ command, note: rest, written: [] });
        if ("atCommand" in cut && cut.atCommand(command, round.commands.length)) powerCut();
      } else if (kind === "written") {
        const last = round.commands.at(-1);
        if (!last || last.answer) problem ??= new Error("the state file was written outside any command");
        else last.written.push(first);
      } else if (kind === "answered") {
        const last = round.commands.at(-1);
        if (!last || last.answer) problem ??= new Error(`an answer without its command: ${line}`);
        else last.answer = { sw: Number.parseInt(first, 16), stateHash: rest[0]! };
      }
    };
    // Whole lines only: the last one may be cut short by the kill.
    let partial = "";
    child.stdout.setEncoding("latin1").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const line of lines) onLine(line);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      round.stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      round.signal = signal;
      if (problem) return reject(problem);
      if (!round.readyHash)
        return reject(new Error(`the child did not start (code ${code}): ${round.stderr}`));
      resolve(round);
    });
  });
}

const parseState = (bytes: Buffer): UiccState => JSON.parse(bytes.toString("utf8")) as UiccState;

/** 90 00 or 63 Cx: the command was carried out (63 Cx: a PIN try was spent). */
const isAccepted = (sw: number) => sw === SW.OK || (sw & 0xfff0) === 0x63c0;

/** Sets `key` of `record` to `value`, or deletes it when `value` is undefined. */
function put<T>(record: Record<string, T>, key: string, value: T | undefined): void {
  if (value === undefined) delete record[key];
  else record[key] = value;
}

/** Asserts `after` is `before` apart from what `putBack` restores in a copy of `after`. */
function onlyChanged(
  before: UiccState,
  after: UiccState,
  what: string,
  putBack: (copy: UiccState) => void,
): void {
  const copy = structuredClone(after);
  putBack(copy);
  assert.deepEqual(copy, before, `${what} changed more than its own part of the state`);
}

const privateKeyOf = (pkcs8: string) =>
  createPrivateKey({ key: Buffer.from(pkcs8, "base64"), format: "der", type: "pkcs8" });
const spkiOfKey = (pkcs8: string) =>
  createPublicKey(privateKeyOf(pkcs8)).export({ type: "spki", format: "der" });

/** What holds in every state, whatever was cut. */
function assertInvariants(state: UiccState): void {
  const applet = state.applet;
  if (!applet) return;
  const { files, keys, pins } = applet.jpki;
  // A certificate in EF 000A always certifies the key in 0017.
  if (files["000A"]) {
    assert.ok(keys["0017"], "a certificate in 000A without a key in 0017");
    const certified = parseCertificate(Buffer.from(files["000A"], "base64")).spki;
    assert.ok(certified.equals(spkiOfKey(keys["0017"])), "the certificate in 000A certifies another key");
  }
  if (applet.associatedSd === upperHex(JLIS_SD_AID))
    assert.ok(state.ssd, "an applet associated with no domain");
  for (const pin of Object.values(pins)) assert.ok(pin.triesLeft >= 0 && pin.triesLeft <= pin.maxTries);
}

/**
 * The change `command` makes once carried out: a function asserting that `after` is exactly `before`
 * with that change; undefined for a command that changes nothing. VERIFY is handled apart.
 */
function changeOf(
  command: Buffer,
  note: string[],
  before: UiccState,
): ((after: UiccState) => void) | undefined {
  const { cla, ins, p1, data } = parseCommandApdu(command);
  const pinSet = (pin: string, what: string) => (after: UiccState) => {
    const set = after.applet?.jpki.pins["0018"];
    assert.ok(set && pinMatches(set, pin), `${what}: the PIN is ${pin}`);
    assert.deepEqual([set.triesLeft, set.maxTries], [3, 3], `${what}: a full counter`);
    onlyChanged(before, after, what, (s) =>
      put(s.applet!.jpki.pins, "0018", before.applet!.jpki.pins["0018"]),
    );
  };
  if (cla === 0x00 && ins === 0x24) return pinSet(data.toString("latin1"), "CHANGE REFERENCE DATA");
  if (cla === 0x00) return undefined;
  // The rest are J-LIS's and the carrier's commands, their data encrypted: the note says what it holds.
  if (ins === 0x2c) return pinSet(note[1]!, "RESET RETRY COUNTER");
  if (ins === 0x46)
    return (after) => {
      const key = after.applet!.jpki.keys["0017"]!;
      assert.notEqual(key, before.applet!.jpki.keys["0017"], "a new key");
      assert.equal(privateKeyOf(key).asymmetricKeyDetails?.modulusLength, 2048, "an RSA-2048 key");
      assert.equal(after.applet!.jpki.files["000A"], undefined, "the old key's certificate voided with it");
      onlyChanged(before, after, "GENERATE ASYMMETRIC KEY PAIR", (s) => {
        put(s.applet!.jpki.keys, "0017", before.applet!.jpki.keys["0017"]);
        put(s.applet!.jpki.files, "000A", before.applet!.jpki.files["000A"]);
      });
    };
  if (ins === 0xe2 && p1 & 0x80)
    return (after) => {
      const files = after.applet!.jpki.files;
      const digest = (fid: string) => files[fid] && sha256(Buffer.from(files[fid], "base64"));
      assert.deepEqual([digest("000A"), digest("000B")], note.slice(1, 3), "the whole STORE DATA sequence");
      assert.equal(after.applet!.lifeCycle, LifeCycle.personalized);
      onlyChanged(before, after, "STORE DATA", (s) => {
        for (const fid of ["000A", "000B"]) put(s.applet!.jpki.files, fid, before.applet!.jpki.files[fid]);
        s.applet!.lifeCycle = before.applet!.lifeCycle;
      });
    };
  if (ins === 0xe6 && p1 === 0x0c)
    return (after) => {
      if (!before.ssd) {
        assert.deepEqual(after.ssd, {
          aid: upperHex(JLIS_SD_AID),
          lifeCycle: LifeCycle.selectable,
          scp11KeyVersion: JLIS_SD_SCP11_KEY_VERSION,
        });
        return onlyChanged(before, after, "INSTALL of the J-LIS domain", (s) => {
          s.ssd = null;
        });
      }
      const { instanceId, jpki, ...applet } = after.applet!;
      assert.deepEqual(applet, {
        aid: upperHex(JPKI_AP_AID),
        lifeCycle: LifeCycle.selectable,
        associatedSd: upperHex(ISD_AID),
      });
      assert.match(instanceId, /^[0-9a-f]{32}$/);
      assert.deepEqual([jpki.keys, jpki.files, jpki.pins], [{}, {}, {}], "a new applet is empty");
      onlyChanged(before, after, "INSTALL of the applet", (s) => {
        s.applet = null;
      });
    };
  if (ins === 0xe6 && p1 === 0x10)
    return (after) => {
      assert.equal(after.applet?.associatedSd, upperHex(JLIS_SD_AID));
      onlyChanged(before, after, "INSTALL [for extradition]", (s) => {
        s.applet!.associatedSd = before.applet!.associatedSd;
      });
    };
  if (ins === 0xe4 && note[0] === "delete")
    return (after) => {
      const which = note[1]!.toUpperCase() === before.applet?.aid ? "applet" : "ssd";
      assert.equal(after[which], null, `DELETE of the ${which}`);
      onlyChanged(before, after, "DELETE", (s) => {
        if (which === "applet") s.applet = before.applet;
        else s.ssd = before.ssd;
      });
    };
  if (ins === 0xe4 && note[0] === "wipe")
    return (after) => {
      const { jpki, lifeCycle } = after.applet!;
      assert.deepEqual([jpki.keys, jpki.files, jpki.pins, lifeCycle], [{}, {}, {}, LifeCycle.selectable]);
      onlyChanged(before, after, "wipe", (s) => {
        s.applet!.jpki = before.applet!.jpki;
        s.applet!.lifeCycle = before.applet!.lifeCycle;
      });
    };
  return undefined;
}

/** How a command left the state: unchanged, carried out, or (VERIFY of the right PIN) with the try spent. */
type Outcome = "unchanged" | "done" | "try spent";

/**
 * Asserts that `after` is what `logged` may leave after `before`: when answered, exactly what the
 * answer says; when cut, the state before it or the state it makes.
 */
function checkCommand(beforeBytes: Buffer, afterBytes: Buffer, logged: LoggedCommand): Outcome {
  const before = parseState(beforeBytes);
  const after = parseState(afterBytes);
  assertInvariants(after);
  const same = beforeBytes.equals(afterBytes);
  const { command, note, answer } = logged;
  const name = command.subarray(0, 4).toString("hex");
  if (answer && !isAccepted(answer.sw)) {
    assert.ok(same, `${name} refused with ${answer.sw.toString(16)} changed the state`);
    return "unchanged";
  }
  const { cla, ins, data } = parseCommandApdu(command);
  if (cla === 0x00 && ins === 0x20 && data.length) {
    // VERIFY (the child always verifies the user-authentication PIN, EF 0018).
    const pin = before.applet!.jpki.pins["0018"]!;
    const right = pinMatches(pin, data.toString("latin1"));
    const tries = after.applet!.jpki.pins["0018"]!.triesLeft;
    onlyChanged(before, after, "VERIFY", (s) => {
      s.applet!.jpki.pins["0018"]!.triesLeft = pin.triesLeft;
    });
    // No try is ever given back but by the right PIN.
    assert.ok(tries <= pin.triesLeft || right, `VERIFY of a wrong PIN raised the counter to ${tries}`);
    if (answer) assert.equal(answer.sw, right ? SW.OK : 0x63c0 | (pin.triesLeft - 1), "VERIFY's answer");
    // Cut, the right PIN may also leave the try spent before the comparison, not yet given back.
    const allowed: (readonly [number, Outcome])[] =
      pin.triesLeft === 0
        ? [[0, "unchanged"]]
        : [
            ...(answer ? [] : ([[pin.triesLeft, "unchanged"]] as const)),
            ...(right
              ? ([
                  ...(answer ? [] : ([[pin.triesLeft - 1, "try spent"]] as const)),
                  [pin.maxTries, "done"],
                ] as const)
              : ([[pin.triesLeft - 1, "done"]] as const)),
          ];
    const outcome = allowed.find(([left]) => left === tries)?.[1];
    assert.ok(
      outcome,
      `VERIFY (${right ? "right" : "wrong"} PIN, ${answer ? answer.sw.toString(16) : "cut"}) left ${tries} of ${pin.triesLeft} tries`,
    );
    return outcome;
  }
  const change = changeOf(command, note, before);
  if (!change) {
    assert.ok(same, `${name} changed the state`);
    return "unchanged";
  }
  if (!answer && same) return "unchanged";
  change(after);
  return "done";
}

interface Counts {
  rounds: number;
  answered: number;
  /** States written while a command ran, each checked as a cut there would have left it. */
  written: number;
  /** Cuts between a command and its answer; of which the command had already changed the state. */
  inFlight: number;
  inFlightDone: number;
  inKeyGeneration: number;
}

/** Checks one child's log and the state file its cut left. */
function checkRound(round: Round, start: Buffer, cut: Buffer, counts: Counts): void {
  assert.equal(round.signal, "SIGKILL", `the power was cut, not ${round.stderr}`);
  assert.equal(round.readyHash, sha256(start), "the child found the state the last cut left");
  assertInvariants(parseState(cut));
  counts.rounds++;
  let current = round.readyHash;
  const state = (hash: string) => {
    const bytes = round.states.get(hash);
    assert.ok(bytes, `state ${hash} logged`);
    return bytes;
  };
  for (const logged of round.commands) {
    const before = state(current);
    // Every state the command wrote is one a cut could have left: before, done, or (VERIFY) try spent.
    for (const hash of logged.written) checkCommand(before, state(hash), { ...logged, answer: undefined });
    counts.written += logged.written.length;
    if (logged.answer) {
      const { stateHash } = logged.answer;
      assert.equal(stateHash, logged.written.at(-1) ?? current, "the answer came after the last write");
      checkCommand(before, state(stateHash), logged);
      current = stateHash;
      counts.answered++;
      continue;
    }
    // The command in flight when the power went.
    const outcome = checkCommand(before, cut, logged);
    counts.inFlight++;
    if (outcome !== "unchanged") counts.inFlightDone++;
    if (logged.command[1] === 0x46) counts.inKeyGeneration++;
  }
  if (round.commands.at(-1)?.answer) assert.equal(sha256(cut), current, "the state the last answer left");
}

/** One SIM, cut `rounds` times. */
async function powerCutLane(rounds: number, counts: Counts): Promise<void> {
  const sim = makeSimStateFile();
  try {
    const configPath = path.join(sim.dir, "child.json");
    writeFileSync(configPath, fixtureJson(sim), { mode: 0o600 });
    for (let i = 0; i < rounds; i++) {
      const start = readFileSync(sim.statePath);
      // Two rounds in three aim at a command, as the window of a state write is a few milliseconds:
      // the n-th one, or a key generation (the child is then killed inside it).
      const n = randomInt(1, 80);
      const when: Cut[] = [
        { afterMs: randomInt(20, 800) },
        { atCommand: (_, index) => index === n },
        { atCommand: (command) => command[1] === 0x46 },
      ];
      const round = await runAndKill(configPath, when[i % when.length]!);
      const cut = readFileSync(sim.statePath);
      loadUiccState(sim.statePath); // parses: never a torn file
      checkRound(round, start, cut, counts);
    }
  } finally {
    sim.cleanup();
  }
}

test("SIGKILL at random moments during personalisation and PIN use leaves each command done or not done", async (t) => {
  const counts: Counts = {
    rounds: 0,
    answered: 0,
    written: 0,
    inFlight: 0,
    inFlightDone: 0,
    inKeyGeneration: 0,
  };
  // Two SIMs side by side: a child's start-up is most of a round.
  await Promise.all([powerCutLane(ROUNDS / 2, counts), powerCutLane(ROUNDS / 2, counts)]);
  t.diagnostic(JSON.stringify(counts));
  assert.equal(counts.rounds, ROUNDS);
  assert.ok(counts.answered >= 100, "the children got many answers before the cuts");
  assert.ok(counts.written >= 30, "the children's commands wrote many states");
  assert.ok(counts.inFlight >= 3, "cuts fell between a command and its answer");
  assert.ok(counts.inKeyGeneration >= 1, "a cut fell inside a key generation");
});
