/**
 * The JPKI application (JPKI-AP, 公的個人認証AP) at the APDU level, exactly as JPKI-FACTS §1 describes
 * it: one implementation for both products, the My Number card (個人番号カード) and the SIM applet. The
 * product recorded in the state file changes one access rule (EF 000A needs the auth PIN on the SIM,
 * as on the real smartphone applet) and the token label.
 *
 * Persistent data comes from a JpkiApStore: the card state file of a My Number card (src/card/state.ts),
 * or the applet's part of a SIM's state (src/card/uicc/). The applet keeps a copy in memory while
 * powered and loads it again at every reset, so a PIN reset done at the counter is seen at the next
 * power-on. Every change is written (atomically) before the answer is returned.
 */
import { constants, createPrivateKey, type KeyObject, privateEncrypt } from "node:crypto";
import { type CommandApdu, hex, responseApdu } from "./apdu.js";
import {
  checkPin,
  type JpkiApState,
  loadCardState,
  newPinState,
  type PIN_RULES,
  type PinState,
  pinMatches,
  saveCardState,
  TOKEN_LABEL,
} from "./state.js";
import { CardStatusError, SW, verifyFailed } from "./status-words.js";

/** DF name of the JPKI-AP (JPKI-FACTS §1). */
export const JPKI_AP_AID = hex("D3 92 F0 00 26 01 00 00 00 01");
/** DF name of the 券面事項入力補助AP (card-surface input support AP); not emulated, answered 6A82. */
export const CARD_SURFACE_INPUT_AP_AID = hex("D3 92 10 00 31 00 01 01 04 08");

/** Elementary files of the JPKI-AP by FID (JPKI-FACTS §1). */
export const JPKI_EF = {
  signingCertificate: "0001",
  signingCaCertificate: "0002",
  tokenInfo: "0006",
  authCertificate: "000A",
  authCaCertificate: "000B",
  authKey: "0017",
  authPin: "0018",
  signingKey: "001A",
  signingPin: "001B",
} as const;

/** Which PIN EF guards each private-key EF. */
const PIN_OF_KEY: Record<string, string> = { "0017": "0018", "001A": "001B" };
const PIN_KIND: Record<string, keyof typeof PIN_RULES> = { "0018": "auth", "001B": "sign" };
const CERTIFICATE_EFS = new Set(["0001", "0002", "000A", "000B"]);

/** Length of the EF 0006 label field: 32 bytes of ASCII, space padded (JPKI-FACTS §1). */
const TOKEN_LABEL_LENGTH = 32;
/** PKCS#1 v1.5 (RFC 8017 §9.2 note 1): the DigestInfo must leave room for 00 01 PS(≥8×FF) 00. */
const PKCS1_OVERHEAD = 11;

type EfKind = "transparent" | "pin" | "key";

const fail = (sw: number, message?: string) => new CardStatusError(sw, message);

/** Where a JPKI-AP keeps its persistent data. `save` must be atomic: the old state or the new, never a mix. */
export interface JpkiApStore {
  load(): JpkiApState;
  save(state: JpkiApState): void;
}

/** The card state file written by `citizen add` (or a SIM applet's own file) as a store. */
export function cardStateFileStore(path: string): JpkiApStore {
  return { load: () => loadCardState(path), save: (state) => saveCardState(path, state) };
}

export class JpkiApplet {
  private state: JpkiApState;
  private readonly fileCache = new Map<string, Buffer>();
  private readonly keyCache = new Map<string, KeyObject>();
  /** Volatile: the current EF, and the PIN EFs verified since power-on (never persisted). */
  private currentEf: string | undefined;
  private readonly verified = new Set<string>();

  /** Throws (JpkiError "bad-input") when the state cannot be read: a card that cannot power on. */
  constructor(private readonly store: JpkiApStore) {
    this.state = store.load();
  }

  get product(): JpkiApState["product"] {
    return this.state.product;
  }

  /** The ATR the state file records (hex). */
  get recordedAtr(): string {
    return this.state.atr;
  }

  /** Called when the AP is selected by DF name: the DF itself becomes current (ISO/IEC 7816-4 §7.1.1). */
  selected(): void {
    this.currentEf = undefined;
  }

  /** Reset or power-off: verification state and current EF are lost; the state file is read again. */
  reset(): void {
    this.currentEf = undefined;
    this.verified.clear();
    try {
      this.state = this.store.load();
      this.fileCache.clear();
      this.keyCache.clear();
    } catch {
      // The file vanished or was damaged while the card was powered: keep the last good copy.
    }
  }

  /**
   * One command for the selected JPKI-AP (CLA, INS and lengths already checked by the card). Returns the
   * response APDU or throws a CardStatusError.
   */
  process(command: CommandApdu): Buffer {
    switch (command.ins) {
      case 0xa4:
        return this.selectEf(command);
      case 0xb0:
        return this.readBinary(command);
      case 0x20:
        return this.verify(command);
      case 0x24:
        return this.changeReferenceData(command);
      case 0x2a:
        return this.sign(command);
      default:
        throw fail(SW.INS_NOT_SUPPORTED);
    }
  }

  private efKind(fid: string): EfKind | undefined {
    if (fid === JPKI_EF.tokenInfo) return "transparent";
    if (CERTIFICATE_EFS.has(fid) && Object.hasOwn(this.state.files, fid)) return "transparent";
    if (fid in PIN_OF_KEY && Object.hasOwn(this.state.keys, fid)) return "key";
    // Both PIN EFs always exist, even on a SIM without a signing password (see `pin`).
    if (fid in PIN_KIND) return "pin";
    return undefined;
  }

  /** SELECT EF `00 A4 02 0C 02 FID`: only P1=02 (EF under the current DF) with P2=0C (no FCI). */
  private selectEf(c: CommandApdu): Buffer {
    if (c.p1 !== 0x02 || c.p2 !== 0x0c) throw fail(SW.WRONG_P1P2, "only SELECT EF with P1=02 P2=0C");
    if (c.data.length !== 2) throw fail(SW.WRONG_LENGTH, "a FID is 2 bytes");
    const fid = c.data.toString("hex").toUpperCase();
    if (!this.efKind(fid)) throw fail(SW.FILE_NOT_FOUND);
    this.currentEf = fid; // a failed SELECT leaves the current EF as it was
    return responseApdu(SW.OK);
  }

  private fileContent(fid: string): Buffer {
    let content = this.fileCache.get(fid);
    if (!content) {
      if (fid === JPKI_EF.tokenInfo) {
        const label = this.state.tokenLabel || TOKEN_LABEL[this.product === "sim" ? "sim" : "myNumberCard"];
        content = Buffer.from(label.padEnd(TOKEN_LABEL_LENGTH, " ").slice(0, TOKEN_LABEL_LENGTH), "latin1");
      } else {
        // Certificate EFs hold exactly the DER certificate, `30 82 LL LL ...` (JPKI-FACTS §1).
        content = Buffer.from(this.state.files[fid] ?? "", "base64");
      }
      this.fileCache.set(fid, content);
    }
    return content;
  }

  /** The PIN EF that must be verified before the EF may be read, if any. */
  private readCondition(fid: string): string | undefined {
    if (fid === JPKI_EF.signingCertificate) return JPKI_EF.signingPin;
    // The phone applet protects the auth certificate too (JPKI-FACTS §1, "Smartphone-style applet").
    if (fid === JPKI_EF.authCertificate && this.product === "sim") return JPKI_EF.authPin;
    return undefined;
  }

  private requireCurrent(kind: EfKind): string {
    const fid = this.currentEf;
    if (fid === undefined) throw fail(SW.NO_CURRENT_EF);
    if (this.efKind(fid) !== kind) throw fail(SW.INCOMPATIBLE_FILE);
    return fid;
  }

  /**
   * READ BINARY `00 B0 off-hi off-lo Le` (ISO/IEC 7816-4 §11.3.3): a 15-bit offset in P1-P2 (P1 bit 8
   * would announce a short EF identifier, which the JPKI-AP does not use). Le 00 means 256. Reading
   * across the end answers the bytes there with 90 00 (OpenSC reads the last chunk with the exact Le);
   * an offset at or beyond the end answers 6B 00.
   */
  private readBinary(c: CommandApdu): Buffer {
    if (c.p1 & 0x80) throw fail(SW.WRONG_P1P2, "short EF identifiers are not supported");
    if (c.data.length > 0 || c.ne === undefined) throw fail(SW.WRONG_LENGTH, "READ BINARY is case 2");
    const fid = this.requireCurrent("transparent");
    const condition = this.readCondition(fid);
    if (condition && !this.verified.has(condition)) throw fail(SW.SECURITY_NOT_SATISFIED);
    const content = this.fileContent(fid);
    const offset = (c.p1 << 8) | c.p2;
    if (offset >= content.length) throw fail(SW.OFFSET_OUTSIDE_EF);
    return responseApdu(SW.OK, content.subarray(offset, Math.min(content.length, offset + c.ne)));
  }

  /**
   * The PIN of a PIN EF. A PIN the state does not hold (a SIM applet without a smartphone signing
   * certificate has no signing password) reads as blocked: OpenSC's jpki driver selects 001B and asks
   * its status at every bind and drops the whole card, auth key included, unless it gets 63 Cn
   * (JPKI-FACTS §1); 63 C0 says "unusable" without breaking the bind.
   */
  private pin(fid: string): PinState {
    return this.state.pins[fid] ?? { hash: "", salt: "", triesLeft: 0, maxTries: 0 };
  }

  /** Writes the state with `pin` replacing the PIN of `fid`, before anything is answered. */
  private commitPin(fid: string, pin: PinState): void {
    const next: JpkiApState = { ...this.state, pins: { ...this.state.pins, [fid]: pin } };
    try {
      this.store.save(next);
    } catch {
      throw fail(SW.MEMORY_FAILURE, "the card state could not be written");
    }
    this.state = next;
  }

  /**
   * VERIFY `00 20 00 80 [Lc PIN]` on the current PIN EF (ISO/IEC 7816-4 §11.5.6).
   *
   * Without data (case 1, or the T=0 form `00 20 00 80 00`) it is the status query, which ALWAYS
   * answers 63 Cn, also when the PIN is verified, and 63 C0 when blocked: OpenSC's jpki driver gives
   * up on the whole card on any other answer (JPKI-FACTS §1).
   *
   * With data, the try is spent and written to the state file before the comparison, then given back
   * on success (the pre-decrement of Java Card's OwnerPINxWithPredecrement): a power cut between the
   * two never yields a free try.
   */
  private verify(c: CommandApdu): Buffer {
    if (c.p1 !== 0x00 || c.p2 !== 0x80) throw fail(SW.WRONG_P1P2, "VERIFY takes P1=00 P2=80");
    const fid = this.requireCurrent("pin");
    const pin = this.pin(fid);
    if (c.data.length === 0) return responseApdu(verifyFailed(pin.triesLeft));
    if (pin.triesLeft <= 0) throw fail(SW.AUTH_METHOD_BLOCKED);
    const kind = PIN_KIND[fid]!;
    const [min, max] = kind === "auth" ? [4, 4] : [6, 16];
    if (c.data.length < min || c.data.length > max)
      throw fail(SW.WRONG_LENGTH, `PIN length ${c.data.length}`);

    this.verified.delete(fid);
    const spent: PinState = { ...pin, triesLeft: pin.triesLeft - 1 };
    this.commitPin(fid, spent);
    // Characters are compared as sent: a lower-case signing password is a wrong one and costs a try.
    if (!pinMatches(pin, c.data.toString("latin1"))) return responseApdu(verifyFailed(spent.triesLeft));
    this.commitPin(fid, { ...spent, triesLeft: pin.maxTries });
    this.verified.add(fid);
    return responseApdu(SW.OK);
  }

  /**
   * CHANGE REFERENCE DATA `00 24 01 80 Lc newPIN` (ISO/IEC 7816-4 §11.5.7, P1=01: new data only), after
   * VERIFY. On the SIM, the first PIN of a key generated on the SIM is set this way without VERIFY:
   * the citizen chooses it in the phone, and no one else (J-LIS included) learns it.
   */
  private changeReferenceData(c: CommandApdu): Buffer {
    if (c.p1 !== 0x01 || c.p2 !== 0x80) throw fail(SW.WRONG_P1P2, "CHANGE REFERENCE DATA takes P1=01 P2=80");
    const fid = this.requireCurrent("pin");
    const pin = this.pin(fid);
    const firstPin =
      this.product === "sim" &&
      !Object.hasOwn(this.state.pins, fid) &&
      Object.entries(PIN_OF_KEY).some(
        ([key, pinFid]) => pinFid === fid && Object.hasOwn(this.state.keys, key),
      );
    if (!firstPin && pin.triesLeft <= 0) throw fail(SW.AUTH_METHOD_BLOCKED);
    if (!firstPin && !this.verified.has(fid)) throw fail(SW.SECURITY_NOT_SATISFIED);
    if (c.data.length === 0) throw fail(SW.WRONG_LENGTH);
    const kind = PIN_KIND[fid]!;
    const newPin = c.data.toString("latin1");
    try {
      checkPin(kind, newPin);
    } catch {
      throw fail(SW.WRONG_DATA, "the new PIN breaks the PIN rules");
    }
    this.commitPin(fid, newPinState(kind, newPin));
    return responseApdu(SW.OK);
  }

  private privateKey(fid: string): KeyObject {
    let key = this.keyCache.get(fid);
    if (!key) {
      key = createPrivateKey({
        key: Buffer.from(this.state.keys[fid] ?? "", "base64"),
        format: "der",
        type: "pkcs8",
      });
      this.keyCache.set(fid, key);
    }
    return key;
  }

  /**
   * SIGN (COMPUTE DIGITAL SIGNATURE, proprietary CLA) `80 2A 00 80 Lc DigestInfo [Le]` with the current
   * key EF: the card pads the DigestInfo the host sends with PKCS#1 v1.5 type 01 (RFC 8017 §9.2 step 5,
   * EMSA-PKCS1-v1_5 without the hashing) and applies the private key. The 256-byte signature comes back
   * directly with 90 00, never 61 xx (OpenSC would read zeros, JPKI-FACTS §1). Le is ignored: under T=0
   * it does not arrive at all.
   */
  private sign(c: CommandApdu): Buffer {
    if (c.p1 !== 0x00 || c.p2 !== 0x80) throw fail(SW.WRONG_P1P2, "SIGN takes P1=00 P2=80");
    const fid = this.requireCurrent("key");
    if (!this.verified.has(PIN_OF_KEY[fid]!)) throw fail(SW.SECURITY_NOT_SATISFIED);
    const key = this.privateKey(fid);
    const modulusBytes = (key.asymmetricKeyDetails?.modulusLength ?? 2048) / 8;
    if (c.data.length === 0 || c.data.length > modulusBytes - PKCS1_OVERHEAD)
      throw fail(SW.WRONG_LENGTH, `data of ${c.data.length} bytes`);
    // privateEncrypt with PKCS#1 padding = RSASSA-PKCS1-v1_5 signature primitive over the given bytes.
    const signature = privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, c.data);
    return responseApdu(SW.OK, signature);
  }
}
