/**
 * J-LIS's SCP11a credentials (GP Amendment F: the off-card entity's static key SK.OCE.ECKA and its
 * certificate): what lets J-LIS open its secure channel to its security domain on every SIM, and
 * what the carrier does not have. The SIM maker's CA certifies the key (the SIMs trust that root for
 * SCP11a, src/mno/sim-factory.ts), through the registry like every certificate.
 *
 * The key is a P-256 key in `DATA/jlis/scp11-oce.key.pem`, PKCS#8 encrypted with the data
 * directory's passphrase (mode 0600), made on first use. It stays a software key even when the CAs'
 * keys are in an HSM: ECDH through PKCS#11 is left for later (docs/provisioning.md).
 */

import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { softwareEckaKey } from "../card/gp/scp11.js";
import type { JlisCredentials } from "../card/uicc/host.js";
import { JpkiError } from "../errors.js";
import { generateP256PrivateKey } from "../pki/algorithms.js";
import { parseCertificate } from "../pki/certificate.js";
import { jlisOceCertificateTbs } from "../pki/profiles.js";
import { caValidity } from "../pki/validity.js";
import { toBuffer } from "../registry/db.js";
import { issueCertificate } from "../registry/issuance.js";
import { type Authority, dataDirPassphrase } from "../server/authority.js";
import { writeFileAtomic } from "../util/fs.js";

/** The OCE certificate lives as long as a SIM's attestation certificate: beyond any SIM's service life. */
const OCE_CERTIFICATE_YEARS = 20;

export function jlisKeyPath(dataDir: string): string {
  return path.join(dataDir, "jlis", "scp11-oce.key.pem");
}

const cache = new WeakMap<Authority, Promise<JlisCredentials>>();

/** J-LIS's SCP11a credentials for `authority`'s data directory, made (key and certificate) on first use. */
export function jlisCredentials(authority: Authority): Promise<JlisCredentials> {
  let credentials = cache.get(authority);
  if (!credentials) {
    credentials = loadOrCreate(authority);
    credentials.catch(() => cache.delete(authority));
    cache.set(authority, credentials);
  }
  return credentials;
}

async function loadOrCreate(authority: Authority): Promise<JlisCredentials> {
  const file = jlisKeyPath(authority.dataDir);
  const passphrase = await dataDirPassphrase(authority.dataDir);
  let key: KeyObject;
  if (existsSync(file)) {
    try {
      key = createPrivateKey({ key: readFileSync(file), format: "pem", passphrase });
    } catch (error) {
      throw new JpkiError("bad-input", `cannot open J-LIS's SCP11 key ${file}: wrong passphrase?`, {
        cause: error,
      });
    }
  } else {
    key = generateP256PrivateKey();
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(
      file,
      key.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase }) as string,
      0o600,
    );
  }
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  return { key: softwareEckaKey(key), chain: [await certificateFor(authority, spki)] };
}

/** The registry's live OCE certificate for `spki`, or a new one from the SIM maker's CA. */
async function certificateFor(authority: Authority, spki: Buffer): Promise<Buffer> {
  const rows = await authority.registry.db
    .selectFrom("certificates")
    .select(["der"])
    .where("kind", "=", "scp11-oce")
    .where("status", "=", "issued")
    .where("not_after", ">", new Date().toISOString())
    .orderBy("created_at", "desc")
    .execute();
  for (const row of rows) {
    const der = row.der ? toBuffer(row.der) : undefined;
    if (der && parseCertificate(der).spki.equals(spki)) return der;
  }
  const validity = caValidity(new Date(), OCE_CERTIFICATE_YEARS);
  const issued = await issueCertificate(
    authority.registry.db,
    authority.signers,
    {
      issuer: "sim-maker",
      kind: "scp11-oce",
      medium: "none",
      ...validity,
      buildTbs: (serial) =>
        jlisOceCertificateTbs({
          serial,
          issuer: authority.issuerKey("sim-maker"),
          subjectSpki: spki,
          validity,
        }),
    },
    { actor: "ra:jlis" },
  );
  return issued.der;
}
