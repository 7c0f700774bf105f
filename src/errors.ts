/**
 * The one domain error type (Hono's idea): code and HTTP status travel with the error, and each
 * protocol edge (CLI exit message, HTTP response, OCSP status, APDU status word) maps it in one place.
 */
export type ErrorCode =
  | "bad-input"
  | "not-found"
  | "conflict"
  | "forbidden"
  | "integrity"
  | "signer-unavailable"
  | "internal";

const statusOf: Record<ErrorCode, number> = {
  "bad-input": 400,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  integrity: 500,
  internal: 500,
  "signer-unavailable": 503,
};

export class JpkiError extends Error {
  override readonly name: string = "JpkiError";
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = statusOf[code];
  }
}

/** The signing key's device (HSM) cannot be reached: a temporary server-side failure, HTTP 503. */
export class SignerUnavailableError extends JpkiError {
  override readonly name = "SignerUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("signer-unavailable", message, options);
  }
}
