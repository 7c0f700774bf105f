/**
 * A complete test hierarchy signed with Node's crypto, for tests of this module and of its users:
 * both JPKI roots, their OCSP responders, the four citizen certificates, and the SIM maker's root
 * with one SIM attestation certificate. Not used by production code.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import {
  assembleSigned,
  generateP256PrivateKey,
  type KeyAlgorithm,
  signatureAlgorithmIdentifier,
} from "./algorithms.js";
import { AUTH_CA_NAME, SIGNING_CA_NAME, SIM_MAKER_CA_NAME } from "./names.js";
import {
  authenticationCaTbs,
  type BasicAttributes,
  cardAuthenticationCertificateTbs,
  cardSigningCertificateTbs,
  type IssuerKey,
  ocspResponderCertificateTbs,
  signingCaTbs,
  simAttestationCertificateTbs,
  simMakerCaTbs,
  smartphoneAuthenticationCertificateTbs,
  smartphoneSigningCertificateTbs,
} from "./profiles.js";
import { randomSerial, shardOf } from "./serial.js";
import {
  cardExpiryDate,
  caValidity,
  citizenCertificateValidity,
  endOfJstDay,
  jstDateOf,
  shortValidity,
} from "./validity.js";

export interface TestKey {
  readonly privateKey: KeyObject;
  readonly spki: Buffer;
  readonly algorithm: KeyAlgorithm;
}

/** A fresh RSA-2048 or P-256 key pair with its SPKI DER. */
export function generateTestKey(algorithm: KeyAlgorithm): TestKey {
  const { privateKey, publicKey } =
    algorithm === "rsa-2048"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : (() => {
          const privateKey = generateP256PrivateKey();
          return { privateKey, publicKey: createPublicKey(privateKey) };
        })();
  return { privateKey, spki: publicKey.export({ type: "spki", format: "der" }), algorithm };
}

/** Signs a TBS with a test key and wraps it into a Certificate (RFC 5280 §4.1). */
export function signTbs(tbs: Buffer, key: TestKey): Buffer {
  const signature = sign("sha256", tbs, key.privateKey);
  return assembleSigned(tbs, signatureAlgorithmIdentifier(key.algorithm), signature);
}

export const TEST_PERSON: BasicAttributes = {
  name: "公的 太郎",
  nameSubstitutes: "",
  sex: 1,
  birthDate: { year: 1990, month: 4, day: 1 },
  address: "東京都千代田区霞が関二丁目1番2号",
  addressSubstitutes: "",
};

export const TEST_BASE_URL = "http://127.0.0.1:8080";
export const TEST_SHARDS = 16;
export const TEST_EID = "89049032000000000000000000012345";

export interface TestHierarchy {
  readonly keys: Record<"signCa" | "authCa" | "ocsp" | "citizen" | "simMaker" | "sim", TestKey>;
  readonly signCa: Buffer;
  readonly authCa: Buffer;
  readonly signOcsp: Buffer;
  readonly authOcsp: Buffer;
  readonly cardSign: Buffer;
  readonly cardAuth: Buffer;
  readonly phoneSign: Buffer;
  readonly phoneAuth: Buffer;
  readonly simMakerCa: Buffer;
  readonly simAttestation: Buffer;
  readonly signIssuer: IssuerKey;
  readonly authIssuer: IssuerKey;
  readonly simMakerIssuer: IssuerKey;
}

/** Builds every certificate kind once, issued at `now`. */
export function buildTestHierarchy(
  now: Date = new Date(),
  person: BasicAttributes = TEST_PERSON,
): TestHierarchy {
  const keys = {
    signCa: generateTestKey("rsa-2048"),
    authCa: generateTestKey("rsa-2048"),
    ocsp: generateTestKey("rsa-2048"),
    citizen: generateTestKey("rsa-2048"),
    simMaker: generateTestKey("ec-p256"),
    sim: generateTestKey("ec-p256"),
  };
  const signIssuer: IssuerKey = { name: SIGNING_CA_NAME, spki: keys.signCa.spki, algorithm: "rsa-2048" };
  const authIssuer: IssuerKey = { name: AUTH_CA_NAME, spki: keys.authCa.spki, algorithm: "rsa-2048" };
  const simMakerIssuer: IssuerKey = {
    name: SIM_MAKER_CA_NAME,
    spki: keys.simMaker.spki,
    algorithm: "ec-p256",
  };
  const ca = caValidity(now);
  const signCa = signTbs(
    signingCaTbs({ serial: randomSerial(), spki: keys.signCa.spki, validity: ca }),
    keys.signCa,
  );
  const authCa = signTbs(
    authenticationCaTbs({ serial: randomSerial(), spki: keys.authCa.spki, validity: ca }),
    keys.authCa,
  );
  const ocsp = (purpose: "sign" | "auth", issuer: IssuerKey, caKey: TestKey) =>
    signTbs(
      ocspResponderCertificateTbs({
        purpose,
        serial: randomSerial(),
        issuer,
        subjectSpki: keys.ocsp.spki,
        validity: shortValidity(now, 7),
      }),
      caKey,
    );
  const cardExpiry = endOfJstDay(cardExpiryDate(person.birthDate, jstDateOf(now)));
  const validity = citizenCertificateValidity(person.birthDate, now, cardExpiry);
  const citizen = (issuer: IssuerKey) => {
    const serial = randomSerial();
    return {
      serial,
      issuer,
      subjectSpki: keys.citizen.spki,
      validity,
      baseUrl: TEST_BASE_URL,
      shard: shardOf(serial, TEST_SHARDS),
    };
  };
  const simMakerCa = signTbs(
    simMakerCaTbs({ serial: randomSerial(), spki: keys.simMaker.spki, validity: caValidity(now, 30) }),
    keys.simMaker,
  );
  return {
    keys,
    signCa,
    authCa,
    signOcsp: ocsp("sign", signIssuer, keys.signCa),
    authOcsp: ocsp("auth", authIssuer, keys.authCa),
    cardSign: signTbs(cardSigningCertificateTbs({ ...citizen(signIssuer), person }), keys.signCa),
    cardAuth: signTbs(cardAuthenticationCertificateTbs(citizen(authIssuer)), keys.authCa),
    phoneSign: signTbs(smartphoneSigningCertificateTbs({ ...citizen(signIssuer), person }), keys.signCa),
    phoneAuth: signTbs(smartphoneAuthenticationCertificateTbs(citizen(authIssuer)), keys.authCa),
    simMakerCa,
    simAttestation: signTbs(
      simAttestationCertificateTbs({
        serial: randomSerial(),
        issuer: simMakerIssuer,
        subjectSpki: keys.sim.spki,
        validity: caValidity(now, 25),
        eid: TEST_EID,
      }),
      keys.simMaker,
    ),
    signIssuer,
    authIssuer,
    simMakerIssuer,
  };
}
