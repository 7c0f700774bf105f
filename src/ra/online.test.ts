/**
 * The online channel end to end, on both databases: the phone gets a nonce, J-LIS generates the key
 * on the SIM over the carrier's relay, the My Number card signs the application through its APDUs,
 * the RA verifies and the CA signs, J-LIS writes the certificate to the SIM over the relay, and the
 * SIM then signs with the new key. Then every refusal: a forged signature, a replay, a suspended
 * card certificate, a key not attested by this SIM, a SIM the carrier deactivated.
 */
import assert from "node:assert/strict";
import { constants, createPublicKey, publicDecrypt, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { JpkiCard } from "../phone/jpki-card.js";
import { parseCertificate } from "../pki/certificate.js";
import { buildSignedData, sha256DigestInfo } from "../pki/cms.js";
import { pemEncode } from "../pki/pem.js";
import { suspendCertificate } from "../registry/lifecycle.js";
import { forEachDialect } from "../testing/dialects.js";
import { runTool } from "../testing/tools.js";
import { encodeApplicationContent } from "./application-content.js";
import { getApplication } from "./applications.js";
import { issueNonce } from "./nonces.js";
import { OnlineChannel } from "./online.js";
import { deliverCertificate, generateKeyOnSim } from "./provisioning.js";
import { submitApplication } from "./ra.js";
import {
  type Citizen,
  FIXTURE_SIGN_PASSWORD,
  openRaSandbox,
  type Phone,
  type RaSandbox,
} from "./ra-fixture.js";

const SIM_PIN = "4321";

interface Made {
  signedData: Buffer;
  nonce: Buffer;
}

/**
 * What the phone app does before submitting: a nonce from the RA, the key generated on the SIM by
 * J-LIS over the relay, the application content, signed by the card. `tamper` changes what is signed.
 */
async function makeApplication(
  sandbox: RaSandbox,
  citizen: Citizen,
  phone: Phone,
  options: { content?: (bytes: Buffer) => Buffer } = {},
): Promise<Made> {
  const { authority } = sandbox;
  const { nonce } = await issueNonce(authority.registry.db);
  const key = await generateKeyOnSim(authority, phone.relay.transportFor(phone.sim.iccid), {
    iccid: phone.sim.iccid,
    nonce,
  });
  const content = encodeApplicationContent({
    iccid: phone.sim.iccid,
    eid: phone.sim.eid,
    carrier: phone.sim.brand,
    appletInstance: await (await JpkiCard.open(phone.uicc)).instanceId(),
    keyGeneration: "on-card",
    publicKey: key.spki,
    attestation: key.attestation,
    nonce,
    requested: "phone-auth",
    time: new Date(),
  });
  const card = await JpkiCard.open(citizen.card);
  await card.verify("sign", FIXTURE_SIGN_PASSWORD);
  const signerCertificate = await card.readCertificate("sign");
  const signedData = await buildSignedData({
    content: options.content ? options.content(content) : content,
    signerCertificate,
    signingTime: new Date(),
    sign: card.signer("sign", FIXTURE_SIGN_PASSWORD),
  });
  return { signedData, nonce };
}

const refusedWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === code && pattern.test(error.message);

forEachDialect((_dialect, open) => {
  async function sandboxOn(): Promise<RaSandbox> {
    const database = await open({ migrate: false });
    await database.close();
    return openRaSandbox(database.url);
  }

  test("apply online, deliver over the relay, then the SIM signs with the certificate's key", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const { signedData } = await makeApplication(sandbox, citizen, phone);

      // OpenSSL accepts the application as the card made it.
      const dir = sandbox.dir;
      writeFileSync(path.join(dir, "application.der"), signedData);
      writeFileSync(path.join(dir, "sign-ca.pem"), pemEncode(authority.certificates.sign));
      const checked = runTool("openssl", [
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        path.join(dir, "application.der"),
        "-binary",
        "-CAfile",
        path.join(dir, "sign-ca.pem"),
        "-purpose",
        "any",
      ]);
      assert.equal(checked.code, 0, checked.stderr);
      assert.match(checked.stdout, /"format":"jpki-mobile\/smartphone-certificate-application"/);

      const { application, certificate } = await submitApplication(authority, new OnlineChannel(), {
        signedData,
      });
      assert.equal(application.status, "issued");
      assert.equal(application.personId, citizen.citizenId);
      const row = await authority.registry.getCertificate(application.certificateSerial!);
      assert.deepEqual(
        [row?.kind, row?.medium, row?.status, row?.parentSerial, row?.personId],
        ["phone-auth", "sim", "issued", citizen.authSerial, citizen.citizenId],
      );

      await deliverCertificate(authority, phone.relay.transportFor(phone.sim.iccid), application.id);
      const history = await getApplication(authority.registry.db, application.id);
      assert.deepEqual(
        history?.history.map((e) => e.status),
        ["received", "verified", "issued", "delivering", "delivered"],
      );
      // Delivering again is harmless.
      await deliverCertificate(authority, phone.relay.transportFor(phone.sim.iccid), application.id);

      // The citizen sets the PIN in the phone (never relayed), and the SIM signs with the new key.
      const sim = await JpkiCard.open(phone.uicc);
      await sim.changePin("auth", SIM_PIN);
      await sim.verify("auth", SIM_PIN);
      assert.ok((await sim.readCertificate("auth")).equals(certificate));
      const digestInfo = sha256DigestInfo(randomBytes(32));
      const signature = await sim.signDigestInfo("auth", digestInfo);
      const publicKey = createPublicKey({
        key: parseCertificate(certificate).spki,
        format: "der",
        type: "spki",
      });
      // PKCS#1 v1.5 over the DigestInfo the phone sent (RFC 8017 §8.2): the certificate's key opens it.
      assert.ok(
        publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature).equals(digestInfo),
      );
    } finally {
      await sandbox.close();
    }
  });

  test("refusals: forged, replayed, unattested key, suspended card certificate, deactivated SIM; each recorded", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const channel = new OnlineChannel();
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const failedApplications = async () =>
        (
          await db
            .selectFrom("applications")
            .select(["status", "failure_reason"])
            .where("status", "=", "failed")
            .execute()
        ).map((r) => r.failure_reason ?? "");

      // Forged: the card signed other data than the content the application carries.
      const signed = await makeApplication(sandbox, citizen, phone);
      const forged = { signedData: Buffer.from(signed.signedData) };
      // Another public key in the content, same length: the card's signature is over the original.
      const at = forged.signedData.indexOf('"publicKey":"') + 40;
      forged.signedData[at] = forged.signedData[at] === 0x41 ? 0x42 : 0x41;
      await assert.rejects(
        submitApplication(authority, channel, { signedData: forged.signedData }),
        refusedWith("bad-input", /invalid CMS SignedData: .*(digest|SHA-256)/),
      );

      // A valid application goes through once; the same bytes again are a replay.
      const good = await makeApplication(sandbox, citizen, phone);
      await submitApplication(authority, channel, { signedData: good.signedData });
      await assert.rejects(
        submitApplication(authority, channel, { signedData: good.signedData }),
        refusedWith("conflict", /already used.*replayed/),
      );

      // The key of another SIM, with that SIM's attestation: the attestation names the other SIM.
      const otherPhone = await sandbox.phone();
      const { nonce } = await issueNonce(db);
      const foreignKey = await generateKeyOnSim(
        authority,
        otherPhone.relay.transportFor(otherPhone.sim.iccid),
        {
          iccid: otherPhone.sim.iccid,
          nonce,
        },
      );
      const swapped = await makeApplication(sandbox, citizen, phone, {
        content: (bytes) => {
          const json = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
          json["publicKey"] = foreignKey.spki.toString("base64");
          json["attestation"] = foreignKey.attestation.toString("base64");
          return Buffer.from(JSON.stringify(json));
        },
      });
      await assert.rejects(
        submitApplication(authority, channel, { signedData: swapped.signedData }),
        refusedWith("bad-input", /another SIM|another nonce|does not verify/),
      );

      // The carrier deactivated the SIM.
      const beforeDeactivation = await makeApplication(sandbox, citizen, phone);
      await authority.registry.setSimStatus(
        phone.sim.simId,
        "deactivated",
        "contract ended",
        "carrier:sakura",
      );
      await assert.rejects(
        submitApplication(authority, channel, { signedData: beforeDeactivation.signedData }),
        refusedWith("forbidden", /deactivated at its carrier/),
      );
      await authority.registry.setSimStatus(phone.sim.simId, "active", "reactivated", "carrier:sakura");

      // The card's signing certificate is held: it cannot sign an application.
      const beforeHold = await makeApplication(sandbox, citizen, phone);
      await suspendCertificate(db, citizen.signSerial, { actor: "test" });
      await assert.rejects(
        submitApplication(authority, channel, { signedData: beforeHold.signedData }),
        refusedWith("forbidden", /suspended/),
      );

      const reasons = await failedApplications();
      assert.equal(reasons.length, 5, reasons.join("\n"));
      assert.equal(
        (await db.selectFrom("certificates").select("serial").where("kind", "=", "phone-auth").execute())
          .length,
        1,
        "only the valid application was issued",
      );
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("one-per-medium: a second application for the same person supersedes the first certificate", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const channel = new OnlineChannel();
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const first = await submitApplication(authority, channel, {
        signedData: (await makeApplication(sandbox, citizen, phone)).signedData,
      });
      const newPhone = await sandbox.phone("kaede");
      const second = await submitApplication(authority, channel, {
        signedData: (await makeApplication(sandbox, citizen, newPhone)).signedData,
      });
      const old = await authority.registry.getCertificate(first.application.certificateSerial!);
      const current = await authority.registry.getCertificate(second.application.certificateSerial!);
      assert.deepEqual([old?.status, old?.revocationReason, current?.status], ["revoked", 4, "issued"]);
    } finally {
      await sandbox.close();
    }
  });
});
