/**
 * The CRL publisher on both databases, with certificates issued by a real authority and revoked, held
 * and released through the lifecycle: every shard's CRLs are checked by OpenSSL (signature, revocation
 * check, deltas) and GnuTLS, and read back with @peculiar/asn1-x509 for the entry rules (retention
 * after expiry, CRL numbers, what is signed again and what is kept).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { CrlReason } from "../pki/crl.js";
import { pemEncode } from "../pki/pem.js";
import { crlUrl } from "../pki/profiles.js";
import {
  expireCertificates,
  resumeCertificate,
  revokeCertificate,
  suspendCertificate,
} from "../registry/lifecycle.js";
import { crlEntries } from "../testing/crl-entries.js";
import { forEachDialect } from "../testing/dialects.js";
import { runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import {
  CRL_PERIOD_SETTINGS,
  crlPath,
  crlPeriods,
  type PublishReport,
  parseCrlPath,
  publishCrls,
  readPublishedCrl,
  startCrlScheduler,
  untilNextRefresh,
} from "./crl.js";
import { type CrlFixture, type IssuedFixtureCertificate, openCrlFixture } from "./crl-fixture.js";
import { changeWatermark, replaceShardCrls } from "./crl-registry.js";

const actor = "test";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Times of the scenarios: far enough in the past that CRLs made "later" are still current for OpenSSL. */
const t0 = () => new Date(Date.now() - 30 * MINUTE);
const at = (base: Date, ms: number) => new Date(base.getTime() + ms);

async function crlOf(fixture: CrlFixture, issuer: "sign" | "auth", shard: number, kind: "full" | "delta") {
  const crl = await readPublishedCrl(fixture.authority.registry.db, issuer, shard, kind);
  assert.ok(crl, `${issuer} shard ${shard} ${kind} CRL published`);
  return crl;
}

/**
 * `openssl verify -crl_check` of a certificate with its CA trusted and the given CRLs. `deltas` adds
 * `-extended_crl -use_deltas`; `base-only` adds `-extended_crl` alone. OpenSSL needs -extended_crl to
 * tell a delta from a complete CRL at all (docs/crl.md): see the last checks of the delta test.
 */
function opensslVerify(
  fixture: CrlFixture,
  cert: IssuedFixtureCertificate,
  crls: Buffer[],
  mode: "plain" | "deltas" | "base-only" = "plain",
) {
  return withTempDir((dir) => {
    const ca = writeCertificate(dir, "ca", fixture.authority.certificates[cert.issuer]);
    const leaf = writeCertificate(dir, "leaf", cert.der);
    const crlFile = join(dir, "crls.pem");
    writeFileSync(crlFile, crls.map((c) => pemEncode(c, "X509 CRL")).join(""));
    const args = ["verify", "-no-CApath", "-no-CAstore", "-CAfile", ca.pem, "-crl_check"];
    if (mode !== "plain") args.push("-extended_crl");
    if (mode === "deltas") args.push("-use_deltas");
    const result = runTool("openssl", [...args, "-CRLfile", crlFile, leaf.pem]);
    return { ok: result.code === 0, output: result.stdout + result.stderr };
  });
}

const revokedInOutput = (output: string) => /certificate revoked/.test(output);

test("CRL paths: the certificates' distribution points, and nothing else parses", () => {
  assert.equal(
    `http://127.0.0.1:8080/${crlPath("auth", 5, "full")}`,
    crlUrl("http://127.0.0.1:8080", "auth", 5),
  );
  assert.equal(crlPath("sign", 0, "delta"), "crl/sign/0-delta.crl");
  assert.deepEqual(parseCrlPath("/crl/auth/63-delta.crl"), { purpose: "auth", shard: 63, kind: "delta" });
  assert.deepEqual(parseCrlPath("crl/sign/0.crl"), { purpose: "sign", shard: 0, kind: "full" });
  for (const bad of [
    "/crl/sim-maker/0.crl",
    "/crl/auth/01.crl",
    "/crl/auth/-1.crl",
    "/crl/auth/5.der",
    "/crl/auth/5",
  ])
    assert.equal(parseCrlPath(bad), undefined, bad);
});

test("the next refresh is half a period before the earliest nextUpdate", () => {
  const crl = (nextUpdate: string) => ({
    crlNumber: 1,
    baseCrlNumber: null,
    changeSequence: 0,
    thisUpdate: "",
    nextUpdate,
    entries: 0,
    bytes: 0,
    signed: true,
  });
  const report: PublishReport = {
    changeSequence: 0,
    periods: { fullMs: 24 * HOUR, deltaMs: HOUR },
    signed: 0,
    shards: [
      {
        issuer: "auth",
        shard: 0,
        full: crl("2030-01-02T00:00:00.000Z"),
        delta: crl("2030-01-01T01:00:00.000Z"),
      },
      {
        issuer: "auth",
        shard: 1,
        full: crl("2030-01-01T18:00:00.000Z"),
        delta: crl("2030-01-01T02:00:00.000Z"),
      },
    ],
  };
  assert.equal(untilNextRefresh(report, Date.parse("2030-01-01T00:00:00.000Z")), 30 * MINUTE);
});

forEachDialect((_dialect, open) => {
  /** A fresh authority on this dialect's database, with `shards` CRL shards. */
  async function fixtureOn(shards = 2): Promise<CrlFixture> {
    const database = await open({ migrate: false });
    await database.close();
    return openCrlFixture(database.url, shards);
  }

  test("every shard's complete and delta CRL verifies with OpenSSL and GnuTLS; revoked and held certificates are refused", async () => {
    const fixture = await fixtureOn();
    try {
      const { db } = fixture.authority.registry;
      const start = t0();
      const good = await fixture.issue("card-auth", 0, { from: start });
      const revoked = await fixture.issue("card-auth", 0, { from: start });
      const held = await fixture.issue("phone-auth", 0, { from: start });
      const revokedOtherShard = await fixture.issue("card-auth", 1, { from: start });
      const revokedSign = await fixture.issue("card-sign", 1, { from: start });
      await revokeCertificate(db, revoked.serial, {
        actor,
        reason: CrlReason.keyCompromise,
        invalidityDate: at(start, -MINUTE),
        now: start,
      });
      await suspendCertificate(db, held.serial, { actor, now: start });
      await revokeCertificate(db, revokedOtherShard.serial, {
        actor,
        reason: CrlReason.superseded,
        now: start,
      });
      await revokeCertificate(db, revokedSign.serial, {
        actor,
        reason: CrlReason.affiliationChanged,
        now: start,
      });

      const report = await publishCrls(fixture.authority, { now: at(start, MINUTE) });
      assert.equal(report.signed, 2 * 2 * 2, "two CAs, two shards, complete and delta");
      for (const shard of report.shards) {
        assert.deepEqual([shard.full.crlNumber, shard.delta.crlNumber, shard.delta.baseCrlNumber], [1, 2, 1]);
        assert.equal(shard.full.changeSequence, report.changeSequence);
      }

      const published = await Promise.all(
        report.shards.flatMap((s) =>
          (["full", "delta"] as const).map((kind) => crlOf(fixture, s.issuer, s.shard, kind)),
        ),
      );
      assert.equal(published.length, 8);
      withTempDir((dir) => {
        const cas = {
          sign: writeCertificate(dir, "sign-ca", fixture.authority.certificates.sign).pem,
          auth: writeCertificate(dir, "auth-ca", fixture.authority.certificates.auth).pem,
        };
        for (const crl of published) {
          const file = join(dir, `${crl.issuer}-${crl.shard}-${crl.kind}`);
          writeFileSync(`${file}.der`, crl.der);
          const checked = runTool("openssl", [
            "crl",
            "-inform",
            "DER",
            "-in",
            `${file}.der`,
            "-CAfile",
            cas[crl.issuer],
            "-noout",
            "-verify",
          ]);
          assert.equal(checked.code, 0, checked.stderr);
          assert.match(checked.stderr, /verify OK/);
          writeFileSync(`${file}.pem`, pemEncode(crl.der, "X509 CRL"));
          const info = runTool("certtool", ["--crl-info", "--infile", `${file}.pem`]);
          assert.equal(info.code, 0, info.stderr);
          assert.match(
            info.stdout,
            crl.entries ? new RegExp(`Revoked certificates \\(${crl.entries}\\)`) : /No revoked certificates/,
          );
        }
      });

      const shard0 = await crlOf(fixture, "auth", 0, "full");
      assert.deepEqual(
        crlEntries(shard0.der),
        new Map([
          [revoked.serial, CrlReason.keyCompromise],
          [held.serial, CrlReason.certificateHold],
        ]),
      );
      assert.deepEqual(
        crlEntries((await crlOf(fixture, "auth", 1, "full")).der),
        new Map([[revokedOtherShard.serial, CrlReason.superseded]]),
      );
      assert.deepEqual(
        crlEntries((await crlOf(fixture, "sign", 1, "full")).der),
        new Map([[revokedSign.serial, CrlReason.affiliationChanged]]),
      );
      assert.equal(crlEntries((await crlOf(fixture, "sign", 0, "full")).der).size, 0);

      const refused = opensslVerify(fixture, revoked, [shard0.der]);
      assert.ok(!refused.ok && revokedInOutput(refused.output), refused.output);
      const onHold = opensslVerify(fixture, held, [shard0.der]);
      assert.ok(!onHold.ok && revokedInOutput(onHold.output), onHold.output);
      const accepted = opensslVerify(fixture, good, [shard0.der]);
      assert.ok(accepted.ok, accepted.output);
      const signRefused = opensslVerify(fixture, revokedSign, [
        (await crlOf(fixture, "sign", 1, "full")).der,
      ]);
      assert.ok(!signRefused.ok && revokedInOutput(signRefused.output), signRefused.output);
      // A shard's CRL covers only its own certificates (the IDP names the distribution point).
      const otherScope = opensslVerify(fixture, revokedOtherShard, [shard0.der]);
      assert.ok(!otherScope.ok && /different CRL scope/.test(otherScope.output), otherScope.output);
    } finally {
      await fixture.close();
    }
  });

  test("deltas: a revocation after the complete CRL is refused through the delta, a released hold accepted; numbers increase; unchanged shards are not signed again", async () => {
    const fixture = await fixtureOn();
    try {
      const { db } = fixture.authority.registry;
      const start = t0();
      const later = await fixture.issue("card-auth", 0, { from: start });
      const held = await fixture.issue("phone-auth", 0, { from: start });
      const good = await fixture.issue("card-auth", 0, { from: start });
      await suspendCertificate(db, held.serial, { actor, now: start });
      const first = await publishCrls(fixture.authority, { now: at(start, MINUTE) });
      const base = await crlOf(fixture, "auth", 0, "full");

      // Nothing changed: nothing is signed again, and the stored bytes stay.
      const quiet = await publishCrls(fixture.authority, { now: at(start, 2 * MINUTE) });
      assert.equal(quiet.signed, 0);
      assert.ok(quiet.shards.every((s) => !s.full.signed && !s.delta.signed));
      assert.deepEqual((await crlOf(fixture, "auth", 0, "full")).der, base.der);
      assert.deepEqual(
        quiet.shards,
        first.shards.map((s) => ({
          ...s,
          full: { ...s.full, signed: false },
          delta: { ...s.delta, signed: false },
        })),
      );

      // A revocation: only its shard's delta is signed, with the next number, on the same base.
      await revokeCertificate(db, later.serial, {
        actor,
        reason: CrlReason.superseded,
        now: at(start, 3 * MINUTE),
      });
      const afterRevocation = await publishCrls(fixture.authority, { now: at(start, 4 * MINUTE) });
      assert.equal(afterRevocation.signed, 1);
      const changed = afterRevocation.shards.find((s) => s.delta.signed)!;
      assert.deepEqual([changed.issuer, changed.shard, changed.full.signed], ["auth", 0, false]);
      assert.deepEqual([changed.delta.crlNumber, changed.delta.baseCrlNumber], [3, 1]);
      const delta3 = await crlOf(fixture, "auth", 0, "delta");
      assert.deepEqual(crlEntries(delta3.der), new Map([[later.serial, CrlReason.superseded]]));

      writeFileSync("/tmp/dbg-base.der", base.der);
      writeFileSync("/tmp/dbg-delta.der", delta3.der);
      writeFileSync("/tmp/dbg-later.der", later.der);
      writeFileSync("/tmp/dbg-held.der", held.der);
      writeFileSync("/tmp/dbg-ca.der", fixture.authority.certificates.auth);
      const withoutDeltas = opensslVerify(fixture, later, [base.der, delta3.der], "base-only");
      assert.ok(
        withoutDeltas.ok,
        `the complete CRL alone does not know the revocation: ${withoutDeltas.output}`,
      );
      const viaDelta = opensslVerify(fixture, later, [base.der, delta3.der], "deltas");
      assert.ok(!viaDelta.ok && revokedInOutput(viaDelta.output), viaDelta.output);

      // The hold is released: the next delta says removeFromCRL, and OpenSSL accepts it again.
      await resumeCertificate(db, held.serial, {
        actor,
        policies: fixture.authority.policies,
        now: at(start, 5 * MINUTE),
      });
      const afterRelease = await publishCrls(fixture.authority, { now: at(start, 6 * MINUTE) });
      assert.equal(afterRelease.signed, 1);
      const delta4 = await crlOf(fixture, "auth", 0, "delta");
      assert.deepEqual([delta4.crlNumber, delta4.baseCrlNumber], [4, 1]);
      assert.deepEqual(
        crlEntries(delta4.der),
        new Map([
          [later.serial, CrlReason.superseded],
          [held.serial, CrlReason.removeFromCRL],
        ]),
      );
      assert.ok(!opensslVerify(fixture, held, [base.der]).ok, "still held in the complete CRL");
      const released = opensslVerify(fixture, held, [base.der, delta4.der], "deltas");
      assert.ok(released.ok, released.output);
      assert.ok(!opensslVerify(fixture, later, [base.der, delta4.der], "deltas").ok);
      assert.ok(opensslVerify(fixture, good, [base.der, delta4.der], "deltas").ok);

      // The peer's pitfall that docs/crl.md warns about: without -extended_crl, OpenSSL 3.0 scores a
      // delta like a complete CRL and prefers the newer one, so the delta alone decides. Before the
      // release, the held certificate (listed in the complete CRL only) passes, with or without
      // -use_deltas; -extended_crl makes OpenSSL combine them as RFC 5280 §5.2.4 says.
      const stillHeld = [base.der, delta3.der];
      assert.ok(
        opensslVerify(fixture, held, stillHeld).ok,
        "OpenSSL without -extended_crl misreads the delta",
      );
      assert.ok(!opensslVerify(fixture, held, stillHeld, "deltas").ok);
    } finally {
      await fixture.close();
    }
  });

  test("periods: deltas are signed again after half their period, complete CRLs after half theirs; settings change them", async () => {
    const fixture = await fixtureOn(1);
    try {
      const start = t0();
      const first = await publishCrls(fixture.authority, { now: start });
      assert.equal(
        first.shards[0]!.full.nextUpdate,
        new Date(Math.floor(start.getTime() / 1000) * 1000 + 24 * HOUR).toISOString(),
      );
      assert.equal((await publishCrls(fixture.authority, { now: at(start, 29 * MINUTE) })).signed, 0);
      const deltas = await publishCrls(fixture.authority, { now: at(start, 31 * MINUTE) });
      assert.deepEqual(
        deltas.shards.map((s) => [s.full.signed, s.delta.signed, s.delta.crlNumber]),
        [
          [false, true, 3],
          [false, true, 3],
        ],
      );
      const full = await publishCrls(fixture.authority, { now: at(start, 12 * HOUR) });
      assert.deepEqual(
        full.shards.map((s) => [s.full.signed, s.full.crlNumber, s.delta.crlNumber, s.delta.baseCrlNumber]),
        [
          [true, 4, 5, 4],
          [true, 4, 5, 4],
        ],
      );
      // `full` signs complete CRLs again whatever their age.
      const forced = await publishCrls(fixture.authority, { now: at(start, 12 * HOUR + MINUTE), full: true });
      assert.equal(forced.signed, 4);

      await fixture.authority.registry.setSetting(CRL_PERIOD_SETTINGS.deltaMs, "600", actor);
      assert.deepEqual(await crlPeriods(fixture.authority), { fullMs: 24 * HOUR, deltaMs: 10 * MINUTE });
      assert.deepEqual(await crlPeriods(fixture.authority, { fullMs: 2 * HOUR }), {
        fullMs: 2 * HOUR,
        deltaMs: 10 * MINUTE,
      });
      await assert.rejects(crlPeriods(fixture.authority, { deltaMs: 25 * HOUR }), /not be longer/);
      await assert.rejects(crlPeriods(fixture.authority, { fullMs: 1500 }), /at least 60/);
    } finally {
      await fixture.close();
    }
  });

  test("retention: a revoked or held certificate stays until one complete CRL issued after its notAfter has listed it", async () => {
    const fixture = await fixtureOn(1);
    try {
      const { db } = fixture.authority.registry;
      const start = t0();
      // Both certificates expire one hour after `start`.
      const revoked = await fixture.issue("card-auth", 0, { from: start, validForMs: HOUR });
      const held = await fixture.issue("phone-auth", 0, { from: start, validForMs: HOUR });
      const lasting = await fixture.issue("card-auth", 0, { from: start });
      // Expires after 100 minutes, and is revoked only after that, before the expiry job reached it.
      const late = await fixture.issue("card-auth", 0, { from: start, validForMs: 100 * MINUTE });
      await revokeCertificate(db, revoked.serial, { actor, reason: CrlReason.keyCompromise, now: start });
      await suspendCertificate(db, held.serial, { actor, now: start });
      await revokeCertificate(db, lasting.serial, { actor, reason: CrlReason.superseded, now: start });
      const listed = async () => [...crlEntries((await crlOf(fixture, "auth", 0, "full")).der).keys()].sort();
      const all = [revoked.serial, held.serial, lasting.serial].sort();

      await publishCrls(fixture.authority, { now: at(start, MINUTE), full: true });
      assert.deepEqual(await listed(), all);
      // The expiry job turns the held certificate into `expired`; the revoked one stays `revoked`.
      assert.equal(await expireCertificates(db, { actor, now: at(start, 90 * MINUTE) }), 1);
      // The first complete CRL after notAfter: the previous one (at +1 min) was made before notAfter,
      // so both stay, the held one because its expiry is a change since that CRL.
      await publishCrls(fixture.authority, { now: at(start, 2 * HOUR), full: true });
      assert.deepEqual(await listed(), all);
      // The next one: the previous complete CRL was issued after notAfter and listed them: they go.
      // A revocation made after notAfter is a change since that CRL: it is listed once all the same.
      await revokeCertificate(db, late.serial, {
        actor,
        reason: CrlReason.superseded,
        now: at(start, 150 * MINUTE),
      });
      await publishCrls(fixture.authority, { now: at(start, 3 * HOUR), full: true });
      assert.deepEqual(await listed(), [lasting.serial, late.serial].sort());
      await publishCrls(fixture.authority, { now: at(start, 4 * HOUR), full: true });
      assert.deepEqual(await listed(), [lasting.serial]);
    } finally {
      await fixture.close();
    }
  });

  test("the change watermark waits for a status change in flight, so no delta can miss it", async () => {
    const fixture = await fixtureOn(1);
    try {
      const { db } = fixture.authority.registry;
      const cert = await fixture.issue("card-auth", 0);
      let inserted!: () => void;
      let commit!: () => void;
      const eventInserted = new Promise<void>((resolve) => {
        inserted = resolve;
      });
      const committing = new Promise<void>((resolve) => {
        commit = resolve;
      });
      let changeSequence = 0;
      const revocation = db.transaction().execute(async (trx) => {
        changeSequence = (await revokeCertificate(trx, cert.serial, { actor, reason: CrlReason.superseded }))
          .changeSequence;
        inserted();
        await committing;
      });
      await eventInserted;
      let watermark: number | undefined;
      const reading = changeWatermark(db).then((value) => {
        watermark = value;
      });
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(watermark, undefined, "the watermark is not read while a change is uncommitted");
      } finally {
        commit();
        await Promise.all([revocation, reading]);
      }
      assert.ok(watermark! >= changeSequence, `${watermark} covers change ${changeSequence}`);
    } finally {
      await fixture.close();
    }
  });

  test("a CRL that does not verify after signing is not published", async () => {
    const fixture = await fixtureOn(1);
    try {
      const { authority } = fixture;
      const real = authority.signers.auth;
      const faulty = {
        async signCrl(tbs: Buffer) {
          const der = await real.signCrl(tbs);
          der[der.length - 1]! ^= 1; // a device that returns a damaged signature
          return der;
        },
      };
      const broken = {
        ...authority,
        signers: { ...authority.signers, auth: faulty as unknown as typeof real },
      };
      await assert.rejects(
        publishCrls(broken, { issuers: ["auth"] }),
        (error: unknown) => error instanceof JpkiError && /does not verify/.test(error.message),
      );
      assert.equal(await readPublishedCrl(authority.registry.db, "auth", 0, "full"), undefined);
      assert.equal((await publishCrls(authority, { issuers: ["auth"] })).signed, 2);
    } finally {
      await fixture.close();
    }
  });

  test("two publishers at once: each shard is signed by one of them, numbers are never reused", async () => {
    const fixture = await fixtureOn();
    try {
      const start = t0();
      await fixture.issue("card-auth", 0, { from: start });
      const [a, b] = await Promise.all([
        publishCrls(fixture.authority, { now: start }),
        publishCrls(fixture.authority, { now: at(start, 1000) }),
      ]);
      for (let i = 0; i < a.shards.length; i++) {
        const [x, y] = [a.shards[i]!, b.shards[i]!];
        assert.equal(Number(x.full.signed) + Number(y.full.signed), 1, `${x.issuer} ${x.shard} signed once`);
        assert.deepEqual(x, {
          ...y,
          full: { ...y.full, signed: x.full.signed },
          delta: { ...y.delta, signed: x.delta.signed },
        });
        const stored = await crlOf(fixture, x.issuer, x.shard, "full");
        assert.deepEqual([stored.crlNumber, stored.thisUpdate], [x.full.crlNumber, x.full.thisUpdate]);
      }
      // A publisher that read an older CRL number writes nothing.
      const { db } = fixture.authority.registry;
      const before = await crlOf(fixture, "auth", 0, "full");
      const stale = { issuer: "auth", shard: 0, kind: "full", crl_number: 2, base_crl_number: null } as const;
      const row = {
        ...stale,
        change_sequence: 0,
        this_update: "",
        next_update: "",
        entries: 0,
        der: Buffer.alloc(1),
      };
      assert.equal(await replaceShardCrls(db, "auth", 0, 0, [row]), false);
      assert.deepEqual(await crlOf(fixture, "auth", 0, "full"), before);
    } finally {
      await fixture.close();
    }
  });

  test("the scheduler publishes at start and on demand after a status change, then stops", async () => {
    const fixture = await fixtureOn(1);
    try {
      const reports: PublishReport[] = [];
      let firstRun!: () => void;
      const started = new Promise<void>((resolve) => {
        firstRun = resolve;
      });
      const scheduler = startCrlScheduler(fixture.authority, {
        intervalMs: HOUR,
        onPublished: (report) => {
          reports.push(report);
          firstRun();
        },
        onError: (error) => assert.fail(String(error)),
      });
      await started;
      assert.equal(reports[0]!.signed, 4);
      const cert = await fixture.issue("card-auth", 0);
      await revokeCertificate(fixture.authority.registry.db, cert.serial, {
        actor,
        reason: CrlReason.superseded,
      });
      // A request made during a run is served by a run after it (the change may have come too late for
      // the first); requests made meanwhile share that run.
      const [x, y] = await Promise.all([scheduler.publishNow(), scheduler.publishNow()]);
      assert.equal(x.signed + y.signed, 1);
      assert.deepEqual(
        crlEntries((await crlOf(fixture, "auth", 0, "delta")).der),
        new Map([[cert.serial, CrlReason.superseded]]),
      );
      await scheduler.stop();
      await assert.rejects(scheduler.publishNow(), /stopped/);
    } finally {
      await fixture.close();
    }
  });
});
