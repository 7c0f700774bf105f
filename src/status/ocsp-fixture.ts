/**
 * Test and benchmark fixture: a throw-away authority (`ca init` in a temporary directory) whose CAs
 * issue real certificates through the registry, citizens' cards included, for the OCSP responder to
 * answer about.
 */
import { generateKeyPair } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { pemEncode } from "../pki/pem.js";
import {
  type BasicAttributes,
  cardAuthenticationCertificateTbs,
  citizenCertificateTbs,
} from "../pki/profiles.js";
import { randomSerial } from "../pki/serial.js";
import { citizenCertificateValidity, parseBirthDate } from "../pki/validity.js";
import { type IssuedCard, issueMyNumberCard } from "../ra/card-issuance.js";
import { type IssuanceRequest, issueCertificates } from "../registry/issuance.js";
import { type Authority, initAuthority } from "../server/authority.js";

const generateRsaKeyPair = promisify(generateKeyPair);

export interface IssuedCertificate {
  readonly serial: string;
  readonly der: Buffer;
}

export interface OcspSandbox {
  readonly authority: Authority;
  readonly dir: string;
  /** The registry's URL, for another handle on it (as another process would open it). */
  readonly registryUrl: string;
  /**
   * Issues `count` certificates of one CA through the registry, one subject key shared: the card's
   * (default), or the smartphone's (`sim`, whose hold can be released).
   */
  issue(issuer: "auth" | "sign", count: number, medium?: "card" | "sim"): Promise<IssuedCertificate[]>;
  /** A citizen with a My Number card, as `citizen add` makes one. */
  citizen(name: string): Promise<IssuedCard & { auth: Buffer; sign: Buffer }>;
  /** A user-authentication certificate the auth CA signed but the registry never recorded. */
  unregistered(): Promise<IssuedCertificate>;
  /** Writes DER as PEM in the sandbox directory; returns the path. */
  pem(name: string, der: Buffer): string;
  close(): Promise<void>;
}

const PERSON: BasicAttributes = {
  name: "試験 花子",
  sex: 2,
  birthDate: parseBirthDate("1990-04-01"),
  address: "東京都千代田区霞が関二丁目1番2号",
};

/**
 * A new authority in a temporary directory, on `db` (a registry URL; default SQLite in the directory).
 * Sets a sandbox CA passphrase when none is set.
 */
export async function openOcspSandbox(db?: string): Promise<OcspSandbox> {
  process.env["JPKI_CA_PASSPHRASE"] ??= "ocsp sandbox";
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-ocsp-"));
  const authority = await initAuthority({ dataDir: dir, ...(db ? { db } : {}) });
  let subjectSpki: Promise<Buffer> | undefined;
  const spki = () => {
    subjectSpki ??= generateRsaKeyPair("rsa", { modulusLength: 2048 }).then(({ publicKey }) =>
      publicKey.export({ type: "spki", format: "der" }),
    );
    return subjectSpki;
  };
  const validity = () =>
    citizenCertificateValidity(PERSON.birthDate, new Date(), new Date(Date.now() + 4 * 365 * 86_400_000));

  return {
    authority,
    dir,
    registryUrl: db && /^postgres(ql)?:\/\//.test(db) ? db : path.resolve(dir, db ?? authority.config.db),
    async issue(issuer, count, medium = "card") {
      const subject = await spki();
      const issuerKey = authority.issuerKey(issuer);
      const requests = Array.from({ length: count }, (): IssuanceRequest => {
        const v = validity();
        const input = (serial: Buffer, shard: number) => ({
          serial,
          shard,
          issuer: issuerKey,
          subjectSpki: subject,
          validity: v,
          baseUrl: authority.config.baseUrl,
        });
        const kind = `${medium === "sim" ? "phone" : "card"}-${issuer}` as const;
        return {
          issuer,
          kind,
          medium,
          ...v,
          buildTbs: (serial, shard) =>
            citizenCertificateTbs(kind, { ...input(serial, shard), person: PERSON }),
        };
      });
      const issued: IssuedCertificate[] = [];
      for (let i = 0; i < requests.length; i += 500) {
        const results = await issueCertificates(
          authority.registry.db,
          authority.signers,
          requests.slice(i, i + 500),
          {
            actor: "ocsp-fixture",
          },
        );
        for (const r of results) {
          if (!r.ok) throw new Error(`issuing ${r.serial} failed: ${r.reason}`);
          issued.push({ serial: r.serial, der: r.der });
        }
      }
      return issued;
    },
    async citizen(name) {
      const card = await issueMyNumberCard(authority, {
        name,
        birth: "1985-04-02",
        sex: "unknown",
        address: "東京都千代田区",
      });
      const row = async (serial: string) =>
        (
          await authority.registry.db
            .selectFrom("certificates")
            .select("der")
            .where("serial", "=", serial)
            .executeTakeFirstOrThrow()
        ).der!;
      return {
        ...card,
        auth: Buffer.from(await row(card.authSerial)),
        sign: Buffer.from(await row(card.signSerial)),
      };
    },
    async unregistered() {
      const serial = randomSerial();
      const der = await authority.signers.auth.issue(
        cardAuthenticationCertificateTbs({
          serial,
          shard: 0,
          issuer: authority.issuerKey("auth"),
          subjectSpki: await spki(),
          validity: validity(),
          baseUrl: authority.config.baseUrl,
        }),
      );
      return { serial: serial.toString("hex"), der };
    },
    pem(name, der) {
      const file = path.join(dir, `${name}.pem`);
      writeFileSync(file, pemEncode(der));
      return file;
    },
    async close() {
      try {
        await authority.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
