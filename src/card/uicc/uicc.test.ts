import assert from "node:assert/strict";
import { createHash, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { JpkiCard } from "../../phone/jpki-card.js";
import { parseCertificate } from "../../pki/certificate.js";
import { sha256DigestInfo } from "../../pki/cms.js";
import { simAttestationCertificateTbs } from "../../pki/profiles.js";
import { randomSerial } from "../../pki/serial.js";
import { generateTestKey, signTbs } from "../../pki/test-hierarchy.js";
import { shortValidity } from "../../pki/validity.js";
import { encodeCommandApdu, hex } from "../apdu.js";
import type { CardTransport } from "../card.js";
import { Scp03Host } from "../gp/scp03.js";
import { softwareEckaKey } from "../gp/scp11.js";
import { SecureChannelError } from "../gp/secure-messaging.js";
import { InProcessTransport } from "../in-process-transport.js";
import { JPKI_AP_AID } from "../jpki-applet.js";
import { CardStatusError, SW } from "../status-words.js";
import { verifyKeyAttestation } from "./attestation.js";
import { CardManagerSession, JlisDomainSession, readSecurityDomainCertificate } from "./host.js";
import {
  eidBytes,
  iccidFromFileContent,
  iccidIssuerNumber,
  isValidEid,
  isValidIccid,
  newEid,
  newIccid,
} from "./identity.js";
import { LifeCycle, loadUiccState } from "./state.js";
import { ISD_AID, JLIS_SD_AID, openUicc, type Uicc } from "./uicc.js";
import {
  installJpki,
  issuePhoneAuthCertificate,
  makeSimStateFile,
  personaliseSim,
  type SimFixture,
  setFirstPin,
  TEST_SIM_PIN,
} from "./uicc-fixture.js";

const h = (text: string) => hex(text);
const swOf = (response: Buffer) => response.readUInt16BE(response.length - 2);
const refusedWith = (sw: number) => (error: unknown) => error instanceof CardStatusError && error.sw === sw;

/** A SIM in a reader, with a transport that records every byte both ways (the relay's view). */
function simInReader(sim: SimFixture): { card: Uicc; transport: CardTransport; transcript: Buffer[] } {
  const card = openUicc(sim.statePath);
  const inner = new InProcessTransport(card);
  const transcript: Buffer[] = [];
  const transport: CardTransport = {
    atr: () => inner.atr(),
    reset: () => inner.reset(),
    close: () => inner.close(),
    async transmit(command) {
      transcript.push(Buffer.from(command));
      const response = await inner.transmit(command);
      transcript.push(response);
      return response;
    },
  };
  return { card, transport, transcript };
}

async function withSim(body: (sim: SimFixture) => Promise<void>): Promise<void> {
  const sim = makeSimStateFile();
  try {
    await body(sim);
  } finally {
    sim.cleanup();
  }
}

/** The phone's side (src/phone/jpki-card.ts): select the applet, VERIFY the PIN, SIGN a SHA-256 DigestInfo. */
async function phoneSigns(transport: CardTransport, message: Buffer, pin = TEST_SIM_PIN): Promise<Buffer> {
  const jpki = await JpkiCard.open(transport);
  return jpki.signer("auth", pin)(sha256DigestInfo(createHash("sha256").update(message).digest()));
}

describe("SIM identity", () => {
  it("makes ICCIDs with the carrier's issuer number and a valid Luhn digit, and EIDs ≡ 1 mod 97", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 99 }), (n) => {
        const issuer = String(n).padStart(2, "0");
        const iccid = newIccid(issuer);
        assert.ok(isValidIccid(iccid), iccid);
        assert.equal(iccidIssuerNumber(iccid), issuer);
        const eid = newEid();
        assert.ok(isValidEid(eid), eid);
        assert.equal(BigInt(eid) % 97n, 1n);
      }),
      { numRuns: 50 },
    );
  });

  it("rejects an ICCID or EID with one digit changed", () => {
    fc.assert(
      fc.property(fc.nat(18), fc.integer({ min: 1, max: 9 }), (position, delta) => {
        const iccid = newIccid("90");
        const digit = (Number(iccid[position]) + delta) % 10;
        const changed = iccid.slice(0, position) + digit + iccid.slice(position + 1);
        // The 8981 prefix is checked as such; elsewhere the Luhn digit catches every single-digit error.
        assert.equal(isValidIccid(changed), false, changed);
        const eid = newEid();
        const p = 2 + (position % 30);
        const changedEid = eid.slice(0, p) + ((Number(eid[p]) + delta) % 10) + eid.slice(p + 1);
        assert.equal(isValidEid(changedEid), false, changedEid);
      }),
      { numRuns: 100 },
    );
  });

  it("lets the phone read the ICCID from EF 2FE2 and the EID from the card manager", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      assert.equal(swOf(await transport.transmit(h("00A4000C022FE2"))), SW.OK);
      const content = await transport.transmit(h("00B000000A"));
      assert.equal(swOf(content), SW.OK);
      assert.equal(iccidFromFileContent(content.subarray(0, -2)), sim.iccid);
      assert.equal(swOf(await transport.transmit(h("00A4040008A000000151000000"))), SW.OK);
      const eid = await transport.transmit(h("80E2910006BF3E035C015A00"));
      assert.equal(eid.subarray(0, -2).toString("hex"), `bf3e125a10${eidBytes(sim.eid).toString("hex")}`);
    });
  });
});

describe("the carrier's card manager", () => {
  it("installs the J-LIS domain and the applet through SCP03 and hands the applet to J-LIS", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      const session = await CardManagerSession.open(transport, sim.carrierKeys);
      await session.installJpki();
      const status = await session.status();
      assert.deepEqual(
        status.map((s) => [s.aid.toString("hex"), s.lifeCycle, s.associatedSd?.toString("hex")]),
        [
          [JLIS_SD_AID.toString("hex"), LifeCycle.selectable, ISD_AID.toString("hex")],
          [JPKI_AP_AID.toString("hex"), LifeCycle.selectable, JLIS_SD_AID.toString("hex")],
        ],
      );
      // The same installation a second time is refused: the AIDs are taken.
      await assert.rejects(session.installJpki(), refusedWith(SW.CONDITIONS_NOT_SATISFIED));
    });
  });

  it("refuses card content management without the secure channel, and wrong carrier keys", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      assert.equal(swOf(await transport.transmit(h("00A4040008A000000151000000"))), SW.OK);
      const install = encodeCommandApdu({ cla: 0x80, ins: 0xe6, p1: 0x0c, p2: 0x00, data: h("0700") });
      assert.equal(swOf(await transport.transmit(install)), SW.SECURITY_NOT_SATISFIED);
      const wrong = { ...sim.carrierKeys, enc: Buffer.alloc(16, 1), mac: Buffer.alloc(16, 2) };
      await assert.rejects(CardManagerSession.open(transport, wrong), (e) => e instanceof SecureChannelError);
      assert.equal(loadUiccState(sim.statePath).ssd, null);
    });
  });

  it("cannot open the J-LIS domain with its SCP03 keys, nor personalise through SCP11b", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await installJpki(transport, sim);
      // SCP03 INITIALIZE UPDATE sent to the J-LIS domain: the domain speaks SCP11 only.
      assert.equal(
        swOf(
          await transport.transmit(encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: JLIS_SD_AID })),
        ),
        SW.OK,
      );
      const carrier = new Scp03Host({ keys: sim.carrierKeys });
      assert.notEqual(swOf(await transport.transmit(carrier.initializeUpdate())), SW.OK);
      // SCP11b authenticates the card only: anyone can open it, so it may not personalise.
      const b = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
        variant: "b",
      });
      await assert.rejects(b.generateKeyPair(0x17), refusedWith(SW.SECURITY_NOT_SATISFIED));
      await assert.rejects(b.resetRetryCounter(0x18, "0000"), refusedWith(SW.SECURITY_NOT_SATISFIED));
      assert.deepEqual(loadUiccState(sim.statePath).applet?.jpki.keys, {});
    });
  });

  it("refuses an SCP11a host whose certificate is not J-LIS's or does not chain to the SIM maker", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await installJpki(transport, sim);
      const h2 = sim.hierarchy;
      // A key certified by the SIM maker, but as a SIM key, not as J-LIS.
      const other = generateTestKey("ec-p256");
      const simCertificate = signTbs(
        simAttestationCertificateTbs({
          serial: randomSerial(),
          issuer: h2.simMakerIssuer,
          subjectSpki: other.spki,
          validity: shortValidity(new Date(), 30),
          eid: sim.eid,
        }),
        h2.keys.simMaker,
      );
      const impostor = { key: softwareEckaKey(other.privateKey), chain: [simCertificate] };
      await assert.rejects(
        JlisDomainSession.open(transport, { sdCertificate: sim.sdCertificate, credentials: impostor }),
        refusedWith(SW.SECURITY_NOT_SATISFIED),
      );
      // J-LIS's own certificate, presented with another key: the receipt cannot match.
      const stolen = { key: softwareEckaKey(other.privateKey), chain: sim.jlis.chain };
      await assert.rejects(
        JlisDomainSession.open(transport, { sdCertificate: sim.sdCertificate, credentials: stolen }),
        (e) => e instanceof SecureChannelError,
      );
    });
  });

  it("deletes the applet (erasing its keys) and can install it again", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await personaliseSim(transport, sim);
      const session = await CardManagerSession.open(transport, sim.carrierKeys);
      // The domain has an associated applet: deleting it alone is refused, with related objects allowed.
      await assert.rejects(session.delete(JLIS_SD_AID), refusedWith(SW.CONDITIONS_NOT_SATISFIED));
      await session.delete(JPKI_AP_AID);
      assert.equal(loadUiccState(sim.statePath).applet, null);
      await session.delete(JLIS_SD_AID);
      await session.installJpki();
      assert.deepEqual(loadUiccState(sim.statePath).applet?.jpki.keys, {});
    });
  });
});

describe("J-LIS personalisation through SCP11a", () => {
  it("generates the key on the SIM with an attestation, writes the certificate, and the phone signs", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await installJpki(transport, sim);
      const sdCertificate = await readSecurityDomainCertificate(transport);
      assert.deepEqual(sdCertificate, sim.sdCertificate);
      const jlis = await JlisDomainSession.open(transport, { sdCertificate, credentials: sim.jlis });
      const nonce = h("00112233445566778899aabbccddeeff");
      const { spki, attestation } = await jlis.generateKeyPair(0x17, nonce);
      assert.equal(
        createPublicKey({ key: spki, format: "der", type: "spki" }).asymmetricKeyDetails?.modulusLength,
        2048,
      );
      const statement = verifyKeyAttestation(attestation, spki, sdCertificate);
      const state = loadUiccState(sim.statePath);
      assert.deepEqual(
        [
          statement.iccid,
          statement.eid,
          statement.instanceAid,
          statement.instanceId.toString("hex"),
          statement.keyReference,
          statement.nonce,
        ],
        [sim.iccid, sim.eid, JPKI_AP_AID, state.applet!.instanceId, 0x17, nonce],
      );
      // The attestation speaks of this key only.
      const otherSpki = generateTestKey("rsa-2048").spki;
      assert.throws(() => verifyKeyAttestation(attestation, otherSpki, sdCertificate), /another public key/);

      const certificate = issuePhoneAuthCertificate(sim, spki);
      await jlis.storeAuthenticationCertificates(certificate, sim.hierarchy.authCa);
      assert.equal(loadUiccState(sim.statePath).applet?.lifeCycle, LifeCycle.personalized);
      await setFirstPin(transport, TEST_SIM_PIN);
      const message = Buffer.from("relying party challenge");
      const signature = await phoneSigns(transport, message);
      assert.ok(
        verify(
          "sha256",
          message,
          createPublicKey({ key: parseCertificate(certificate).spki, format: "der", type: "spki" }),
          signature,
        ),
      );
      // The phone reads the instance identifier it will put in the application.
      assert.equal(
        (await transport.transmit(h("80CA00C100"))).subarray(0, -2).toString("hex"),
        state.applet!.instanceId,
      );
    });
  });

  it("refuses a certificate for another key, and applies a STORE DATA sequence wholly or not at all", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await installJpki(transport, sim);
      const jlis = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      await jlis.generateKeyPair(0x17);
      const before = readFileSync(sim.statePath);
      const foreign = issuePhoneAuthCertificate(sim, generateTestKey("rsa-2048").spki);
      await assert.rejects(
        jlis.storeAuthenticationCertificates(foreign, sim.hierarchy.authCa),
        refusedWith(SW.WRONG_DATA),
      );
      assert.deepEqual(readFileSync(sim.statePath), before, "nothing of the refused sequence was written");
    });
  });

  it("loads an injected key encrypted under S-DEK, which never crosses the relay in clear", async () => {
    await withSim(async (sim) => {
      const { transport, transcript } = simInReader(sim);
      await installJpki(transport, sim);
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" });
      const spki = publicKey.export({ type: "spki", format: "der" });
      const jlis = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      await jlis.injectKey(0x17, pkcs8);
      await jlis.storeAuthenticationCertificates(issuePhoneAuthCertificate(sim, spki), sim.hierarchy.authCa);
      await jlis.resetRetryCounter(0x18, "8642");
      // What a carrier relaying J-LIS's session saw: neither the key (nor its primes) nor the PIN.
      const relayed = Buffer.concat(transcript);
      const jwk = privateKey.export({ format: "jwk" });
      const secrets = [
        pkcs8,
        ...["d", "p", "q"].map((k) => Buffer.from(jwk[k as "d"]!, "base64url")),
        Buffer.from("8642"),
      ];
      for (const secret of secrets) assert.equal(relayed.indexOf(secret.subarray(0, 16)), -1);
      const message = Buffer.from("login");
      const signature = await phoneSigns(transport, message, "8642");
      assert.ok(verify("sha256", message, publicKey, signature));
    });
  });

  it("resets a blocked PIN with RESET RETRY COUNTER and wipes the applet", async () => {
    await withSim(async (sim) => {
      const { transport } = simInReader(sim);
      await personaliseSim(transport, sim);
      await transport.transmit(encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0x0c, data: JPKI_AP_AID }));
      await transport.transmit(h("00A4020C020018"));
      for (const tries of [2, 1, 0])
        assert.equal(
          swOf(await transport.transmit(h("0020008004 39393939".replace(" ", "")))),
          0x63c0 | tries,
        );
      assert.equal(swOf(await transport.transmit(h("002000800439393939"))), SW.AUTH_METHOD_BLOCKED);
      const jlis = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      await assert.rejects(jlis.resetRetryCounter(0x18, "12"), refusedWith(SW.WRONG_DATA));
      await jlis.resetRetryCounter(0x18, "2468");
      await phoneSigns(transport, Buffer.from("after unblock"), "2468");

      const wiper = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      await wiper.wipe();
      const applet = loadUiccState(sim.statePath).applet!;
      assert.deepEqual([applet.jpki.keys, applet.jpki.files, applet.jpki.pins], [{}, {}, {}]);
      await transport.transmit(encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0x0c, data: JPKI_AP_AID }));
      assert.equal(swOf(await transport.transmit(h("00A4020C02000A"))), SW.FILE_NOT_FOUND);
    });
  });

  it("drops an unfinished STORE DATA sequence at reset", async () => {
    await withSim(async (sim) => {
      const { card, transport } = simInReader(sim);
      await installJpki(transport, sim);
      const jlis = await JlisDomainSession.open(transport, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      const { spki } = await jlis.generateKeyPair(0x17);
      const certificate = issuePhoneAuthCertificate(sim, spki);
      const before = readFileSync(sim.statePath);
      // Interrupt the sequence after its first block by resetting the card.
      let blocks = 0;
      const cut: CardTransport = {
        ...transport,
        async transmit(command) {
          if (command[1] === 0xe2 && blocks++ === 1) card.reset();
          return transport.transmit(command);
        },
      };
      const session = await JlisDomainSession.open(cut, {
        sdCertificate: sim.sdCertificate,
        credentials: sim.jlis,
      });
      await assert.rejects(session.storeAuthenticationCertificates(certificate, sim.hierarchy.authCa));
      assert.deepEqual(readFileSync(sim.statePath), before);
    });
  });
});

describe("private keys never leave the SIM", () => {
  it("no answer of a full session (carrier, J-LIS, phone) holds private key bytes", async () => {
    await withSim(async (sim) => {
      const { transport, transcript } = simInReader(sim);
      await personaliseSim(transport, sim);
      await phoneSigns(transport, Buffer.from("challenge"));
      const state = loadUiccState(sim.statePath);
      const rsa = state.applet!.jpki.keys["0017"]!;
      const { createPrivateKey } = await import("node:crypto");
      const jwk = createPrivateKey({ key: Buffer.from(rsa, "base64"), format: "der", type: "pkcs8" }).export({
        format: "jwk",
      });
      const sdJwk = createPrivateKey({
        key: Buffer.from(state.maker.sdKey, "base64"),
        format: "der",
        type: "pkcs8",
      }).export({ format: "jwk" });
      const secrets = [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, sdJwk.d].map((v) =>
        Buffer.from(v!, "base64url").subarray(0, 16),
      );
      const everything = Buffer.concat(transcript);
      for (const secret of secrets) assert.equal(everything.indexOf(secret), -1);
      // Carrier keys never travel either.
      for (const key of [sim.carrierKeys.enc, sim.carrierKeys.mac, sim.carrierKeys.dek])
        assert.equal(everything.indexOf(key), -1);
    });
  });
});
