/**
 * The `--keystore software|pkcs11:...` choice of the command line, in one place: "software" (the
 * default) keeps encrypted PKCS#8 files under the data directory, a PKCS#11 URI (RFC 7512) names an
 * HSM token.
 */
import * as path from "node:path";
import { JpkiError } from "../errors.js";
import { Pkcs11KeyStore } from "./pkcs11-keystore.js";
import { SoftwareKeyStore } from "./software-keystore.js";
export async function openKeyStore(spec, options) {
    if (spec === undefined || spec === "software") {
        const directory = path.join(options.dataDirectory, "keys");
        return options.passphrase === undefined
            ? new SoftwareKeyStore({ directory })
            : new SoftwareKeyStore({ directory, passphrase: options.passphrase });
    }
    if (/^pkcs11:/i.test(spec))
        return Pkcs11KeyStore.open(spec, options.env ? { env: options.env } : {});
    throw new JpkiError("bad-input", `unknown key store ${JSON.stringify(spec)}: use "software" or a pkcs11: URI`);
}
//# sourceMappingURL=open-keystore.js.map