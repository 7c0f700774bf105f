/**
 * A disabled verifier over HTTP: its very next OCSP request is answered `unauthorized` (RFC 6960
 * §2.3) and its CRL download refused with 401, although its verdict was cached a moment before;
 * enabled again, the same token works. Asked with `openssl ocsp`, as a verifier would.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { addVerifier, disableVerifier, enableVerifier } from "../registry/verifiers.js";
import { publishCrls } from "../status/crl.js";
import { openOcspSandbox } from "../status/ocsp-fixture.js";
import { forEachDialect } from "../testing/dialects.js";
import { createStatusService } from "./http.js";

const execFileAsync = promisify(execFile);

/** `openssl ocsp` output, whatever its exit status (an error answer exits non-zero). */
async function openssl(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync("openssl", args, { timeout: 60_000, encoding: "utf8" });
    return stdout + stderr;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ""}${e.stderr ?? ""}`;
  }
}

forEachDialect((dialect, open) => {
  test("a disabled verifier's next OCSP request is unauthorized and its CRL download 401; enabled, it works again", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openOcspSandbox(dialect === "postgres" ? database.url : undefined);
    const { authority } = sandbox;
    const db = authority.registry.db;
    const service = createStatusService(authority, { refresher: false, lookupFlushIntervalMs: 0 });
    try {
      const url = await service.listen(0);
      const citizen = await sandbox.citizen("山田 太郎");
      const { verifierId, token } = await addVerifier(db, { name: "bank", kind: "auth" });
      await publishCrls(authority);
      const { shard } = await db
        .selectFrom("certificates")
        .select("shard")
        .where("serial", "=", citizen.authSerial)
        .executeTakeFirstOrThrow();
      const caFile = sandbox.pem("auth-ca", authority.certificates.auth);
      const certFile = sandbox.pem("citizen", citizen.auth);
      const ask = () =>
        openssl([
          "ocsp",
          "-issuer",
          caFile,
          "-cert",
          certFile,
          "-url",
          `${url}/ocsp`,
          "-header",
          `Authorization=Bearer ${token}`,
          "-CAfile",
          caFile,
          "-no-CApath",
          "-no-CAstore",
        ]);
      const crl = async () =>
        (await fetch(`${url}/crl/auth/${shard}.crl`, { headers: { authorization: `Bearer ${token}` } }))
          .status;

      // Active: answered, and the verdict is now in the server's cache.
      assert.match(await ask(), /citizen\.pem: good/);
      assert.equal(await crl(), 200);

      await disableVerifier(db, verifierId, { actor: "test", reason: "contract ended" });
      const refused = await ask();
      assert.match(refused, /Responder Error: unauthorized \(6\)/, refused);
      assert.doesNotMatch(refused, /citizen\.pem: good/);
      assert.equal(await crl(), 401);

      await enableVerifier(db, verifierId, { actor: "test" });
      assert.match(await ask(), /citizen\.pem: good/);
      assert.equal(await crl(), 200);
    } finally {
      try {
        await service.close();
      } finally {
        await sandbox.close();
      }
    }
  });
});
