const statusOf = {
    "bad-input": 400,
    forbidden: 403,
    "not-found": 404,
    conflict: 409,
    integrity: 500,
    internal: 500,
    "signer-unavailable": 503,
};
export class JpkiError extends Error {
    code;
    name = "JpkiError";
    status;
    constructor(code, message, options) {
        super(message, options);
        this.code = code;
        this.status = statusOf[code];
    }
}
/** The signing key's device (HSM) cannot be reached: a temporary server-side failure, HTTP 503. */
export class SignerUnavailableError extends JpkiError {
    name = "SignerUnavailableError";
    constructor(message, options) {
        super("signer-unavailable", message, options);
    }
}
//# sourceMappingURL=errors.js.map