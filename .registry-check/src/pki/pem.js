/**
 * PEM text encoding of DER objects (RFC 7468): base64 in 64-character lines between
 * `-----BEGIN label-----` and `-----END label-----`.
 */
import { JpkiError } from "../errors.js";
/** Wraps DER in PEM with the given label (RFC 7468 §2; `CERTIFICATE` for certificates, §5.1). */
export function pemEncode(der, label = "CERTIFICATE") {
    const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
    const lines = base64.match(/.{1,64}/g) ?? [];
    return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
const blockPattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
/**
 * Every PEM block of a text, in order (explanatory text around them is ignored, RFC 7468 §2). Refuses
 * a block whose END label differs or whose body is not strict base64 (RFC 7468 §3, "strict" parser).
 */
export function pemDecodeAll(text) {
    const blocks = [];
    for (const match of text.matchAll(blockPattern)) {
        const [, label, body, endLabel] = match;
        if (label !== endLabel)
            throw new JpkiError("bad-input", `PEM: BEGIN ${label} closed by END ${endLabel}`);
        const base64 = body.replace(/\s+/g, "");
        if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(base64))
            throw new JpkiError("bad-input", `PEM: the ${label} block is not valid base64`);
        blocks.push({ label: label, der: Buffer.from(base64, "base64") });
    }
    return blocks;
}
/** The DER of the first PEM block with `label` (by default a certificate). */
export function pemDecode(text, label = "CERTIFICATE") {
    const block = pemDecodeAll(text).find((b) => b.label === label);
    if (!block)
        throw new JpkiError("bad-input", `PEM: no ${label} block found`);
    return block.der;
}
//# sourceMappingURL=pem.js.map