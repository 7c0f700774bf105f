import { mkdirSync } from "node:fs";
import path from "node:path";
import { parseCertificate, renderName } from "../../pki/certificate.js";
import { pemEncode } from "../../pki/pem.js";
import { type Authority, DEFAULT_BASE_URL, initAuthority } from "../../server/authority.js";
import { writeFileAtomic } from "../../util/fs.js";
import { type Command, printResult, stringOption } from "../command.js";
import { DATA_HELP, dataDir, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

/** The PEM files `ca export` writes, by certificate. */
function exportedFiles(authority: Authority): Record<string, Buffer> {
  const c = authority.certificates;
  return {
    "sign-ca.pem": c.sign,
    "auth-ca.pem": c.auth,
    "sign-ocsp.pem": c.signOcsp,
    "auth-ocsp.pem": c.authOcsp,
    "sim-maker-ca.pem": c.simMaker,
  };
}

function describe(files: Record<string, Buffer>) {
  return Object.entries(files).map(([file, der]) => {
    const cert = parseCertificate(der);
    return {
      file,
      serial: cert.serialHex,
      subject: renderName(cert.subjectDer),
      notAfter: cert.notAfter.toISOString(),
    };
  });
}

export const caInit: Command = {
  name: "ca init",
  summary: "create the signing and user-authentication CAs, their OCSP responders and the SIM maker CA",
  help: `
Usage: jpki-mobile ca init [--data DIR] [--db URL] [--keystore software|pkcs11:...] [--base-url URL] [--json]

Creates both JPKI CAs (RSA-2048 self-signed roots, 10 years), a delegated OCSP responder
certificate for each, and a separate SIM maker attestation CA (P-256). Refuses to overwrite an
existing CA.

${DATA_HELP}
  --db URL        registry database: a SQLite file (default DIR/registry.sqlite) or postgres://...
  --keystore KS   "software" (default): encrypted PKCS#8 files in DIR/keys, passphrase from
                  $JPKI_CA_PASSPHRASE or the file named by $JPKI_CA_PASSPHRASE_FILE (when neither is
                  set, a random passphrase file is made in DIR, fine for a sandbox only);
                  or an RFC 7512 URI, e.g.
                  'pkcs11:token=jpki?module-path=/usr/lib/softhsm/libsofthsm2.so' (PIN in $JPKI_HSM_PIN)
  --base-url URL  where the status services will be reached, written into certificates
                  (default ${DEFAULT_BASE_URL})
${JSON_HELP}
`,
  options: {
    ...dataOption,
    ...jsonOption,
    db: { type: "string" },
    keystore: { type: "string" },
    "base-url": { type: "string" },
  },
  async run(values) {
    const dir = dataDir(values);
    const authority = await initAuthority({
      dataDir: dir,
      db: stringOption(values, "db"),
      keystore: stringOption(values, "keystore"),
      baseUrl: stringOption(values, "base-url"),
    });
    try {
      const certificates = describe(exportedFiles(authority));
      printResult(
        values.json === true,
        { dataDir: authority.dataDir, keystore: authority.config.keystore, certificates },
        (r) =>
          [
            `Created the JPKI CAs in ${r.dataDir} (key store: ${r.keystore}):`,
            ...r.certificates.map((c) => `  ${c.subject}\n    serial ${c.serial}, until ${c.notAfter}`),
            `Next: jpki-mobile citizen add --data ${dir} --name ... --birth YYYY-MM-DD --sex ... --address ...`,
          ].join("\n"),
      );
    } finally {
      await authority.close();
    }
    return 0;
  },
};

export const caExport: Command = {
  name: "ca export",
  summary: "write the CA and OCSP responder certificates as PEM files",
  help: `
Usage: jpki-mobile ca export [--data DIR] --out DIR [--json]

Writes sign-ca.pem, auth-ca.pem, sign-ocsp.pem, auth-ocsp.pem and sim-maker-ca.pem into the
output directory (created if needed), e.g. for \`openssl verify -CAfile auth-ca.pem\`.

${DATA_HELP}
  --out DIR       where to write the PEM files
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, out: { type: "string" } },
  async run(values) {
    const out = path.resolve(stringOption(values, "out", true));
    return withAuthority(values, "cli", async (authority) => {
      const files = exportedFiles(authority);
      mkdirSync(out, { recursive: true });
      for (const [file, der] of Object.entries(files))
        writeFileAtomic(path.join(out, file), pemEncode(der), 0o644);
      const written = describe(files).map((f) => ({ ...f, path: path.join(out, f.file) }));
      printResult(values.json === true, { files: written }, (r) =>
        r.files.map((f) => `${f.path}  ${f.subject} (serial ${f.serial})`).join("\n"),
      );
      return 0;
    });
  },
};
