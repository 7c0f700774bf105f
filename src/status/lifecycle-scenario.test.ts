/**
 * One certificate lifecycle end to end, as a verifier sees it through the status server, in one test
 * per database: issue → revoke → both channels say so → hold → release → both channels follow →
 * expire → the revoked entry leaves the CRL one complete CRL after its notAfter (RFC 5280 §3.3).
 *
 * The registry, the CRL publisher and the OCSP responder run on a simulated clock that moves up to
 * four hours ahead, so certificates can expire within the test. OCSP is asked by `openssl ocsp` over
 * HTTP with the verifier's token (told to accept answers made up to five hours ahead); CRLs are
 * downloaded from the server, checked by `openssl verify -crl_check` at the simulated time
 * (`-attime`), and read entry by entry with an independent ASN.1 library.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CrlReason } from "../pki/crl.js";
import { pemEncode } from "../pki/pem.js";
import {
  DEFAULT_POLICIES,
  expireCertificates,
  resumeCertificate,
  revokeCertificate,
  suspendCertificate,
} from "../registry/lifecycle.js";
import { addVerifier } from "../registry/verifiers.js";
import { createStatusService } from "../server/http.js";
import { crlEntries } from "../testing/crl-entries.js";
import { forEachDialect } from "../testing/dialects.js";
import { runToolAsync } from "../testing/tools.js";
import { publishCrls } from "./crl.js";
import { type IssuedFixtureCertificate, openCrlFixture } from "./crl-fixture.js";

const actor = "test";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A tool's exit status and its output (stdout then stderr), run without blocking the server under test. */
async function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  const result = await runToolAsync(command, args);
  return { code: result.code, out: result.stdout + result.stderr };
}

forEachDialect((_dialect, open) => {
  test("issue, revoke, hold, release, expire: OCSP and the CRLs agree at every step", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const fixture = await openCrlFixture(database.url, 1);
    const { authority, dir } = fixture;
    const db = authority.registry.db;
    const t0 = new Date(Math.floor(Date.now() / 1000) * 1000);
    let clock = t0;
    const at = (ms: number) => {
      clock = new Date(t0.getTime() + ms);
      return clock;
    };
    const service = createStatusService(authority, {
      ocsp: { now: () => clock },
      refresher: false,
      lookupFlushIntervalMs: 0,
      log: () => undefined,
    });
    try {
      const url = await service.listen(0);
      const verifier = await addVerifier(db, { name: "scenario bank", kind: "auth" });
      const caFile = join(dir, "auth-ca.pem");
      writeFileSync(caFile, pemEncode(authority.certificates.auth));
      const certFile = (name: string, cert: IssuedFixtureCertificate) => {
        const file = join(dir, `${name}.pem`);
        writeFileSync(file, pemEncode(cert.der));
        return file;
      };
      // Phone certificates (their hold can be released); `expiring` and `lapsing` end 3 hours in.
      const issue = (validForMs?: number) =>
        fixture.issue("phone-auth", 0, { from: t0, ...(validForMs ? { validForMs } : {}) });
      const certs = {
        revoked: await issue(),
        held: await issue(),
        expiring: await issue(3 * HOUR),
        lapsing: await issue(3 * HOUR),
      };
      const files = Object.fromEntries(
        Object.entries(certs).map(([name, cert]) => [name, certFile(name, cert)]),
      ) as Record<keyof typeof certs, string>;
      const serials = Object.fromEntries(
        Object.entries(certs).map(([name, cert]) => [name, cert.serial]),
      ) as Record<keyof typeof certs, string>;

      /** The status `openssl ocsp` reads for one certificate, asked by POST with the verifier's token. */
      const ocsp = async (file: string) => {
        const result = await run("openssl", [
          "ocsp",
          "-issuer",
          caFile,
          "-cert",
          file,
          "-url",
          `${url}/ocsp`,
          "-header",
          `Authorization=Bearer ${verifier.token}`,
          "-CAfile",
          caFile,
          "-no-CApath",
          "-no-CAstore",
          "-validity_period",
          String(5 * 3600),
        ]);
        assert.equal(result.code, 0, result.out);
        assert.match(result.out, /Response verify OK/);
        const match = /\.pem: (good|revoked|unknown)\n((?:\t.*\n?)*)/.exec(result.out);
        assert.ok(match, result.out);
        const reason = /\tReason: (\w+)/.exec(match[2] ?? "")?.[1];
        return `${match[1]}${reason ? `/${reason}` : ""}`;
      };
      /** A CRL downloaded from the server as a verifier would, with its token. */
      const download = async (kind: "full" | "delta") => {
        const response = await fetch(`${url}/crl/auth/0${kind === "delta" ? "-delta" : ""}.crl`, {
          headers: { authorization: `Bearer ${verifier.token}` },
        });
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-type"), "application/pkix-crl");
        return Buffer.from(await response.arrayBuffer());
      };
      /** `openssl verify -crl_check` of a certificate at the simulated time, with the served CRLs. */
      const verify = async (file: string, withDelta: boolean) => {
        const crls = [await download("full"), ...(withDelta ? [await download("delta")] : [])];
        const crlFile = join(dir, "crls.pem");
        writeFileSync(crlFile, crls.map((c) => pemEncode(c, "X509 CRL")).join(""));
        const result = await run("openssl", [
          "verify",
          "-no-CApath",
          "-no-CAstore",
          "-CAfile",
          caFile,
          "-attime",
          String(Math.floor(clock.getTime() / 1000)),
          "-crl_check",
          ...(withDelta ? ["-extended_crl", "-use_deltas"] : []),
          "-CRLfile",
          crlFile,
          file,
        ]);
        if (result.code === 0) return "ok";
        return /certificate revoked/.test(result.out) ? "revoked" : result.out;
      };
      const publish = async (full = false) => publishCrls(authority, { now: clock, full });

      // Issued: good on OCSP, accepted with the CRL.
      at(MINUTE);
      await publish(true);
      assert.equal(await ocsp(files.revoked), "good");
      assert.equal(await ocsp(files.held), "good");
      assert.equal(await verify(files.revoked, true), "ok");

      // Revoked (key compromise): OCSP says so at once; the next delta CRL too.
      await revokeCertificate(db, serials.revoked, {
        actor,
        reason: CrlReason.keyCompromise,
        now: at(2 * MINUTE),
      });
      assert.equal(await ocsp(files.revoked), "revoked/keyCompromise");
      at(3 * MINUTE);
      await publish();
      assert.equal(await verify(files.revoked, true), "revoked");
      assert.equal(crlEntries(await download("delta")).get(serials.revoked), CrlReason.keyCompromise);

      // Held (一時利用停止): revoked with certificateHold on both channels.
      await suspendCertificate(db, serials.held, { actor, now: at(4 * MINUTE) });
      assert.equal(await ocsp(files.held), "revoked/certificateHold");
      at(5 * MINUTE);
      await publish();
      assert.equal(crlEntries(await download("delta")).get(serials.held), CrlReason.certificateHold);
      assert.equal(await verify(files.held, true), "revoked");
      at(5 * MINUTE + 30_000);
      await publish(true);
      assert.equal(crlEntries(await download("full")).get(serials.held), CrlReason.certificateHold);
      assert.equal(await verify(files.held, false), "revoked");

      // Released: good again; the delta says removeFromCRL, the next complete CRL drops the entry.
      await resumeCertificate(db, serials.held, { actor, policies: DEFAULT_POLICIES, now: at(6 * MINUTE) });
      assert.equal(await ocsp(files.held), "good");
      at(7 * MINUTE);
      await publish();
      assert.equal(crlEntries(await download("delta")).get(serials.held), CrlReason.removeFromCRL);
      assert.equal(crlEntries(await download("full")).get(serials.held), CrlReason.certificateHold);
      assert.equal(await verify(files.held, true), "ok");
      at(8 * MINUTE);
      await publish(true);
      assert.deepEqual([...crlEntries(await download("full")).keys()], [serials.revoked]);
      assert.equal(await verify(files.held, false), "ok");

      // `expiring` is revoked before its notAfter; `lapsing` simply reaches it.
      await revokeCertificate(db, serials.expiring, {
        actor,
        reason: CrlReason.cessationOfOperation,
        now: at(9 * MINUTE),
      });
      assert.equal(await ocsp(files.expiring), "revoked/cessationOfOperation");
      at(10 * MINUTE);
      await publish(true);
      assert.deepEqual(
        [...crlEntries(await download("full")).keys()].sort(),
        [serials.revoked, serials.expiring].sort(),
      );

      // Past notAfter: the job marks `lapsing` expired (the revoked one stays revoked); OCSP never
      // answers good for it, and keeps the revocation of the other.
      assert.equal(await expireCertificates(db, { actor, now: at(3 * HOUR + MINUTE) }), 1);
      assert.equal(await ocsp(files.lapsing), "unknown");
      assert.equal(await ocsp(files.expiring), "revoked/cessationOfOperation");
      // The first complete CRL after notAfter still lists the expired revoked certificate...
      at(3 * HOUR + 2 * MINUTE);
      await publish(true);
      assert.ok(crlEntries(await download("full")).has(serials.expiring));
      // ...one period later it has left; the certificate still valid stays listed.
      at(4 * HOUR);
      await publish(true);
      assert.deepEqual([...crlEntries(await download("full")).keys()], [serials.revoked]);
      assert.equal(await verify(files.revoked, true), "revoked");
    } finally {
      try {
        await service.close();
      } finally {
        await fixture.close();
      }
    }
  });
});
