/**
 * Certificate serial numbers (RFC 5280 §4.1.2.2): positive, unique per CA, at most 20 octets, and
 * unpredictable (CA/Browser Forum BR §7.1 asks for at least 64 random bits; we take 127).
 */
import { randomFillSync } from "node:crypto";
import { JpkiError } from "../errors.js";
/** Length of our serials in bytes: 16 bytes → a DER INTEGER of exactly 16 content bytes. */
export const SERIAL_BYTES = 16;
/**
 * A new random serial: 16 bytes with the top bit cleared (so the INTEGER is positive with no padding
 * byte) and a non-zero first byte (so no leading zero byte is dropped: the encoding is always minimal
 * DER, X.690 §8.3.2, and always 16 bytes long). 127 bits, of which at least 120 fully random.
 */
export function randomSerial() {
    const serial = Buffer.allocUnsafe(SERIAL_BYTES);
    randomFillSync(serial);
    serial[0] &= 0x7f;
    while (serial[0] === 0)
        serial[0] = randomFillSync(Buffer.alloc(1))[0] & 0x7f;
    return serial;
}
/** Lower-case hex of a serial, as stored in the registry and typed in the CLI. */
export function serialToHex(serial) {
    return Buffer.from(serial.buffer, serial.byteOffset, serial.byteLength).toString("hex");
}
/**
 * Parses a serial typed by a person or read from the registry: hex, any case, optional `0x` and `:`
 * separators (OpenSSL prints them so). Leading zero bytes are dropped so two spellings of one number
 * compare equal; the result is a positive magnitude of 1 to 20 bytes.
 */
export function serialFromHex(text) {
    const hex = text.trim().replace(/^0x/i, "").replaceAll(":", "").toLowerCase();
    if (!/^[0-9a-f]+$/.test(hex))
        throw new JpkiError("bad-input", `not a hexadecimal serial: ${text}`);
    let bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0)
        start++;
    bytes = bytes.subarray(start);
    if (bytes.length > 20)
        throw new JpkiError("bad-input", `serial longer than 20 octets: ${text}`);
    if (bytes.length === 1 && bytes[0] === 0)
        throw new JpkiError("bad-input", "serial must be positive");
    return Buffer.from(bytes);
}
/**
 * The CRL shard of a certificate (DESIGN §7): the low 32 bits of the serial modulo the shard count.
 * Deterministic from the serial alone, so the CA writes it into the CRL distribution point at
 * issuance and the CRL publisher finds it again; uniform because the serial is random.
 */
export function shardOf(serial, shardCount) {
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 0xffffffff)
        throw new RangeError(`shard count must be a positive integer: ${shardCount}`);
    let low = 0;
    for (let i = Math.max(0, serial.length - 4); i < serial.length; i++)
        low = low * 256 + serial[i];
    return low % shardCount;
}
//# sourceMappingURL=serial.js.map