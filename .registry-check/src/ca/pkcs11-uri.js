/**
 * PKCS#11 URIs (RFC 7512) naming the token that holds the CA keys, e.g.
 * `pkcs11:token=jpki?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/jpki/hsm.pin`.
 * Keys inside the token are chosen by label through the KeyStore interface, so object-level
 * attributes (object, id, type) are refused here rather than silently ignored.
 */
import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { JpkiError } from "../errors.js";
export const HSM_PIN_ENV = "JPKI_HSM_PIN";
const pathAttributes = new Set([
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "object",
    "type",
    "id",
]);
const queryAttributes = new Set(["pin-source", "pin-value", "module-name", "module-path"]);
const objectAttributes = new Set(["object", "type", "id"]);
const supportedPath = new Set(["token", "serial", "slot-id"]);
function bad(uri, why) {
    return new JpkiError("bad-input", `invalid PKCS#11 URI ${redact(uri)}: ${why}`);
}
/** The URI with any pin-value hidden, for messages and logs. */
export function redact(uri) {
    return uri.replace(/(pin-value=)[^&]*/g, "$1***");
}
function decode(uri, value) {
    // RFC 7512 §2.3: values are percent-encoded UTF-8.
    try {
        return decodeURIComponent(value);
    }
    catch {
        throw bad(uri, `bad percent-encoding in ${JSON.stringify(value)}`);
    }
}
function splitAttributes(uri, text, separator, allowed) {
    const out = new Map();
    if (text === "")
        return out;
    for (const part of text.split(separator)) {
        const eq = part.indexOf("=");
        if (eq <= 0)
            throw bad(uri, `attribute ${JSON.stringify(part)} has no name=value form`);
        const name = part.slice(0, eq).toLowerCase();
        if (!allowed.has(name) && !name.startsWith("x-"))
            throw bad(uri, `unknown attribute "${name}"`);
        if (out.has(name))
            throw bad(uri, `attribute "${name}" appears twice`);
        out.set(name, decode(uri, part.slice(eq + 1)));
    }
    return out;
}
/** Parses and validates a PKCS#11 URI for a key store; every error names what to fix. */
export function parsePkcs11Uri(uri, env = process.env) {
    if (!/^pkcs11:/i.test(uri))
        throw bad(uri, 'it must start with "pkcs11:"');
    const rest = uri.slice("pkcs11:".length);
    const q = rest.indexOf("?");
    const pathPart = q < 0 ? rest : rest.slice(0, q);
    const queryPart = q < 0 ? "" : rest.slice(q + 1);
    const attrs = splitAttributes(uri, pathPart, ";", pathAttributes);
    const query = splitAttributes(uri, queryPart, "&", queryAttributes);
    for (const name of attrs.keys()) {
        if (objectAttributes.has(name))
            throw bad(uri, `"${name}" selects an object; keys are chosen by label, so name only the token`);
        if (!supportedPath.has(name) && !name.startsWith("x-"))
            throw bad(uri, `"${name}" is not supported; select the token with token=, serial= or slot-id=`);
    }
    const token = attrs.get("token");
    const serial = attrs.get("serial");
    const slotText = attrs.get("slot-id");
    let slotId;
    if (slotText !== undefined) {
        if (!/^\d+$/.test(slotText))
            throw bad(uri, "slot-id must be a decimal number");
        slotId = BigInt(slotText);
    }
    if (token === undefined && serial === undefined && slotId === undefined)
        throw bad(uri, "name the token with token=<label> (or serial=, slot-id=)");
    if (query.has("module-name") && !query.has("module-path"))
        throw bad(uri, "module-name is not supported; give the library's absolute path in module-path=");
    const modulePath = query.get("module-path");
    if (!modulePath)
        throw bad(uri, "module-path=<absolute path of the PKCS#11 library> is required");
    if (!modulePath.startsWith("/"))
        throw bad(uri, "module-path must be an absolute path");
    const pinValue = query.get("pin-value");
    const pinSource = query.get("pin-source");
    if (pinValue !== undefined && pinSource !== undefined)
        throw bad(uri, "give either pin-value or pin-source, not both");
    let pin;
    if (pinValue !== undefined) {
        pin = { kind: "value", value: pinValue };
    }
    else if (pinSource !== undefined) {
        let file;
        if (pinSource.startsWith("file:")) {
            try {
                file = fileURLToPath(pinSource.startsWith("file://") ? pinSource : `file://${pinSource.slice(5)}`);
            }
            catch {
                throw bad(uri, `pin-source ${JSON.stringify(pinSource)} is not a file: URI`);
            }
        }
        else if (pinSource.startsWith("/")) {
            file = pinSource;
        }
        else {
            throw bad(uri, "pin-source must be a file: URI or an absolute path");
        }
        pin = { kind: "file", path: file };
    }
    else {
        if (env[HSM_PIN_ENV] === undefined)
            throw bad(uri, `no PIN: add pin-source=file:/path or pin-value=..., or set ${HSM_PIN_ENV}`);
        pin = { kind: "env", variable: HSM_PIN_ENV };
    }
    const config = { modulePath, pin };
    if (token !== undefined)
        config.token = token;
    if (serial !== undefined)
        config.serial = serial;
    if (slotId !== undefined)
        config.slotId = slotId;
    return config;
}
/** Reads the PIN named by the configuration (a PIN file must not be readable by group or others). */
export function readPin(config, env = process.env) {
    const source = config.pin;
    if (source.kind === "value")
        return source.value;
    if (source.kind === "env") {
        const value = env[source.variable];
        if (!value)
            throw new JpkiError("bad-input", `${source.variable} is not set (the HSM user PIN)`);
        return value;
    }
    let text;
    try {
        const { mode } = statSync(source.path);
        if (mode & 0o077)
            throw new JpkiError("forbidden", `the HSM PIN file ${source.path} is accessible by group or others; fix it with: chmod 600 ${source.path}`);
        text = readFileSync(source.path, "utf8");
    }
    catch (error) {
        if (error instanceof JpkiError)
            throw error;
        throw new JpkiError("bad-input", `cannot read the HSM PIN file ${source.path}`, { cause: error });
    }
    const pin = text.replace(/\r?\n$/, "");
    if (pin === "")
        throw new JpkiError("bad-input", `the HSM PIN file ${source.path} is empty`);
    return pin;
}
//# sourceMappingURL=pkcs11-uri.js.map