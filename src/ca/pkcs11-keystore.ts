/**
 * PKCS#11 key store (OASIS PKCS#11 v2.40 through pkcs11js): CA keys generated on the token,
 * private keys sensitive and non-extractable, so they never leave the HSM.
 *
 * pkcs11js calls are synchronous (C_Sign has a threadpool form, used so the event loop stays free);
 * every call into one module is serialized, and each key store keeps one session. A lost session or
 * device is reopened (session, login, key handle re-found by label) and the operation retried a
 * bounded number of times; when the HSM stays down the caller gets SignerUnavailableError (HTTP 503).
 */
import { createHash, randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import type * as Pkcs11Types from "pkcs11js";
import { JpkiError, SignerUnavailableError } from "../errors.js";
import type { KeyAlgorithm } from "../pki/algorithms.js";
import { bitString, integer, NULL, oid, sequence } from "../pki/der.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import type { KeyStore, SigningKey } from "./keystore.js";
import { checkLabel } from "./labels.js";
import { type Pkcs11Config, parsePkcs11Uri, readPin, redact } from "./pkcs11-uri.js";

// pkcs11js is CommonJS and builds its exports at run time, which ESM named imports cannot see.
const pkcs11js = createRequire(import.meta.url)("pkcs11js") as typeof Pkcs11Types;

type Handle = Buffer;

const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const OID_PRIME256V1 = "1.2.840.10045.3.1.7";
/** CKA_EC_PARAMS for P-256: the namedCurve OID, DER (PKCS#11 v2.40 §2.3.3). */
const P256_PARAMS = oid(OID_PRIME256V1);

/**
 * Results that mean the session, the login or the device is gone, not that the request was wrong:
 * the operation is retried on a fresh session.
 */
const lostSession = new Set<number>([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_OBJECT_HANDLE_INVALID,
  pkcs11js.CKR_KEY_HANDLE_INVALID,
  pkcs11js.CKR_OPERATION_ACTIVE,
  pkcs11js.CKR_OPERATION_NOT_INITIALIZED,
  pkcs11js.CKR_DEVICE_MEMORY,
  pkcs11js.CKR_FUNCTION_FAILED,
]);
/** Results after which the whole module is finalized and initialized again before the next try. */
const lostDevice = new Set<number>([
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_SLOT_ID_INVALID,
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
]);

/** The token or a key opened before cannot be seen any more: treated like a lost device. */
class TokenAbsent extends Error {
  override readonly name = "TokenAbsent";
}

function resultCode(error: unknown): number | undefined {
  return error instanceof pkcs11js.Pkcs11Error ? error.code : undefined;
}

function resultName(error: unknown): string {
  if (error instanceof pkcs11js.Pkcs11Error) return error.message;
  return error instanceof Error ? error.message : String(error);
}

function isDeviceLevel(error: unknown): boolean {
  if (error instanceof TokenAbsent) return true;
  const code = resultCode(error);
  return code !== undefined && lostDevice.has(code);
}

function isRecoverable(error: unknown): boolean {
  const code = resultCode(error);
  return isDeviceLevel(error) || (code !== undefined && lostSession.has(code));
}

/**
 * One loaded PKCS#11 library, shared by every key store of the process that uses it: C_Initialize
 * is per process (PKCS#11 §5.4), so stores count their uses and the last one finalizes. The library
 * stays loaded (no dlclose: some modules do not survive being unloaded and loaded again).
 */
class SharedModule {
  private static readonly loaded = new Map<string, SharedModule>();
  readonly api: Pkcs11Types.PKCS11;
  /** Bumped at every C_Initialize: sessions from an older generation are dead. */
  generation = 0;
  private initialized = false;
  private users = 0;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(readonly path: string) {
    this.api = new pkcs11js.PKCS11();
    this.api.load(path);
  }

  static acquire(modulePath: string): SharedModule {
    let real: string;
    try {
      real = realpathSync(modulePath);
    } catch (error) {
      throw new JpkiError("bad-input", `PKCS#11 module ${modulePath} does not exist`, { cause: error });
    }
    let module = SharedModule.loaded.get(real);
    if (!module) {
      try {
        module = new SharedModule(real);
      } catch (error) {
        throw new JpkiError(
          "bad-input",
          `cannot load the PKCS#11 module ${modulePath}: ${resultName(error)}`,
          {
            cause: error,
          },
        );
      }
      SharedModule.loaded.set(real, module);
    }
    module.users++;
    return module;
  }

  release(): void {
    if (--this.users > 0 || !this.initialized) return;
    try {
      this.api.C_Finalize();
    } catch {
      // finalizing a module that is already gone has nothing left to undo
    }
    this.initialized = false;
  }

  /** Runs `fn` with no other call into this module in flight. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  ensureInitialized(): void {
    if (this.initialized) return;
    try {
      this.api.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (error) {
      if (resultCode(error) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
    }
    this.initialized = true;
    this.generation++;
  }

  /** C_Finalize then C_Initialize: how a module notices a device that came back. */
  reset(): void {
    if (this.initialized) {
      try {
        this.api.C_Finalize();
      } catch {
        // already finalized behind our back
      }
      this.initialized = false;
    }
    this.ensureInitialized();
  }
}

export interface Pkcs11KeyStoreOptions {
  /** Environment read for JPKI_HSM_PIN (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Pauses before the 2nd, 3rd, ... attempt of an operation that met a lost session or device; their
   * count plus one is the number of attempts. Default [20, 100, 300] ms: 4 attempts, under 0.5 s.
   */
  retryDelaysMs?: readonly number[];
}

const DEFAULT_RETRY_DELAYS_MS = [20, 100, 300] as const;

class Pkcs11SigningKey implements SigningKey {
  constructor(
    private readonly store: Pkcs11KeyStore,
    readonly label: string,
    readonly algorithm: KeyAlgorithm,
    readonly publicKeySpki: Buffer,
  ) {}

  sign(data: Uint8Array): Promise<Buffer> {
    return this.store.signWith(this, data);
  }
}

export class Pkcs11KeyStore implements KeyStore {
  readonly kind = "pkcs11" as const;
  private session: Handle | null = null;
  private sessionGeneration = -1;
  private readonly handles = new Map<string, Handle>();
  private closed = false;

  private constructor(
    private readonly module: SharedModule,
    private readonly config: Pkcs11Config,
    private readonly pin: string,
    private readonly description: string,
    private readonly retryDelaysMs: readonly number[],
  ) {}

  /**
   * Opens the token named by a PKCS#11 URI (RFC 7512) and logs in, so that a bad configuration
   * (module, token, PIN) is reported at start-up rather than at the first signature.
   */
  static async open(uri: string, options: Pkcs11KeyStoreOptions = {}): Promise<Pkcs11KeyStore> {
    const env = options.env ?? process.env;
    const config = parsePkcs11Uri(uri, env);
    const pin = readPin(config, env);
    const module = SharedModule.acquire(config.modulePath);
    const store = new Pkcs11KeyStore(
      module,
      config,
      pin,
      redact(uri),
      options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
    );
    try {
      await store.run("open the token", () => undefined);
    } catch (error) {
      store.closed = true;
      module.release();
      throw error;
    }
    return store;
  }

  async has(label: string): Promise<boolean> {
    checkLabel(label);
    return this.run(`look up key "${label}"`, (session) => this.find(session, label, "private").length > 0);
  }

  async open(label: string): Promise<SigningKey> {
    checkLabel(label);
    return this.run(`open key "${label}"`, (session) => {
      const found = this.find(session, label, "private");
      if (found.length === 0)
        throw new JpkiError("not-found", `no private key labelled "${label}" on ${this.description}`);
      if (found.length > 1)
        throw new JpkiError("integrity", `${found.length} private keys are labelled "${label}"`);
      const privateKey = found[0]!;
      const [keyType, sensitive, extractable] = this.api.C_GetAttributeValue(session, privateKey, [
        { type: pkcs11js.CKA_KEY_TYPE },
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
      ]);
      // The keys must never leave the HSM: refuse one that could.
      if (!isTrue(sensitive?.value) || isTrue(extractable?.value))
        throw new JpkiError(
          "integrity",
          `the private key "${label}" is extractable or not sensitive; generate a new one on the token`,
        );
      const type = readUlong(keyType?.value);
      const algorithm: KeyAlgorithm | undefined =
        type === pkcs11js.CKK_RSA ? "rsa-2048" : type === pkcs11js.CKK_EC ? "ec-p256" : undefined;
      if (!algorithm) throw new JpkiError("integrity", `key "${label}" is neither RSA nor EC (type ${type})`);
      const publicKeys = this.find(session, label, "public");
      if (publicKeys.length !== 1)
        throw new JpkiError(
          "integrity",
          `expected one public key labelled "${label}", found ${publicKeys.length}`,
        );
      const spki = this.publicKeySpki(session, publicKeys[0]!, algorithm, label);
      this.handles.set(label, privateKey);
      return new Pkcs11SigningKey(this, label, algorithm, spki);
    });
  }

  /**
   * Generates a key pair on the token: the private key CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
   * CKA_EXTRACTABLE, usable only for signing; RSA with e = 65537 or EC on P-256.
   */
  async generate(label: string, algorithm: KeyAlgorithm): Promise<SigningKey> {
    checkLabel(label);
    // Not retried once the key pair call has been made: a retry could leave two keys with one label.
    return this.run(
      `generate key "${label}"`,
      async (session) => {
        if (this.find(session, label, "any").length > 0)
          throw new JpkiError("conflict", `a key labelled "${label}" exists already on ${this.description}`);
        const id = randomBytes(16);
        const common = [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_ID, value: id },
        ];
        const publicTemplate = [
          ...common,
          { type: pkcs11js.CKA_PRIVATE, value: false },
          { type: pkcs11js.CKA_VERIFY, value: true },
          { type: pkcs11js.CKA_ENCRYPT, value: false },
          { type: pkcs11js.CKA_WRAP, value: false },
          ...(algorithm === "rsa-2048"
            ? [
                { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
                { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([0x01, 0x00, 0x01]) },
              ]
            : [{ type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS }]),
        ];
        const privateTemplate = [
          ...common,
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: false },
          { type: pkcs11js.CKA_UNWRAP, value: false },
          { type: pkcs11js.CKA_DERIVE, value: false },
        ];
        const mechanism = {
          mechanism:
            algorithm === "rsa-2048" ? pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN,
        };
        const pair = await this.api.C_GenerateKeyPairAsync(
          session,
          mechanism,
          publicTemplate,
          privateTemplate,
        );
        const spki = this.publicKeySpki(session, pair.publicKey, algorithm, label);
        this.handles.set(label, pair.privateKey);
        return new Pkcs11SigningKey(this, label, algorithm, spki);
      },
      { retryOperation: false },
    );
  }

  /**
   * RSA: CKM_SHA256_RSA_PKCS (PKCS#11 v2.40 §2.1.13, the token hashes and pads). EC: SHA-256 here,
   * then CKM_ECDSA over the digest, whose r || s output (§2.3.1) becomes a DER Ecdsa-Sig-Value.
   */
  signWith(key: Pkcs11SigningKey, data: Uint8Array): Promise<Buffer> {
    const rsa = key.algorithm === "rsa-2048";
    const input = rsa ? Buffer.from(data) : createHash("sha256").update(data).digest();
    return this.run(`sign with "${key.label}"`, async (session) => {
      let handle = this.handles.get(key.label);
      if (!handle) {
        const found = this.find(session, key.label, "private");
        // The key was there when opened: not seeing it now means the token is not what it was.
        if (found.length !== 1) throw new TokenAbsent(`the key "${key.label}" is no longer visible`);
        handle = found[0]!;
        this.handles.set(key.label, handle);
      }
      this.api.C_SignInit(
        session,
        { mechanism: rsa ? pkcs11js.CKM_SHA256_RSA_PKCS : pkcs11js.CKM_ECDSA },
        handle,
      );
      const signature = await this.api.C_SignAsync(session, input, Buffer.alloc(rsa ? 256 : 64));
      return rsa ? Buffer.from(signature) : ecdsaSignatureToDer(signature);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.module.exclusive(async () => {
      if (this.closed) return;
      this.closed = true;
      this.dropSession();
      this.module.release();
    });
  }

  private get api(): Pkcs11Types.PKCS11 {
    return this.module.api;
  }

  /**
   * Runs `operation` on a live, logged-in session, in the module's queue. A lost session is
   * reopened; a lost device (or a token that disappeared) makes the module start over; the whole
   * thing stops after the configured attempts with SignerUnavailableError.
   */
  private run<T>(
    what: string,
    operation: (session: Handle) => T | Promise<T>,
    { retryOperation = true } = {},
  ): Promise<T> {
    return this.module.exclusive(async () => {
      if (this.closed) throw new JpkiError("internal", `the PKCS#11 key store is closed (${what})`);
      const attempts = this.retryDelaysMs.length + 1;
      let last: unknown;
      for (let attempt = 0; attempt < attempts; attempt++) {
        if (attempt > 0) {
          await sleep(this.retryDelaysMs[attempt - 1] ?? 0);
          // One plain reconnect first; after that, or when the device itself failed, start over.
          if (attempt >= 2 || isDeviceLevel(last)) this.resetModule();
        }
        let connected = false;
        try {
          const session = this.connect();
          connected = true;
          return await operation(session);
        } catch (error) {
          if (!isRecoverable(error)) throw this.explain(error, what);
          last = error;
          this.dropSession();
          if (connected && !retryOperation) break;
        }
      }
      throw new SignerUnavailableError(
        `cannot ${what}: the HSM (${this.description}) is unavailable (${resultName(last)})`,
        { cause: last },
      );
    });
  }

  private resetModule(): void {
    try {
      this.module.reset();
    } catch {
      // C_Initialize failing is one more failed attempt; connect() reports it
    }
  }

  /** The current session, or a new one: find the token, open a R/W session, log the user in. */
  private connect(): Handle {
    this.module.ensureInitialized();
    if (this.session && this.sessionGeneration === this.module.generation) return this.session;
    this.session = null;
    this.handles.clear();
    const slot = this.findSlot();
    const session = this.api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.api.C_Login(session, pkcs11js.CKU_USER, this.pin);
    } catch (error) {
      // The login state is shared by all sessions of the application (PKCS#11 §5.6).
      if (resultCode(error) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
        try {
          this.api.C_CloseSession(session);
        } catch {
          // the session is useless either way
        }
        throw error;
      }
    }
    this.session = session;
    this.sessionGeneration = this.module.generation;
    return session;
  }

  private dropSession(): void {
    const session = this.session;
    this.session = null;
    this.handles.clear();
    if (!session) return;
    try {
      this.api.C_CloseSession(session);
    } catch {
      // already closed by the device or by C_Finalize
    }
  }

  private findSlot(): Handle {
    const seen: string[] = [];
    for (const slot of this.api.C_GetSlotList(true)) {
      let info: Pkcs11Types.TokenInfo;
      try {
        info = this.api.C_GetTokenInfo(slot);
      } catch {
        continue; // a slot whose token went away between the two calls
      }
      const label = info.label.trimEnd();
      const serial = info.serialNumber.trimEnd();
      seen.push(label);
      if (this.config.token !== undefined && label !== this.config.token) continue;
      if (this.config.serial !== undefined && serial !== this.config.serial) continue;
      if (this.config.slotId !== undefined && readSlotId(slot) !== this.config.slotId) continue;
      return slot;
    }
    throw new TokenAbsent(
      `no token matching the URI is present (tokens seen: ${seen.map((l) => JSON.stringify(l)).join(", ") || "none"})`,
    );
  }

  private find(session: Handle, label: string, kind: "private" | "public" | "any"): Handle[] {
    const template: Pkcs11Types.Template = [{ type: pkcs11js.CKA_LABEL, value: label }];
    if (kind !== "any")
      template.push({
        type: pkcs11js.CKA_CLASS,
        value: kind === "private" ? pkcs11js.CKO_PRIVATE_KEY : pkcs11js.CKO_PUBLIC_KEY,
      });
    this.api.C_FindObjectsInit(session, template);
    try {
      return this.api.C_FindObjects(session, 16);
    } finally {
      this.api.C_FindObjectsFinal(session);
    }
  }

  /** SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) from the public key object's attributes. */
  private publicKeySpki(session: Handle, publicKey: Handle, algorithm: KeyAlgorithm, label: string): Buffer {
    let spki: Buffer;
    if (algorithm === "rsa-2048") {
      const [modulus, exponent] = this.api.C_GetAttributeValue(session, publicKey, [
        { type: pkcs11js.CKA_MODULUS },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT },
      ]);
      // RFC 3279 §2.3.1: RSAPublicKey ::= SEQUENCE { modulus, publicExponent }, parameters NULL.
      spki = sequence(
        sequence(oid(OID_RSA_ENCRYPTION), NULL),
        bitString(sequence(integer(modulus!.value), integer(exponent!.value))),
      );
    } else {
      const [params, point] = this.api.C_GetAttributeValue(session, publicKey, [
        { type: pkcs11js.CKA_EC_PARAMS },
        { type: pkcs11js.CKA_EC_POINT },
      ]);
      if (!params?.value.equals(P256_PARAMS))
        throw new JpkiError("integrity", `the EC key "${label}" is not on the P-256 curve`);
      // RFC 5480 §2.1.1 and §2.2: id-ecPublicKey with the namedCurve; the uncompressed point as is.
      spki = sequence(
        sequence(oid(OID_EC_PUBLIC_KEY), oid(OID_PRIME256V1)),
        bitString(uncompressedPoint(point!.value, label)),
      );
    }
    const parsed = publicKeyFromSpki(spki);
    if (algorithm === "rsa-2048" && parsed.asymmetricKeyDetails?.modulusLength !== 2048)
      throw new JpkiError("integrity", `the RSA key "${label}" is not 2048 bits long`);
    return spki;
  }

  /** Turns an unexpected PKCS#11 result into a domain error that says what failed. */
  private explain(error: unknown, what: string): unknown {
    if (!(error instanceof pkcs11js.Pkcs11Error)) return error;
    const code = error.code;
    if (
      code === pkcs11js.CKR_PIN_INCORRECT ||
      code === pkcs11js.CKR_PIN_LOCKED ||
      code === pkcs11js.CKR_PIN_EXPIRED ||
      code === pkcs11js.CKR_PIN_LEN_RANGE ||
      code === pkcs11js.CKR_USER_PIN_NOT_INITIALIZED
    )
      return new JpkiError(
        "internal",
        `cannot ${what}: the HSM refused the user PIN (${error.message}); check the PIN of ${this.description}`,
        { cause: error },
      );
    return new JpkiError("internal", `cannot ${what}: the HSM answered ${error.message}`, { cause: error });
  }
}

/** CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 v2.40 §2.3.3); some modules omit the wrapper. */
function uncompressedPoint(value: Buffer, label: string): Buffer {
  let point = value;
  if (value.length === 67 && value[0] === 0x04 && value[1] === 0x41) point = value.subarray(2);
  if (point.length !== 65 || point[0] !== 0x04)
    throw new JpkiError("integrity", `the EC key "${label}" has no uncompressed P-256 point`);
  return point;
}

/** r || s (each 32 bytes for P-256) to Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3). */
export function ecdsaSignatureToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2)
    throw new JpkiError("integrity", "malformed ECDSA signature from the HSM");
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function isTrue(value: Buffer | undefined): boolean {
  return value !== undefined && value.length > 0 && value[0] !== 0;
}

/** CK_ULONG attribute values come in the host's byte order (little-endian here). */
function readUlong(value: Buffer | undefined): number {
  if (!value || value.length === 0) return -1;
  return value.readUIntLE(0, Math.min(value.length, 6));
}

function readSlotId(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUIntLE(0, slot.length));
}
