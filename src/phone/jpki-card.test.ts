/**
 * JpkiCard against the emulated My Number card and the SIM-product applet, in process: certificates
 * read as the state file holds them, PIN tries reported as the card counts them, and an application
 * signed by the card's signing key as CMS SignedData that `openssl cms -verify` and verifySignedData
 * accept.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  type CardStateFixture,
  makeCardStateFile,
  TEST_AUTH_PIN,
  TEST_SIGN_PASSWORD,
} from "../card/card-fixture.js";
import { InProcessTransport } from "../card/in-process-transport.js";
import { openMyNumberCard } from "../card/mynacard.js";
import { openSimAppletCard } from "../card/sim-applet-card.js";
import { loadCardState } from "../card/state.js";
import { CardStatusError, SW } from "../card/status-words.js";
import { JpkiError } from "../errors.js";
import { buildSignedData, sha256DigestInfo, verifySignedData } from "../pki/cms.js";
import { runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { JpkiCard, PinBlockedError, WrongPinError } from "./jpki-card.js";

const fixtures: CardStateFixture[] = [];
after(() => {
  for (const fixture of fixtures) fixture.cleanup();
});

/** A fresh card (own PIN counters) in an in-process reader, with the JPKI-AP selected. */
async function openCard(product: "my-number-card" | "sim" = "my-number-card") {
  const fixture = await makeCardStateFile({ product });
  fixtures.push(fixture);
  const card = product === "sim" ? openSimAppletCard(fixture.statePath) : openMyNumberCard(fixture.statePath);
  const transport = new InProcessTransport(card);
  return { fixture, transport, jpki: await JpkiCard.open(transport) };
}

const stateFile = (fixture: CardStateFixture, fid: string) =>
  Buffer.from(fixture.state.files[fid]!, "base64");
const isCardStatus = (sw: number) => (error: unknown) => error instanceof CardStatusError && error.sw === sw;
const digestInfo = sha256DigestInfo(Buffer.alloc(32, 0x5a));

describe("JpkiCard on the My Number card", () => {
  test("reads the four certificates as the state file holds them; the signing one after VERIFY", async () => {
    const { fixture, jpki } = await openCard();
    assert.deepEqual(await jpki.readCertificate("auth"), stateFile(fixture, "000A"));
    assert.deepEqual(await jpki.readCertificate("auth-ca"), stateFile(fixture, "000B"));
    assert.deepEqual(await jpki.readCertificate("sign-ca"), stateFile(fixture, "0002"));
    await assert.rejects(jpki.readCertificate("sign"), isCardStatus(SW.SECURITY_NOT_SATISFIED));
    await jpki.verify("sign", TEST_SIGN_PASSWORD);
    assert.deepEqual(await jpki.readCertificate("sign"), stateFile(fixture, "0001"));
  });

  test("the signing password wrong twice, then right: tries reported each time", async () => {
    const { fixture, jpki } = await openCard();
    assert.equal(await jpki.triesLeft("sign"), 5);
    for (const left of [4, 3]) {
      await assert.rejects(jpki.verify("sign", "WRONG123"), (error: unknown) => {
        assert.ok(error instanceof WrongPinError);
        assert.equal(error.triesLeft, left);
        assert.equal(error.code, "forbidden");
        assert.match(error.message, new RegExp(`wrong signing password .*: ${left} tries left`));
        return true;
      });
    }
    assert.equal(await jpki.triesLeft("sign"), 3);
    assert.equal(loadCardState(fixture.statePath).pins["001B"]!.triesLeft, 3);
    await jpki.verify("sign", TEST_SIGN_PASSWORD);
    // The status query answers 63 Cn even once verified (JPKI-FACTS §1): the counter is back to 5.
    assert.equal(await jpki.triesLeft("sign"), 5);
    assert.equal(await jpki.triesLeft("auth"), 3);
  });

  test("a PIN that breaks the rules is refused before the card spends a try on it", async () => {
    const { jpki } = await openCard();
    await assert.rejects(jpki.verify("sign", TEST_SIGN_PASSWORD.toLowerCase()), /A-Z and 0-9/);
    await assert.rejects(jpki.verify("auth", "12345"), /4 digits/);
    assert.equal(await jpki.triesLeft("sign"), 5);
    assert.equal(await jpki.triesLeft("auth"), 3);
  });

  test("a blocked PIN says so, and where to have it reset", async () => {
    const { jpki } = await openCard();
    const wrong = TEST_AUTH_PIN.replace(/./g, (d) => String((Number(d) + 1) % 10));
    await assert.rejects(
      jpki.verify("auth", wrong),
      (e: unknown) => e instanceof WrongPinError && e.triesLeft === 2,
    );
    await assert.rejects(
      jpki.verify("auth", wrong),
      (e: unknown) => e instanceof WrongPinError && e.triesLeft === 1,
    );
    // The last try: 63 C0.
    await assert.rejects(jpki.verify("auth", wrong), PinBlockedError);
    assert.equal(await jpki.triesLeft("auth"), 0);
    // Even the right PIN now: 69 83.
    await assert.rejects(jpki.verify("auth", TEST_AUTH_PIN), (error: unknown) => {
      assert.ok(error instanceof PinBlockedError);
      assert.equal(error.key, "auth");
      assert.match(error.message, /blocked: have it reset at the municipal counter/);
      return true;
    });
    await assert.rejects(jpki.signDigestInfo("auth", digestInfo), isCardStatus(SW.SECURITY_NOT_SATISFIED));
  });

  test("SIGN without VERIFY fails with the card's 69 82 (security status not satisfied)", async () => {
    const { jpki } = await openCard();
    await assert.rejects(jpki.signDigestInfo("sign", digestInfo), (error: unknown) => {
      assert.ok(error instanceof CardStatusError);
      assert.equal(error.sw, SW.SECURITY_NOT_SATISFIED);
      assert.match(error.message, /verify the signing password .*first/);
      return true;
    });
    // VERIFY of one PIN does not open the other key.
    await jpki.verify("auth", TEST_AUTH_PIN);
    await assert.rejects(jpki.signDigestInfo("sign", digestInfo), isCardStatus(SW.SECURITY_NOT_SATISFIED));
    assert.equal((await jpki.signDigestInfo("auth", digestInfo)).length, 256);
  });

  test("an application signed by the card (buildSignedData + signer) passes openssl cms -verify and verifySignedData", async () => {
    const { jpki } = await openCard();
    await jpki.verify("sign", TEST_SIGN_PASSWORD);
    const signerCertificate = await jpki.readCertificate("sign");
    const signCa = await jpki.readCertificate("sign-ca");
    const content = Buffer.from('{"application":"smartphone JPKI","nonce":"c0ffee"}');
    const der = await buildSignedData({
      content,
      signerCertificate,
      certificates: [signCa],
      signingTime: new Date(),
      sign: jpki.signer("sign", TEST_SIGN_PASSWORD),
    });
    const verified = verifySignedData(der);
    assert.deepEqual(verified.content, content);
    assert.deepEqual(verified.signerCertificate, signerCertificate);

    withTempDir((dir) => {
      const ca = writeCertificate(dir, "ca", signCa);
      writeFileSync(join(dir, "in.der"), der);
      const args = ["cms", "-verify", "-inform", "DER", "-binary", "-no-CApath", "-no-CAstore"];
      args.push("-CAfile", ca.pem, "-in", join(dir, "in.der"), "-out", join(dir, "out"));
      const result = runTool("openssl", args);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(readFileSync(join(dir, "out")), content);
    });

    // The signing certificate with the user-authentication key is caught before anything leaves the phone.
    await jpki.verify("auth", TEST_AUTH_PIN);
    await assert.rejects(
      buildSignedData({ content, signerCertificate, signingTime: new Date(), sign: jpki.signer("auth") }),
      (error: unknown) => error instanceof JpkiError && /does not verify/.test(error.message),
    );
  });

  test("a card without the JPKI-AP, and an EF that is absent, are named", async () => {
    const noJpki = { transmit: async () => Buffer.from([0x6a, 0x82]) };
    await assert.rejects(JpkiCard.open(noJpki), /no JPKI application/);
    const fixture = await makeCardStateFile({ withoutSigning: true, product: "sim" });
    fixtures.push(fixture);
    const jpki = await JpkiCard.open(new InProcessTransport(openSimAppletCard(fixture.statePath)));
    await assert.rejects(jpki.readCertificate("sign-ca"), /holds no signing CA certificate \(EF 0002\)/);
  });
});

describe("JpkiCard on the SIM applet", () => {
  test("the auth certificate needs the auth PIN first; signing works as on the card", async () => {
    const { fixture, jpki } = await openCard("sim");
    await assert.rejects(jpki.readCertificate("auth"), (error: unknown) => {
      assert.ok(error instanceof CardStatusError);
      assert.equal(error.sw, SW.SECURITY_NOT_SATISFIED);
      assert.match(error.message, /needs its PIN verified first/);
      return true;
    });
    await jpki.verify("auth", TEST_AUTH_PIN);
    assert.deepEqual(await jpki.readCertificate("auth"), stateFile(fixture, "000A"));
    const signature = await jpki.signDigestInfo("auth", digestInfo);
    assert.equal(signature.length, 256);
  });
});
