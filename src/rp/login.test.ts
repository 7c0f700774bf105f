/**
 * Logging in to a relying party with the smartphone certificate, end to end on both databases: the
 * citizen's phone applied online through the RA (card-signed application, key generated on the
 * emulated SIM, certificate delivered over the carrier's relay); the JPKI app fetches the demo
 * relying party's challenge, the SIM signs it behind its PIN, and the relying party checks it,
 * asking the real status server by OCSP with its registered-verifier token. Then the lifecycle
 * (suspend, resume, revoke) as the relying party sees it through its status cache, and every refusal.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { JpkiError } from "../errors.js";
import { JpkiCard, PinBlockedError, WrongPinError } from "../phone/jpki-card.js";
import { loginToRelyingParty } from "../phone/rp-login.js";
import { sha256DigestInfo, softwareDigestInfoSigner } from "../pki/cms.js";
import { CrlReason } from "../pki/crl.js";
import { pemEncode } from "../pki/pem.js";
import { CITIZEN_POLICY_OIDS } from "../pki/profiles.js";
import { buildTestHierarchy } from "../pki/test-hierarchy.js";
import { DEFAULT_AUTH_PIN } from "../ra/card-issuance.js";
import { resumeCertificate, revokeCertificate, suspendCertificate } from "../registry/lifecycle.js";
import { forEachDialect } from "../testing/dialects.js";
import { LoginRefusedError } from "./errors.js";
import { exchange } from "./http-client.js";
import { RelyingParty } from "./relying-party.js";
import { type LoginSandbox, openLoginSandbox, SIM_PIN } from "./rp-fixture.js";

const execFileAsync = promisify(execFile);
const actor = "test";
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest();

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const reply = await exchange(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
  });
  return {
    status: reply.status,
    headers: reply.headers,
    json: JSON.parse(reply.body.toString()) as Record<string, unknown>,
  };
}

async function getMe(url: string, cookie: string) {
  const reply = await exchange(`${url}/me`, { method: "GET", headers: { cookie } });
  return { status: reply.status, json: JSON.parse(reply.body.toString()) as Record<string, unknown> };
}

/** A challenge from a demo relying party, as the phone receives it. */
async function challengeOf(url: string): Promise<{ challengeId: string; der: Buffer }> {
  const { status, json } = await post(`${url}/login/challenge`, {});
  assert.equal(status, 200);
  return {
    challengeId: json["challengeId"] as string,
    der: Buffer.from(json["challenge"] as string, "base64"),
  };
}

/** The JSON body of `POST /login`. */
function loginBody(challengeId: string, certificate: Buffer, signature: Buffer, challenge?: Buffer) {
  return {
    challengeId,
    certificate: certificate.toString("base64"),
    signature: signature.toString("base64"),
    ...(challenge ? { challenge: challenge.toString("base64") } : {}),
  };
}

/** The SIM signs `der` as the app does: SHA-256, DigestInfo, PKCS#1 v1.5 in the applet. */
function simSign(sandbox: LoginSandbox, der: Buffer): Promise<Buffer> {
  return sandbox.app.signHash(sha256(der), SIM_PIN);
}

const refused = (check: string) => (error: unknown) =>
  error instanceof LoginRefusedError && error.check === check;

forEachDialect((_dialect, open) => {
  async function sandboxOn(): Promise<LoginSandbox> {
    const database = await open({ migrate: false });
    await database.close();
    return openLoginSandbox(database.url);
  }

  test("a full login: challenge, PIN, SIM signature, OCSP, session; the second login uses the status cache", async () => {
    const sandbox = await sandboxOn();
    try {
      const { url } = await sandbox.relyingParty("example-bank");
      const shown: string[] = [];
      const steps: string[] = [];
      const login = await loginToRelyingParty(sandbox.app, {
        rpUrl: url,
        pin: SIM_PIN,
        confirm: (who) => {
          shown.push(`${who.rpId} ${who.origin}`);
          return true;
        },
        onStep: (step) => steps.push(step),
      });
      assert.deepEqual(shown, [`example-bank ${url}`]);
      assert.deepEqual(steps, ["challenge", "confirmed", "pin-verified", "signed", "logged-in"]);
      assert.equal(login.serial, sandbox.serial);
      assert.equal(login.kind, "phone-auth");
      assert.match(
        login.cookie ?? "",
        /^jpki_rp_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\//,
      );

      const me = await getMe(url, login.cookie!.split(";")[0]!);
      assert.equal(me.status, 200);
      assert.equal(me.json["serial"], sandbox.serial);
      assert.equal(me.json["policy"], CITIZEN_POLICY_OIDS["phone-auth"]);
      // The smartphone certificate names no person: the subject is the opaque identifier only.
      assert.match(me.json["subject"] as string, /^C=JP, .*CN=[0-9A-F]+$/);
      assert.deepEqual((me.json["status"] as { source: string }).source, "responder");
      // The bearer form works too; without a session, 401 with a JSON reason.
      const bearer = await exchange(`${url}/me`, {
        method: "GET",
        headers: { authorization: `Bearer ${login.session}` },
      });
      assert.equal(bearer.status, 200);
      const anonymous = await exchange(`${url}/me`, { method: "GET" });
      assert.equal(anonymous.status, 401);
      assert.equal(JSON.parse(anonymous.body.toString()).error, "no-session");

      const again = await loginToRelyingParty(sandbox.app, { rpUrl: url, pin: SIM_PIN });
      const second = await getMe(url, `jpki_rp_session=${again.session}`);
      assert.equal((second.json["status"] as { source: string }).source, "cache");
    } finally {
      await sandbox.close();
    }
  });

  test("suspend, resume, revoke: refused once the cached answer expires, at once without the cache", async () => {
    const sandbox = await sandboxOn();
    try {
      const db = sandbox.ra.authority.registry.db;
      let offsetMs = 0;
      const cached = await sandbox.relyingParty("cached-portal", {
        status: { now: () => new Date(Date.now() + offsetMs), cacheTtlMs: 60_000 },
      });
      const uncached = await sandbox.relyingParty("uncached-portal", {
        status: { cacheTtlMs: 0, nonce: false },
      });
      const login = (url: string) => loginToRelyingParty(sandbox.app, { rpUrl: url, pin: SIM_PIN });

      await login(cached.url);
      await login(uncached.url);

      await suspendCertificate(db, sandbox.serial, { actor, note: "lost phone" });
      // Without a cache the hold is seen at once.
      await assert.rejects(login(uncached.url), refused("status-held"));
      // With the cache, the good answer of a moment ago still stands for its 60 s...
      await login(cached.url);
      // ...and once it has expired (the cache's clock moved, no real waiting) the hold is seen.
      offsetMs += 61_000;
      await assert.rejects(login(cached.url), (error: unknown) => {
        assert.ok(refused("status-held")(error), String(error));
        assert.match((error as Error).message, /suspended \(一時利用停止, certificateHold\)/);
        return true;
      });
      // A refusal is never cached: it is asked again, and stays refused.
      await assert.rejects(login(cached.url), refused("status-held"));

      // An independent client reads the same status from the same server.
      await assert.doesNotReject(opensslAgrees(sandbox, "revoked"));

      await resumeCertificate(db, sandbox.serial, { actor, policies: sandbox.ra.authority.policies });
      await login(cached.url);
      await login(uncached.url);
      await assert.doesNotReject(opensslAgrees(sandbox, "good"));

      await revokeCertificate(db, sandbox.serial, { actor, reason: CrlReason.keyCompromise });
      await assert.rejects(login(uncached.url), (error: unknown) => {
        assert.ok(refused("status-revoked")(error), String(error));
        assert.match((error as Error).message, /revoked at .* \(keyCompromise\)/);
        return true;
      });
      offsetMs += 61_000;
      await assert.rejects(login(cached.url), refused("status-revoked"));
    } finally {
      await sandbox.close();
    }
  });

  test("refusals: replay, another relying party's challenge, other bytes, another CA, a signing certificate, policy", async () => {
    const sandbox = await sandboxOn();
    try {
      const a = await sandbox.relyingParty("bank-a");
      const b = await sandbox.relyingParty("portal-b");

      // Replayed: the same answer twice.
      const first = await challengeOf(a.url);
      const body = loginBody(
        first.challengeId,
        sandbox.certificate,
        await simSign(sandbox, first.der),
        first.der,
      );
      assert.equal((await post(`${a.url}/login`, body)).status, 200);
      const replay = await post(`${a.url}/login`, body);
      assert.equal(replay.status, 401);
      assert.deepEqual([replay.json["error"], replay.json["check"]], ["login-refused", "challenge-used"]);

      // Relayed: signed for A, presented to B, by A's id (B never issued it) or under B's own id.
      const forA = await challengeOf(a.url);
      const signedForA = await simSign(sandbox, forA.der);
      const asIs = await post(
        `${b.url}/login`,
        loginBody(forA.challengeId, sandbox.certificate, signedForA, forA.der),
      );
      assert.deepEqual([asIs.status, asIs.json["check"]], [401, "challenge-unknown"]);
      const forB = await challengeOf(b.url);
      const underB = await post(
        `${b.url}/login`,
        loginBody(forB.challengeId, sandbox.certificate, signedForA, forA.der),
      );
      assert.deepEqual([underB.status, underB.json["check"]], [401, "challenge-other-rp"]);
      assert.match(
        underB.json["reason"] as string,
        /another relying party \("bank-a" at http:\/\/127\.0\.0\.1:\d+\)/,
      );
      // Without the challenge bytes, the signature alone gives it away.
      const forB2 = await challengeOf(b.url);
      const bare = await post(
        `${b.url}/login`,
        loginBody(forB2.challengeId, sandbox.certificate, signedForA),
      );
      assert.deepEqual([bare.status, bare.json["check"]], [401, "signature"]);
      // A's challenge was not consumed by those attempts at B: it still logs in at A.
      const atA = await post(`${a.url}/login`, loginBody(forA.challengeId, sandbox.certificate, signedForA));
      assert.equal(atA.status, 200);

      // A site relaying A's challenge as its own: the app sees the origin and does not sign.
      const relay = createServer((req, res) => {
        void post(`${a.url}/login/challenge`, {}).then((reply) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(reply.json));
        });
        req.resume();
      });
      await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
      try {
        const relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
        await assert.rejects(
          loginToRelyingParty(sandbox.app, { rpUrl: relayUrl, pin: SIM_PIN }),
          (error: unknown) =>
            error instanceof JpkiError && /not signing another site's login/.test(error.message),
        );
      } finally {
        relay.close();
      }

      // A signature over other bytes.
      const other = await challengeOf(a.url);
      const wrongBytes = await post(
        `${a.url}/login`,
        loginBody(
          other.challengeId,
          sandbox.certificate,
          await simSign(sandbox, Buffer.from("something else")),
        ),
      );
      assert.deepEqual([wrongBytes.status, wrongBytes.json["check"]], [401, "signature"]);

      // A certificate from another CA under the JPKI CA's very name, with its key's valid signature.
      const forged = buildTestHierarchy();
      const forgedChallenge = await challengeOf(a.url);
      const forgedSignature = await softwareDigestInfoSigner(forged.keys.citizen.privateKey)(
        sha256DigestInfo(sha256(forgedChallenge.der)),
      );
      const fromOtherCa = await post(
        `${a.url}/login`,
        loginBody(forgedChallenge.challengeId, forged.phoneAuth, forgedSignature),
      );
      assert.deepEqual([fromOtherCa.status, fromOtherCa.json["check"]], [401, "chain"]);
      assert.match(fromOtherCa.json["reason"] as string, /does not verify with the trusted CA's key/);

      // The My Number card's signing certificate and key (password verified, real card signature).
      const card = await JpkiCard.open(sandbox.citizen.card);
      await card.verify("sign", "ABC123");
      const signingCertificate = await card.readCertificate("sign");
      const cardChallenge = await challengeOf(a.url);
      const cardSignature = await card.signer("sign", "ABC123")(sha256DigestInfo(sha256(cardChallenge.der)));
      const signing = await post(
        `${a.url}/login`,
        loginBody(cardChallenge.challengeId, signingCertificate, cardSignature),
      );
      assert.deepEqual([signing.status, signing.json["check"]], [401, "chain"]);
      // Even a relying party that (wrongly) trusts the signing CA refuses it: key usage and policy.
      const trustsBoth = new RelyingParty({
        id: "misconfigured",
        origin: "https://misconfigured.example",
        trustAnchors: [sandbox.ra.authority.certificates.auth, sandbox.ra.authority.certificates.sign],
        status: { url: sandbox.ocspUrl, token: sandbox.token },
      });
      const c = trustsBoth.issueChallenge();
      await assert.rejects(
        trustsBoth.verifyLogin({
          challengeId: c.challengeId,
          certificate: signingCertificate,
          signature: await card.signer("sign", "ABC123")(sha256DigestInfo(sha256(c.der))),
        }),
        (error: unknown) =>
          refused("key-usage")(error) && /signing certificate \(nonRepudiation\)/.test(String(error)),
      );

      // The card's user-authentication certificate logs in by default; a phone-only relying party refuses it.
      await card.verify("auth", DEFAULT_AUTH_PIN);
      const cardAuth = await card.readCertificate("auth");
      const signWithCardAuth = (der: Buffer) =>
        card.signer("auth", DEFAULT_AUTH_PIN)(sha256DigestInfo(sha256(der)));
      const cardAuthChallenge = await challengeOf(a.url);
      const cardLogin = await post(
        `${a.url}/login`,
        loginBody(cardAuthChallenge.challengeId, cardAuth, await signWithCardAuth(cardAuthChallenge.der)),
      );
      assert.deepEqual([cardLogin.status, cardLogin.json["kind"]], [200, "card-auth"]);
      const phoneOnly = new RelyingParty({
        id: "phone-only",
        origin: "https://phone-only.example",
        trustAnchors: [sandbox.ra.authority.certificates.auth],
        status: { url: sandbox.ocspUrl, token: sandbox.token },
        policies: [CITIZEN_POLICY_OIDS["phone-auth"]],
      });
      const p = phoneOnly.issueChallenge();
      await assert.rejects(
        phoneOnly.verifyLogin({
          challengeId: p.challengeId,
          certificate: cardAuth,
          signature: await signWithCardAuth(p.der),
        }),
        refused("policy"),
      );

      // A relying party whose verifier token the status server does not know: no status, no login.
      const { url: noToken } = await sandbox.relyingParty("unregistered", {
        status: { token: "A".repeat(43) },
      });
      await assert.rejects(
        loginToRelyingParty(sandbox.app, { rpUrl: noToken, pin: SIM_PIN }),
        (error: unknown) => refused("status-unavailable")(error) && /unauthorized/.test(String(error)),
      );
    } finally {
      await sandbox.close();
    }
  });

  test("an expired challenge is refused; three wrong PINs block the SIM's PIN and the app says so", async () => {
    const sandbox = await sandboxOn();
    try {
      let offsetMs = 0;
      const rp = new RelyingParty({
        id: "clocked",
        origin: "https://clocked.example",
        trustAnchors: [sandbox.ra.authority.certificates.auth],
        status: { url: sandbox.ocspUrl, token: sandbox.token },
        now: () => new Date(Date.now() + offsetMs),
      });
      const challenge = rp.issueChallenge();
      const signature = await simSign(sandbox, challenge.der);
      offsetMs = 2 * 60_000 + 1000;
      await assert.rejects(
        rp.verifyLogin({ challengeId: challenge.challengeId, certificate: sandbox.certificate, signature }),
        refused("challenge-expired"),
      );

      const { url } = await sandbox.relyingParty("bank");
      const attempt = (pin: string) => loginToRelyingParty(sandbox.app, { rpUrl: url, pin });
      await assert.rejects(attempt("0000"), (e: unknown) => e instanceof WrongPinError && e.triesLeft === 2);
      await assert.rejects(attempt("1111"), (e: unknown) => e instanceof WrongPinError && e.triesLeft === 1);
      await assert.rejects(
        attempt("2222"),
        (e: unknown) =>
          e instanceof PinBlockedError && /blocked: have it reset at the municipal counter/.test(e.message),
      );
      // Blocked: the right PIN no longer helps.
      await assert.rejects(attempt(SIM_PIN), (e: unknown) => e instanceof PinBlockedError);
    } finally {
      await sandbox.close();
    }
  });
});

/**
 * `openssl ocsp` (an independent OCSP client) asks the same status server about the phone's
 * certificate with the relying party's token, and must read `expected`.
 */
async function opensslAgrees(sandbox: LoginSandbox, expected: "good" | "revoked"): Promise<void> {
  const dir = sandbox.ra.dir;
  const cert = path.join(dir, "phone-auth.pem");
  const ca = path.join(dir, "auth-ca.pem");
  writeFileSync(cert, pemEncode(sandbox.certificate));
  writeFileSync(ca, pemEncode(sandbox.ra.authority.certificates.auth));
  const { stdout } = await execFileAsync(
    "openssl",
    [
      "ocsp",
      "-issuer",
      ca,
      "-cert",
      cert,
      "-url",
      sandbox.ocspUrl,
      "-header",
      `Authorization=Bearer ${sandbox.token}`,
      "-CAfile",
      ca,
    ],
    { timeout: 60_000 },
  );
  assert.match(stdout, new RegExp(`phone-auth\\.pem: ${expected}`));
}
