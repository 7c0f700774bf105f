/**
 * The sandbox's carriers (DESIGN §4 flow 7): MNOs and full MVNOs issue their own SIMs (each has an
 * issuer identification number in the ICCID) and run OTA; a light MVNO sells contracts on its host
 * MNO's SIMs, so its SIMs carry the host's issuer number and are reached through the host. Issuer
 * numbers 90–99 are outside the ranges real Japanese carriers use.
 *
 * Each issuing carrier keeps a master key in the data directory, from which the SCP03 key set of
 * every SIM's card manager is derived (key diversification by ICCID): the carrier can open the card
 * manager of any of its SIMs, and no other party's.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Scp03KeySet } from "../card/gp/scp03.js";
import { JpkiError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";

export type CarrierKind = "mno" | "full-mvno" | "light-mvno";

export interface Carrier {
  /** Identifier used on the command line. */
  name: string;
  displayName: string;
  kind: CarrierKind;
  /** Two digits of the ICCID naming the issuer; absent for a light MVNO. */
  issuerNumber?: string;
  /** The MNO whose network (and, for a light MVNO, whose SIMs and OTA) the carrier uses. */
  host?: string;
}

export const CARRIERS: readonly Carrier[] = [
  { name: "sakura", displayName: "Sakura Mobile (TEST)", kind: "mno", issuerNumber: "90" },
  { name: "kaede", displayName: "Kaede Telecom (TEST)", kind: "mno", issuerNumber: "91" },
  {
    name: "tsubame",
    displayName: "Tsubame Mobile (TEST)",
    kind: "full-mvno",
    issuerNumber: "92",
    host: "kaede",
  },
  { name: "hibari", displayName: "Hibari SIM (TEST)", kind: "light-mvno", host: "sakura" },
];

export function findCarrier(name: string): Carrier {
  const carrier = CARRIERS.find((c) => c.name === name);
  if (!carrier)
    throw new JpkiError(
      "bad-input",
      `unknown carrier ${JSON.stringify(name)}: choose ${CARRIERS.map((c) => c.name).join(", ")}`,
    );
  return carrier;
}

/** The carrier whose SIMs a contract with `carrier` uses: itself, or a light MVNO's host. */
export function simIssuerOf(carrier: Carrier): Carrier & { issuerNumber: string } {
  const issuer = carrier.kind === "light-mvno" ? findCarrier(carrier.host!) : carrier;
  if (!issuer.issuerNumber) throw new JpkiError("internal", `carrier ${issuer.name} has no issuer number`);
  return issuer as Carrier & { issuerNumber: string };
}

/** Key version number of the card manager key set carriers put on their SIMs. */
export const ISD_KEY_VERSION = 0x30;

function masterKeyPath(dataDir: string, carrier: string): string {
  return path.join(dataDir, "carriers", carrier, "isd-master.key");
}

/** The carrier's master key (32 bytes), made on first use and kept with mode 0600. */
function masterKey(dataDir: string, carrier: string): Buffer {
  const file = masterKeyPath(dataDir, carrier);
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, `${randomBytes(32).toString("hex")}\n`, 0o600);
  }
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "hex");
  if (key.length !== 32) throw new JpkiError("integrity", `${file} does not hold a 32-byte key`);
  return key;
}

/** The SCP03 key set of one SIM's card manager: HKDF-SHA256 of the carrier's master key, salted by the ICCID. */
export function cardManagerKeys(
  dataDir: string,
  carrier: string,
  iccid: string,
): Scp03KeySet & { keyVersion: number } {
  const master = masterKey(dataDir, carrier);
  const derive = (name: string) =>
    Buffer.from(
      hkdfSync("sha256", master, Buffer.from(iccid, "latin1"), `jpki-mobile card manager ${name}`, 16),
    );
  return { keyVersion: ISD_KEY_VERSION, enc: derive("K-ENC"), mac: derive("K-MAC"), dek: derive("K-DEK") };
}
