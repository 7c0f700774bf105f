/**
 * The responder against the registry, without HTTP: which status each certificate gets, when a
 * pre-signed answer is reused and when it must not be, and what is refused. Answers are read back by
 * `openssl ocsp` (signature, statuses, reasons, nonce).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { JpkiError, SignerUnavailableError } from "../errors.js";
import { parseCertificate } from "../pki/certificate.js";
import { CrlReason } from "../pki/crl.js";
import { explicit, octetString, sequence } from "../pki/der.js";
import { extension } from "../pki/extensions.js";
import { ocspCertId, parseOcspRequest } from "../pki/ocsp.js";
import { OID_PKIX_OCSP_NONCE } from "../pki/oids.js";
import type { RegistryDialect } from "../registry/db.js";
import {
  DEFAULT_POLICIES,
  expireCertificates,
  resumeCertificate,
  revokeCertificate,
  suspendCertificate,
} from "../registry/lifecycle.js";
import type { Verifier } from "../registry/verifiers.js";
import { forEachDialect, type OpenTestDatabase } from "../testing/dialects.js";
import { runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { type OcspAnswer, OcspResponder } from "./ocsp.js";
import { openOcspSandbox } from "./ocsp-fixture.js";
import { OcspRefresher } from "./ocsp-refresher.js";

const both: Verifier = { id: "v-both", name: "both", kind: "both" };
const authOnly: Verifier = { id: "v-auth", name: "auth", kind: "auth" };
const actor = "test";

/** An OCSPRequest (RFC 6960 §4.1.1) for the CertIDs, with a nonce extension when given, parsed. */
function request(certIds: Buffer[], nonce?: Buffer) {
  const tbs = [sequence(...certIds.map((id) => sequence(id)))];
  if (nonce) tbs.push(explicit(2, sequence(extension(OID_PKIX_OCSP_NONCE, false, octetString(nonce)))));
  return parseOcspRequest(sequence(sequence(...tbs)));
}

/** OpenSSL's reading of an answer: verified against the CA, and each certificate's status/reason. */
function opensslReads(
  answer: OcspAnswer,
  ca: Buffer,
): { verified: boolean; statuses: string[]; text: string } {
  return withTempDir((dir) => {
    writeFileSync(join(dir, "resp.der"), answer.der);
    const { pem } = writeCertificate(dir, "ca", ca);
    const result = runTool("openssl", [
      "ocsp",
      "-respin",
      join(dir, "resp.der"),
      "-resp_text",
      "-CAfile",
      pem,
      "-no-CApath",
      "-no-CAstore",
    ]);
    const statuses = [
      ...result.stdout.matchAll(
        /Cert Status: (\w+)(?:\n\s+Revocation Time: [^\n]+\n\s+Revocation Reason: (\w+))?/g,
      ),
    ].map((m) => `${m[1]}${m[2] ? `/${m[2]}` : ""}`);
    return {
      verified: /Response verify OK/.test(result.stderr),
      statuses,
      text: result.stdout + result.stderr,
    };
  });
}

async function sandboxOn(dialect: RegistryDialect, open: OpenTestDatabase) {
  const database = await open({ migrate: false });
  await database.close();
  // PostgreSQL: the test's own schema; SQLite: the data directory's file, as `ca init` makes it.
  const sandbox = await openOcspSandbox(dialect === "postgres" ? database.url : undefined);
  const ca = (issuer: "auth" | "sign") => parseCertificate(sandbox.authority.certificates[issuer]);
  const certId = (issuer: "auth" | "sign", serial: string, hash: "sha1" | "sha256" = "sha1") =>
    ocspCertId(ca(issuer).subjectDer, ca(issuer).spki, Buffer.from(serial, "hex"), hash);
  return { ...sandbox, certId, db: sandbox.authority.registry.db };
}

forEachDialect((dialect, open) => {
  test("statuses: good, revoked with reason, held, released, unknown, expired; checked by OpenSSL", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const responder = OcspResponder.forAuthority(s.authority);
      const [good, revoked, held, expiredGood, expiredRevoked] = await s.issue("auth", 5);
      const [released] = await s.issue("auth", 1, "sim"); // a phone's hold can be released
      const unregistered = await s.unregistered();
      await revokeCertificate(s.db, revoked!.serial, { actor, reason: CrlReason.keyCompromise });
      await suspendCertificate(s.db, held!.serial, { actor });
      await suspendCertificate(s.db, released!.serial, { actor });
      await resumeCertificate(s.db, released!.serial, { actor, policies: DEFAULT_POLICIES });
      await revokeCertificate(s.db, expiredRevoked!.serial, { actor, reason: CrlReason.superseded });
      // Two certificates reach their notAfter in the registry and the expiry job runs.
      await s.db
        .updateTable("certificates")
        .set({ not_after: "2020-01-01T00:00:00.000Z" })
        .where("serial", "in", [expiredGood!.serial, expiredRevoked!.serial])
        .execute();
      // Past notAfter is never good, even before the job writes `expired`.
      const beforeJob = await responder.answer(request([s.certId("auth", expiredGood!.serial)]), both);
      assert.deepEqual(beforeJob.certStatuses, ["unknown"]);
      assert.equal(await expireCertificates(s.db, { actor }), 1); // the revoked one stays revoked
      const serials = [good, revoked, held, released, unregistered, expiredGood, expiredRevoked].map(
        (c) => c!.serial,
      );

      // All in one request (signed for it), then each alone (the pre-signed path): the same statuses.
      const expected = [
        "good",
        "revoked/keyCompromise",
        "revoked/certificateHold",
        "good",
        "unknown",
        "unknown",
        "revoked/superseded",
      ];
      const all = await responder.answer(request(serials.map((serial) => s.certId("auth", serial))), both);
      assert.equal(all.responseStatus, "successful");
      assert.deepEqual(all.certStatuses, [
        "good",
        "revoked",
        "held",
        "good",
        "unknown",
        "unknown",
        "revoked",
      ]);
      assert.equal(all.source, "signed");
      const read = opensslReads(all, s.authority.certificates.auth);
      assert.ok(read.verified, read.text);
      assert.deepEqual(read.statuses, expected);
      for (const [i, serial] of serials.entries()) {
        const one = await responder.answer(request([s.certId("auth", serial)]), authOnly);
        assert.deepEqual(opensslReads(one, s.authority.certificates.auth).statuses, [expected[i]], serial);
      }
      // A revocation keeps the hold's time (RFC 5280 §5.3: the certificate was invalid since then).
      const heldAnswer = opensslReads(
        await responder.answer(request([s.certId("auth", held!.serial)]), both),
        s.authority.certificates.auth,
      );
      assert.match(heldAnswer.text, /This Update: .+\n\s+Next Update: .+/);
    } finally {
      await s.close();
    }
  });

  test("a good answer's nextUpdate stops at the certificate's notAfter; past it, the cached good is not served", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      let clock = new Date();
      const responder = OcspResponder.forAuthority(s.authority, { now: () => clock });
      const [cert] = await s.issue("auth", 1, "sim");
      const notAfter = new Date(Math.floor(clock.getTime() / 1000) * 1000 + 2 * 3_600_000);
      await s.db
        .updateTable("certificates")
        .set({ not_after: notAfter.toISOString() })
        .where("serial", "=", cert!.serial)
        .execute();
      const ask = () => responder.answer(request([s.certId("auth", cert!.serial)]), both);
      const good = await ask();
      assert.deepEqual(good.certStatuses, ["good"]);
      assert.equal(good.cache?.nextUpdate.getTime(), notAfter.getTime());
      assert.match(opensslReads(good, s.authority.certificates.auth).text, /Next Update: .+/);
      clock = new Date(notAfter.getTime() + 1000);
      const after = await ask();
      assert.deepEqual([after.source, after.certStatuses], ["signed", ["unknown"]]);
      assert.ok(after.cache!.nextUpdate.getTime() - clock.getTime() > 3_600_000, "unknown is not capped");
    } finally {
      await s.close();
    }
  });

  test("pre-signed answers: reused from memory and the table, never after a change of the certificate", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const responder = OcspResponder.forAuthority(s.authority);
      const [cert] = await s.issue("auth", 1, "sim");
      const ask = (r = responder) => r.answer(request([s.certId("auth", cert!.serial)]), both);
      const first = await ask();
      assert.deepEqual([first.source, first.certStatuses], ["signed", ["good"]]);
      assert.ok(
        first.cache && first.cache.nextUpdate.getTime() - first.cache.producedAt.getTime() === 24 * 3_600_000,
      );
      const again = await ask();
      assert.equal(again.source, "memory");
      assert.ok(again.der.equals(first.der));
      // Another process on the same database finds the answer in the table.
      const other = OcspResponder.forAuthority(s.authority);
      const fromTable = await ask(other);
      assert.equal(fromTable.source, "table");
      assert.ok(fromTable.der.equals(first.der));
      assert.equal(fromTable.cache?.etag, first.cache?.etag);

      await suspendCertificate(s.db, cert!.serial, { actor });
      const held = await ask();
      assert.deepEqual([held.source, held.certStatuses], ["signed", ["held"]]);
      // The other process's memory holds the old answer: it is not served; the table's new one is.
      const heldElsewhere = await ask(other);
      assert.deepEqual([heldElsewhere.source, heldElsewhere.certStatuses], ["table", ["held"]]);
      await resumeCertificate(s.db, cert!.serial, { actor, policies: DEFAULT_POLICIES });
      assert.deepEqual((await ask()).certStatuses, ["good"]);
      await revokeCertificate(s.db, cert!.serial, { actor, reason: CrlReason.cessationOfOperation });
      const revoked = await ask(other);
      assert.deepEqual([revoked.source, revoked.certStatuses], ["signed", ["revoked"]]);
      assert.equal((await ask(other)).source, "memory");
      const row = await s.db
        .selectFrom("ocsp_responses")
        .selectAll()
        .where("serial", "=", cert!.serial)
        .executeTakeFirstOrThrow();
      assert.equal(row.status, "revoked");
      // A stale answer written late (a slow process) does not replace the newer one.
      await s.db
        .updateTable("ocsp_responses")
        .set({ change_sequence: Number(row.change_sequence) + 1000 })
        .where("serial", "=", cert!.serial)
        .execute();
      assert.equal(
        (
          await OcspResponder.forAuthority(s.authority).answer(
            request([s.certId("auth", cert!.serial)]),
            both,
          )
        ).source,
        "signed",
      );
      const kept = await s.db
        .selectFrom("ocsp_responses")
        .select("change_sequence")
        .where("serial", "=", cert!.serial)
        .executeTakeFirstOrThrow();
      assert.equal(Number(kept.change_sequence), Number(row.change_sequence) + 1000);
    } finally {
      await s.close();
    }
  });

  test("an answer near its nextUpdate is signed again rather than served", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      let now = Date.now();
      const responder = OcspResponder.forAuthority(s.authority, {
        validityMs: 3_600_000,
        now: () => new Date(now),
      });
      const [cert] = await s.issue("auth", 1);
      const ask = () => responder.answer(request([s.certId("auth", cert!.serial)]), both);
      const first = await ask();
      now += 3_600_000 - 60_000; // a minute before its nextUpdate
      const later = await ask();
      assert.equal(later.source, "signed");
      assert.ok(later.cache!.nextUpdate > first.cache!.nextUpdate);
    } finally {
      await s.close();
    }
  });

  test("nonce, SHA-256 CertIDs, and refusals: unauthorized for anything not ours to answer", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const responder = OcspResponder.forAuthority(s.authority);
      const [auth] = await s.issue("auth", 1);
      const [sign] = await s.issue("sign", 1);
      const nonce = Buffer.alloc(16, 0x42);
      const withNonce = await responder.answer(request([s.certId("auth", auth!.serial)], nonce), authOnly);
      assert.deepEqual([withNonce.source, withNonce.cache], ["signed", undefined]);
      assert.ok(withNonce.der.includes(Buffer.concat([Buffer.from("0410", "hex"), nonce])));
      assert.equal(
        (await responder.answer(request([s.certId("auth", auth!.serial)], nonce), both)).source,
        "signed",
      );

      // A SHA-256 CertID is echoed and answered; it is kept in memory, not in the shared table.
      const sha256 = await responder.answer(request([s.certId("auth", auth!.serial, "sha256")]), both);
      assert.deepEqual([sha256.source, sha256.certStatuses], ["signed", ["good"]]);
      assert.equal(
        (await responder.answer(request([s.certId("auth", auth!.serial, "sha256")]), both)).source,
        "memory",
      );
      assert.equal(await s.db.selectFrom("ocsp_responses").select("serial").executeTakeFirst(), undefined);
      const read = opensslReads(sha256, s.authority.certificates.auth);
      assert.ok(read.verified && read.statuses[0] === "good", read.text);

      // The signing CA's certificate under the auth CA's name: not one of its certificates.
      const crossed = await responder.answer(request([s.certId("auth", sign!.serial)]), both);
      assert.deepEqual(crossed.certStatuses, ["unknown"]);

      const unauthorized = async (answer: Promise<OcspAnswer>, why: string) => {
        const a = await answer;
        assert.equal(a.responseStatus, "unauthorized", why);
        assert.equal(a.der.toString("hex"), "30030a0106", why);
      };
      await unauthorized(
        responder.answer(request([s.certId("auth", auth!.serial)]), undefined),
        "no verifier",
      );
      await unauthorized(
        responder.answer(request([s.certId("sign", sign!.serial)]), authOnly),
        "auth-only asks sign",
      );
      await unauthorized(
        responder.answer(request([s.certId("auth", auth!.serial), s.certId("sign", sign!.serial)]), both),
        "two CAs in one request",
      );
      const simMaker = parseCertificate(s.authority.certificates.simMaker);
      await unauthorized(
        responder.answer(
          request([ocspCertId(simMaker.subjectDer, simMaker.spki, Buffer.from(auth!.serial, "hex"))]),
          both,
        ),
        "another issuer",
      );
      // SHA-384 hashes of our CA: a hash this responder does not match.
      const sha384 = sequence(
        sequence(Buffer.from("0609608648016503040202", "hex")),
        octetString(Buffer.alloc(48)),
        octetString(Buffer.alloc(48)),
        Buffer.from(`0210${auth!.serial}`, "hex"),
      );
      await unauthorized(responder.answer(request([sha384]), both), "unknown hash");
      assert.equal(
        (await responder.answerDer(Buffer.from("3003020101", "hex"), both)).responseStatus,
        "malformedRequest",
      );
    } finally {
      await s.close();
    }
  });

  test("a signer failure answers tryLater (device away) or internalError, and shows in health", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const errors: unknown[] = [];
      let failure: Error | undefined;
      const real = s.authority.signers.auth;
      const flaky = { signOcsp: (tbs: Buffer) => (failure ? Promise.reject(failure) : real.signOcsp(tbs)) };
      const responder = new OcspResponder(
        s.db,
        [
          {
            issuer: "auth",
            caCertificate: s.authority.certificates.auth,
            responderCertificate: s.authority.certificates.authOcsp,
            signer: flaky,
          },
        ],
        { onError: (e) => errors.push(e) },
      );
      const [cert] = await s.issue("auth", 1);
      const ask = () => responder.answer(request([s.certId("auth", cert!.serial)], Buffer.alloc(8, 1)), both);
      failure = new SignerUnavailableError("HSM unreachable");
      assert.equal((await ask()).responseStatus, "tryLater");
      assert.equal(responder.healthy(), false);
      assert.match(responder.health()[0]?.lastFailure?.message ?? "", /HSM unreachable/);
      failure = new JpkiError("integrity", "bad signature");
      assert.equal((await ask()).responseStatus, "internalError");
      failure = undefined;
      assert.equal((await ask()).responseStatus, "successful");
      assert.equal(responder.healthy(), true);
      assert.equal(errors.length, 2);
    } finally {
      await s.close();
    }
  });

  test("refresher: the sweep pre-signs every live certificate; a change is re-signed at the next poll", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const responder = OcspResponder.forAuthority(s.authority);
      // Polls only when asked here (pollOnce), so the test sees each one's work.
      const refresher = new OcspRefresher(responder, s.db, {
        batchSize: 4,
        pollIntervalMs: 3_600_000,
        sweepOnStart: false,
      });
      const certs = await s.issue("auth", 9);
      await revokeCertificate(s.db, certs[8]!.serial, { actor, reason: CrlReason.keyCompromise });
      const live = await s.db
        .selectFrom("certificates")
        .select("serial")
        .where("issuer", "in", ["auth", "sign"])
        .where("status", "in", ["issued", "revoked"])
        .execute();
      // CA roots, responders and the nine: everything the two JPKI CAs issued (not the SIM maker's).
      assert.equal(await refresher.sweepOnce(), live.length);
      assert.equal(await refresher.sweepOnce(), 0, "a second pass finds nothing to do");
      const stored = await s.db.selectFrom("ocsp_responses").select(["serial", "status"]).execute();
      assert.equal(stored.length, live.length);
      assert.equal(stored.find((r) => r.serial === certs[8]!.serial)?.status, "revoked");

      await refresher.start();
      try {
        assert.equal(
          (await responder.answer(request([s.certId("auth", certs[0]!.serial)]), both)).source,
          "table",
        );
        assert.equal(
          (await responder.answer(request([s.certId("auth", certs[0]!.serial)]), both)).source,
          "memory",
        );
        await suspendCertificate(s.db, certs[0]!.serial, { actor });
        assert.equal(await refresher.pollOnce(), 1);
        const held = await responder.answer(request([s.certId("auth", certs[0]!.serial)]), both);
        assert.deepEqual([held.source, held.certStatuses], ["memory", ["held"]]);
        assert.equal(await refresher.pollOnce(), 0);
      } finally {
        await refresher.stop();
      }
    } finally {
      await s.close();
    }
  });

  test("refresher: an event committed after a later one was read (out of order) is still handled", async () => {
    const s = await sandboxOn(dialect, open);
    try {
      const responder = OcspResponder.forAuthority(s.authority);
      const refresher = new OcspRefresher(responder, s.db, {
        sweepIntervalMs: 3_600_000,
        pollIntervalMs: 3_600_000,
        sweepOnStart: false,
      });
      const [a, b] = await s.issue("auth", 2);
      await refresher.sweepOnce();
      await refresher.start();
      try {
        const cursor = refresher.state.cursor;
        // What two PostgreSQL transactions can do: id cursor+2 commits, then cursor+1.
        const event = (id: number, serial: string) => ({
          id,
          serial,
          event: "suspend",
          from_status: "issued",
          to_status: "suspended",
          reason: "6",
          actor,
          at: new Date().toISOString(),
        });
        const hold = (serial: string) =>
          s.db
            .updateTable("certificates")
            .set({
              status: "suspended",
              revoked_at: new Date().toISOString(),
              revocation_reason: CrlReason.certificateHold,
            })
            .where("serial", "=", serial)
            .execute();
        await hold(b!.serial);
        await s.db
          .insertInto("lifecycle_events")
          .values(event(cursor + 2, b!.serial))
          .execute();
        assert.equal(await refresher.pollOnce(), 1);
        assert.equal(refresher.state.cursor, cursor + 2);
        await hold(a!.serial);
        await s.db
          .insertInto("lifecycle_events")
          .values(event(cursor + 1, a!.serial))
          .execute();
        assert.equal(await refresher.pollOnce(), 1, "the late event is found among the remembered gaps");
        const stored = await s.db
          .selectFrom("ocsp_responses")
          .select(["serial", "status"])
          .where("serial", "in", [a!.serial, b!.serial])
          .execute();
        assert.deepEqual(
          stored.map((r) => r.status),
          ["held", "held"],
        );
      } finally {
        await refresher.stop();
      }
    } finally {
      await s.close();
    }
  });
});
