/**
 * What the municipality could learn from its counter terminal (DESIGN §4 flows 5 and 6): every byte
 * the terminal relayed for J-LIS while J-LIS generated the key on the SIM, wrote the certificate and
 * reset the PIN, held against the secrets that matter. The terminal's record is exactly what a
 * municipality could store; the carrier's relay, which is not on the counter's path, carried nothing.
 *
 * - No secret in clear: the SIM's private key (PKCS#8, d, p, q, ...), the security domain's and
 *   J-LIS's static keys, the session keys, the new PIN, the old PIN and the signing password.
 * - Positive control: with the session keys of J-LIS's last session, its RESET RETRY COUNTER opens and
 *   the PIN is inside; so the PIN travelled, encrypted, inside J-LIS's channel only.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCommandApdu } from "../card/apdu.js";
import type { Scp11Host } from "../card/gp/scp11.js";
import { CardSecureMessaging } from "../card/gp/secure-messaging.js";
import { readTlvList } from "../card/tlv.js";
import { loadUiccState } from "../card/uicc/state.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openJlisSession } from "../ra/provisioning.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { provisioningSecrets } from "../testing/secrets.js";
import { addClerk } from "./clerks.js";
import { applyAtCounter, unblockPinAtCounter } from "./console.js";
import { CounterTerminal } from "./terminal.js";

const FIRST_PIN = "7319";
const NEW_PIN = "5062";
const CONTROL_PIN = "4185";
const SCP11_LEVEL = 0x33;

test("the counter terminal's record holds no key, PIN or session key; the carrier carries nothing", async () => {
  const sandbox = await openRaSandbox();
  try {
    const { authority } = sandbox;
    const citizen = await sandbox.citizen();
    const phone = await sandbox.phone();
    const { token } = await addClerk(authority.registry.db, {
      municipalityCode: "131016",
      municipalityName: "東京都千代田区",
      actor: "test",
    });
    const terminal = new CounterTerminal("131016");
    const identity = {
      method: "card-signature",
      card: citizen.card,
      signPassword: DEFAULT_SIGN_PASSWORD,
    } as const;

    await terminal.tap(phone.uicc);
    const application = await applyAtCounter(authority, terminal, { clerkToken: token, identity });
    terminal.release();
    const app = phone.app();
    await app.ensurePin(FIRST_PIN);
    const certificate = await app.certificate(FIRST_PIN);
    assert.equal(application.status, "delivered");

    await terminal.tap(phone.uicc);
    await unblockPinAtCounter(authority, terminal, { clerkToken: token, identity, newPin: NEW_PIN });
    // J-LIS resets once more through the terminal, keeping its own view of the session for the control.
    const firstOfSession = terminal.relayed.length;
    const session = await openJlisSession(authority, terminal.relayForJlis(), phone.sim.iccid);
    await session.resetRetryCounter(0x18, CONTROL_PIN);
    const sessionKeys = (session as unknown as { host: Scp11Host }).host.sessionKeys!;
    terminal.release();
    assert.ok((await app.certificate(CONTROL_PIN)).equals(certificate), "the control PIN works");

    const carried = Buffer.concat(
      terminal.relayed.flatMap((e) => [e.command, e.response ?? Buffer.alloc(0)]),
    );
    const _state = loadUiccState(phone.sim.simState);
    const secrets: [string, Buffer][] = [
      ...(await provisioningSecrets(authority.dataDir, phone.sim.simState, sessionKeys)),
      ["the first PIN", Buffer.from(FIRST_PIN, "latin1")],
      ["the new PIN", Buffer.from(NEW_PIN, "latin1")],
      ["the control PIN", Buffer.from(CONTROL_PIN, "latin1")],
      ["the signing password", Buffer.from(DEFAULT_SIGN_PASSWORD, "latin1")],
    ];
    assert.ok(terminal.relayed.length > 10, "the terminal relayed J-LIS's sessions");
    for (const [name, secret] of secrets)
      assert.equal(carried.indexOf(secret), -1, `${name} appears in the terminal's record`);
    assert.equal(carried.indexOf(certificate), -1, "the certificate crossed the terminal in clear");
    assert.equal(phone.relay.relayed.length, 0, "the carrier's relay carried nothing");

    // Positive control: the session keys open the last secured command, RESET RETRY COUNTER with the PIN.
    const ours = terminal.relayed.slice(firstOfSession);
    const authenticate = ours.find((e) => e.command[1] === 0x82)!;
    const receipt = readTlvList(authenticate.response!.subarray(0, -2)).find((t) => t.tag === 0x86)!.value;
    const secured = ours.filter((e) => (e.command[0]! & 0x04) !== 0 && e.command[1] !== 0x82);
    const reader = new CardSecureMessaging({
      keys: sessionKeys,
      level: SCP11_LEVEL,
      macLength: 8,
      initialMacChain: receipt,
    });
    const reset = parseCommandApdu(reader.unwrapCommand(secured.at(-1)!.command));
    assert.deepEqual([reset.ins, reset.p2, reset.data.toString("latin1")], [0x2c, 0x18, CONTROL_PIN]);
  } finally {
    await sandbox.close();
  }
});
