import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCommandApdu } from "../apdu.js";
import {
  Scp03Card,
  Scp03Host,
  type Scp03KeySet,
  scp03CardCryptogram,
  scp03HostCryptogram,
  scp03Kdf,
  scp03PseudoRandomCardChallenge,
} from "./scp03.js";
import { SecureChannelError } from "./secure-messaging.js";

const h = (hex: string) => Buffer.from(hex.replace(/\s+/g, ""), "hex");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// osmocom/pysim tests/unittests/test_globalplatform.py: key sets, plain APDUs and, per key length and
// security level, the exchanged bytes. The card there is an eUICC's ISD-R: its pseudo-random card
// challenges derive from AID A0000005591010FFFFFFFF8900000100 (checked below).
const ISD_R_AID = h("a0000005591010ffffffff8900000100");
const KEYSETS: Record<string, Scp03KeySet & { kvn: number }> = {
  aes128: {
    kvn: 0x30,
    enc: h("000102030405060708090a0b0c0d0e0f"),
    mac: h("101112131415161718191a1b1c1d1e1f"),
    dek: h("202122232425262728292a2b2c2d2e2f"),
  },
  aes192: {
    kvn: 0x31,
    enc: h("000102030405060708090a0b0c0d0e0f0001020304050607"),
    mac: h("101112131415161718191a1b1c1d1e1f1011121314151617"),
    dek: h("202122232425262728292a2b2c2d2e2f2021222324252627"),
  },
  aes256: {
    kvn: 0x32,
    enc: h("000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"),
    mac: h("101112131415161718191a1b1c1d1e1f101112131415161718191a1b1c1d1e1f"),
    dek: h("202122232425262728292a2b2c2d2e2f202122232425262728292a2b2c2d2e2f"),
  },
};

const GET_EID_PLAIN = "80e2910006bf3e035c015a00";
const GET_EID_RSP_PLAIN = "bf3e125a1089882119900000000000000000000005";
const CASES_PLAIN = ["80f22002", "80ca006600", "80f220020a4f0212345c054f9f70c5", "80f28002024f0000"];

interface PySimVector {
  name: string;
  keyset: string;
  initUpdateCmd: string;
  initUpdateRsp: string;
  extAuthCmd: string;
  getEidCmd: string;
  getEidRsp: string;
  cases: [string, string, string, string];
}

const VECTORS: PySimVector[] = [
  {
    name: "AES-128, level 0x11",
    keyset: "aes128",
    initUpdateCmd: "8050300008b13e5f938fc108c400",
    initUpdateRsp: "000000000000000000003003703eb51047495b249f66c484c1d2ef1948000002",
    extAuthCmd: "84821100107d5f5826a993ebc89eea24957fa0b3ce",
    getEidCmd: "84e291000ebf3e035c015a558d036518a2829700",
    getEidRsp: "bf3e125a1089882119900000000000000000000005971be68992dbbdfa",
    cases: [
      "84f220020863a63f8959827fb2",
      "84ca006608a0c6a4a74166f7ce00",
      "84f22002124f0212345c054f9f70c52249b50272656536",
      "84f280020a4f00e91443f6dce6b8ed00",
    ],
  },
  {
    name: "AES-128, level 0x03",
    keyset: "aes128",
    initUpdateCmd: "80503000088e1552d0513c60f300",
    initUpdateRsp: "0000000000000000000030037030760cd2c47c1dd395065fe5ead8a9d7000001",
    extAuthCmd: "8482030010fd4721a14d9b07003c451d2f8ae6bb21",
    getEidCmd: "84e2910018ca9c00f6713d79bc8baa642bdff51c3f6a4082d3bd9ad26c00",
    getEidRsp: "bf3e125a1089882119900000000000000000000005",
    cases: [
      "84f2200208c9811b11f1264cf1",
      "84ca006608e10ab60b3054798800",
      "84f22002184e2908bdb48b2315a55482e9e936ca122d6ecfae7d17416e",
      "84f28002180dd10a6b6193e5340b9e77d32d5a179cd710ac2773aefb2800",
    ],
  },
  {
    name: "AES-128, level 0x33",
    keyset: "aes128",
    initUpdateCmd: "8050300008fdf38259a1e0de4400",
    initUpdateRsp: "000000000000000000003003703b1aca81e821f219081cdc01c26b372d000003",
    extAuthCmd: "84823300108c36f96bcc00724a4e13ad591d7da3f0",
    getEidCmd: "84e2910018267a85dfe4a98fca6fb0527e0dfecce4914e40401433c87f00",
    getEidRsp: "f3ba2b1013aa6224f5e1c138d71805c569e5439b47576260b75fc021b25097cb2e68f8a0144975b9",
    cases: [
      "84f2200208ac6a59024bed84cc",
      "84ca006608409912ad8fb7aed000",
      "84f22002185f3dafc3ac14c381536a488bf44e06d056df9d74dbd21e5a",
      "84f280021865165105be3373347d0424d4400af2ac393f569ec779389e00",
    ],
  },
  {
    name: "AES-192, level 0x11",
    keyset: "aes192",
    initUpdateCmd: "80503100087396430b768b085b00",
    initUpdateRsp: "000000000000000000003103708cfc23522ffdbf1e5df5542cac8fd866000003",
    extAuthCmd: "84821100102145ed30b146f5db252fb7e624cec244",
    getEidCmd: "84e291000ebf3e035c015aff42cf801d14394400",
    getEidRsp: "bf3e125a1089882119900000000000000000000005162fbd33e04940a9",
    cases: [
      "84f22002084584e4f6784811ee",
      "84ca006608937776ebe190fa3000",
      "84f22002124f0212345c054f9f70c59a52bddf3040368c",
      "84f280020a4f009804b11411f7393d00",
    ],
  },
  {
    name: "AES-192, level 0x03",
    keyset: "aes192",
    initUpdateCmd: "805031000869c65da8202bf19f00",
    initUpdateRsp: "00000000000000000000310370b570a67be38446717729d6dd3d2ec5b1000001",
    extAuthCmd: "848203001065df4f1a356a887905466516d9e5b7c1",
    getEidCmd: "84e2910018d2c6fb477c5d4afe4fd4d21f17eff10d3578ec1774a12a2d00",
    getEidRsp: "bf3e125a1089882119900000000000000000000005",
    cases: [
      "84f2200208964e188f0b1bb697",
      "84ca006608f0820035a41d3e1800",
      "84f220021806b076ed452cd1fa84f77f5c08a146aa77a9286757dea791",
      "84f2800218d06527e39222dce091fabdb8e9b898417a67a6852d3577db00",
    ],
  },
  {
    name: "AES-192, level 0x33",
    keyset: "aes192",
    initUpdateCmd: "80503100089b3f2eef0e8c937400",
    initUpdateRsp: "00000000000000000000310370f6bb305a15bae1a68f79fb08212fbed7000002",
    extAuthCmd: "84823300109100bc22d58b45b86a26365ce39ff3cf",
    getEidCmd: "84e29100188f7f946c84f70d17994bc6e8791251bb1bb1bf02cf8de58900",
    getEidRsp: "c05176c1b6f72aae50c32cbee63b0e95998928fd4dfb2be9f27ffde8c8476f5909b4805cc4039599",
    cases: [
      "84f2200208d5d97754b6b3d2ba",
      "84ca006608516c82b8e30adbeb00",
      "84f2200218cc247f4761e6944277a4e0d6e32e44025b1e31537e2fc668",
      "84f2800218ba22b63d509bef5d093b43e5eaed03ed23144ab2d9cb51de00",
    ],
  },
  {
    name: "AES-256, level 0x11",
    keyset: "aes256",
    initUpdateCmd: "805032000811666d57866c6f5400",
    initUpdateRsp: "0000000000000000000032037053ea8847efa7674e41498a4d66cf0dee000003",
    extAuthCmd: "84821100102f2ad190eff2fafc4908996d1cebd310",
    getEidCmd: "84e291000ebf3e035c015af4b680372542b59d00",
    getEidRsp: "bf3e125a10898821199000000000000000000000058012dd7f01f1c4c1",
    cases: [
      "84f2200208d618b7da68d5fe52",
      "84ca0066088f3e055db23ad5e500",
      "84f22002124f0212345c054f9f70c5b6e15cc42404915e",
      "84f280020a4f00aa124aa74afe7f7500",
    ],
  },
  {
    name: "AES-256, level 0x03",
    keyset: "aes256",
    initUpdateCmd: "8050320008c6066990fc426e1d00",
    initUpdateRsp: "000000000000000000003203708682cd81bbd8919f2de3f2664581f118000001",
    extAuthCmd: "848203001077c493b632edadaf865a1e64acc07ce9",
    getEidCmd: "84e29100183ddaa60594963befaada3525b492ede23c2ab2c1ce3afe4400",
    getEidRsp: "bf3e125a1089882119900000000000000000000005",
    cases: [
      "84f2200208480ddc8e419da38d",
      "84ca0066083e9d6a6c0b2d732000",
      "84f22002183ebfef2da8b04af2a85f491f299b76973df76ff08a4031be",
      "84f2800218783fff80990f5585b1055010ea95094a26e4a8f1ef4b18e100",
    ],
  },
  {
    name: "AES-256, level 0x33",
    keyset: "aes256",
    initUpdateCmd: "805032000897b2055fe58599fd00",
    initUpdateRsp: "00000000000000000000320370a8439a22cedf045fa9f1903b2834f26e000002",
    extAuthCmd: "8482330010508a0fd959d2e547c6b33154a6be2057",
    getEidCmd: "84e29100187a5ef717eaf1e135ae92fe54429d0e465decda65f5fe5aea00",
    getEidRsp: "ea90dbfa648a67c5eb6abc57f8530b97d0cd5647c5e8732016b55203b078dd2ace7f8bc5d1c1cd99",
    cases: [
      "84f2200208bcc5c17275545d93",
      "84ca00660804806aba9d543bb600",
      "84f2200218717222491556ec81a45f49ce48be33320024801a1c4cb0e0",
      "84f2800218561f105bccd3a1642904b251ccc1228beb80a82370a8637000",
    ],
  },
];

function keysetOf(v: PySimVector): Scp03KeySet & { kvn: number } {
  const keyset = KEYSETS[v.keyset];
  assert.ok(keyset);
  return keyset;
}

/** A card holding the vector's key set, whose sequence counter will produce the vector's card challenge. */
function cardFor(v: PySimVector): Scp03Card {
  const keyset = keysetOf(v);
  const counter = Number.parseInt(v.initUpdateRsp.slice(-6), 16);
  return new Scp03Card({
    keySet: (kvn) => (kvn === keyset.kvn || kvn === 0 ? { keyVersion: keyset.kvn, keys: keyset } : undefined),
    keyDiversificationData: Buffer.alloc(10),
    cardChallenge: { kind: "pseudo-random", aid: ISD_R_AID, nextSequenceCounter: () => counter },
  });
}

const OK = "9000";

describe("SCP03 key derivation (GPC Amd D §4.1.5)", () => {
  it("gives the host cryptogram of the Yubico.NET.SDK derivation test", () => {
    const k = h("FC90AA67CDC5DABFD5051663045DFA23");
    const context = h("360CB43F4301B894CAAFA4DAC615236A");
    assert.equal(hex(scp03Kdf(k, 0x01, context, 64)), "45330ab30bb1a079");
    assert.equal(hex(scp03HostCryptogram(k, context)), "45330ab30bb1a079");
  });

  it("derives more than one block for AES-192/256 session keys (counter i = 1, 2)", () => {
    const key = h("000102030405060708090a0b0c0d0e0f");
    const long = scp03Kdf(key, 0x04, h("0011"), 256);
    assert.equal(long.length, 32);
    // The first block differs from a 128-bit derivation only through L in the fixed input.
    assert.notEqual(hex(long.subarray(0, 16)), hex(scp03Kdf(key, 0x04, h("0011"), 128)));
  });

  it("makes pySim's pseudo-random card challenges from K-ENC, sequence counter and the ISD-R AID", () => {
    for (const v of VECTORS) {
      const rsp = h(v.initUpdateRsp);
      const counter = rsp.readUIntBE(rsp.length - 3, 3);
      assert.equal(
        hex(scp03PseudoRandomCardChallenge(keysetOf(v).enc, counter, ISD_R_AID)),
        hex(rsp.subarray(13, 21)),
        v.name,
      );
    }
  });
});

describe("SCP03 host side against osmocom/pysim test_globalplatform.py", () => {
  for (const v of VECTORS) {
    it(v.name, () => {
      const host = new Scp03Host({ keys: keysetOf(v), keyVersion: keysetOf(v).kvn });
      assert.equal(hex(host.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13))), v.initUpdateCmd);
      host.processInitializeUpdateResponse(h(v.initUpdateRsp + OK));
      const level = h(v.extAuthCmd)[2]!;
      assert.equal(hex(host.externalAuthenticate(level)), v.extAuthCmd);
      host.processExternalAuthenticateResponse(h(OK));
      assert.equal(hex(host.wrapCommand(h(GET_EID_PLAIN))), v.getEidCmd);
      assert.equal(hex(host.unwrapResponse(h(v.getEidRsp + OK))), GET_EID_RSP_PLAIN + OK);
      CASES_PLAIN.forEach((plain, i) => {
        assert.equal(hex(host.wrapCommand(h(plain))), v.cases[i], `case ${i + 1}`);
      });
    });
  }

  it("refuses a wrong card cryptogram", () => {
    const v = VECTORS[0]!;
    const host = new Scp03Host({ keys: keysetOf(v), keyVersion: 0x30 });
    host.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13));
    const bad = h(v.initUpdateRsp + OK);
    bad[28]! ^= 1;
    assert.throws(() => host.processInitializeUpdateResponse(bad), SecureChannelError);
  });

  it("refuses a response with a wrong R-MAC", () => {
    const v = VECTORS[0]!;
    const host = new Scp03Host({ keys: keysetOf(v), keyVersion: 0x30 });
    host.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13));
    host.processInitializeUpdateResponse(h(v.initUpdateRsp + OK));
    host.externalAuthenticate(0x11);
    host.wrapCommand(h(GET_EID_PLAIN));
    const bad = h(v.getEidRsp + OK);
    bad[bad.length - 3]! ^= 1;
    assert.throws(
      () => host.unwrapResponse(bad),
      (e: unknown) => e instanceof SecureChannelError && e.sw === 0x6982,
    );
  });
});

describe("SCP03 card side against osmocom/pysim test_globalplatform.py", () => {
  for (const v of VECTORS) {
    it(v.name, () => {
      const card = cardFor(v);
      assert.equal(hex(card.processInitializeUpdate(h(v.initUpdateCmd))), v.initUpdateRsp + OK);
      assert.equal(hex(card.processExternalAuthenticate(h(v.extAuthCmd))), OK);
      assert.equal(card.securityLevel, h(v.extAuthCmd)[2]);
      assert.equal(hex(card.unwrapCommand(h(v.getEidCmd))), GET_EID_PLAIN);
      assert.equal(hex(card.wrapResponse(h(GET_EID_RSP_PLAIN), 0x9000)), v.getEidRsp + OK);
      v.cases.forEach((wrapped, i) => {
        assert.equal(hex(card.unwrapCommand(h(wrapped))), CASES_PLAIN[i], `case ${i + 1}`);
      });
    });
  }
});

function openPair(level: number, keys = KEYSETS["aes128"]!): { host: Scp03Host; card: Scp03Card } {
  const card = new Scp03Card({
    keySet: (kvn) => (kvn === 0x30 || kvn === 0 ? { keyVersion: 0x30, keys } : undefined),
    keyDiversificationData: h("00010203040506070809"),
  });
  const host = new Scp03Host({ keys });
  host.processInitializeUpdateResponse(card.processInitializeUpdate(host.initializeUpdate()));
  host.processExternalAuthenticateResponse(
    card.processExternalAuthenticate(host.externalAuthenticate(level)),
  );
  return { host, card };
}

const refusedWith = (sw: number) => (e: unknown) => e instanceof SecureChannelError && e.sw === sw;

describe("SCP03 host ↔ card", () => {
  for (const level of [0x00, 0x01, 0x03, 0x11, 0x13, 0x33]) {
    it(`round-trips commands and responses at level 0x${level.toString(16).padStart(2, "0")}`, () => {
      const { host, card } = openPair(level);
      for (const [command, response] of [
        ["80ca006600", "66089000"],
        ["80f22002", ""],
        ["80e2910006bf3e035c015a00", "bf3e125a10898821199000000000000000000000"],
        [`80e8000010${"ab".repeat(16)}00`, "00"],
        // Extended length: 300 bytes of data.
        [`80e8000000012c${"cd".repeat(300)}0000`, "11".repeat(300)],
      ] as const) {
        assert.equal(hex(card.unwrapCommand(host.wrapCommand(h(command)))), command);
        assert.equal(hex(host.unwrapResponse(card.wrapResponse(h(response), 0x9000))), `${response}${OK}`);
      }
      // Error status words travel alone and unprotected.
      card.unwrapCommand(host.wrapCommand(h("80ca00ff00")));
      assert.equal(hex(card.wrapResponse(h(""), 0x6a88)), "6a88");
      assert.equal(hex(host.unwrapResponse(h("6a88"))), "6a88");
    });
  }

  it("switches to extended lengths when padding and MAC push a short command past 255 bytes", () => {
    const { host, card } = openPair(0x33);
    const command = h(`80e80000fa${"42".repeat(250)}00`);
    const wrapped = host.wrapCommand(command);
    assert.equal(hex(wrapped.subarray(4, 7)), "000108"); // 256 bytes of ciphertext and an 8-byte MAC
    const plain = parseCommandApdu(card.unwrapCommand(wrapped));
    assert.equal(hex(plain.data), "42".repeat(250));
    assert.equal(plain.cla, 0x80);
  });

  it("runs in S16 mode: 16-byte challenges, cryptograms and MACs", () => {
    const keys = KEYSETS["aes256"]!;
    const card = new Scp03Card({
      keySet: () => ({ keyVersion: 0x32, keys }),
      keyDiversificationData: Buffer.alloc(10),
      s16: true,
    });
    const host = new Scp03Host({ keys, s16: true });
    const initializeUpdate = host.initializeUpdate();
    assert.equal(initializeUpdate[4], 16);
    const response = card.processInitializeUpdate(initializeUpdate);
    assert.equal(response.length, 10 + 3 + 16 + 16 + 2);
    assert.equal(response[12]! & 0x01, 0x01);
    host.processInitializeUpdateResponse(response);
    const externalAuthenticate = host.externalAuthenticate(0x33);
    assert.equal(externalAuthenticate[4], 32);
    host.processExternalAuthenticateResponse(card.processExternalAuthenticate(externalAuthenticate));
    const wrapped = host.wrapCommand(h("80ca006600"));
    assert.equal(wrapped[4], 16);
    assert.equal(hex(card.unwrapCommand(wrapped)), "80ca006600");
    const rsp = card.wrapResponse(h("6608"), 0x9000);
    assert.equal(rsp.length, 16 + 16 + 2);
    assert.equal(hex(host.unwrapResponse(rsp)), "66089000");
  });

  it("keeps the logical channel in CLA and MACs with channel 0", () => {
    const { host, card } = openPair(0x03);
    const wrapped = host.wrapCommand(h("81ca006600"));
    assert.equal(wrapped[0], 0x85);
    assert.equal(hex(card.unwrapCommand(wrapped)), "81ca006600");
  });

  it("refuses a wrong C-MAC (6982) and closes the session", () => {
    const { host, card } = openPair(0x01);
    const wrapped = host.wrapCommand(h("80ca006600"));
    wrapped[wrapped.length - 2]! ^= 0x01;
    assert.throws(() => card.unwrapCommand(wrapped), refusedWith(0x6982));
    assert.equal(card.authenticated, false);
    assert.throws(() => card.unwrapCommand(host.wrapCommand(h("80ca006600"))), refusedWith(0x6982));
  });

  it("refuses a replayed command: its MAC belongs to an older chaining value", () => {
    const { host, card } = openPair(0x03);
    const first = host.wrapCommand(h("80e2910006bf3e035c015a00"));
    card.unwrapCommand(first);
    card.wrapResponse(h(""), 0x9000);
    assert.throws(() => card.unwrapCommand(first), refusedWith(0x6982));
  });

  it("refuses a command without secure messaging when C-MAC is on", () => {
    const { card } = openPair(0x01);
    assert.throws(() => card.unwrapCommand(h("80ca006600")), refusedWith(0x6982));
  });

  it("refuses a wrong host cryptogram (6300) and a wrong EXTERNAL AUTHENTICATE MAC (6982)", () => {
    const v = VECTORS[0]!;
    const card = cardFor(v);
    card.processInitializeUpdate(h(v.initUpdateCmd));
    // A host holding another K-MAC computes another cryptogram and MAC.
    const wrongKeys = { ...keysetOf(v), mac: h("ff".repeat(16)) };
    const host = new Scp03Host({ keys: wrongKeys, keyVersion: 0x30 });
    host.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13));
    assert.throws(() => host.processInitializeUpdateResponse(h(v.initUpdateRsp + OK)), refusedWith(0x6300));

    // A correct MAC over a wrong cryptogram: the MAC verifies, the cryptogram does not.
    const honest = new Scp03Host({ keys: keysetOf(v), keyVersion: 0x30 });
    honest.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13));
    honest.processInitializeUpdateResponse(h(v.initUpdateRsp + OK));
    const extAuth = h(v.extAuthCmd);
    const tampered = Buffer.from(extAuth);
    tampered[5]! ^= 0x01; // host cryptogram byte: the C-MAC no longer matches
    assert.throws(() => card.processExternalAuthenticate(tampered), refusedWith(0x6982));
    assert.equal(card.authenticated, false);
    // After a failure a new INITIALIZE UPDATE is needed.
    assert.throws(() => card.processExternalAuthenticate(extAuth), refusedWith(0x6985));
  });

  it("answers 6300 for a well-MACed but wrong host cryptogram", async () => {
    // Build an EXTERNAL AUTHENTICATE whose MAC is right for a wrong cryptogram, with the session S-MAC.
    const { HostSecureMessaging } = await import("./secure-messaging.js");
    const v = VECTORS[0]!;
    const card = cardFor(v);
    card.processInitializeUpdate(h(v.initUpdateCmd));
    const host = new Scp03Host({ keys: keysetOf(v), keyVersion: 0x30 });
    host.initializeUpdate(h(v.initUpdateCmd).subarray(5, 13));
    host.processInitializeUpdateResponse(h(v.initUpdateRsp + OK));
    const keys = host.sessionKeys!;
    const forger = new HostSecureMessaging({ keys, level: 0x01, macLength: 8 });
    const context = Buffer.concat([h(v.initUpdateCmd).subarray(5, 13), h(v.initUpdateRsp).subarray(13, 21)]);
    const wrong = scp03CardCryptogram(keys.sMac, context); // the card's cryptogram, not the host's
    const forged = forger.wrapCommand(Buffer.concat([h("8082110008"), wrong]));
    assert.throws(() => card.processExternalAuthenticate(forged), refusedWith(0x6300));
  });

  it("refuses an unknown key version (6A88) and EXTERNAL AUTHENTICATE before INITIALIZE UPDATE (6985)", () => {
    const card = cardFor(VECTORS[0]!);
    assert.throws(() => card.processInitializeUpdate(h("80503500080102030405060708")), refusedWith(0x6a88));
    assert.throws(() => card.processExternalAuthenticate(h(VECTORS[0]!.extAuthCmd)), refusedWith(0x6985));
  });
});
