/**
 * Test fixture: a new SIM as the SIM maker ships it (uicc/manufacture.ts), with a throw-away test
 * hierarchy around it (SIM maker root, J-LIS secure channel certificate, user-authentication CA), and
 * the steps every test repeats: the carrier installs the J-LIS domain and applet, J-LIS generates the
 * key and writes the certificate, the citizen sets the PIN in the phone.
 */

import { createPublicKey, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { JpkiCard } from "../../phone/jpki-card.js";
import { generateP256PrivateKey } from "../../pki/algorithms.js";
import {
  jlisOceCertificateTbs,
  simAttestationCertificateTbs,
  smartphoneAuthenticationCertificateTbs,
} from "../../pki/profiles.js";
import { randomSerial, shardOf } from "../../pki/serial.js";
import { buildTestHierarchy, signTbs, TEST_BASE_URL, type TestHierarchy } from "../../pki/test-hierarchy.js";
import { caValidity, shortValidity } from "../../pki/validity.js";
import type { CardTransport } from "../card.js";
import type { Scp03KeySet } from "../gp/scp03.js";
import { softwareEckaKey } from "../gp/scp11.js";
import { CardManagerSession, type JlisCredentials, JlisDomainSession } from "./host.js";
import { newEid, newIccid } from "./identity.js";
import { writeNewSim } from "./manufacture.js";

export const TEST_SIM_PIN = "4321";

let hierarchy: TestHierarchy | undefined;

/** One hierarchy per process: key generation is the slow part. */
function testHierarchy(): TestHierarchy {
  hierarchy ??= buildTestHierarchy();
  return hierarchy;
}

export interface SimFixture {
  dir: string;
  statePath: string;
  iccid: string;
  eid: string;
  carrierKeys: Scp03KeySet & { keyVersion: number };
  jlis: JlisCredentials;
  sdCertificate: Buffer;
  hierarchy: TestHierarchy;
  cleanup(): void;
}

/** A fresh SIM state file in its own temporary directory. */
export function makeSimStateFile(): SimFixture {
  const h = testHierarchy();
  const now = new Date();
  const iccid = newIccid("90");
  const eid = newEid();
  const sdKey = h.keys.sim; // a P-256 key made for this hierarchy; each SIM would have its own
  const sdCertificate = signTbs(
    simAttestationCertificateTbs({
      serial: randomSerial(),
      issuer: h.simMakerIssuer,
      subjectSpki: sdKey.spki,
      validity: caValidity(now, 25),
      eid,
    }),
    h.keys.simMaker,
  );
  const oce = testOceCredentials(h);
  const carrierKeys = { keyVersion: 0x30, enc: randomBytes(16), mac: randomBytes(16), dek: randomBytes(16) };
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-sim-"));
  const statePath = path.join(dir, "sim.json");
  writeNewSim(statePath, {
    iccid,
    eid,
    carrier: "test-carrier",
    isdKeys: carrierKeys,
    sdKey: sdKey.privateKey,
    sdCertificate,
    oceRoots: [h.simMakerCa],
  });
  return {
    dir,
    statePath,
    iccid,
    eid,
    carrierKeys,
    jlis: oce,
    sdCertificate,
    hierarchy: h,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

let oceCredentials: JlisCredentials | undefined;

/** J-LIS's SCP11a key and its certificate from the SIM maker's root. */
function testOceCredentials(h: TestHierarchy): JlisCredentials {
  if (!oceCredentials) {
    const privateKey = generateP256PrivateKey();
    const pair = { privateKey, publicKey: createPublicKey(privateKey) };
    const certificate = signTbs(
      jlisOceCertificateTbs({
        serial: randomSerial(),
        issuer: h.simMakerIssuer,
        subjectSpki: pair.publicKey.export({ type: "spki", format: "der" }),
        validity: shortValidity(new Date(), 365),
      }),
      h.keys.simMaker,
    );
    oceCredentials = { key: softwareEckaKey(pair.privateKey), chain: [certificate] };
  }
  return oceCredentials;
}

/** The carrier installs the J-LIS security domain and the JPKI applet, and hands the applet over. */
export async function installJpki(
  transport: Pick<CardTransport, "transmit">,
  sim: SimFixture,
): Promise<void> {
  const session = await CardManagerSession.open(transport, sim.carrierKeys);
  await session.installJpki();
}

/** A smartphone user-authentication certificate for `spki` from the fixture's test CA. */
export function issuePhoneAuthCertificate(sim: SimFixture, spki: Buffer): Buffer {
  const h = sim.hierarchy;
  const serial = randomSerial();
  const now = new Date();
  return signTbs(
    smartphoneAuthenticationCertificateTbs({
      serial,
      issuer: h.authIssuer,
      subjectSpki: spki,
      validity: shortValidity(now, 365),
      baseUrl: TEST_BASE_URL,
      shard: shardOf(serial, 16),
    }),
    h.keys.authCa,
  );
}

/**
 * Installs, then J-LIS generates the user-authentication key on the SIM and writes its certificate,
 * then the phone sets the first PIN. Returns the certificate.
 */
export async function personaliseSim(
  transport: Pick<CardTransport, "transmit">,
  sim: SimFixture,
  pin = TEST_SIM_PIN,
): Promise<Buffer> {
  await installJpki(transport, sim);
  const jlis = await JlisDomainSession.open(transport, {
    sdCertificate: sim.sdCertificate,
    credentials: sim.jlis,
  });
  const { spki } = await jlis.generateKeyPair(0x17);
  const certificate = issuePhoneAuthCertificate(sim, spki);
  await jlis.storeAuthenticationCertificates(certificate, sim.hierarchy.authCa);
  await setFirstPin(transport, pin);
  return certificate;
}

/** What the JPKI app does once the key exists: the citizen sets the first PIN (src/phone/jpki-card.ts). */
export async function setFirstPin(transport: Pick<CardTransport, "transmit">, pin: string): Promise<void> {
  await (await JpkiCard.open(transport)).changePin("auth", pin);
}
