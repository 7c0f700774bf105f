import assert from "node:assert/strict";
import { createECDH, createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { parseCertificate } from "../../pki/certificate.js";
import { SIM_MAKER_CA_NAME } from "../../pki/names.js";
import { simAttestationCertificateTbs, simMakerCaTbs } from "../../pki/profiles.js";
import { randomSerial } from "../../pki/serial.js";
import { generateTestKey, signTbs, TEST_EID, type TestKey } from "../../pki/test-hierarchy.js";
import { caValidity } from "../../pki/validity.js";
import { aesCmac } from "./cmac.js";
import { x509HostCertificateValidator } from "./host-certificate.js";
import {
  type EckaPrivateKey,
  p256PrivateKeyFromScalar,
  Scp11Card,
  Scp11Host,
  type Scp11Variant,
  softwareEckaKey,
} from "./scp11.js";
import { SecureChannelError } from "./secure-messaging.js";

const h = (hex: string) => Buffer.from(hex, "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const refusedWith = (sw: number) => (e: unknown) => e instanceof SecureChannelError && e.sw === sw;

// Fixed P-256 private keys (generated once with crypto.createECDH("prime256v1")), so the exchange is
// reproducible and can be recorded.
const SK_SD = "472c66bfb3e2c517165a55b48fa113b1a7497ba57a1730979807b17933a5a8fc"; // card static (SK.SD.ECKA)
const ESK_SD = "cc0c0c3454bd8e95c805445411af04beede2552997b186c153c96e4eba7cd8c7"; // card ephemeral
const SK_OCE = "335d11abab4e4fb09ea0a9b9fac686bb5dde3bb1ffc714b3d7f1fe854ffbf40f"; // host static (SCP11a)
const ESK_OCE = "c3dc32e2d45bb7b97c8b324b830becee830a32b934ddb4e56025a913b7eec412"; // host ephemeral

const PK_SD =
  "0447196b9888b967f2707a7f10122ae836db3ae824031878082648efc2da458b12ee9bc0fb64711e3e35ecb19456a9f4a73a7f8df3fdca66572375696eae1634cb";
const EPK_OCE =
  "047a583aa3b47d0123862c85b858ba76636d3c03ff3784ef45807a65750a06dfa8f3f7e589facaf03e71098ec2ceb7dae26093fb76f9a5b83894d0ff845e47e118";
const EPK_SD =
  "04999bc24b2fdacd7d9ba04b58eba1c18af0ba2b25edcd11edd016f03a3aea48cad60eaf92de9195f8259dc4c42a01d0f155fa03f5d8e9a41332e1f6531a60698a";

const eckaKey = (scalar: string): EckaPrivateKey => softwareEckaKey(p256PrivateKeyFromScalar(h(scalar)));

/** Recorded with this implementation and checked below against the independent computation. */
const RECORDED: Record<
  Scp11Variant,
  {
    command: string;
    response: string;
    keys: [string, string, string, string];
    getEid: string;
    getEidRsp: string;
  }
> = {
  b: {
    // INTERNAL AUTHENTICATE 80 88 KVN=01 KID=13: A6 {90 11 00, 95 3C, 80 88, 81 10} 5F49 ePK.OCE.ECKA
    command: `8088011353a60d9002110095013c8001888101105f4941${EPK_OCE}00`,
    // 5F49 ePK.SD.ECKA, 86 receipt, 9000
    response: `5f4941${EPK_SD}861049c0e80d8a3233dc1d42143a8fe9f8519000`,
    keys: [
      "794965d23cd07b4b7646b4f64245ebae",
      "0d4ab0677ea1967a1abd9f18d317fb08",
      "33cc2d9fb2e16c46c3e4fd09f206c604",
      "a0092b9b8a9522bd3c71bc239cd0543e",
    ],
    getEid: "84e2910018c62b744f4f4b01d01e0f5892337979542412f1fba5631d5300",
    getEidRsp: "0bc8e8c23e1c1faa4bbcaf02483a71106ae50c1f1d476185dbdb0f391c27492bf0dd940b79378caf9000",
  },
  a: {
    // MUTUAL AUTHENTICATE 80 82 KVN=01 KID=11: A6 {90 11 01, ...} 5F49 ePK.OCE.ECKA
    command: `8082011153a60d9002110195013c8001888101105f4941${EPK_OCE}00`,
    response: `5f4941${EPK_SD}8610dd938b6371bd1c09ab36f181eae15aba9000`,
    keys: [
      "c690119dace51f2abda47661c2dc78c3",
      "cdb53b4c2654d6a61aa33357b4007da5",
      "2fca1c859b871b4b101cf3d83fb6b2db",
      "fc55987541916342771f65ea54ba4edf",
    ],
    getEid: "84e291001803471c57918c0036d09fa28add896c76a31b4e4d766f1f6800",
    getEidRsp: "7ab101a861b5659354aae5f52953b43e8e55e11f342cf7b118b58db7eb7e757b1e94a3c17531b0269000",
  },
};

const GET_EID_PLAIN = "80e2910006bf3e035c015a00";
const GET_EID_RSP_PLAIN = "bf3e125a1089882119900000000000000000000005";

/** Independent X9.63 KDF: one SHA-256 per block over a hex-built input. */
function referenceX963(z: string, info: string, length: number): string {
  let out = "";
  for (let i = 1; out.length < 2 * length; i++)
    out += createHash("sha256")
      .update(h(z + i.toString(16).padStart(8, "0") + info))
      .digest("hex");
  return out.slice(0, 2 * length);
}

/** Independent ECDH: the legacy createECDH API over raw scalars and points (the code uses diffieHellman). */
function ecdh(privateScalar: string, peerPoint: string): string {
  const e = createECDH("prime256v1");
  e.setPrivateKey(h(privateScalar));
  return e.computeSecret(h(peerPoint)).toString("hex");
}

// A certificate hierarchy for SCP11a: the card trusts `trustedRoot`; the host's static key is
// certified by it. (The SIM maker profiles stand in for a key-loading CA and an OCE certificate.)
interface Pki {
  root: TestKey;
  rootCertificate: Buffer;
  hostCertificate: Buffer;
}

function makePki(hostSpki: Buffer): Pki {
  const root = generateTestKey("ec-p256");
  const now = new Date();
  const rootCertificate = signTbs(
    simMakerCaTbs({ serial: randomSerial(), spki: root.spki, validity: caValidity(now, 10) }),
    root,
  );
  const hostCertificate = signTbs(
    simAttestationCertificateTbs({
      serial: randomSerial(),
      issuer: { name: SIM_MAKER_CA_NAME, spki: root.spki, algorithm: "ec-p256" },
      subjectSpki: hostSpki,
      validity: caValidity(now, 5),
      eid: TEST_EID,
    }),
    root,
  );
  return { root, rootCertificate, hostCertificate };
}

const hostSpki = createPublicKey(p256PrivateKeyFromScalar(h(SK_OCE))).export({ type: "spki", format: "der" });
const PKI = makePki(hostSpki);

function cardOf(options: { variants?: Scp11Variant[]; trusted?: Buffer } = {}): Scp11Card {
  return new Scp11Card({
    staticKey: eckaKey(SK_SD),
    keyVersion: 0x01,
    ephemeralKey: () => eckaKey(ESK_SD),
    validateHostCertificates: x509HostCertificateValidator({
      trustedRoots: [options.trusted ?? PKI.rootCertificate],
    }),
    ...(options.variants ? { variants: options.variants } : {}),
  });
}

function hostOf(
  variant: Scp11Variant,
  overrides: { hostKey?: EckaPrivateKey; chain?: Buffer[] } = {},
): Scp11Host {
  return new Scp11Host({
    variant,
    cardPublicKey: h(PK_SD),
    keyVersion: 0x01,
    ephemeralKey: eckaKey(ESK_OCE),
    ...(variant === "a"
      ? {
          hostKey: overrides.hostKey ?? eckaKey(SK_OCE),
          hostCertificates: overrides.chain ?? [PKI.hostCertificate],
        }
      : {}),
  });
}

/** Runs the handshake; returns host and card with the session open on both. */
function handshake(
  variant: Scp11Variant,
  card = cardOf(),
  host = hostOf(variant),
): { host: Scp11Host; card: Scp11Card } {
  for (const pso of host.performSecurityOperationCommands())
    assert.equal(hex(card.processPerformSecurityOperation(pso)), "9000");
  const command = host.authenticate();
  const response =
    variant === "a" ? card.processMutualAuthenticate(command) : card.processInternalAuthenticate(command);
  host.processAuthenticateResponse(response);
  return { host, card };
}

describe("SCP11 key agreement (GPC Amd F §3.1.2) with fixed keys", () => {
  it("has the recorded public keys", () => {
    assert.equal(hex(eckaKey(SK_SD).publicPoint), PK_SD);
    assert.equal(hex(eckaKey(ESK_SD).publicPoint), EPK_SD);
    assert.equal(hex(eckaKey(ESK_OCE).publicPoint), EPK_OCE);
  });

  for (const variant of ["b", "a"] as const) {
    it(`SCP11${variant}: commands, receipt and session keys match the recorded vector`, () => {
      const card = cardOf();
      const host = hostOf(variant);
      for (const pso of host.performSecurityOperationCommands()) card.processPerformSecurityOperation(pso);
      const command = host.authenticate();
      assert.equal(hex(command), RECORDED[variant].command);
      const response =
        variant === "a" ? card.processMutualAuthenticate(command) : card.processInternalAuthenticate(command);
      assert.equal(hex(response), RECORDED[variant].response);
      host.processAuthenticateResponse(response);
      const keys = host.sessionKeys!;
      assert.deepEqual([keys.sEnc, keys.sMac, keys.sRmac, keys.dek!].map(hex), RECORDED[variant].keys);
      assert.equal(hex(host.wrapCommand(h(GET_EID_PLAIN))), RECORDED[variant].getEid);
      assert.equal(hex(card.unwrapCommand(h(RECORDED[variant].getEid))), GET_EID_PLAIN);
      assert.equal(hex(card.wrapResponse(h(GET_EID_RSP_PLAIN), 0x9000)), RECORDED[variant].getEidRsp);
      assert.equal(hex(host.unwrapResponse(h(RECORDED[variant].getEidRsp))), `${GET_EID_RSP_PLAIN}9000`);
    });

    it(`SCP11${variant}: the recorded vector agrees with an independent computation`, () => {
      // ShSee from the two ephemeral keys; ShSes from the card's static key and the host's static key
      // (SCP11a) or ephemeral key (SCP11b). Computed on both sides' keys: they must agree.
      const hostStaticScalar = variant === "a" ? SK_OCE : ESK_OCE;
      const shSee = ecdh(ESK_OCE, EPK_SD);
      assert.equal(shSee, ecdh(ESK_SD, EPK_OCE));
      const shSes = ecdh(hostStaticScalar, PK_SD);
      assert.equal(shSes, ecdh(SK_SD, hex(eckaKey(hostStaticScalar).publicPoint)));
      const material = referenceX963(shSee + shSes, "3c8810", 80);
      const [receiptKey, ...sessionKeys] = [0, 1, 2, 3, 4].map((i) => material.slice(32 * i, 32 * (i + 1)));
      assert.deepEqual(sessionKeys, RECORDED[variant].keys);
      // Receipt: CMAC over the command data (A6 ... 5F49 ePK.OCE) and the card's 5F49 data object.
      const commandData = h(RECORDED[variant].command).subarray(5, -1);
      const response = h(RECORDED[variant].response);
      const receipt = aesCmac(h(receiptKey!), commandData, response.subarray(0, 3 + 65));
      assert.equal(hex(response.subarray(3 + 65 + 2, -2)), hex(receipt));
    });
  }
});

describe("SCP11 host ↔ card", () => {
  for (const variant of ["a", "b"] as const) {
    it(`SCP11${variant}: round-trips wrapped commands and responses (C-MAC, C-DEC, R-MAC, R-ENC)`, () => {
      // Fresh random ephemeral keys on both sides this time.
      const host = new Scp11Host({
        variant,
        cardPublicKey: h(PK_SD),
        keyVersion: 0x01,
        ...(variant === "a" ? { hostKey: eckaKey(SK_OCE), hostCertificates: [PKI.hostCertificate] } : {}),
      });
      const fresh = new Scp11Card({
        staticKey: eckaKey(SK_SD),
        keyVersion: 0x01,
        validateHostCertificates: x509HostCertificateValidator({ trustedRoots: [PKI.rootCertificate] }),
      });
      handshake(variant, fresh, host);
      assert.equal(fresh.authenticated, true);
      assert.equal(fresh.variant, variant);
      for (const [command, response] of [
        ["80ca006600", "66089000"],
        ["80f22002", ""],
        [`80e80000000190${"5a".repeat(400)}0000`, "99".repeat(300)],
      ] as const) {
        assert.equal(hex(fresh.unwrapCommand(host.wrapCommand(h(command)))), command);
        assert.equal(hex(host.unwrapResponse(fresh.wrapResponse(h(response), 0x9000))), `${response}9000`);
      }
      assert.deepEqual(fresh.dek, host.sessionKeys?.dek);
    });
  }

  it("the host refuses a wrong receipt", () => {
    const card = cardOf();
    const host = hostOf("b");
    const response = card.processInternalAuthenticate(host.authenticate());
    response[response.length - 3]! ^= 0x01;
    assert.throws(() => host.processAuthenticateResponse(response), refusedWith(0x6982));
    assert.throws(() => host.wrapCommand(h("80ca006600")));
  });

  it("SCP11a: a host whose static key is not the certified one gets a receipt it cannot verify", () => {
    const impostor = softwareEckaKey(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey);
    const card = cardOf();
    const host = hostOf("a", { hostKey: impostor });
    for (const pso of host.performSecurityOperationCommands()) card.processPerformSecurityOperation(pso);
    const response = card.processMutualAuthenticate(host.authenticate());
    assert.throws(() => host.processAuthenticateResponse(response), refusedWith(0x6982));
  });

  for (const variant of ["a", "b"] as const) {
    it(`SCP11${variant}: the card refuses a wrong C-MAC (6982) and closes the session`, () => {
      const { host, card } = handshake(variant);
      const wrapped = host.wrapCommand(h(GET_EID_PLAIN));
      wrapped[wrapped.length - 2]! ^= 0x80;
      assert.throws(() => card.unwrapCommand(wrapped), refusedWith(0x6982));
      assert.equal(card.authenticated, false);
      assert.equal(hex(card.wrapResponse(h(""), 0x6982)), "6982");
    });

    it(`SCP11${variant}: the card refuses a replayed command`, () => {
      const { host, card } = handshake(variant);
      const first = host.wrapCommand(h(GET_EID_PLAIN));
      card.unwrapCommand(first);
      host.unwrapResponse(card.wrapResponse(h(GET_EID_RSP_PLAIN), 0x9000));
      assert.throws(() => card.unwrapCommand(first), refusedWith(0x6982));
    });
  }

  it("SCP11a: a host certificate from another CA is rejected (6982) and MUTUAL AUTHENTICATE refused", () => {
    const other = makePki(hostSpki);
    const card = cardOf();
    const host = hostOf("a", { chain: [other.hostCertificate] });
    const [pso] = host.performSecurityOperationCommands();
    assert.throws(() => card.processPerformSecurityOperation(pso!), refusedWith(0x6982));
    assert.throws(() => card.processMutualAuthenticate(host.authenticate()), refusedWith(0x6982));
    assert.equal(card.authenticated, false);
  });

  it("SCP11a: a chain whose intermediate is not a CA is rejected", () => {
    // The host certificate (an end entity) cannot certify another key.
    const leafKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const fakeLeaf = signTbs(
      simAttestationCertificateTbs({
        serial: randomSerial(),
        issuer: {
          name: parseCertificate(PKI.hostCertificate).subjectDer,
          spki: hostSpki,
          algorithm: "ec-p256",
        },
        subjectSpki: leafKey.publicKey.export({ type: "spki", format: "der" }),
        validity: caValidity(new Date(), 1),
        eid: TEST_EID,
      }),
      { privateKey: p256PrivateKeyFromScalar(h(SK_OCE)), spki: hostSpki, algorithm: "ec-p256" },
    );
    const card = cardOf();
    const host = hostOf("a", { chain: [PKI.hostCertificate, fakeLeaf] });
    const [first, second] = host.performSecurityOperationCommands();
    assert.equal(first![3], 0x80); // more certificates follow
    assert.equal(hex(card.processPerformSecurityOperation(first!)), "9000");
    assert.throws(() => card.processPerformSecurityOperation(second!), refusedWith(0x6982));
  });

  it("SCP11a: MUTUAL AUTHENTICATE without a validated certificate is refused", () => {
    const card = cardOf();
    assert.throws(() => card.processMutualAuthenticate(hostOf("a").authenticate()), refusedWith(0x6982));
  });

  it("refuses a key set or variant the card does not serve, and malformed data objects", () => {
    const card = cardOf({ variants: ["a"] });
    assert.throws(() => card.processInternalAuthenticate(hostOf("b").authenticate()), refusedWith(0x6a88));
    const cardB = cardOf();
    const command = hostOf("b").authenticate();
    command[5 + 6]! = 0x14; // key usage 14 instead of 3C
    assert.throws(() => cardB.processInternalAuthenticate(command), refusedWith(0x6a80));
    const offCurve = hostOf("b").authenticate();
    offCurve[offCurve.length - 2]! ^= 0x01; // last byte of Y: the point leaves the curve
    assert.throws(() => cardB.processInternalAuthenticate(offCurve), refusedWith(0x6a80));
  });
});
