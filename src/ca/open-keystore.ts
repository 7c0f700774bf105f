/**
 * The `--keystore software|pkcs11:...` choice of the command line, in one place: "software" (the
 * default) keeps encrypted PKCS#8 files under the data directory, a PKCS#11 URI (RFC 7512) names an
 * HSM token.
 */
import * as path from "node:path";
import { JpkiError } from "../errors.js";
import type { KeyStore } from "./keystore.js";
import { Pkcs11KeyStore } from "./pkcs11-keystore.js";
import { type PassphraseProvider, SoftwareKeyStore } from "./software-keystore.js";

export interface OpenKeyStoreOptions {
  /** The CA data directory; software keys go to `<dataDirectory>/keys`. */
  dataDirectory: string;
  /** For the software store: the passphrase or its provider (default: JPKI_CA_PASSPHRASE[_FILE]). */
  passphrase?: string | PassphraseProvider;
  env?: NodeJS.ProcessEnv;
}

export async function openKeyStore(
  spec: string | undefined,
  options: OpenKeyStoreOptions,
): Promise<KeyStore> {
  if (spec === undefined || spec === "software") {
    const directory = path.join(options.dataDirectory, "keys");
    return options.passphrase === undefined
      ? new SoftwareKeyStore({ directory })
      : new SoftwareKeyStore({ directory, passphrase: options.passphrase });
  }
  if (/^pkcs11:/i.test(spec)) return Pkcs11KeyStore.open(spec, options.env ? { env: options.env } : {});
  throw new JpkiError(
    "bad-input",
    `unknown key store ${JSON.stringify(spec)}: use "software" or a pkcs11: URI`,
  );
}
