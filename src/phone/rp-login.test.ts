/**
 * The app's side of a login, against a stand-in relying party: the PIN is never asked (the SIM never
 * touched) for a challenge the app will not sign: not a challenge, expired, cancelled by the user;
 * a relying party's refusal comes back with its check and reason. The whole flow with the emulated
 * SIM and the real relying party is in src/rp/login.test.ts.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { JpkiError } from "../errors.js";
import { createLoginChallenge } from "../rp/challenge.js";
import { LoginRefusedError } from "../rp/errors.js";
import { type LoginCapableApp, loginToRelyingParty } from "./rp-login.js";

let server: Server;
let url: string;
let challengeBody: (origin: string) => unknown;
let loginReply: { status: number; body: unknown } = { status: 200, body: {} };

before(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const body = req.url === "/login/challenge" ? { status: 200, body: challengeBody(url) } : loginReply;
      res.writeHead(body.status, { "content-type": "application/json" });
      res.end(JSON.stringify(body.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

/** An app whose SIM records each use. */
function recordingApp(): LoginCapableApp & { uses: string[] } {
  const uses: string[] = [];
  return {
    uses,
    async certificate(pin) {
      uses.push(`certificate ${pin}`);
      return Buffer.from("30030201 00".replace(/ /g, ""), "hex");
    },
    async signHash(hash, pin) {
      uses.push(`sign ${pin}`);
      return Buffer.alloc(256, hash[0]);
    },
  };
}

const validChallenge = (origin: string) => {
  const c = createLoginChallenge({ id: "stand-in", origin });
  return { challengeId: c.challengeId, challenge: c.der.toString("base64") };
};

test("nothing is signed, and the PIN never asked, for a challenge the app will not sign", async () => {
  const app = recordingApp();
  challengeBody = () => ({ challenge: Buffer.from("not a challenge").toString("base64") });
  await assert.rejects(
    loginToRelyingParty(app, { rpUrl: url, pin: "1234" }),
    (e: unknown) => e instanceof JpkiError && /not a login challenge/.test(e.message),
  );
  challengeBody = validChallenge;
  await assert.rejects(
    loginToRelyingParty(app, { rpUrl: url, pin: "1234", now: () => new Date(Date.now() + 60 * 60_000) }),
    (e: unknown) => e instanceof JpkiError && /expired/.test(e.message),
  );
  let shown = "";
  await assert.rejects(
    loginToRelyingParty(app, {
      rpUrl: url,
      pin: "1234",
      confirm: (who) => {
        shown = `${who.rpId} ${who.origin}`;
        return false;
      },
    }),
    (e: unknown) => e instanceof JpkiError && /cancelled/.test(e.message),
  );
  assert.equal(shown, `stand-in ${url}`);
  assert.deepEqual(app.uses, []);
});

test("the relying party's refusal comes back with its check and reason", async () => {
  const app = recordingApp();
  challengeBody = validChallenge;
  loginReply = {
    status: 401,
    body: { error: "login-refused", check: "status-held", reason: "the certificate is suspended" },
  };
  await assert.rejects(
    loginToRelyingParty(app, { rpUrl: url, pin: "1234" }),
    (e: unknown) =>
      e instanceof LoginRefusedError && e.check === "status-held" && /suspended/.test(e.message),
  );
  assert.deepEqual(app.uses, ["certificate 1234", "sign 1234"]);
  loginReply = { status: 200, body: { session: "s", serial: "01", subject: "C=JP", kind: "phone-auth" } };
  const session = await loginToRelyingParty(app, { rpUrl: `${url}/`, pin: "1234" });
  assert.deepEqual([session.session, session.serial, session.requester.rpId], ["s", "01", "stand-in"]);
});
