/**
 * Software key store: each CA key is an encrypted PKCS#8 PEM file (RFC 5958 EncryptedPrivateKeyInfo
 * with PBES2, RFC 8018 §6.2; AES-256-CBC, key derived by PBKDF2) named after its label, in a directory
 * only the CA's user can open. The passphrase comes from the environment or a file, never from the
 * command line (where `ps` would show it).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  sign as signAsync,
} from "node:crypto";
import { constants, promises as fs } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { JpkiError } from "../errors.js";
import { generateP256PrivateKey, type KeyAlgorithm } from "../pki/algorithms.js";
import type { KeyStore, SigningKey } from "./keystore.js";
import { checkLabel } from "./labels.js";

const generateKeyPairAsync = promisify(generateKeyPair);
const signInThreadpool = promisify(signAsync);

export const PASSPHRASE_ENV = "JPKI_CA_PASSPHRASE";
export const PASSPHRASE_FILE_ENV = "JPKI_CA_PASSPHRASE_FILE";

/** Returns the passphrase protecting the key files; called once, when the first key is used. */
export type PassphraseProvider = () => string | Promise<string>;

export interface PassphraseSource {
  /** Environment to read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Variable holding the passphrase itself (default JPKI_CA_PASSPHRASE). */
  variable?: string;
  /** Variable naming a file that holds the passphrase (default JPKI_CA_PASSPHRASE_FILE). */
  fileVariable?: string;
}

/**
 * The CA passphrase from `$JPKI_CA_PASSPHRASE_FILE` (a file readable by its owner only; one trailing
 * newline is dropped) or `$JPKI_CA_PASSPHRASE`. Exactly one of the two must be set.
 */
export async function resolvePassphrase(source: PassphraseSource = {}): Promise<string> {
  const env = source.env ?? process.env;
  const variable = source.variable ?? PASSPHRASE_ENV;
  const fileVariable = source.fileVariable ?? PASSPHRASE_FILE_ENV;
  const file = env[fileVariable];
  const direct = env[variable];
  if (file && direct)
    throw new JpkiError("bad-input", `both ${variable} and ${fileVariable} are set: set only one of them`);
  if (file) {
    let text: string;
    try {
      const handle = await fs.open(file, constants.O_RDONLY);
      try {
        await refuseLooseMode(handle, file, "passphrase file");
        text = await handle.readFile("utf8");
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (error instanceof JpkiError) throw error;
      throw new JpkiError("bad-input", `cannot read the CA passphrase file ${file} (${fileVariable})`, {
        cause: error,
      });
    }
    const passphrase = text.replace(/\r?\n$/, "");
    if (passphrase === "") throw new JpkiError("bad-input", `the CA passphrase file ${file} is empty`);
    return passphrase;
  }
  if (direct) return direct;
  throw new JpkiError(
    "bad-input",
    `no CA passphrase: set ${variable} to the passphrase, or ${fileVariable} to a file holding it`,
  );
}

/** Refuses a key (or passphrase) file that group or others may read or write (fix: chmod 600). */
async function refuseLooseMode(handle: fs.FileHandle, file: string, what: string): Promise<void> {
  const { mode } = await handle.stat();
  if (mode & 0o077)
    throw new JpkiError(
      "forbidden",
      `${what} ${file} has mode ${(mode & 0o777).toString(8).padStart(4, "0")}: group and others must ` +
        `have no access; fix it with: chmod 600 ${file}`,
    );
}

export interface SoftwareKeyStoreOptions {
  /** Directory holding one `<label>.key.pem` per key; created with mode 0700. */
  directory: string;
  /** A passphrase or where to get it (default: resolvePassphrase() on the process environment). */
  passphrase?: string | PassphraseProvider;
}

class SoftwareSigningKey implements SigningKey {
  readonly verifiesItsSignatures = true;
  constructor(
    readonly label: string,
    readonly algorithm: KeyAlgorithm,
    readonly publicKeySpki: Buffer,
    private readonly privateKey: KeyObject,
  ) {}

  /**
   * The asynchronous form of crypto.sign runs in libuv's threadpool, so concurrent signatures use
   * several cores. ECDSA signatures come out as DER Ecdsa-Sig-Value (RFC 3279 §2.2.3).
   */
  sign(data: Uint8Array): Promise<Buffer> {
    return signInThreadpool("sha256", data, { key: this.privateKey, dsaEncoding: "der" });
  }
}

export class SoftwareKeyStore implements KeyStore {
  readonly kind = "software" as const;
  readonly directory: string;
  private readonly passphraseSource: string | PassphraseProvider;
  private passphrase: Promise<string> | undefined;
  private readonly keys = new Map<string, SoftwareSigningKey>();

  constructor(options: SoftwareKeyStoreOptions) {
    this.directory = path.resolve(options.directory);
    this.passphraseSource = options.passphrase ?? (() => resolvePassphrase());
  }

  private getPassphrase(): Promise<string> {
    if (!this.passphrase) {
      const source = this.passphraseSource;
      this.passphrase = (async () => {
        const value = typeof source === "string" ? source : await source();
        if (value === "") throw new JpkiError("bad-input", "the CA passphrase is empty");
        return value;
      })();
      // A failed lookup (variable not yet set) is retried on the next call.
      this.passphrase.catch(() => {
        this.passphrase = undefined;
      });
    }
    return this.passphrase;
  }

  /** Path of the file holding `label`'s key. */
  fileOf(label: string): string {
    checkLabel(label);
    return path.join(this.directory, `${label}.key.pem`);
  }

  async has(label: string): Promise<boolean> {
    try {
      await fs.lstat(this.fileOf(label));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  }

  async generate(label: string, algorithm: KeyAlgorithm): Promise<SigningKey> {
    const file = this.fileOf(label);
    const passphrase = await this.getPassphrase();
    if (await this.has(label)) throw new JpkiError("conflict", `a key labelled "${label}" exists already`);
    // P-256 through ECDH (generateP256PrivateKey says why); RSA in the thread pool.
    const { privateKey, publicKey } =
      algorithm === "rsa-2048"
        ? await generateKeyPairAsync("rsa", { modulusLength: 2048, publicExponent: 0x10001 })
        : (() => {
            const key = generateP256PrivateKey();
            return { privateKey: key, publicKey: createPublicKey(key) };
          })();
    const pem = String(
      privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase }),
    );
    await fs.mkdir(this.directory, { recursive: true, mode: 0o700 });
    await writeNewFileAtomically(file, pem);
    const key = new SoftwareSigningKey(
      label,
      algorithm,
      publicKey.export({ type: "spki", format: "der" }),
      privateKey,
    );
    this.keys.set(label, key);
    return key;
  }

  async open(label: string): Promise<SigningKey> {
    const cached = this.keys.get(label);
    if (cached) return cached;
    const file = this.fileOf(label);
    let pem: string;
    try {
      // Mode checked on the descriptor actually read, so a swap between check and read cannot help.
      const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        await refuseLooseMode(handle, file, "key file");
        pem = await handle.readFile("utf8");
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        throw new JpkiError("not-found", `no key labelled "${label}" in ${this.directory}`);
      throw error;
    }
    const passphrase = await this.getPassphrase();
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: "pem", passphrase });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ERR_OSSL_BAD_DECRYPT")
        throw new JpkiError("bad-input", `wrong passphrase for the key file ${file}`, { cause: error });
      throw new JpkiError("integrity", `the key file ${file} is damaged or not an encrypted PKCS#8 key`, {
        cause: error,
      });
    }
    const key = new SoftwareSigningKey(
      label,
      algorithmOf(privateKey, file),
      createPublicKey(privateKey).export({ type: "spki", format: "der" }),
      privateKey,
    );
    this.keys.set(label, key);
    return key;
  }

  async close(): Promise<void> {
    this.keys.clear();
    this.passphrase = undefined;
  }
}

function algorithmOf(key: KeyObject, file: string): KeyAlgorithm {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "rsa" && details?.modulusLength === 2048) return "rsa-2048";
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") return "ec-p256";
  throw new JpkiError(
    "integrity",
    `the key in ${file} is ${key.asymmetricKeyType} ${details?.modulusLength ?? details?.namedCurve ?? ""}; ` +
      "only RSA-2048 and EC P-256 are used",
  );
}

/**
 * Writes `content` to `file` so that a crash leaves either no file or the whole one: a temporary file
 * (mode 0600) is written and fsynced, then linked into place (link, unlike rename, fails when the
 * target exists, so two generators can never overwrite each other's key), and the directory fsynced.
 */
async function writeNewFileAtomically(file: string, content: string): Promise<void> {
  const directory = path.dirname(file);
  const temporary = path.join(directory, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const handle = await fs.open(temporary, "wx", 0o600);
  try {
    try {
      await handle.chmod(0o600); // the umask may only have removed bits; make the mode explicit
      await handle.writeFile(content, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST")
        throw new JpkiError("conflict", `the key file ${file} exists already`);
      throw error;
    }
  } finally {
    await fs.rm(temporary, { force: true });
  }
  const dir = await fs.open(directory, constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
