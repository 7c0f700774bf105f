/**
 * The J-LIS side wired together from a data directory: its configuration, the key store, the
 * registry, and one signer per CA. Commands and (later) servers open it; nothing else reads the data
 * directory's files.
 *
 * Data directory layout:
 *   config.json        which database and key store, and the base URL written into certificates
 *   registry.sqlite    the embedded registry (absent when config.json names PostgreSQL)
 *   keys/              the software key store (encrypted PKCS#8, mode 0600)
 *   ca-passphrase      the sandbox passphrase, only when none was given at `ca init`
 *   cards/             card state files made by `citizen add`
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { KeyStore, SigningKey } from "../ca/keystore.js";
import { openKeyStore } from "../ca/open-keystore.js";
import { CertificateSigner, selfSign } from "../ca/signer.js";
import { PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, resolvePassphrase } from "../ca/software-keystore.js";
import { JpkiError } from "../errors.js";
import { issuerKeyOf, parseCertificate } from "../pki/certificate.js";
import type { CaPurpose } from "../pki/names.js";
import {
  authenticationCaTbs,
  type IssuerKey,
  ocspResponderCertificateTbs,
  signingCaTbs,
  simMakerCaTbs,
} from "../pki/profiles.js";
import { caValidity, shortValidity } from "../pki/validity.js";
import { reconcileApplications } from "../ra/ra.js";
import {
  type IssuanceRequest,
  issueCertificates,
  recoverInterruptedIssuances,
} from "../registry/issuance.js";
import { DEFAULT_POLICIES, type Policies, readPolicies } from "../registry/lifecycle.js";
import { Registry } from "../registry/registry.js";
import type { CertificateIssuer } from "../registry/schema.js";
import { writeFileAtomic } from "../util/fs.js";

export const CONFIG_FORMAT = "jpki-mobile/config";

export interface AuthorityConfig {
  format: typeof CONFIG_FORMAT;
  version: 1;
  /** Registry URL: `postgres://…`, or a SQLite file path relative to the data directory. */
  db: string;
  /** `software`, or an RFC 7512 PKCS#11 URI (its PIN comes from JPKI_HSM_PIN or pin-source). */
  keystore: string;
  /** Base URL of the status services, written into CRL distribution points and OCSP URLs. */
  baseUrl: string;
  /** Lifecycle policies (DESIGN §5); missing ones take the defaults. */
  policies?: Partial<Policies>;
  /**
   * Carriers that run in processes of their own (`jpki-mobile carrier serve`), by name: where J-LIS
   * reaches their OTA gateway and SIM status API. The others run inside J-LIS's process.
   */
  carriers?: Record<string, { url: string }>;
  createdAt: string;
}

/** Key labels in the key store, one per CA key and responder key. */
export const KEY_LABELS = {
  signCa: "sign-ca",
  authCa: "auth-ca",
  signOcsp: "sign-ocsp",
  authOcsp: "auth-ocsp",
  simMakerCa: "sim-maker-ca",
} as const;

/** Delegated OCSP responder certificates live one year (the sandbox has no renewal job yet). */
const OCSP_RESPONDER_DAYS = 365;
export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
const SANDBOX_PASSPHRASE_FILE = "ca-passphrase";

export interface InitOptions {
  dataDir: string;
  db?: string;
  keystore?: string;
  baseUrl?: string;
  now?: Date;
}

export interface CaCertificates {
  sign: Buffer;
  auth: Buffer;
  signOcsp: Buffer;
  authOcsp: Buffer;
  simMaker: Buffer;
}

export interface Authority {
  readonly dataDir: string;
  readonly config: AuthorityConfig;
  readonly registry: Registry;
  readonly keystore: KeyStore;
  readonly certificates: CaCertificates;
  /** One signer per issuing CA; the registry hands them what to sign. */
  readonly signers: Record<CertificateIssuer, CertificateSigner>;
  /** The issuer data a profile needs to name a CA (Name, key identifier source, algorithm). */
  issuerKey(issuer: CertificateIssuer): IssuerKey;
  /** Where `citizen add` writes card state files. */
  readonly cardsDir: string;
  /** The policies of config.json, defaults filled in. */
  readonly policies: Policies;
  close(): Promise<void>;
}

function configPath(dataDir: string): string {
  return path.join(dataDir, "config.json");
}

function registryUrl(dataDir: string, db: string): string {
  return /^postgres(ql)?:\/\//.test(db) ? db : path.resolve(dataDir, db);
}

/**
 * The passphrase of the data directory's software keys: from the environment, else from the sandbox
 * passphrase file `ca init` made when none was given.
 */
export function dataDirPassphrase(dataDir: string): Promise<string> {
  const sandboxFile = path.join(dataDir, SANDBOX_PASSPHRASE_FILE);
  const useSandbox =
    !process.env[PASSPHRASE_ENV] && !process.env[PASSPHRASE_FILE_ENV] && existsSync(sandboxFile);
  return useSandbox
    ? resolvePassphrase({ env: { [PASSPHRASE_FILE_ENV]: sandboxFile } })
    : resolvePassphrase();
}

/** The configured key store; a software store takes its passphrase as dataDirPassphrase says. */
function openConfiguredKeyStore(dataDir: string, keystore: string): Promise<KeyStore> {
  return openKeyStore(keystore, { dataDirectory: dataDir, passphrase: () => dataDirPassphrase(dataDir) });
}

/**
 * A PKCS#11 URI as stored in config.json: a pin-value (RFC 7512 §2.3) is used for `ca init` only and
 * never written to disk; later commands take the PIN from $JPKI_HSM_PIN or a pin-source file.
 */
function withoutPinValue(uri: string): string {
  const [head, query] = uri.split("?", 2);
  if (query === undefined) return uri;
  const kept = query.split("&").filter((part) => !/^pin-value=/i.test(part));
  return kept.length > 0 ? `${head}?${kept.join("&")}` : head!;
}

function readConfig(dataDir: string): AuthorityConfig {
  const file = configPath(dataDir);
  if (!existsSync(file))
    throw new JpkiError(
      "not-found",
      `no CA in ${dataDir}: create one with \`jpki-mobile ca init --data ${dataDir}\``,
    );
  let config: AuthorityConfig;
  try {
    config = JSON.parse(readFileSync(file, "utf8")) as AuthorityConfig;
  } catch (cause) {
    throw new JpkiError(
      "bad-input",
      `${file} is not readable JSON: restore it or create a new data directory`,
      {
        cause,
      },
    );
  }
  if (config.format !== CONFIG_FORMAT || config.version !== 1)
    throw new JpkiError(
      "bad-input",
      `${file} is not a jpki-mobile configuration (format ${CONFIG_FORMAT} v1)`,
    );
  return config;
}

/**
 * `ca init`: keys for both JPKI CAs, their OCSP responders and the SIM maker's attestation CA; the
 * self-signed roots and responder certificates, each recorded in the registry before it is signed.
 * Refuses a data directory that already holds a CA (or a half-made one).
 */
export async function initAuthority(options: InitOptions): Promise<Authority> {
  const dataDir = path.resolve(options.dataDir);
  if (existsSync(configPath(dataDir)))
    throw new JpkiError("conflict", `a CA already exists in ${dataDir}; refusing to overwrite it`);
  if (existsSync(path.join(dataDir, "keys")))
    throw new JpkiError(
      "conflict",
      `${dataDir} holds CA keys but no configuration (an interrupted \`ca init\`?): remove the directory and run it again`,
    );
  const keystoreSpec = options.keystore ?? "software";
  if (keystoreSpec !== "software" && !/^pkcs11:/i.test(keystoreSpec))
    throw new JpkiError("bad-input", `unknown key store "${keystoreSpec}": use "software" or a pkcs11: URI`);
  const baseUrl = options.baseUrl ?? DEFAULT_BASE_URL;
  if (!/^https?:\/\/[^\s/]+/.test(baseUrl))
    throw new JpkiError("bad-input", `--base-url must be an http(s) URL`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  if (
    keystoreSpec === "software" &&
    !process.env[PASSPHRASE_ENV] &&
    !process.env[PASSPHRASE_FILE_ENV] &&
    !existsSync(path.join(dataDir, SANDBOX_PASSPHRASE_FILE))
  ) {
    writeFileAtomic(
      path.join(dataDir, SANDBOX_PASSPHRASE_FILE),
      `${randomBytes(24).toString("base64url")}\n`,
    );
    process.stderr.write(
      `note: no ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV} set; the CA keys are encrypted with a random ` +
        `passphrase kept in ${path.join(dataDir, SANDBOX_PASSPHRASE_FILE)} (fine for a sandbox, not for keys that matter)\n`,
    );
  }

  const config: AuthorityConfig = {
    format: CONFIG_FORMAT,
    version: 1,
    db: options.db ?? "registry.sqlite",
    keystore: withoutPinValue(keystoreSpec),
    baseUrl,
    policies: DEFAULT_POLICIES,
    createdAt: new Date().toISOString(),
  };
  const keystore = await openConfiguredKeyStore(dataDir, keystoreSpec);
  const registry = await Registry.open(registryUrl(dataDir, config.db), { actor: "ca-init" });
  try {
    const existing = await registry.db
      .selectFrom("certificates")
      .select("serial")
      .where("kind", "=", "ca")
      .where("status", "=", "issued")
      .executeTakeFirst();
    if (existing)
      throw new JpkiError(
        "conflict",
        "the registry already holds CA certificates; refusing to create new ones",
      );
    for (const label of Object.values(KEY_LABELS))
      if (await keystore.has(label))
        throw new JpkiError(
          "conflict",
          `the key store already holds a key labelled ${label}; refusing to overwrite it`,
        );

    const now = options.now ?? new Date();
    const [signCa, authCa, signOcsp, authOcsp, simMakerCa] = await Promise.all([
      keystore.generate(KEY_LABELS.signCa, "rsa-2048"),
      keystore.generate(KEY_LABELS.authCa, "rsa-2048"),
      keystore.generate(KEY_LABELS.signOcsp, "rsa-2048"),
      keystore.generate(KEY_LABELS.authOcsp, "rsa-2048"),
      keystore.generate(KEY_LABELS.simMakerCa, "ec-p256"),
    ]);
    const rootValidity = caValidity(now);
    const root = (
      issuer: CertificateIssuer,
      key: SigningKey,
      build: typeof signingCaTbs,
    ): IssuanceRequest => ({
      issuer,
      kind: "ca",
      medium: "none",
      ...rootValidity,
      buildTbs: (serial) => build({ serial, spki: key.publicKeySpki, validity: rootValidity }),
    });
    const selfSigner = (key: SigningKey) => ({ issue: (tbs: Buffer) => selfSign(key, tbs) });
    const roots = await issueOrThrow(
      registry,
      [
        root("sign", signCa, signingCaTbs),
        root("auth", authCa, authenticationCaTbs),
        root("sim-maker", simMakerCa, simMakerCaTbs),
      ],
      // Each root signs itself; issueCertificates routes by issuer.
      { sign: selfSigner(signCa), auth: selfSigner(authCa), "sim-maker": selfSigner(simMakerCa) },
    );
    const [signRoot, authRoot] = roots as [Buffer, Buffer, Buffer];
    const caSigners = {
      sign: new CertificateSigner(signCa, signRoot),
      auth: new CertificateSigner(authCa, authRoot),
    };
    const responderValidity = shortValidity(now, OCSP_RESPONDER_DAYS);
    const responder = (purpose: CaPurpose, key: SigningKey): IssuanceRequest => ({
      issuer: purpose,
      kind: "ocsp",
      medium: "none",
      ...responderValidity,
      buildTbs: (serial) =>
        ocspResponderCertificateTbs({
          serial,
          purpose,
          issuer: issuerKeyOf(parseCertificate(purpose === "sign" ? signRoot : authRoot)),
          subjectSpki: key.publicKeySpki,
          validity: responderValidity,
        }),
    });
    await issueOrThrow(registry, [responder("sign", signOcsp), responder("auth", authOcsp)], caSigners);
    writeFileAtomic(configPath(dataDir), `${JSON.stringify(config, null, 2)}\n`);
  } finally {
    await registry.close();
    await keystore.close();
  }
  return openAuthority(dataDir);
}

async function issueOrThrow(
  registry: Registry,
  requests: IssuanceRequest[],
  signers: Parameters<typeof issueCertificates>[1],
): Promise<Buffer[]> {
  const results = await issueCertificates(registry.db, signers, requests, { actor: "ca-init" });
  return results.map((result) => {
    if (!result.ok) throw new JpkiError("internal", `issuing ${result.serial} failed: ${result.reason}`);
    return result.der;
  });
}

/** The newest issued certificate of one kind from one issuer (CA roots, OCSP responders). */
async function latestCertificate(
  registry: Registry,
  issuer: CertificateIssuer,
  kind: "ca" | "ocsp",
): Promise<Buffer> {
  const row = await registry.db
    .selectFrom("certificates")
    .select("der")
    .where("issuer", "=", issuer)
    .where("kind", "=", kind)
    .where("status", "=", "issued")
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  if (!row?.der)
    throw new JpkiError("integrity", `the registry holds no ${kind} certificate of the ${issuer} CA`);
  return Buffer.from(row.der);
}

/**
 * Opens the authority of a data directory and finishes any issuance a crash interrupted (Boulder's
 * order: the TBS was stored before signing, so it can be signed again, giving the same bytes).
 */
export async function openAuthority(
  dataDirArg: string,
  options: {
    actor?: string;
    /** A registry database other than config.json's (`start --db`). */
    db?: string;
  } = {},
): Promise<Authority> {
  const dataDir = path.resolve(dataDirArg);
  const config = readConfig(dataDir);
  const policies = readPolicies(config.policies);
  const keystore = await openConfiguredKeyStore(dataDir, config.keystore);
  let registry: Registry | undefined;
  try {
    registry = await Registry.open(registryUrl(dataDir, options.db ?? config.db), {
      actor: options.actor ?? "jpki",
    });
    const certificates: CaCertificates = {
      sign: await latestCertificate(registry, "sign", "ca"),
      auth: await latestCertificate(registry, "auth", "ca"),
      signOcsp: await latestCertificate(registry, "sign", "ocsp"),
      authOcsp: await latestCertificate(registry, "auth", "ocsp"),
      simMaker: await latestCertificate(registry, "sim-maker", "ca"),
    };
    const [signCa, authCa, signOcsp, authOcsp, simMakerCa] = await Promise.all([
      keystore.open(KEY_LABELS.signCa),
      keystore.open(KEY_LABELS.authCa),
      keystore.open(KEY_LABELS.signOcsp),
      keystore.open(KEY_LABELS.authOcsp),
      keystore.open(KEY_LABELS.simMakerCa),
    ]);
    const signers: Record<CertificateIssuer, CertificateSigner> = {
      sign: new CertificateSigner(signCa, certificates.sign, {
        ocspResponder: { key: signOcsp, certificate: certificates.signOcsp },
      }),
      auth: new CertificateSigner(authCa, certificates.auth, {
        ocspResponder: { key: authOcsp, certificate: certificates.authOcsp },
      }),
      "sim-maker": new CertificateSigner(simMakerCa, certificates.simMaker),
    };
    const issuerKeys: Record<CertificateIssuer, IssuerKey> = {
      sign: issuerKeyOf(parseCertificate(certificates.sign)),
      auth: issuerKeyOf(parseCertificate(certificates.auth)),
      "sim-maker": issuerKeyOf(parseCertificate(certificates.simMaker)),
    };
    await recoverInterruptedIssuances(registry.db, signers, { actor: "recovery", policies });
    // Applications whose certificate the recovery just finished (or failed) follow it.
    await reconcileApplications(registry.db);
    const cardsDir = path.join(dataDir, "cards");
    const openedRegistry = registry;
    return {
      dataDir,
      config,
      registry,
      keystore,
      certificates,
      signers,
      cardsDir,
      policies,
      issuerKey(issuer) {
        return issuerKeys[issuer];
      },
      async close() {
        await openedRegistry.close();
        await keystore.close();
      },
    };
  } catch (error) {
    await registry?.close();
    await keystore.close();
    throw error;
  }
}
