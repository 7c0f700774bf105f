/**
 * Test fixture for the CRL publisher: a throw-away authority (`ca init` in a temporary directory, on
 * the registry URL given) with few shards, and citizens' certificates issued through the registry and
 * the CA signer into a chosen shard. Not used by production code.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CaPurpose } from "../pki/names.js";
import {
  cardAuthenticationCertificateTbs,
  cardSigningCertificateTbs,
  smartphoneAuthenticationCertificateTbs,
} from "../pki/profiles.js";
import { randomSerial, shardOf } from "../pki/serial.js";
import { TEST_PERSON } from "../pki/test-hierarchy.js";
import { issueCertificate, SHARD_SETTING } from "../registry/issuance.js";
import { type Authority, initAuthority } from "../server/authority.js";

/** Citizen certificates the fixture issues: the phone's can be released from hold, the card's cannot. */
export type FixtureKind = "card-auth" | "phone-auth" | "card-sign";

export interface IssuedFixtureCertificate {
  serial: string;
  shard: number;
  issuer: CaPurpose;
  der: Buffer;
}

export interface CrlFixture {
  authority: Authority;
  dir: string;
  shards: number;
  /**
   * Issues a certificate of `kind` in `shard`, valid from an hour before `from` (default now) until
   * `validForMs` after it (default a year).
   */
  issue(
    kind: FixtureKind,
    shard: number,
    options?: { from?: Date; validForMs?: number },
  ): Promise<IssuedFixtureCertificate>;
  close(): Promise<void>;
}

let subjectKey: Buffer | undefined;

/** A new authority in a temporary directory, on `db` (default: SQLite in the directory), with `shards` shards. */
export async function openCrlFixture(db: string | undefined, shards: number): Promise<CrlFixture> {
  process.env["JPKI_CA_PASSPHRASE"] ??= "crl fixture";
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-crl-"));
  const authority = await initAuthority({ dataDir: dir, ...(db ? { db } : {}) });
  await authority.registry.setSetting(SHARD_SETTING, String(shards), "test");
  // One subject key for every certificate: the CA never sees the private key anyway.
  subjectKey ??= generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
    type: "spki",
    format: "der",
  });
  const spki = subjectKey;
  return {
    authority,
    dir,
    shards,
    async issue(kind, shard, options = {}) {
      const from = options.from ?? new Date();
      const validity = {
        notBefore: new Date(Math.floor(from.getTime() / 1000) * 1000 - 3_600_000),
        notAfter: new Date(
          Math.floor(from.getTime() / 1000) * 1000 + (options.validForMs ?? 365 * 86_400_000),
        ),
      };
      const issuer: CaPurpose = kind === "card-sign" ? "sign" : "auth";
      const result = await issueCertificate(
        authority.registry.db,
        authority.signers,
        {
          issuer,
          kind,
          medium: kind === "phone-auth" ? "sim" : "card",
          ...validity,
          buildTbs: (serial, chosen) => {
            const input = {
              serial,
              shard: chosen,
              issuer: authority.issuerKey(issuer),
              subjectSpki: spki,
              validity,
              baseUrl: authority.config.baseUrl,
            };
            if (kind === "card-sign") return cardSigningCertificateTbs({ ...input, person: TEST_PERSON });
            return kind === "phone-auth"
              ? smartphoneAuthenticationCertificateTbs(input)
              : cardAuthenticationCertificateTbs(input);
          },
        },
        {
          actor: "test",
          serialSource: () => {
            for (;;) {
              const serial = randomSerial();
              if (shardOf(serial, shards) === shard) return serial;
            }
          },
        },
      );
      return { serial: result.serial, shard, issuer, der: result.der };
    },
    async close() {
      await authority.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
