/**
 * Child process of uicc-power-cut.test.ts: uses the SIM whose state file and owners' keys are in the
 * JSON file `argv[2]` (Buffers as { base64 }, private keys as { pkcs8 }), in a loop, as its owners do:
 * the carrier deletes and installs the J-LIS domain and the applet; J-LIS generates the key, writes the
 * certificates; the phone sets the PIN and misses it until it is blocked; J-LIS resets it; the phone
 * signs; J-LIS replaces the key and wipes the applet. The parent pulls the power (SIGKILL) at random.
 *
 * Logged on stdout with synchronous writes, so the parent knows where the cut fell:
 *   state <base64>              the state file, whenever it differs from the last one logged
 *   ready <sha256>              the state file's hash before the first command
 *   sent <apdu hex> [note...]   BEFORE each command; the note says what the encrypted data holds
 *   written <sha256>            each time a new state file is renamed into place (util/fs.ts): every
 *                               state a cut could leave, also where no cut happened to fall
 *   answered <sw> <sha256>      after each answer, with the state file's hash
 */
import { createHash, createPrivateKey, type KeyObject } from "node:crypto";
import fs, { readFileSync, writeSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import path from "node:path";
import { hex } from "../apdu.js";
import type { CardTransport } from "../card.js";
import { softwareEckaKey } from "../gp/scp11.js";
import { JPKI_AP_AID } from "../jpki-applet.js";
import { CardStatusError, SW } from "../status-words.js";
import { CardManagerSession, JlisDomainSession } from "./host.js";
import { JLIS_SD_AID, openUicc } from "./uicc.js";
import { issuePhoneAuthCertificate, type SimFixture, setFirstPin } from "./uicc-fixture.js";

/** The PINs the loop uses: the first one the phone sets, the one J-LIS resets it to, a wrong one. */
const FIRST_PIN = "4321";
const RESET_PIN = "2468";
const WRONG_PIN = "9999";

const configPath = process.argv[2];
if (!configPath) throw new Error("usage: uicc-power-cut.child <config.json>");

const revived = JSON.parse(readFileSync(configPath, "utf8"), (_key, value: unknown) => {
  if (value && typeof value === "object" && Object.keys(value).length === 1) {
    const { base64, pkcs8 } = value as { base64?: unknown; pkcs8?: unknown };
    if (typeof base64 === "string") return Buffer.from(base64, "base64");
    if (typeof pkcs8 === "string")
      return createPrivateKey({ key: Buffer.from(pkcs8, "base64"), format: "der", type: "pkcs8" });
  }
  return value;
}) as Omit<SimFixture, "jlis" | "cleanup"> & { jlis: { key: KeyObject; chain: Buffer[] } };
const sim: SimFixture = {
  ...revived,
  jlis: { key: softwareEckaKey(revived.jlis.key), chain: revived.jlis.chain },
  cleanup: () => {},
};

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const pause = new Int32Array(new SharedArrayBuffer(4));
/** Writes a whole line; stdout may be a non-blocking pipe, so this waits while the parent has not read. */
function log(line: string): void {
  const bytes = Buffer.from(`${line}\n`, "latin1");
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

let lastLogged = "";
/** The state file's hash, after logging its content if it changed. */
function stateHash(): string {
  const bytes = readFileSync(sim.statePath);
  const hash = sha256(bytes);
  if (hash !== lastLogged) log(`state ${bytes.toString("base64")}`);
  lastLogged = hash;
  return hash;
}

// Atomic writes end with a rename over the state file: log each state it takes, as it takes it.
const rename = fs.renameSync;
const statePath = path.resolve(sim.statePath);
Object.assign(fs, {
  renameSync(from: fs.PathLike, to: fs.PathLike) {
    rename(from, to);
    if (path.resolve(String(to)) === statePath) log(`written ${stateHash()}`);
  },
});
syncBuiltinESMExports(); // the named import in util/fs.ts now sees it too

const card = openUicc(sim.statePath);
/** What the commands being sent carry in their encrypted data, for the parent. */
let note = "";
const transport: Pick<CardTransport, "transmit"> = {
  async transmit(command) {
    log(`sent ${Buffer.from(command).toString("hex")}${note ? ` ${note}` : ""}`);
    const answer = card.transmitSync(command);
    log(`answered ${answer.subarray(-2).toString("hex")} ${stateHash()}`);
    return answer;
  },
};
async function noting<T>(what: string, body: () => Promise<T>): Promise<T> {
  note = what;
  try {
    return await body();
  } finally {
    note = "";
  }
}

const phone = async (text: string) => transport.transmit(hex(text));
const verify = (pin: string) => phone(`00 20 00 80 04 ${Buffer.from(pin, "latin1").toString("hex")}`);
const openJlis = () =>
  JlisDomainSession.open(transport, { sdCertificate: sim.sdCertificate, credentials: sim.jlis });

/** J-LIS generates the user-authentication key and writes its certificate and the CA's. */
async function certify(jlis: JlisDomainSession): Promise<void> {
  const { spki } = await jlis.generateKeyPair(0x17);
  const certificate = issuePhoneAuthCertificate(sim, spki);
  const ca = sim.hierarchy.authCa;
  await noting(`certificates ${sha256(certificate)} ${sha256(ca)}`, () =>
    jlis.storeAuthenticationCertificates(certificate, ca),
  );
}

/** AIDs (hex) the card manager lists; none when it answers 6A 82. */
async function installed(carrier: CardManagerSession): Promise<string[]> {
  try {
    return (await carrier.status()).map((entry) => entry.aid.toString("hex"));
  } catch (error) {
    if (error instanceof CardStatusError && error.sw === SW.FILE_NOT_FOUND) return [];
    throw error;
  }
}

log(`ready ${stateHash()}`);
for (;;) {
  // The carrier starts over from whatever the last cut left.
  const carrier = await CardManagerSession.open(transport, sim.carrierKeys);
  const aids = await installed(carrier);
  for (const aid of [JPKI_AP_AID, JLIS_SD_AID])
    if (aids.includes(aid.toString("hex")))
      await noting(`delete ${aid.toString("hex")}`, () => carrier.delete(aid));
  await carrier.installJpki();

  await certify(await openJlis());

  // The phone sets the PIN, misses it twice, gets it right, then misses it until it is blocked.
  await setFirstPin(transport, FIRST_PIN);
  for (const pin of [WRONG_PIN, WRONG_PIN, FIRST_PIN, WRONG_PIN, WRONG_PIN, WRONG_PIN, WRONG_PIN])
    await verify(pin);

  const jlis = await openJlis();
  await noting(`pin ${RESET_PIN}`, () => jlis.resetRetryCounter(0x18, RESET_PIN));
  await phone("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01");
  await phone("00 A4 02 0C 02 00 18");
  await verify(WRONG_PIN);
  await verify(RESET_PIN);
  await phone("00 A4 02 0C 02 00 17");
  await phone(`80 2A 00 80 33 3031300D060960864801650304020105000420${"5A".repeat(32)} 00`);

  // J-LIS replaces the key (its certificate goes with the old one), certifies it again, then wipes.
  const replacing = await openJlis();
  await certify(replacing);
  await noting("wipe", () => replacing.wipe());
}
