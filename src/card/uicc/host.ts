/**
 * The off-card sides of the SIM's two owners, over any CardTransport (in process, PC/SC, or an OTA or
 * counter relay that only forwards the already protected APDUs):
 *
 * - CardManagerSession: the carrier opens its card manager with SCP03 and installs the J-LIS security
 *   domain and the JPKI applet (or deletes them);
 * - JlisDomainSession: J-LIS opens its security domain with SCP11a and personalises the applet.
 *
 * Commands go out wrapped by the session; answers other than 90 00 become CardStatusError.
 */
import { type KeyObject, randomBytes } from "node:crypto";
import { parseCertificate } from "../../pki/certificate.js";
import { publicKeyFromSpki } from "../../pki/public-key.js";
import { encodeCommandApdu, parseResponseApdu } from "../apdu.js";
import type { CardTransport } from "../card.js";
import { aesCbcEncrypt, pad80 } from "../gp/aes.js";
import { openScp03, openScp11, transmitSecure, transmitSecureScript } from "../gp/channel.js";
import { Scp03Host, type Scp03KeySet } from "../gp/scp03.js";
import { type EckaPrivateKey, Scp11Host } from "../gp/scp11.js";
import { SecurityLevel } from "../gp/secure-messaging.js";
import { CardStatusError, SW } from "../status-words.js";
import { encodeTlv, readTlvList } from "../tlv.js";
import {
  ISD_AID,
  JLIS_SD_AID,
  JLIS_SD_SCP11_KEY_VERSION,
  JPKI_LOAD_FILE_AID,
  JPKI_MODULE_AID,
  SD_LOAD_FILE_AID,
  SD_MODULE_AID,
} from "./uicc.js";

type Transport = Pick<CardTransport, "transmit"> & {
  /** A whole script at once (an OTA gateway); absent on a direct transport. */
  transmitScript?(commands: readonly Uint8Array[]): Promise<Buffer[]>;
};

/** The data of a 90 00 answer; any other status word throws CardStatusError. */
function expectOk(response: Buffer, what: string): Buffer {
  const { data, sw } = parseResponseApdu(response);
  if (sw !== SW.OK) throw new CardStatusError(sw, `${what} refused`);
  return data;
}

async function select(transport: Transport, aid: Buffer, what: string): Promise<void> {
  expectOk(
    await transport.transmit(
      encodeCommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: aid, ne: 256 }),
    ),
    `SELECT ${what}`,
  );
}

/** `length || value` for each field (INSTALL and extradition data, GPCS §11.5.2.3). */
const lengthPrefixed = (...fields: Uint8Array[]) =>
  Buffer.concat(fields.flatMap((f) => [Buffer.from([f.length]), Buffer.from(f)]));

/** C-MAC, C-DEC, R-MAC and R-ENC: the carrier's sessions run at the highest level. */
export const CARD_MANAGER_SECURITY_LEVEL =
  SecurityLevel.cMac | SecurityLevel.cDecryption | SecurityLevel.rMac | SecurityLevel.rEncryption;

export interface CardManagerStatus {
  aid: Buffer;
  lifeCycle: number;
  privileges: number;
  associatedSd: Buffer | undefined;
}

/** The carrier's session with the card manager of one of its SIMs. */
export class CardManagerSession {
  private constructor(
    private readonly transport: Transport,
    private readonly host: Scp03Host,
  ) {}

  static async open(
    transport: Transport,
    keys: Scp03KeySet & { keyVersion?: number },
    securityLevel = CARD_MANAGER_SECURITY_LEVEL,
  ): Promise<CardManagerSession> {
    await select(transport, ISD_AID, "card manager");
    const host = new Scp03Host({ keys, keyVersion: keys.keyVersion ?? 0 });
    await openScp03(transport, host, securityLevel);
    return new CardManagerSession(transport, host);
  }

  private async send(command: Parameters<typeof encodeCommandApdu>[0], what: string): Promise<Buffer> {
    return expectOk(await transmitSecure(this.transport, this.host, encodeCommandApdu(command)), what);
  }

  /**
   * INSTALL [for install and make selectable] of the J-LIS security domain, then of the JPKI applet,
   * then INSTALL [for extradition] of the applet to the J-LIS domain: from then on only J-LIS
   * personalises it.
   */
  async installJpki(options: { sdAid?: Buffer; appletAid?: Buffer } = {}): Promise<void> {
    const sdAid = options.sdAid ?? JLIS_SD_AID;
    const appletAid = options.appletAid ?? JPKI_MODULE_AID;
    const none = Buffer.alloc(0);
    const parameters = encodeTlv(0xc9, none);
    const install = (p1: number, fields: Uint8Array[], what: string) =>
      this.send({ cla: 0x80, ins: 0xe6, p1, p2: 0x00, data: lengthPrefixed(...fields) }, what);
    // P1 0C: for install and make selectable; fields: load file, module, instance, privileges, parameters, token.
    await install(
      0x0c,
      [SD_LOAD_FILE_AID, SD_MODULE_AID, sdAid, Buffer.from([0x80, 0, 0]), parameters, none],
      "INSTALL the J-LIS security domain",
    );
    await install(
      0x0c,
      [JPKI_LOAD_FILE_AID, JPKI_MODULE_AID, appletAid, Buffer.from([0, 0, 0]), parameters, none],
      "INSTALL the JPKI applet",
    );
    // P1 10: for extradition; fields: security domain, -, application, parameters, token.
    await install(0x10, [sdAid, none, appletAid, none, none], "INSTALL [for extradition] of the JPKI applet");
  }

  /** DELETE '4F' AID; `related` also deletes what is associated with a security domain. */
  async delete(aid: Buffer, related = false): Promise<void> {
    await this.send(
      { cla: 0x80, ins: 0xe4, p1: 0x00, p2: related ? 0x80 : 0x00, data: encodeTlv(0x4f, aid), ne: 256 },
      "DELETE",
    );
  }

  /** GET STATUS of the applications and security domains (P1 40, TLV format). */
  async status(): Promise<CardManagerStatus[]> {
    const data = await this.send(
      { cla: 0x80, ins: 0xf2, p1: 0x40, p2: 0x02, data: encodeTlv(0x4f, Buffer.alloc(0)), ne: 256 },
      "GET STATUS",
    );
    return readTlvList(data).map((entry) => {
      const fields = readTlvList(entry.value);
      const field = (tag: number) => fields.find((f) => f.tag === tag)?.value;
      return {
        aid: field(0x4f) ?? Buffer.alloc(0),
        lifeCycle: field(0x9f70)?.[0] ?? 0,
        privileges: field(0xc5)?.[0] ?? 0,
        associatedSd: field(0xcc),
      };
    });
  }
}

/** The J-LIS security domain's certificate (GET DATA 'BF21'), readable before any channel. */
export async function readSecurityDomainCertificate(
  transport: Transport,
  sdAid = JLIS_SD_AID,
): Promise<Buffer> {
  await select(transport, sdAid, "J-LIS security domain");
  const data = expectOk(
    await transport.transmit(encodeCommandApdu({ cla: 0x80, ins: 0xca, p1: 0xbf, p2: 0x21, ne: 256 })),
    "GET DATA BF21",
  );
  const [tlv] = readTlvList(data);
  if (tlv?.tag !== 0xbf21) throw new CardStatusError(SW.WRONG_DATA, "GET DATA BF21 answered another tag");
  return tlv.value;
}

export interface JlisCredentials {
  /** SK.OCE.ECKA: J-LIS's static P-256 key for SCP11a. */
  key: EckaPrivateKey;
  /** J-LIS's certificate chain, from below the SIM maker's root down to J-LIS's certificate (DER). */
  chain: readonly Buffer[];
}

export interface GeneratedKey {
  /** SubjectPublicKeyInfo DER of the key generated in the applet. */
  spki: Buffer;
  /** The security domain's KeyAttestation (attestation.ts) over it. */
  attestation: Buffer;
}

/** STORE DATA block size: plain data per block, leaving room for padding and the C-MAC in a short APDU. */
const STORE_DATA_BLOCK = 200;

/**
 * J-LIS's SCP11a session with its security domain on one SIM. `sdCertificate` is the domain's
 * certificate (readSecurityDomainCertificate), whose chain to a trusted SIM maker the caller checked:
 * its key is PK.SD.ECKA, so only that SIM can complete the session.
 */
export class JlisDomainSession {
  private constructor(
    private readonly transport: Transport,
    private readonly host: Scp11Host,
    private readonly sdCertificate: Buffer,
  ) {}

  static async open(
    transport: Transport,
    options: { sdCertificate: Buffer; credentials: JlisCredentials; sdAid?: Buffer; variant?: "a" | "b" },
  ): Promise<JlisDomainSession> {
    await select(transport, options.sdAid ?? JLIS_SD_AID, "J-LIS security domain");
    const cardPublicKey: KeyObject = publicKeyFromSpki(parseCertificate(options.sdCertificate).spki);
    const variant = options.variant ?? "a";
    const host = new Scp11Host({
      variant,
      cardPublicKey,
      keyVersion: JLIS_SD_SCP11_KEY_VERSION,
      ...(variant === "a"
        ? { hostKey: options.credentials.key, hostCertificates: options.credentials.chain }
        : {}),
    });
    await openScp11(transport, host);
    return new JlisDomainSession(transport, host, options.sdCertificate);
  }

  get certificate(): Buffer {
    return this.sdCertificate;
  }

  private async send(command: Parameters<typeof encodeCommandApdu>[0], what: string): Promise<Buffer> {
    return expectOk(await transmitSecure(this.transport, this.host, encodeCommandApdu(command)), what);
  }

  /** DGIs in numbered STORE DATA blocks, the last flagged; the card applies all of them or none. */
  private async storeData(appletAid: Buffer, dgis: readonly [dgi: number, value: Buffer][]): Promise<void> {
    const encoded = Buffer.concat(
      dgis.map(([dgi, value]) => {
        const header = Buffer.alloc(2);
        header.writeUInt16BE(dgi);
        const length =
          value.length < 0xff
            ? Buffer.from([value.length])
            : Buffer.from([0xff, value.length >> 8, value.length & 0xff]);
        return Buffer.concat([header, length, value]);
      }),
    );
    const blocks = Math.max(1, Math.ceil(encoded.length / STORE_DATA_BLOCK));
    const commands = Array.from({ length: blocks }, (_, i) =>
      encodeCommandApdu({
        cla: 0x80,
        ins: 0xe2,
        // b8: last block; b5-b4 = 01: DGI format (GPCS Table 11-89).
        p1: (i === blocks - 1 ? 0x80 : 0x00) | 0x08,
        p2: i,
        data: encoded.subarray(i * STORE_DATA_BLOCK, (i + 1) * STORE_DATA_BLOCK),
      }),
    );
    // INSTALL [for personalization] of the applet (the STORE DATA that follow go to it), then the
    // blocks, as one script: over the air, one round trip to the phone for all of them.
    const install = encodeCommandApdu({
      cla: 0x80,
      ins: 0xe6,
      p1: 0x20,
      p2: 0x00,
      data: lengthPrefixed(Buffer.alloc(0), Buffer.alloc(0), appletAid, Buffer.alloc(0), Buffer.alloc(0)),
    });
    const script = [install, ...commands];
    const responses = await transmitSecureScript(this.transport, this.host, script);
    script.forEach((_, i) => {
      const what = i === 0 ? "INSTALL [for personalization]" : `STORE DATA block ${i - 1}`;
      const response = responses[i];
      if (!response)
        throw new CardStatusError(
          SW.CONDITIONS_NOT_SATISFIED,
          `${what}: the SIM stopped the script before it`,
        );
      expectOk(response, what);
    });
  }

  /** GENERATE ASYMMETRIC KEY PAIR in the applet for the user-authentication (0x17) or signing (0x1A) key. */
  async generateKeyPair(keyReference: 0x17 | 0x1a, nonce: Buffer = randomBytes(16)): Promise<GeneratedKey> {
    const data = await this.send(
      {
        cla: 0x80,
        ins: 0x46,
        p1: 0x00,
        p2: keyReference,
        data: encodeTlv(0x81, nonce),
        ne: 65536,
        extended: true,
      },
      "GENERATE ASYMMETRIC KEY PAIR",
    );
    // Two DER values back to back: read the first one's length from its header.
    const first =
      data[1]! & 0x80 ? 2 + (data[1]! & 0x7f) + data.readUIntBE(2, data[1]! & 0x7f) : 2 + data[1]!;
    return { spki: data.subarray(0, first), attestation: data.subarray(first) };
  }

  /** Writes the user-authentication certificate (EF 000A) and its CA certificate (EF 000B). */
  async storeAuthenticationCertificates(
    certificate: Buffer,
    caCertificate: Buffer,
    appletAid = JPKI_MODULE_AID,
  ): Promise<void> {
    await this.storeData(appletAid, [
      [0x000a, certificate],
      [0x000b, caCertificate],
    ]);
  }

  /** Writes the smartphone signing certificate (EF 0001) and its CA certificate (EF 0002). */
  async storeSigningCertificates(
    certificate: Buffer,
    caCertificate: Buffer,
    appletAid = JPKI_MODULE_AID,
  ): Promise<void> {
    await this.storeData(appletAid, [
      [0x0001, certificate],
      [0x0002, caCertificate],
    ]);
  }

  /**
   * Loads a private key made outside the SIM (`keyGeneration = injected`): PKCS#8 DER, padded and
   * encrypted under the session's S-DEK, so only the SIM can read it from the relayed bytes.
   */
  async injectKey(keyReference: 0x17 | 0x1a, pkcs8: Buffer, appletAid = JPKI_MODULE_AID): Promise<void> {
    const dek = this.host.sessionKeys?.dek;
    if (!dek) throw new Error("secure channel not open");
    const encrypted = aesCbcEncrypt(dek, Buffer.alloc(16), pad80(pkcs8));
    await this.storeData(appletAid, [[0x8000 | keyReference, encrypted]]);
  }

  /** RESET RETRY COUNTER: a new PIN (0x18 user authentication, 0x1B signing password) with a full counter. */
  async resetRetryCounter(pinReference: 0x18 | 0x1b, newPin: string): Promise<void> {
    await this.send(
      { cla: 0x80, ins: 0x2c, p1: 0x02, p2: pinReference, data: Buffer.from(newPin, "latin1") },
      "RESET RETRY COUNTER",
    );
  }

  /** Erases the applet's keys, certificates and PINs (revocation, disposal). */
  async wipe(appletAid = JPKI_MODULE_AID): Promise<void> {
    await this.send(
      { cla: 0x80, ins: 0xe4, p1: 0x00, p2: 0x00, data: encodeTlv(0x4f, appletAid), ne: 256 },
      "wipe",
    );
  }
}
