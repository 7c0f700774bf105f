/**
 * Logging in to a relying party with the smartphone's user-authentication certificate
 * (スマホ用利用者証明用電子証明書, DESIGN §4 flow 8), as the JPKI app does it: fetch the relying
 * party's challenge, show who asks, take the 4-digit PIN, have the SIM sign, send the answer, keep
 * the session.
 *
 * The app refuses to sign a challenge that names another origin than the one it is talking to: a
 * site cannot pass another relying party's challenge off as its own (a relayed login), whatever the
 * user is shown. The relying party makes the same check from its side (src/rp).
 */
import { createHash } from "node:crypto";
import { JpkiError } from "../errors.js";
import { type LoginChallenge, originOf, parseLoginChallenge } from "../rp/challenge.js";
import { type LoginCheck, LoginRefusedError } from "../rp/errors.js";
import { exchange, type HttpReply } from "../rp/http-client.js";
import { type JlisClient, JpkiApp, type PhoneSim } from "./app.js";

/** Who asks, as the app shows it before the PIN is entered. */
export interface LoginRequester {
  readonly rpId: string;
  readonly origin: string;
  readonly challengeId: string;
  readonly expiresAt: Date;
}

/** Steps the app reports while logging in (for its screen). */
export type LoginStep = "challenge" | "confirmed" | "pin-verified" | "signed" | "logged-in";

export interface RpLoginOptions {
  /** The relying party's base URL (its `POST /login/challenge` and `POST /login` live under it). */
  readonly rpUrl: string;
  /** The user-authentication PIN (利用者証明用電子証明書暗証番号), 4 digits. */
  readonly pin: string;
  /**
   * Shows who asks and returns whether the user goes on; without it, entering the PIN is the
   * consent (the command line passes it with the request on screen).
   */
  readonly confirm?: (requester: LoginRequester) => boolean | Promise<boolean>;
  readonly onStep?: (step: LoginStep) => void;
  /** The phone's clock. */
  readonly now?: () => Date;
  /** Tolerated difference between the phone's clock and the relying party's (default 5 minutes). */
  readonly clockSkewMs?: number;
  /** Per HTTP request (default 15 s). */
  readonly timeoutMs?: number;
}

/** A session at the relying party. */
export interface RpSession {
  readonly session: string;
  /** The Set-Cookie the relying party sent, when it sent one. */
  readonly cookie?: string;
  readonly serial: string;
  readonly subject: string;
  readonly kind: string;
  readonly expiresAt: string;
  readonly requester: LoginRequester;
}

/** What of the app a login needs: the certificate and the signature, each behind the PIN. */
export type LoginCapableApp = Pick<JpkiApp, "certificate" | "signHash">;

function endpoint(rpUrl: string, path: string): string {
  return `${rpUrl.replace(/\/+$/, "")}${path}`;
}

function readJson(reply: HttpReply, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(reply.body.toString("utf8")) as unknown;
    if (typeof value === "object" && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new JpkiError(
    "bad-input",
    `the relying party's answer to ${what} is not a JSON object (HTTP ${reply.status})`,
  );
}

/** The relying party's refusal, as it gave it (`{ error, reason, check }`). */
function refusal(reply: HttpReply, what: string): JpkiError {
  let body: Record<string, unknown> = {};
  try {
    body = readJson(reply, what);
  } catch {
    // A refusal without a JSON body: the HTTP status says enough.
  }
  const reason = typeof body["reason"] === "string" ? body["reason"] : `HTTP ${reply.status}`;
  if (typeof body["check"] === "string")
    return new LoginRefusedError(
      body["check"] as LoginCheck,
      `the relying party refused the login: ${reason}`,
    );
  return new JpkiError(
    reply.status >= 500 ? "internal" : reply.status === 404 ? "not-found" : "forbidden",
    `the relying party refused ${what}: ${reason}`,
  );
}

/**
 * Logs in to the relying party at `options.rpUrl` with the SIM of `app`. Throws WrongPinError (with
 * the tries left) or PinBlockedError from the SIM, LoginRefusedError when the relying party refuses,
 * JpkiError for a challenge the app will not sign.
 */
export async function loginToRelyingParty(app: LoginCapableApp, options: RpLoginOptions): Promise<RpSession> {
  const step = options.onStep ?? (() => undefined);
  const now = options.now ?? (() => new Date());
  const timeoutMs = options.timeoutMs ?? 15_000;
  const expectedOrigin = originOf(options.rpUrl);
  const json = { "content-type": "application/json", accept: "application/json" };

  // 1. The challenge, read from its DER: what is shown is what will be signed.
  const asked = await exchange(endpoint(options.rpUrl, "/login/challenge"), {
    method: "POST",
    headers: json,
    body: Buffer.from("{}"),
    timeoutMs,
    maxBytes: 64 * 1024,
  });
  if (asked.status !== 200) throw refusal(asked, "a login challenge");
  const offered = readJson(asked, "a login challenge");
  if (typeof offered["challenge"] !== "string")
    throw new JpkiError("bad-input", "the relying party's challenge answer has no challenge");
  const challenge: LoginChallenge = parseLoginChallenge(Buffer.from(offered["challenge"], "base64"));
  const requester: LoginRequester = {
    rpId: challenge.id,
    origin: challenge.origin,
    challengeId: challenge.challengeId,
    expiresAt: challenge.expiresAt,
  };
  step("challenge");
  if (challenge.origin !== expectedOrigin)
    throw new JpkiError(
      "forbidden",
      `the challenge names ${JSON.stringify(challenge.id)} at ${challenge.origin}, but the app is talking to ${expectedOrigin}: not signing another site's login`,
    );
  const skew = options.clockSkewMs ?? 5 * 60_000;
  if (now().getTime() > challenge.expiresAt.getTime() + skew)
    throw new JpkiError("bad-input", `the challenge expired at ${challenge.expiresAt.toISOString()}`);

  // 2. Who asks, then the PIN: the SIM verifies it (three wrong tries block it).
  if (options.confirm && !(await options.confirm(requester)))
    throw new JpkiError("forbidden", `login to ${challenge.id} (${challenge.origin}) cancelled`);
  step("confirmed");
  const certificate = await app.certificate(options.pin);
  step("pin-verified");
  // The SIM signs SHA-256 of the challenge's DER as a DigestInfo with PKCS#1 v1.5 (RFC 8017 §8.2.1).
  const signature = await app.signHash(createHash("sha256").update(challenge.der).digest(), options.pin);
  step("signed");

  // 3. The answer.
  const answered = await exchange(endpoint(options.rpUrl, "/login"), {
    method: "POST",
    headers: json,
    body: Buffer.from(
      JSON.stringify({
        challengeId: challenge.challengeId,
        certificate: certificate.toString("base64"),
        signature: signature.toString("base64"),
        challenge: challenge.der.toString("base64"),
      }),
    ),
    timeoutMs,
    maxBytes: 64 * 1024,
  });
  if (answered.status !== 200) throw refusal(answered, "the login");
  const session = readJson(answered, "the login");
  if (typeof session["session"] !== "string")
    throw new JpkiError("bad-input", "the relying party's login answer has no session");
  step("logged-in");
  const setCookie = answered.headers["set-cookie"]?.[0];
  const text = (name: string) => (typeof session[name] === "string" ? (session[name] as string) : "");
  return {
    session: session["session"],
    ...(setCookie ? { cookie: setCookie } : {}),
    serial: text("serial"),
    subject: text("subject"),
    kind: text("kind"),
    expiresAt: text("expiresAt"),
    requester,
  };
}

/**
 * The JPKI app for logins only, over the SIM's transport: JpkiApp wants a J-LIS client for
 * applications, which a login never uses, so this one refuses every call.
 */
export function loginOnlyApp(sim: PhoneSim): JpkiApp {
  const offline = (): never => {
    throw new JpkiError("internal", "this app instance logs in only: it has no connection to J-LIS");
  };
  const jlis: JlisClient = {
    nonce: async () => offline(),
    generateKey: async () => offline(),
    submit: async () => offline(),
    deliver: async () => offline(),
  };
  return new JpkiApp(sim, jlis);
}
