/**
 * The SIM (UICC) as an emulated card: a GlobalPlatform card manager owned by the carrier, the J-LIS
 * supplementary security domain (SSD) and the JPKI applet instance associated with it.
 *
 * - Card manager (issuer security domain, ISD): SCP03 with the carrier's keys; INSTALL (for install,
 *   make selectable, extradition), DELETE and GET STATUS inside the channel. The carrier creates the
 *   J-LIS SSD and the applet instance and hands the applet over to the SSD (extradition), and can delete
 *   them, but reads nothing inside them: no command of the card manager returns applet data.
 * - J-LIS SSD: SCP11a (J-LIS presents a certificate chain to the SIM maker's root naming J-LIS) or
 *   SCP11b, with the key the SIM maker provisioned. Personalisation of the applet is accepted only in
 *   an SCP11a session, so only J-LIS, never the carrier, can generate keys, write certificates, inject
 *   keys, reset PINs or wipe the applet (docs/secure-hardware.md lists the commands).
 * - The JPKI applet (src/card/jpki-applet.ts, product "sim"): what the phone and OpenSC talk to.
 * - EF ICCID (2FE2) under the MF, and the EID through the card manager (SGP.22 GetEUICCData form).
 *
 * Every change is written to the state file (atomically) before the answer; transmit never throws.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { parseCertificate } from "../../pki/certificate.js";
import { JLIS_OCE_NAME } from "../../pki/names.js";
import { type CommandApdu, hex, parseCommandApdu, responseApdu } from "../apdu.js";
import type { EmulatedCard } from "../card.js";
import { aesCbcDecrypt, unpad80 } from "../gp/aes.js";
import { x509HostCertificateValidator } from "../gp/host-certificate.js";
import { Scp03Card } from "../gp/scp03.js";
import { Scp11Card, softwareEckaKey } from "../gp/scp11.js";
import { SecureChannelError } from "../gp/secure-messaging.js";
import { JPKI_AP_AID, JPKI_EF, JpkiApplet } from "../jpki-applet.js";
import { SIM_ATR } from "../sim-applet-card.js";
import { type JpkiApState, newPinState, STATE_FORMAT, TOKEN_LABEL } from "../state.js";
import { CardStatusError, SW } from "../status-words.js";
import { encodeTlv, readTlvList } from "../tlv.js";
import { ATTESTATION_NONCE_LENGTH, signKeyAttestation, spkiSha256 } from "./attestation.js";
import { eidBytes, iccidFileContent } from "./identity.js";
import { LifeCycle, loadUiccState, saveUiccState, type UiccState } from "./state.js";

/** The issuer security domain's AID (GPCS, the default card manager AID). */
export const ISD_AID = hex("A0 00 00 01 51 00 00 00");
/** The security domain executable load file and module present on every SIM (GPCS AIDs). */
export const SD_LOAD_FILE_AID = hex("A0 00 00 01 51 53 50");
export const SD_MODULE_AID = hex("A0 00 00 01 51 53 50 41");
/** The JPKI applet's executable load file (this project's) and module, pre-loaded by the SIM maker. */
export const JPKI_LOAD_FILE_AID = hex("D3 92 F0 00 26 01 00 00 00");
export const JPKI_MODULE_AID = JPKI_AP_AID;
/** The AID the carrier gives the J-LIS security domain (this project's choice). */
export const JLIS_SD_AID = hex("D3 92 F0 00 26 53 44 01");
/** KVN of the J-LIS security domain's SCP11 key set. */
export const JLIS_SD_SCP11_KEY_VERSION = 0x01;

/** Card manager commands that need its secure channel. */
const CARD_CONTENT_MANAGEMENT: ReadonlySet<number> = new Set([0xe6, 0xe4, 0xf2]);

/** Privileges (GPCS Table 11-7, first byte): Security Domain. */
const PRIVILEGE_SECURITY_DOMAIN = 0x80;

/** Instructions. */
const INS = {
  select: 0xa4,
  readBinary: 0xb0,
  getData: 0xca,
  storeData: 0xe2,
  install: 0xe6,
  delete: 0xe4,
  getStatus: 0xf2,
  initializeUpdate: 0x50,
  externalAuthenticate: 0x82,
  mutualAuthenticate: 0x82,
  performSecurityOperation: 0x2a,
  internalAuthenticate: 0x88,
  generateKeyPair: 0x46,
  resetRetryCounter: 0x2c,
} as const;

/** INSTALL P1 (GPCS Table 11-47). */
const InstallFor = {
  install: 0x04,
  makeSelectable: 0x08,
  extradition: 0x10,
  personalization: 0x20,
} as const;

/** GET EID as an LPA sends it to the eUICC (SGP.22 §5.7.20): STORE DATA 'BF3E' { '5C' tag list '5A' }. */
const GET_EID_DATA = hex("BF 3E 03 5C 01 5A");
/** GET DATA 'BF21': the security domain's certificate (CERT.SD.ECKA), before any channel (Amd F §7.4). */
const TAG_SD_CERTIFICATE = 0xbf21;
/** GET DATA on the JPKI applet: the instance identifier (this project's tag). */
const TAG_INSTANCE_ID = 0x00c1;
/** EF ICCID (ETSI TS 102 221 §13.2) under the MF. */
const FID_MF = "3F00";
const FID_ICCID = "2FE2";

/** STORE DATA personalisation: DGIs (data grouping identifiers) the J-LIS domain understands. */
const Dgi = {
  /** Certificates by EF: DER. */
  certificates: new Set(["0001", "0002", "000A", "000B"]),
  /** Private keys by key EF, encrypted under S-DEK (the 8xxx range, GP convention for encrypted DGIs). */
  encryptedKeys: new Map([
    ["8017", JPKI_EF.authKey],
    ["801A", JPKI_EF.signingKey],
  ]),
} as const;
/** The key whose public part each certificate EF must carry. */
const KEY_OF_CERTIFICATE: Record<string, string> = { "000A": JPKI_EF.authKey, "0001": JPKI_EF.signingKey };
const CERTIFICATE_OF_KEY: Record<string, string> = { "0017": "000A", "001A": "0001" };
/** Key references of GENERATE ASYMMETRIC KEY PAIR and PIN references of RESET RETRY COUNTER (P2). */
const KEY_REFERENCES: ReadonlyMap<number, string> = new Map([
  [0x17, JPKI_EF.authKey],
  [0x1a, JPKI_EF.signingKey],
]);
const PIN_REFERENCES: ReadonlyMap<number, ["auth" | "sign", string]> = new Map([
  [0x18, ["auth", JPKI_EF.authPin]],
  [0x1b, ["sign", JPKI_EF.signingPin]],
]);
/** Most bytes one STORE DATA sequence may carry. */
const MAX_STORE_DATA = 16 * 1024;

/** The JPKI applet's instructions (as on the My Number card) and the two this UICC adds for the phone. */
const JPKI_INSTRUCTIONS: ReadonlyMap<number, ReadonlySet<number>> = new Map([
  [0x00, new Set([0xa4, 0xb0, 0x20, 0x24])],
  [0x80, new Set([0x2a, INS.getData])],
]);

type Selected = "mf" | "iccid" | "isd" | "ssd" | "applet";

const fail = (sw: number, message?: string) => new CardStatusError(sw, message);
const aidHex = (aid: Uint8Array) => Buffer.from(aid).toString("hex").toUpperCase();

/** Reads `length || value` fields one after another (INSTALL and DELETE data, GPCS §11.5.2.3). */
function lengthPrefixedFields(data: Buffer, count: number): Buffer[] {
  const fields: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const length = data[offset];
    if (length === undefined || offset + 1 + length > data.length)
      throw fail(SW.WRONG_DATA, "truncated field");
    fields.push(data.subarray(offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  if (offset !== data.length) throw fail(SW.WRONG_DATA, "trailing bytes");
  return fields;
}

/** DGI || length (1 byte, or FF and 2 bytes) || value, repeated (GPCS §11.11.2.2). */
function readDgis(data: Buffer): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (let offset = 0; offset < data.length; ) {
    if (offset + 3 > data.length) throw fail(SW.WRONG_DATA, "truncated DGI");
    const dgi = data
      .subarray(offset, offset + 2)
      .toString("hex")
      .toUpperCase();
    let length = data[offset + 2]!;
    let header = 3;
    if (length === 0xff) {
      if (offset + 5 > data.length) throw fail(SW.WRONG_DATA, "truncated DGI length");
      length = data.readUInt16BE(offset + 3);
      header = 5;
    }
    if (offset + header + length > data.length) throw fail(SW.WRONG_DATA, "DGI runs past the data");
    out.push([dgi, data.subarray(offset + header, offset + header + length)]);
    offset += header + length;
  }
  return out;
}

/** A fresh, empty JPKI-AP of the SIM product: no keys, no certificates, no PINs yet. */
function emptyJpkiState(iccid: string): JpkiApState {
  return {
    format: STATE_FORMAT,
    version: 1,
    product: "sim",
    tokenLabel: TOKEN_LABEL.sim,
    atr: SIM_ATR.toString("hex"),
    cardId: iccid,
    personId: "",
    files: {},
    keys: {},
    pins: {},
  };
}

/** A private key stored as base64 PKCS#8. */
const pkcs8Key = (base64: string): KeyObject =>
  createPrivateKey({ key: Buffer.from(base64, "base64"), format: "der", type: "pkcs8" });

const spkiOf = (key: KeyObject): Buffer => createPublicKey(key).export({ type: "spki", format: "der" });

export class Uicc implements EmulatedCard {
  readonly atr = SIM_ATR;
  #state: UiccState;
  #selected: Selected = "mf";
  #applet: JpkiApplet | undefined;
  readonly #isdChannel: Scp03Card;
  #ssdChannel: Scp11Card | undefined;
  /** Volatile personalisation context of the J-LIS domain: INSTALL [for personalization], STORE DATA blocks. */
  #personalising = false;
  #storeData: { next: number; chunks: Buffer[]; size: number } | undefined;

  /** Throws JpkiError("bad-input") when the state file cannot be read. */
  constructor(private readonly statePath: string) {
    this.#state = loadUiccState(statePath);
    this.#isdChannel = new Scp03Card({
      keySet: (version) => {
        const { isd } = this.#state;
        if (version !== 0 && version !== isd.keyVersion) return undefined;
        const key = (h: string) => Buffer.from(h, "hex");
        return {
          keyVersion: isd.keyVersion,
          keys: { enc: key(isd.enc), mac: key(isd.mac), dek: key(isd.dek) },
        };
      },
      // Key diversification data (Amd D Table 7-3): the last 10 bytes of the ICCID's BCD.
      keyDiversificationData: iccidFileContent(this.#state.iccid),
    });
  }

  get iccid(): string {
    return this.#state.iccid;
  }

  get eid(): string {
    return this.#state.eid;
  }

  /** A copy of the persistent state (for tools and tests; the card itself never sends it). */
  get state(): UiccState {
    return structuredClone(this.#state);
  }

  reset(): void {
    this.#selected = "mf";
    this.#closeChannels();
    try {
      this.#state = loadUiccState(this.statePath);
    } catch {
      // The file vanished or was damaged while powered: keep the last good copy.
    }
    this.#applet = undefined;
  }

  powerOff(): void {
    this.reset();
  }

  async transmit(command: Uint8Array): Promise<Buffer> {
    return this.transmitSync(command);
  }

  transmitSync(command: Uint8Array): Buffer {
    try {
      return this.#process(command);
    } catch (error) {
      if (error instanceof CardStatusError) return responseApdu(error.sw);
      return responseApdu(SW.NO_DIAGNOSIS); // an emulator fault; the card stays usable
    }
  }

  #closeChannels(): void {
    this.#isdChannel.reset();
    this.#ssdChannel?.reset();
    this.#personalising = false;
    this.#storeData = undefined;
  }

  /** Writes `next` before anything is answered; the in-memory copy changes only once it is on disk. */
  #commit(next: UiccState): void {
    try {
      saveUiccState(this.statePath, next);
    } catch {
      throw fail(SW.MEMORY_FAILURE, "the SIM state could not be written");
    }
    this.#state = next;
    this.#applet = undefined; // rebuilt from the new state at the next command
  }

  #process(bytes: Uint8Array): Buffer {
    if (bytes.length < 4) throw fail(SW.WRONG_LENGTH);
    const cla = bytes[0]!;
    // Only the basic logical channel (ISO/IEC 7816-4 §5.4.2): channel bits must be zero.
    if (cla & 0x43) throw fail(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
    if ((cla & 0xf0) !== 0x00 && (cla & 0xf0) !== 0x80) throw fail(SW.CLA_NOT_SUPPORTED);
    const command = parseCommandApdu(bytes);
    if (command.cla === 0x00 && command.ins === INS.select && command.p1 === 0x04)
      return this.#selectByName(command);
    switch (this.#selected) {
      case "isd":
        return this.#processIsd(bytes, command);
      case "ssd":
        return this.#processSsd(bytes, command);
      case "applet":
        return this.#processApplet(command);
      default:
        return this.#processMf(command);
    }
  }

  /** SELECT by DF name (ISO/IEC 7816-4 §11.2.2): the card manager, the J-LIS domain or the applet. */
  #selectByName(c: CommandApdu): Buffer {
    if (c.p2 !== 0x00 && c.p2 !== 0x0c) throw fail(SW.WRONG_P1P2);
    const { ssd, applet } = this.#state;
    let target: Selected;
    if (c.data.equals(ISD_AID)) target = "isd";
    else if (ssd && c.data.equals(Buffer.from(ssd.aid, "hex"))) target = "ssd";
    else if (
      applet &&
      applet.lifeCycle >= LifeCycle.selectable &&
      c.data.equals(Buffer.from(applet.aid, "hex"))
    ) {
      // Like the My Number card, the JPKI-AP returns no FCI (JPKI-FACTS §1).
      if (c.p2 !== 0x0c) throw fail(SW.WRONG_P1P2, "the JPKI-AP returns no FCI (P2=0C)");
      target = "applet";
    } else throw fail(SW.FILE_NOT_FOUND);
    // Selecting an application ends any secure channel session (GPCS §10.2).
    this.#closeChannels();
    this.#selected = target;
    if (target === "applet") this.#jpkiApplet().selected();
    if (target === "ssd") this.#ssdChannel = this.#newSsdChannel();
    if (target === "applet" || c.p2 === 0x0c) return responseApdu(SW.OK);
    // FCI (GPCS §11.9.3): '6F' { '84' AID, 'A5' { '9F65' maximum length of data field } }.
    const aid = c.data;
    return responseApdu(
      SW.OK,
      encodeTlv(0x6f, [encodeTlv(0x84, aid), encodeTlv(0xa5, encodeTlv(0x9f65, [Buffer.from([0xff])]))]),
    );
  }

  // -------------------------------------------------------------------------------------------
  // MF: EF ICCID

  #processMf(c: CommandApdu): Buffer {
    if (c.cla !== 0x00) throw fail(SW.CLA_NOT_SUPPORTED);
    if (c.ins === INS.select) {
      if (c.p1 !== 0x00 || (c.p2 !== 0x04 && c.p2 !== 0x0c)) throw fail(SW.WRONG_P1P2);
      if (c.data.length !== 2) throw fail(SW.WRONG_LENGTH);
      const fid = c.data.toString("hex").toUpperCase();
      if (fid === FID_MF) this.#selected = "mf";
      else if (fid === FID_ICCID) this.#selected = "iccid";
      else throw fail(SW.FILE_NOT_FOUND);
      if (c.p2 === 0x0c || fid === FID_MF) return responseApdu(SW.OK);
      // FCP (ETSI TS 102 221 §11.1.1.3): transparent EF, FID 2FE2, 10 bytes.
      return responseApdu(
        SW.OK,
        encodeTlv(0x62, [
          encodeTlv(0x82, Buffer.from([0x41, 0x21])),
          encodeTlv(0x83, hex("2FE2")),
          encodeTlv(0x80, hex("000A")),
        ]),
      );
    }
    if (c.ins === INS.readBinary) {
      if (this.#selected !== "iccid") throw fail(SW.NO_CURRENT_EF);
      if (c.p1 & 0x80) throw fail(SW.WRONG_P1P2);
      if (c.data.length || c.ne === undefined) throw fail(SW.WRONG_LENGTH);
      const content = iccidFileContent(this.#state.iccid);
      const offset = (c.p1 << 8) | c.p2;
      if (offset >= content.length) throw fail(SW.OFFSET_OUTSIDE_EF);
      return responseApdu(SW.OK, content.subarray(offset, offset + c.ne));
    }
    throw fail(SW.INS_NOT_SUPPORTED);
  }

  // -------------------------------------------------------------------------------------------
  // The JPKI applet

  #jpkiApplet(): JpkiApplet {
    if (!this.#applet) {
      this.#applet = new JpkiApplet({
        load: () => {
          const applet = this.#state.applet;
          if (!applet) throw fail(SW.FILE_NOT_FOUND, "no JPKI applet instance");
          return applet.jpki;
        },
        save: (jpki) => {
          const applet = this.#state.applet!;
          const next = { ...this.#state, applet: { ...applet, jpki } };
          saveUiccState(this.statePath, next);
          this.#state = next; // the applet keeps its own copy: no rebuild here
        },
      });
    }
    return this.#applet;
  }

  #processApplet(c: CommandApdu): Buffer {
    const instructions = JPKI_INSTRUCTIONS.get(c.cla);
    if (!instructions) throw fail(SW.CLA_NOT_SUPPORTED);
    if (!instructions.has(c.ins)) throw fail(SW.INS_NOT_SUPPORTED);
    if (c.extended) throw fail(SW.WRONG_LENGTH, "extended lengths are not supported");
    if (c.ins === INS.getData && c.cla === 0x80) {
      if (((c.p1 << 8) | c.p2) !== TAG_INSTANCE_ID) throw fail(SW.REFERENCE_NOT_FOUND);
      return responseApdu(SW.OK, Buffer.from(this.#state.applet!.instanceId, "hex"));
    }
    return this.#jpkiApplet().process(c);
  }

  // -------------------------------------------------------------------------------------------
  // Card manager (issuer security domain)

  #processIsd(raw: Uint8Array, c: CommandApdu): Buffer {
    const channel = this.#isdChannel;
    if (c.cla === 0x80 && c.ins === INS.initializeUpdate) return channel.processInitializeUpdate(raw);
    if (c.cla === 0x84 && c.ins === INS.externalAuthenticate) return channel.processExternalAuthenticate(raw);
    if (c.cla === 0x80 && c.ins === INS.storeData && c.data.equals(GET_EID_DATA))
      return responseApdu(SW.OK, encodeTlv(0xbf3e, [encodeTlv(0x5a, eidBytes(this.#state.eid))]));
    // CLA 84 only, as in the J-LIS domain: the C-MAC covers CLA with its low nibble set to 4
    // (secure-messaging.ts, Amd D §6.2.4), so a CLA changed from 84 to 8C on the way would still verify.
    if (!channel.authenticated || c.cla !== 0x84) {
      if (CARD_CONTENT_MANAGEMENT.has(c.ins))
        throw fail(
          SW.SECURITY_NOT_SATISFIED,
          "card content management needs the card manager's secure channel",
        );
      throw fail(SW.INS_NOT_SUPPORTED);
    }
    const plain = parseCommandApdu(channel.unwrapCommand(raw));
    try {
      return channel.wrapResponse(...this.#cardManagerCommand(plain));
    } catch (error) {
      if (error instanceof CardStatusError) return channel.wrapResponse(Buffer.alloc(0), error.sw);
      throw error;
    }
  }

  #cardManagerCommand(c: CommandApdu): [Buffer, number] {
    switch (c.ins) {
      case INS.install:
        return this.#install(c);
      case INS.delete:
        return this.#delete(c);
      case INS.getStatus:
        return this.#getStatus(c);
      default:
        throw fail(SW.INS_NOT_SUPPORTED);
    }
  }

  /**
   * INSTALL (GPCS §11.5): [for install] (and make selectable) of the J-LIS security domain or the JPKI
   * applet from the modules the SIM maker pre-loaded, [for make selectable], and [for extradition],
   * which associates the applet with the J-LIS domain (from then on only that domain personalises it).
   */
  #install(c: CommandApdu): [Buffer, number] {
    if (c.p2 !== 0x00) throw fail(SW.WRONG_P1P2);
    const state = this.#state;
    if (c.p1 === InstallFor.extradition) {
      const [sdAid, , appAid] = lengthPrefixedFields(c.data, 5);
      if (!state.applet || !appAid!.equals(Buffer.from(state.applet.aid, "hex")))
        throw fail(SW.REFERENCE_NOT_FOUND, "no such application");
      const target = sdAid!.equals(ISD_AID)
        ? ISD_AID
        : state.ssd && sdAid!.equals(Buffer.from(state.ssd.aid, "hex"))
          ? sdAid!
          : undefined;
      if (!target) throw fail(SW.REFERENCE_NOT_FOUND, "no such security domain");
      this.#commit({ ...state, applet: { ...state.applet, associatedSd: aidHex(target) } });
      return [Buffer.alloc(0), SW.OK];
    }
    if (c.p1 === InstallFor.makeSelectable) {
      const [, , aid] = lengthPrefixedFields(c.data, 5);
      if (!state.applet || !aid!.equals(Buffer.from(state.applet.aid, "hex")))
        throw fail(SW.REFERENCE_NOT_FOUND);
      if (state.applet.lifeCycle < LifeCycle.selectable)
        this.#commit({ ...state, applet: { ...state.applet, lifeCycle: LifeCycle.selectable } });
      return [Buffer.alloc(0), SW.OK];
    }
    if (c.p1 !== InstallFor.install && c.p1 !== (InstallFor.install | InstallFor.makeSelectable))
      throw fail(SW.WRONG_P1P2, "INSTALL for install, make selectable or extradition");
    const [loadFile, module, instance, privileges] = lengthPrefixedFields(c.data, 6);
    if (instance!.length < 5 || instance!.length > 16) throw fail(SW.WRONG_DATA, "an AID is 5 to 16 bytes");
    const taken = [
      ISD_AID,
      ...(state.ssd ? [Buffer.from(state.ssd.aid, "hex")] : []),
      ...(state.applet ? [Buffer.from(state.applet.aid, "hex")] : []),
    ];
    if (taken.some((aid) => aid.equals(instance!)))
      throw fail(SW.CONDITIONS_NOT_SATISFIED, "AID already in use");
    const isSd = (privileges![0] ?? 0) & PRIVILEGE_SECURITY_DOMAIN;
    const lifeCycle = c.p1 & InstallFor.makeSelectable ? LifeCycle.selectable : LifeCycle.installed;
    if (loadFile!.equals(SD_LOAD_FILE_AID) && module!.equals(SD_MODULE_AID)) {
      if (!isSd) throw fail(SW.WRONG_DATA, "a security domain needs the Security Domain privilege");
      // One key set for the J-LIS domain was provisioned by the SIM maker: room for one such domain.
      if (state.ssd) throw fail(SW.NOT_ENOUGH_MEMORY, "the J-LIS security domain already exists");
      this.#commit({
        ...state,
        ssd: { aid: aidHex(instance!), lifeCycle, scp11KeyVersion: JLIS_SD_SCP11_KEY_VERSION },
      });
      return [Buffer.alloc(0), SW.OK];
    }
    if (loadFile!.equals(JPKI_LOAD_FILE_AID) && module!.equals(JPKI_MODULE_AID)) {
      if (isSd) throw fail(SW.WRONG_DATA, "the JPKI applet is not a security domain");
      if (state.applet) throw fail(SW.NOT_ENOUGH_MEMORY, "the JPKI applet already exists");
      this.#commit({
        ...state,
        applet: {
          aid: aidHex(instance!),
          lifeCycle,
          instanceId: randomBytes(16).toString("hex"),
          associatedSd: aidHex(ISD_AID),
          jpki: emptyJpkiState(state.iccid),
        },
      });
      return [Buffer.alloc(0), SW.OK];
    }
    throw fail(SW.REFERENCE_NOT_FOUND, "no such executable load file or module");
  }

  /**
   * DELETE (GPCS §11.2) '4F' AID: the applet instance (its keys and certificates are erased with it),
   * or the J-LIS domain (P2 b8 "and related objects" also deletes an applet associated with it).
   */
  #delete(c: CommandApdu): [Buffer, number] {
    if (c.p1 !== 0x00 || (c.p2 & 0x7f) !== 0x00) throw fail(SW.WRONG_P1P2);
    const [tlv, ...rest] = this.#tlvs(c.data);
    if (tlv?.tag !== 0x4f || rest.length) throw fail(SW.WRONG_DATA, "expected '4F' AID");
    const state = this.#state;
    if (state.applet && tlv.value.equals(Buffer.from(state.applet.aid, "hex"))) {
      this.#commit({ ...state, applet: null });
      return [Buffer.from([0x00]), SW.OK];
    }
    if (state.ssd && tlv.value.equals(Buffer.from(state.ssd.aid, "hex"))) {
      const associated = state.applet?.associatedSd === state.ssd.aid;
      if (associated && !(c.p2 & 0x80))
        throw fail(SW.CONDITIONS_NOT_SATISFIED, "an application is associated with the domain");
      this.#commit({ ...state, ssd: null, applet: associated ? null : state.applet });
      return [Buffer.from([0x00]), SW.OK];
    }
    throw fail(SW.FILE_NOT_FOUND);
  }

  /**
   * GET STATUS (GPCS §11.4) P1 80 (the ISD) or 40 (applications and security domains), P2 02 (TLV):
   * 'E3' { '4F' AID, '9F70' life cycle, 'C5' privileges, 'CC' associated domain } per entry. Names and
   * states only: nothing of an application's data.
   */
  #getStatus(c: CommandApdu): [Buffer, number] {
    if ((c.p1 !== 0x80 && c.p1 !== 0x40) || (c.p2 & 0xfe) !== 0x02) throw fail(SW.WRONG_P1P2);
    const entry = (aid: Buffer, lifeCycle: number, privileges: number, sd?: Buffer) =>
      encodeTlv(0xe3, [
        encodeTlv(0x4f, aid),
        encodeTlv(0x9f70, Buffer.from([lifeCycle])),
        encodeTlv(0xc5, Buffer.from([privileges, 0, 0])),
        ...(sd ? [encodeTlv(0xcc, sd)] : []),
      ]);
    const { ssd, applet } = this.#state;
    const entries =
      c.p1 === 0x80
        ? [entry(ISD_AID, LifeCycle.personalized, 0x9e)]
        : [
            ...(ssd
              ? [entry(Buffer.from(ssd.aid, "hex"), ssd.lifeCycle, PRIVILEGE_SECURITY_DOMAIN, ISD_AID)]
              : []),
            ...(applet
              ? [
                  entry(
                    Buffer.from(applet.aid, "hex"),
                    applet.lifeCycle,
                    0,
                    Buffer.from(applet.associatedSd, "hex"),
                  ),
                ]
              : []),
          ];
    if (!entries.length) throw fail(SW.FILE_NOT_FOUND);
    return [Buffer.concat(entries), SW.OK];
  }

  #tlvs(data: Buffer) {
    try {
      return readTlvList(data);
    } catch {
      throw fail(SW.WRONG_DATA, "malformed TLV");
    }
  }

  // -------------------------------------------------------------------------------------------
  // The J-LIS security domain

  #newSsdChannel(): Scp11Card {
    const { maker } = this.#state;
    const chainValidator = x509HostCertificateValidator({
      trustedRoots: maker.oceRoots.map((b64) => Buffer.from(b64, "base64")),
    });
    return new Scp11Card({
      staticKey: softwareEckaKey(pkcs8Key(maker.sdKey)),
      keyVersion: this.#state.ssd!.scp11KeyVersion,
      validateHostCertificates: (chain) => {
        const key = chainValidator(chain);
        // A chain to the maker's root is not enough: the maker also certifies SIM keys. Only J-LIS opens this domain.
        if (!parseCertificate(chain[chain.length - 1]!).subjectDer.equals(JLIS_OCE_NAME))
          throw new Error("the host certificate does not name J-LIS");
        return key;
      },
    });
  }

  #processSsd(raw: Uint8Array, c: CommandApdu): Buffer {
    const channel = this.#ssdChannel!;
    if (c.cla === 0x80) {
      switch (c.ins) {
        case INS.performSecurityOperation:
          return channel.processPerformSecurityOperation(raw);
        case INS.mutualAuthenticate:
          return channel.processMutualAuthenticate(raw);
        case INS.internalAuthenticate:
          return channel.processInternalAuthenticate(raw);
        case INS.getData:
          if (((c.p1 << 8) | c.p2) !== TAG_SD_CERTIFICATE) throw fail(SW.REFERENCE_NOT_FOUND);
          return responseApdu(
            SW.OK,
            encodeTlv(TAG_SD_CERTIFICATE, Buffer.from(this.#state.maker.sdCertificate, "base64")),
          );
        default:
          throw fail(SW.SECURITY_NOT_SATISFIED, "the J-LIS domain answers only inside its secure channel");
      }
    }
    if (c.cla !== 0x84 || !channel.authenticated) throw fail(SW.SECURITY_NOT_SATISFIED);
    const plain = parseCommandApdu(channel.unwrapCommand(raw));
    try {
      if (channel.variant !== "a")
        throw fail(SW.SECURITY_NOT_SATISFIED, "personalisation needs SCP11a (J-LIS authenticated)");
      const [data, sw] = this.#personalisationCommand(plain, c.extended);
      return channel.wrapResponse(data, sw);
    } catch (error) {
      if (error instanceof CardStatusError && !(error instanceof SecureChannelError))
        return channel.wrapResponse(Buffer.alloc(0), error.sw);
      throw error;
    }
  }

  /** The applet this domain personalises: it must be associated with the domain. */
  #ownApplet(): NonNullable<UiccState["applet"]> {
    const { ssd, applet } = this.#state;
    if (!applet || !ssd || applet.associatedSd !== ssd.aid)
      throw fail(SW.CONDITIONS_NOT_SATISFIED, "no JPKI applet associated with the J-LIS domain");
    return applet;
  }

  #personalisationCommand(c: CommandApdu, extended: boolean): [Buffer, number] {
    switch (c.ins) {
      case INS.install:
        return this.#installForPersonalization(c);
      case INS.storeData:
        return this.#storeDataBlock(c);
      case INS.generateKeyPair:
        return this.#generateKeyPair(c, extended);
      case INS.resetRetryCounter:
        return this.#resetRetryCounter(c);
      case INS.delete:
        return this.#wipe(c);
      default:
        throw fail(SW.INS_NOT_SUPPORTED);
    }
  }

  /** INSTALL [for personalization] (GPCS §11.5.2.3.5): the following STORE DATA go to the applet. */
  #installForPersonalization(c: CommandApdu): [Buffer, number] {
    if (c.p1 !== InstallFor.personalization || c.p2 !== 0x00) throw fail(SW.WRONG_P1P2);
    const [, , aid] = lengthPrefixedFields(c.data, 5);
    if (!aid!.equals(Buffer.from(this.#ownApplet().aid, "hex"))) throw fail(SW.REFERENCE_NOT_FOUND);
    this.#personalising = true;
    this.#storeData = undefined;
    return [Buffer.alloc(0), SW.OK];
  }

  /**
   * STORE DATA (GPCS §11.11) blocks numbered from 00 in P2, the last with P1 b8 set; then every DGI of
   * the sequence is applied in one state write, or none is.
   */
  #storeDataBlock(c: CommandApdu): [Buffer, number] {
    if (!this.#personalising) throw fail(SW.CONDITIONS_NOT_SATISFIED, "INSTALL [for personalization] first");
    const blocks = this.#storeData ?? { next: 0, chunks: [], size: 0 };
    if (c.p2 !== blocks.next % 256) {
      this.#storeData = undefined;
      throw fail(SW.WRONG_P1P2, `expected block ${blocks.next}`);
    }
    blocks.size += c.data.length;
    if (blocks.size > MAX_STORE_DATA) {
      this.#storeData = undefined;
      throw fail(SW.NOT_ENOUGH_MEMORY);
    }
    blocks.chunks.push(c.data);
    blocks.next += 1;
    this.#storeData = blocks;
    if (!(c.p1 & 0x80)) return [Buffer.alloc(0), SW.OK];
    this.#storeData = undefined;
    this.#applyDgis(readDgis(Buffer.concat(blocks.chunks)));
    return [Buffer.alloc(0), SW.OK];
  }

  #applyDgis(dgis: [string, Buffer][]): void {
    const applet = this.#ownApplet();
    const jpki: JpkiApState = structuredClone(applet.jpki);
    if (!dgis.length) throw fail(SW.WRONG_DATA, "no DGI");
    for (const [dgi, value] of dgis) {
      const keyFid = Dgi.encryptedKeys.get(dgi);
      if (keyFid) {
        jpki.keys[keyFid] = this.#decryptInjectedKey(value)
          .export({ type: "pkcs8", format: "der" })
          .toString("base64");
        // A new key voids the certificate of the old one.
        delete jpki.files[CERTIFICATE_OF_KEY[keyFid]!];
      } else if (Dgi.certificates.has(dgi)) {
        let spki: Buffer;
        try {
          spki = parseCertificate(value).spki;
        } catch {
          throw fail(SW.WRONG_DATA, `DGI ${dgi} is not a certificate`);
        }
        const keyFid = KEY_OF_CERTIFICATE[dgi];
        if (keyFid) {
          const key = jpki.keys[keyFid];
          if (!key || !spkiOf(pkcs8Key(key)).equals(spki))
            throw fail(SW.WRONG_DATA, `DGI ${dgi} certifies another key`);
        }
        jpki.files[dgi] = value.toString("base64");
      } else throw fail(SW.REFERENCE_NOT_FOUND, `unknown DGI ${dgi}`);
    }
    const lifeCycle = jpki.files[JPKI_EF.authCertificate] ? LifeCycle.personalized : applet.lifeCycle;
    this.#commit({ ...this.#state, applet: { ...applet, lifeCycle, jpki } });
  }

  /** An injected RSA-2048 private key: PKCS#8 padded (ISO/IEC 9797-1 method 2) and AES-CBC encrypted under S-DEK, zero ICV. */
  #decryptInjectedKey(block: Buffer): KeyObject {
    const dek = this.#ssdChannel?.dek;
    if (!dek) throw fail(SW.SECURITY_NOT_SATISFIED);
    if (!block.length || block.length % 16) throw fail(SW.WRONG_DATA, "an encrypted key is whole AES blocks");
    const der = unpad80(aesCbcDecrypt(dek, Buffer.alloc(16), block));
    try {
      const key = createPrivateKey({ key: der!, format: "der", type: "pkcs8" });
      if (key.asymmetricKeyType !== "rsa" || key.asymmetricKeyDetails?.modulusLength !== 2048)
        throw new Error("not RSA-2048");
      return key;
    } catch {
      throw fail(SW.WRONG_DATA, "the injected key is not an RSA-2048 PKCS#8 key");
    }
  }

  /**
   * GENERATE ASYMMETRIC KEY PAIR `84 46 00 KeyRef` (ISO/IEC 7816-8 §5.1), data '81' nonce: a new RSA-2048
   * key in the applet (its old certificate is voided); answers the SubjectPublicKeyInfo DER followed by
   * the key attestation (attestation.ts). Extended Le, as the answer exceeds 256 bytes.
   */
  #generateKeyPair(c: CommandApdu, extended: boolean): [Buffer, number] {
    const fid = KEY_REFERENCES.get(c.p2);
    if (c.p1 !== 0x00 || !fid) throw fail(SW.WRONG_P1P2);
    if (!extended) throw fail(SW.WRONG_LENGTH, "extended Le needed for the answer");
    const [nonce, ...rest] = this.#tlvs(c.data);
    if (nonce?.tag !== 0x81 || rest.length) throw fail(SW.WRONG_DATA, "expected '81' nonce");
    if (
      nonce.value.length < ATTESTATION_NONCE_LENGTH.min ||
      nonce.value.length > ATTESTATION_NONCE_LENGTH.max
    )
      throw fail(SW.WRONG_DATA, "nonce of 8 to 64 bytes");
    const applet = this.#ownApplet();
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
    const spki = spkiOf(privateKey);
    const jpki: JpkiApState = structuredClone(applet.jpki);
    jpki.keys[fid] = privateKey.export({ type: "pkcs8", format: "der" }).toString("base64");
    delete jpki.files[CERTIFICATE_OF_KEY[fid]!];
    const attestation = signKeyAttestation(
      {
        publicKeySha256: spkiSha256(spki),
        iccid: this.#state.iccid,
        eid: this.#state.eid,
        instanceAid: Buffer.from(applet.aid, "hex"),
        instanceId: Buffer.from(applet.instanceId, "hex"),
        keyReference: c.p2,
        nonce: nonce.value,
      },
      pkcs8Key(this.#state.maker.sdKey),
    );
    this.#commit({ ...this.#state, applet: { ...applet, jpki } });
    return [Buffer.concat([spki, attestation]), SW.OK];
  }

  /** RESET RETRY COUNTER `84 2C 02 PinRef new-PIN` (ISO/IEC 7816-4 §11.5.10): a new PIN with a full counter. */
  #resetRetryCounter(c: CommandApdu): [Buffer, number] {
    const reference = PIN_REFERENCES.get(c.p2);
    if (c.p1 !== 0x02 || !reference) throw fail(SW.WRONG_P1P2);
    const [kind, fid] = reference;
    let pin: ReturnType<typeof newPinState>;
    try {
      pin = newPinState(kind, c.data.toString("latin1"));
    } catch {
      throw fail(SW.WRONG_DATA, "the new PIN breaks the PIN rules");
    }
    const applet = this.#ownApplet();
    this.#commit({
      ...this.#state,
      applet: { ...applet, jpki: { ...applet.jpki, pins: { ...applet.jpki.pins, [fid]: pin } } },
    });
    return [Buffer.alloc(0), SW.OK];
  }

  /** DELETE `84 E4 00 00` '4F' applet AID inside the J-LIS domain: wipes the applet's keys, certificates and PINs. */
  #wipe(c: CommandApdu): [Buffer, number] {
    if (c.p1 !== 0x00 || c.p2 !== 0x00) throw fail(SW.WRONG_P1P2);
    const [tlv, ...rest] = this.#tlvs(c.data);
    const applet = this.#ownApplet();
    if (tlv?.tag !== 0x4f || rest.length || !tlv.value.equals(Buffer.from(applet.aid, "hex")))
      throw fail(SW.WRONG_DATA, "expected '4F' and the applet's AID");
    this.#commit({
      ...this.#state,
      applet: { ...applet, lifeCycle: LifeCycle.selectable, jpki: emptyJpkiState(this.#state.iccid) },
    });
    return [Buffer.from([0x00]), SW.OK];
  }
}

/** Opens the SIM whose state file is `statePath`. */
export function openUicc(statePath: string): Uicc {
  return new Uicc(statePath);
}
