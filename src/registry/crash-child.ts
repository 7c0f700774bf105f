/**
 * The process the crash test kills (crash.test.ts). It starts as a registry process would (recovery
 * first), then issues batches until SIGKILL. Its signer writes each certificate to the "escaped" file
 * and fsyncs it the moment the signature exists: the worst case, a certificate that left the CA before
 * the registry stored it.
 *
 * Environment: JPKI_CRASH_DB (registry URL), JPKI_CRASH_KEY (PKCS#8 PEM file), JPKI_CRASH_ESCAPED (file).
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { openRegistryDatabase } from "./db.js";
import { issueCertificates, recoverInterruptedIssuances } from "./issuance.js";
import { DEFAULT_POLICIES } from "./lifecycle.js";
import { rsaSigner, type TestKey, testRequest } from "./test-fixtures.js";

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const privateKey = createPrivateKey(readFileSync(need("JPKI_CRASH_KEY")));
const publicKey = createPublicKey(privateKey);
const key: TestKey = { privateKey, publicKey, spki: publicKey.export({ type: "spki", format: "der" }) };

const escaped = openSync(need("JPKI_CRASH_ESCAPED"), "a");
const signer = rsaSigner(key, (der) => {
  // A leading newline ends any fragment a killed predecessor left, so records never run together.
  writeSync(escaped, `\n${der.toString("hex")}\n`);
  fsyncSync(escaped);
});
const signers = { auth: signer };

const { db } = await openRegistryDatabase(need("JPKI_CRASH_DB"));
const report = await recoverInterruptedIssuances(db, signers, { policies: DEFAULT_POLICIES });
process.stdout.write(`started recovered=${report.issued.length} failed=${report.failed.length}\n`);
for (let batch = 0; ; batch++) {
  const size = 1 + Math.floor(Math.random() * 40);
  await issueCertificates(
    db,
    signers,
    Array.from({ length: size }, (_, i) => testRequest(key, { subject: `batch ${batch} #${i}` })),
    { actor: "crash-child" },
  );
}
