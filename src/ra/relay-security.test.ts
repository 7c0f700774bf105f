/**
 * What the carrier could learn from relaying J-LIS's work on a SIM (DESIGN §4 flow 3; JPKI-FACTS §5):
 * every byte its OTA relay carried while the carrier prepared the SIM and J-LIS generated the key,
 * wrote the certificate and wrote it again, held against the secrets that matter and the carrier's own
 * keys. The relay's record is exactly what a carrier could store.
 *
 * - No secret in clear: the SIM's private key (PKCS#8, d, p, q), J-LIS's and the security domain's
 *   static private keys, the session keys, the SIM's PIN and the card's signing password appear
 *   nowhere in the relayed bytes.
 * - The session is closed to the carrier's keys: with the session keys (J-LIS's own view, the positive
 *   control) the recorded commands open and the certificate is inside; with the carrier's card-manager
 *   keys in their place, the first command's C-MAC already fails, so nothing is read.
 * - Replaying the recorded session to the SIM achieves nothing: new ephemeral keys, other session keys.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseCommandApdu } from "../card/apdu.js";
import type { Scp11Host } from "../card/gp/scp11.js";
import { CardSecureMessaging } from "../card/gp/secure-messaging.js";
import { readTlvList } from "../card/tlv.js";
import { loadUiccState } from "../card/uicc/state.js";
import { cardManagerKeys } from "../mno/carriers.js";
import { provisioningSecrets } from "../testing/secrets.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { openJlisSession } from "./provisioning.js";
import { openRaSandbox } from "./ra-fixture.js";

const SIM_PIN = "8642";
/** Secure messaging of SCP11 (Amd F §6.2): C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION, 8-byte MACs. */
const SCP11_LEVEL = 0x33;

test("the carrier's relay record holds no secret, and its own keys open nothing of J-LIS's session", async () => {
  const sandbox = await openRaSandbox();
  try {
    const { authority } = sandbox;
    const citizen = await sandbox.citizen();
    const phone = await sandbox.phone();
    const { iccid } = phone.sim;
    const app = phone.app();
    const answer = await app.applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
    assert.equal(answer.status, "delivered");
    assert.equal(await app.ensurePin(SIM_PIN), "set");
    const certificate = await app.certificate(SIM_PIN);

    // J-LIS writes the certificate once more, keeping its own view of the session for the control.
    const firstOfSession = phone.relay.relayed.length;
    const session = await openJlisSession(authority, phone.relay.transportFor(iccid), iccid);
    await session.storeAuthenticationCertificates(certificate, authority.certificates.auth);
    const sessionKeys = (session as unknown as { host: Scp11Host }).host.sessionKeys!;

    const transcript = phone.relay.relayed;
    const carried = Buffer.concat(transcript.flatMap((e) => [e.command, e.response ?? Buffer.alloc(0)]));
    const state = loadUiccState(phone.sim.simState);
    const secrets: [string, Buffer][] = [
      ...(await provisioningSecrets(authority.dataDir, phone.sim.simState, sessionKeys)),
      ["the SIM's PIN", Buffer.from(SIM_PIN, "latin1")],
      ["the signing password", Buffer.from(DEFAULT_SIGN_PASSWORD, "latin1")],
    ];
    for (const [name, secret] of secrets)
      assert.equal(carried.indexOf(secret), -1, `${name} appears in the relayed bytes`);
    // Nor the certificate or the new public key in clear: J-LIS's commands and answers are encrypted.
    assert.equal(carried.indexOf(certificate), -1, "the certificate crossed the relay in clear");

    // The recorded session: the receipt (Amd F §3.1.2) in the MUTUAL AUTHENTICATE answer, then the
    // secured commands (CLA 84).
    const ours = transcript.slice(firstOfSession);
    const authenticate = ours.find((e) => e.command[1] === 0x82)!;
    const receipt = readTlvList(authenticate.response!.subarray(0, -2)).find((t) => t.tag === 0x86)!.value;
    const secured = ours.filter((e) => (e.command[0]! & 0x04) !== 0 && e.command[1] !== 0x82);
    assert.ok(secured.length >= 2, "the session carried secured commands");

    const reader = (keys: { sEnc: Buffer; sMac: Buffer; sRmac: Buffer }) =>
      new CardSecureMessaging({ keys, level: SCP11_LEVEL, macLength: 8, initialMacChain: receipt });
    // Positive control: with the session keys the commands open, and the certificate is in STORE DATA.
    const control = reader(sessionKeys);
    const plain = Buffer.concat(secured.map((e) => parseCommandApdu(control.unwrapCommand(e.command)).data));
    assert.ok(plain.indexOf(certificate.subarray(0, 64)) >= 0, "the session keys open the transcript");
    // The carrier's keys, in every role, open nothing: the first C-MAC fails.
    const carrier = cardManagerKeys(authority.dataDir, state.carrier, iccid);
    for (const [sEnc, sMac] of [
      [carrier.enc, carrier.mac],
      [carrier.mac, carrier.enc],
      [carrier.dek, carrier.mac],
    ] as const) {
      const attempt = reader({ sEnc, sMac, sRmac: sMac });
      assert.throws(() => attempt.unwrapCommand(secured[0]!.command), /wrong C-MAC/);
    }

    // Replaying the recorded session to the SIM: the SIM answers the replayed MUTUAL AUTHENTICATE with
    // a new ephemeral key, so the replayed secured commands fail their MAC and change nothing.
    const before = readFileSync(phone.sim.simState, "utf8");
    const answers: number[] = [];
    for (const exchange of ours) {
      const response = await phone.uicc.transmit(exchange.command);
      answers.push(response.readUInt16BE(response.length - 2));
    }
    assert.ok(
      answers.slice(-secured.length).every((sw) => sw !== 0x9000),
      `replayed secured commands were accepted: ${answers.map((sw) => sw.toString(16)).join(" ")}`,
    );
    assert.equal(readFileSync(phone.sim.simState, "utf8"), before, "the replay changed the SIM");
  } finally {
    await sandbox.close();
  }
});
