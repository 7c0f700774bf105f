/**
 * The host side of the JPKI application (JPKI-AP, 公的個人認証AP), as the phone app and the counter
 * terminal drive it over any CardTransport: the My Number card (個人番号カード) over NFC or a reader,
 * or the SIM applet. The APDUs are exactly those of JPKI-FACTS §1, short lengths only.
 *
 * Refusals become errors here, in one place: a wrong PIN (WrongPinError, with the tries left), a
 * blocked PIN (PinBlockedError, with what to do), any other status word as CardStatusError.
 */

import { encodeCommandApdu, parseResponseApdu } from "../card/apdu.js";
import type { CardTransport } from "../card/card.js";
import { JPKI_AP_AID, JPKI_EF } from "../card/jpki-applet.js";
import { checkPin } from "../card/state.js";
import { CardStatusError, formatStatusWord, SW, statusWordName } from "../card/status-words.js";
import { JpkiError } from "../errors.js";
import { parseCertificate } from "../pki/certificate.js";
import type { DigestInfoSigner } from "../pki/cms.js";
import { DerError } from "../pki/der.js";

/** The two keys of the JPKI-AP: user authentication (利用者証明用) and signing (署名用). */
export type JpkiKey = "auth" | "sign";
/** The four certificate EFs. */
export type JpkiCertificate = "auth" | "sign" | "auth-ca" | "sign-ca";

const CERTIFICATE_EF: Record<JpkiCertificate, string> = {
  auth: JPKI_EF.authCertificate,
  sign: JPKI_EF.signingCertificate,
  "auth-ca": JPKI_EF.authCaCertificate,
  "sign-ca": JPKI_EF.signingCaCertificate,
};
const PIN_EF: Record<JpkiKey, string> = { auth: JPKI_EF.authPin, sign: JPKI_EF.signingPin };
const KEY_EF: Record<JpkiKey, string> = { auth: JPKI_EF.authKey, sign: JPKI_EF.signingKey };

/** How people call each PIN (the names on the card's PIN sheet). */
const PIN_NAME: Record<JpkiKey, string> = {
  auth: "user-authentication PIN (利用者証明用電子証明書暗証番号)",
  sign: "signing password (署名用電子証明書暗証番号)",
};
const CERTIFICATE_NAME: Record<JpkiCertificate, string> = {
  auth: "user-authentication certificate",
  sign: "signing certificate",
  "auth-ca": "user-authentication CA certificate",
  "sign-ca": "signing CA certificate",
};

/** READ BINARY's offset is 15 bits (P1 bit 8 would announce a short EF identifier): EFs end by 32 KiB. */
const MAX_EF_SIZE = 0x8000;
/** Short APDUs: Le 00 asks for 256 bytes (ISO/IEC 7816-4 §5.1); OpenSC reads the same chunks. */
const CHUNK = 256;

/** A VERIFY with a wrong PIN: the card answered 63 Cn with n > 0. */
export class WrongPinError extends JpkiError {
  override readonly name = "WrongPinError";
  constructor(
    readonly key: JpkiKey,
    readonly triesLeft: number,
  ) {
    super(
      "forbidden",
      `wrong ${PIN_NAME[key]}: ${triesLeft} ${triesLeft === 1 ? "try" : "tries"} left before it is blocked`,
    );
  }
}

/** The PIN is blocked (63 C0 after the last try, or 69 83): only the municipality can reset it. */
export class PinBlockedError extends JpkiError {
  override readonly name = "PinBlockedError";
  constructor(readonly key: JpkiKey) {
    super(
      "forbidden",
      `the ${PIN_NAME[key]} is blocked: have it reset at the municipal counter (市区町村窓口), ` +
        "bringing the card and identification",
    );
  }
}

/** A command of the JPKI-AP (ISO/IEC 7816-4 §5.1 fields); `ne` asks for response data. */
interface Command {
  cla?: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  ne?: number;
}

/** An open JPKI-AP session. Verification state lives in the card until it is reset. */
export class JpkiCard {
  private constructor(private readonly transport: Pick<CardTransport, "transmit">) {}

  /**
   * SELECT of the JPKI-AP by DF name without FCI: `00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01`
   * (JPKI-FACTS §1). A card without the application answers 6A 82.
   */
  static async open(transport: Pick<CardTransport, "transmit">): Promise<JpkiCard> {
    const card = new JpkiCard(transport);
    const { sw } = await card.send({ ins: 0xa4, p1: 0x04, p2: 0x0c, data: JPKI_AP_AID });
    if (sw === SW.FILE_NOT_FOUND)
      throw new CardStatusError(sw, "this card has no JPKI application (公的個人認証AP)");
    card.expectOk(sw, "SELECT of the JPKI-AP");
    return card;
  }

  private async send(command: Command): Promise<{ data: Buffer; sw: number }> {
    const apdu = encodeCommandApdu({ cla: command.cla ?? 0x00, ...command });
    return parseResponseApdu(await this.transport.transmit(apdu));
  }

  private expectOk(sw: number, what: string): void {
    if (sw !== SW.OK)
      throw new CardStatusError(
        sw,
        `${what}: the card answered ${formatStatusWord(sw)} (${statusWordName(sw)})`,
      );
  }

  /**
   * The applet instance's id on a SIM (GET DATA `80 CA 00 C1`, this project's tag), which the SIM's
   * key attestations name; hex.
   */
  async instanceId(): Promise<string> {
    const { data, sw } = await this.send({ cla: 0x80, ins: 0xca, p1: 0x00, p2: 0xc1, ne: 256 });
    if (sw !== SW.OK) throw new CardStatusError(sw, "this JPKI applet has no instance id (not a SIM's?)");
    return data.toString("hex");
  }

  /** SELECT EF `00 A4 02 0C 02 FID` (only P1=02 works on the real card, JPKI-FACTS §1). */
  private async selectEf(fid: string, what: string): Promise<void> {
    const { sw } = await this.send({ ins: 0xa4, p1: 0x02, p2: 0x0c, data: Buffer.from(fid, "hex") });
    if (sw === SW.FILE_NOT_FOUND) throw new CardStatusError(sw, `this card holds no ${what} (EF ${fid})`);
    this.expectOk(sw, `SELECT EF ${fid} (${what})`);
  }

  /** READ BINARY `00 B0 off-hi off-lo Le` of the current EF (ISO/IEC 7816-4 §11.3.3). */
  private async readBinary(offset: number, length: number, what: string): Promise<Buffer> {
    const { data, sw } = await this.send({ ins: 0xb0, p1: offset >> 8, p2: offset & 0xff, ne: length });
    if (sw === SW.SECURITY_NOT_SATISFIED)
      throw new CardStatusError(sw, `reading the ${what} needs its PIN verified first`);
    this.expectOk(sw, `READ BINARY of the ${what} at ${offset}`);
    if (data.length === 0 || data.length > length)
      throw new CardStatusError(SW.WRONG_LENGTH, `READ BINARY of the ${what} returned ${data.length} bytes`);
    return data;
  }

  /**
   * Reads a certificate EF: the first 4 bytes give the DER size (`30 82 LL LL`, JPKI-FACTS §1; the
   * shorter forms are read too), then the rest in chunks of at most 256 bytes. The signing
   * certificate needs the signing password verified first; on the SIM applet, the user-authentication
   * certificate needs the auth PIN (as on the real smartphone applet).
   */
  async readCertificate(which: JpkiCertificate): Promise<Buffer> {
    const what = CERTIFICATE_NAME[which];
    await this.selectEf(CERTIFICATE_EF[which], what);
    const head = await this.readBinary(0, 4, what);
    const size = derSize(head);
    if (size === undefined || size > MAX_EF_SIZE)
      throw new JpkiError("bad-input", `the ${what} EF does not start with a DER certificate`);
    const chunks = [head.subarray(0, Math.min(head.length, size))];
    for (let offset = chunks[0]!.length; offset < size; ) {
      const chunk = await this.readBinary(offset, Math.min(CHUNK, size - offset), what);
      chunks.push(chunk);
      offset += chunk.length;
    }
    const der = Buffer.concat(chunks);
    try {
      parseCertificate(der);
    } catch (error) {
      if (error instanceof DerError)
        throw new JpkiError("bad-input", `the ${what} on the card is not a certificate: ${error.message}`, {
          cause: error,
        });
      throw error;
    }
    return der;
  }

  /**
   * Tries left for a PIN: select the PIN EF, then VERIFY without data `00 20 00 80`, which always
   * answers 63 Cn, also when the PIN is already verified (JPKI-FACTS §1). 0 means blocked.
   */
  async triesLeft(key: JpkiKey): Promise<number> {
    await this.selectEf(PIN_EF[key], PIN_NAME[key]);
    const { sw } = await this.send({ ins: 0x20, p1: 0x00, p2: 0x80 });
    if ((sw & 0xfff0) === SW.VERIFY_FAILED) return sw & 0x0f;
    if (sw === SW.AUTH_METHOD_BLOCKED) return 0;
    throw new CardStatusError(
      sw,
      `VERIFY status of the ${PIN_NAME[key]}: the card answered ${formatStatusWord(sw)}`,
    );
  }

  /**
   * VERIFY `00 20 00 80 Lc PIN` (ASCII) on the PIN EF. The PIN is checked against the JPKI rules first
   * (4 digits; 6 to 16 of A-Z0-9), since the card spends a try on a malformed one too (a lower-case
   * signing password is a wrong one). Throws WrongPinError with the tries left, or PinBlockedError.
   */
  async verify(key: JpkiKey, pin: string): Promise<void> {
    checkPin(key, pin);
    await this.selectEf(PIN_EF[key], PIN_NAME[key]);
    const { sw } = await this.send({ ins: 0x20, p1: 0x00, p2: 0x80, data: Buffer.from(pin, "latin1") });
    if (sw === SW.OK) return;
    if (sw === SW.AUTH_METHOD_BLOCKED || sw === SW.VERIFY_FAILED) throw new PinBlockedError(key);
    if ((sw & 0xfff0) === SW.VERIFY_FAILED) throw new WrongPinError(key, sw & 0x0f);
    this.expectOk(sw, `VERIFY of the ${PIN_NAME[key]}`);
  }

  /**
   * CHANGE REFERENCE DATA `00 24 01 80 Lc newPIN` (ISO/IEC 7816-4 §11.5.7) after VERIFY; on the SIM
   * applet also the first PIN of a key generated there, which only the citizen chooses, in the phone.
   */
  async changePin(key: JpkiKey, newPin: string): Promise<void> {
    checkPin(key, newPin);
    await this.selectEf(PIN_EF[key], PIN_NAME[key]);
    const { sw } = await this.send({ ins: 0x24, p1: 0x01, p2: 0x80, data: Buffer.from(newPin, "latin1") });
    if (sw === SW.AUTH_METHOD_BLOCKED) throw new PinBlockedError(key);
    if (sw === SW.SECURITY_NOT_SATISFIED)
      throw new CardStatusError(sw, `changing the ${PIN_NAME[key]} needs it verified first`);
    this.expectOk(sw, `CHANGE REFERENCE DATA of the ${PIN_NAME[key]}`);
  }

  /**
   * SIGN `80 2A 00 80 Lc DigestInfo 00` with the key's EF selected (JPKI-FACTS §1): the card pads the
   * DER DigestInfo with PKCS#1 v1.5 type 01 itself and answers the signature with 90 00. Without a
   * prior VERIFY the card answers 69 82 (security status not satisfied), thrown as CardStatusError.
   * The key EF stays the current EF afterwards.
   */
  async signDigestInfo(key: JpkiKey, digestInfo: Uint8Array): Promise<Buffer> {
    await this.selectEf(KEY_EF[key], `${key === "auth" ? "user-authentication" : "signing"} key`);
    const { data, sw } = await this.send({
      cla: 0x80,
      ins: 0x2a,
      p1: 0x00,
      p2: 0x80,
      data: digestInfo,
      ne: 256,
    });
    if (sw === SW.SECURITY_NOT_SATISFIED)
      throw new CardStatusError(
        sw,
        `SIGN refused (69 82, security status not satisfied): verify the ${PIN_NAME[key]} first`,
      );
    this.expectOk(sw, "SIGN");
    if (data.length === 0)
      throw new CardStatusError(SW.NO_DIAGNOSIS, "SIGN answered 90 00 without a signature");
    return data;
  }

  /**
   * The `sign` callback of buildSignedData (src/pki/cms.ts): each call VERIFYs `pin` (when given)
   * right before SIGN, as the JPKI app asks for the password at every signature; without `pin` an
   * earlier verify() must still hold.
   */
  signer(key: JpkiKey, pin?: string): DigestInfoSigner {
    return async (digestInfo) => {
      if (pin !== undefined) await this.verify(key, pin);
      return this.signDigestInfo(key, digestInfo);
    };
  }
}

/**
 * The size of the DER value at the start of `head` (tag 30, then X.690 §8.1.3 definite length):
 * `30 82 LL LL` as certificates are, or the short forms; undefined when it is not a SEQUENCE.
 */
function derSize(head: Buffer): number | undefined {
  if (head.length < 2 || head[0] !== 0x30) return undefined;
  const first = head[1]!;
  if (first < 0x80) return 2 + first;
  const count = first & 0x7f;
  if (count < 1 || count > 2 || head.length < 2 + count) return undefined;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + head[2 + i]!;
  return 2 + count + length;
}
