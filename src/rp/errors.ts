/**
 * Why a login is refused. One JpkiError subclass, so every edge (the demo server's HTTP answer, the
 * phone app, the CLI) reports the same check name and message.
 */
import { JpkiError } from "../errors.js";

/**
 * The check that refused a login, in the order they run (docs/relying-party.md):
 * input, challenge-unknown, challenge-used, challenge-expired, challenge-other-rp, certificate,
 * chain, validity, key-usage, policy, signature, status-revoked, status-held, status-unknown,
 * status-unavailable; `configuration` is the relying party's own set-up.
 */
export type LoginCheck =
  | "input"
  | "challenge-unknown"
  | "challenge-used"
  | "challenge-expired"
  | "challenge-other-rp"
  | "certificate"
  | "chain"
  | "validity"
  | "key-usage"
  | "policy"
  | "signature"
  | "status-revoked"
  | "status-held"
  | "status-unknown"
  | "status-unavailable"
  | "configuration";

export class LoginRefusedError extends JpkiError {
  override readonly name = "LoginRefusedError";
  constructor(
    readonly check: LoginCheck,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(
      check === "input" ? "bad-input" : check === "configuration" ? "internal" : "forbidden",
      message,
      options,
    );
  }
}
