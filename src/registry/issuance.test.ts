import { strict as assert } from "node:assert";
import { sign, X509Certificate } from "node:crypto";
import { test } from "node:test";
import { sql } from "kysely";
import { JpkiError, SignerUnavailableError } from "../errors.js";
import { assembleSigned, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { randomSerial, shardOf } from "../pki/serial.js";
import { forEachDialect } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import {
  type CertificateSigner,
  DEFAULT_SHARDS,
  getCertificate,
  issueCertificate,
  issueCertificates,
  listCertificates,
  recoverInterruptedIssuances,
  SHARD_SETTING,
} from "./issuance.js";
import { DEFAULT_POLICIES } from "./lifecycle.js";
import { Registry } from "./registry.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";

const key = await generateTestKey();
const policies = DEFAULT_POLICIES;

/** What a deterministic RSA signer makes of this TBS. */
function expectedCertificate(tbs: Buffer): Buffer {
  return assembleSigned(tbs, signatureAlgorithmIdentifier("rsa-2048"), sign("sha256", tbs, key.privateKey));
}

const unavailable: CertificateSigner = {
  issue: async () => {
    throw new SignerUnavailableError("HSM session lost");
  },
};

test("serials are 16 bytes, positive, with a non-zero first byte; shards spread over the range", () => {
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const serial = randomSerial();
    assert.equal(serial.length, 16);
    assert.ok(serial[0]! > 0 && serial[0]! < 0x80);
    const shard = shardOf(serial, DEFAULT_SHARDS);
    assert.ok(shard >= 0 && shard < DEFAULT_SHARDS);
    seen.add(shard);
  }
  assert.equal(seen.size, DEFAULT_SHARDS);
  assert.equal(shardOf(Buffer.from("0102030405060708090a0b0c00000041", "hex"), 64), 0x41 % 64);
});

forEachDialect((dialect, open) => {
  test("a batch is issued: OpenSSL accepts each certificate, the registry holds it, the audit chain verifies", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    const person = await registry.addPerson({
      name: "山田 花子",
      sex: "female",
      birthDate: "1985-07-01",
      address: "東京都千代田区",
    });
    const requests = Array.from({ length: 25 }, (_, i) =>
      testRequest(key, { personId: person.id, subject: `n${i}` }),
    );
    const results = await issueCertificates(db, { auth: rsaSigner(key) }, requests, { actor: "test" });
    assert.equal(results.length, 25);
    for (const [i, result] of results.entries()) {
      assert.ok(result.ok, `request ${i}`);
      const x509 = new X509Certificate(result.der);
      assert.ok(x509.verify(key.publicKey));
      assert.equal(x509.serialNumber.toLowerCase(), result.serial);
      assert.equal(x509.subject, `CN=n${i}`);
      assert.equal(result.shard, shardOf(Buffer.from(result.serial, "hex"), DEFAULT_SHARDS));
      const stored = await getCertificate(db, result.serial.toUpperCase());
      assert.ok(stored);
      assert.equal(stored.status, "issued");
      assert.ok(stored.der?.equals(result.der));
      assert.ok(Buffer.isBuffer(stored.tbs) && Buffer.isBuffer(stored.der));
      assert.equal(stored.personId, person.id);
      assert.equal(stored.notBefore, "2026-01-01T00:00:00.000Z");
    }
    const events = await db
      .selectFrom("lifecycle_events")
      .select(["event", "from_status", "to_status", "actor"])
      .where("serial", "=", results[0]!.serial)
      .orderBy("id")
      .execute();
    assert.deepEqual(events, [
      { event: "issued", from_status: "pending", to_status: "issued", actor: "test" },
    ]);
    const actions = await db
      .selectFrom("audit_log")
      .select("action")
      .where("subject", "=", results[3]!.serial)
      .orderBy("seq")
      .execute();
    assert.deepEqual(
      actions.map((a) => a.action),
      ["certificate.pending", "certificate.issued"],
    );
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("the shard count comes from the settings", async () => {
    const { db } = await open();
    await new Registry(db).setSetting(SHARD_SETTING, "7");
    const results = await issueCertificates(db, { auth: rsaSigner(key) }, [
      testRequest(key),
      testRequest(key),
    ]);
    for (const r of results) assert.equal(r.shard, shardOf(Buffer.from(r.serial, "hex"), 7));
  });

  test("a serial drawn twice, in the batch or already in the table, is drawn again", async () => {
    const { db } = await open();
    const [a, b, c, d] = Array.from({ length: 4 }, () => randomSerial());
    const draws = [a!, a!, b!, b!, c!, d!];
    const serialSource = () => draws.shift()!;
    const first = await issueCertificates(
      db,
      { auth: rsaSigner(key) },
      [testRequest(key), testRequest(key)],
      {
        serialSource,
      },
    );
    assert.deepEqual(
      first.map((r) => r.serial),
      [a!.toString("hex"), b!.toString("hex")],
    );
    // b is taken in the table: the second batch's first draw collides and is replaced.
    const second = await issueCertificates(db, { auth: rsaSigner(key) }, [testRequest(key)], {
      serialSource,
    });
    assert.equal(second[0]!.serial, c!.toString("hex"));
    assert.ok(second[0]!.ok);
    const { items } = await listCertificates(db);
    assert.equal(items.length, 3);
  });

  test("a refusing signer marks only its certificate failed, with the reason", async () => {
    const { db } = await open();
    const good = rsaSigner(key);
    let calls = 0;
    const picky: CertificateSigner = {
      issue: (tbs) => (++calls === 2 ? Promise.reject(new Error("policy says no")) : good.issue(tbs)),
    };
    const results = await issueCertificates(db, { auth: picky }, [
      testRequest(key),
      testRequest(key),
      testRequest(key),
    ]);
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, false, true],
    );
    const failed = await getCertificate(db, results[1]!.serial);
    assert.equal(failed?.status, "failed");
    assert.match(failed?.failureReason ?? "", /policy says no/);
    assert.equal(failed?.der, null);
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("a signer returning a certificate for other data is not believed", async () => {
    const { db } = await open();
    const liar: CertificateSigner = {
      issue: async () => expectedCertificate(testRequest(key).buildTbs(randomSerial(), 0)),
    };
    const [result] = await issueCertificates(db, { auth: liar }, [testRequest(key)]);
    assert.ok(result && !result.ok);
    assert.match(result.reason, /other data/);
    assert.equal((await getCertificate(db, result.serial))?.status, "failed");
  });

  test("bad requests and a refusing onPending hook store nothing", async () => {
    const { db } = await open();
    const signers = { auth: rsaSigner(key) };
    await assert.rejects(
      issueCertificates(db, signers, [testRequest(key, { issuer: "sign" })]),
      (e: unknown) => e instanceof JpkiError && e.code === "bad-input" && /no signer/.test(e.message),
    );
    await assert.rejects(
      issueCertificates(db, signers, [
        testRequest(key, { notBefore: new Date("2030-01-01"), notAfter: new Date("2029-01-01") }),
      ]),
      /notBefore/,
    );
    const broken = {
      ...testRequest(key),
      buildTbs: () => {
        throw new Error("profile bug");
      },
    };
    await assert.rejects(issueCertificates(db, signers, [testRequest(key), broken]), /profile bug/);
    await assert.rejects(
      issueCertificates(db, signers, [testRequest(key)], {
        onPending: async () => {
          throw new JpkiError("conflict", "double issuance");
        },
      }),
      /double issuance/,
    );
    assert.equal((await listCertificates(db)).items.length, 0);
    assert.equal((await db.selectFrom("audit_log").select("seq").execute()).length, 0);
  });

  test("onIssued runs inside the storing transaction and can veto it", async () => {
    const { db } = await open();
    const seen: string[] = [];
    const results = await issueCertificates(db, { auth: rsaSigner(key) }, [testRequest(key)], {
      onIssued: async (trx, issued) => {
        const row = await trx
          .selectFrom("certificates")
          .select("status")
          .where("serial", "=", issued[0]!.serial)
          .executeTakeFirstOrThrow();
        seen.push(row.status);
      },
    });
    assert.deepEqual(seen, ["issued"]);
    assert.ok(results[0]!.ok);
  });

  test("an unavailable signer leaves rows pending; recovery finishes them with the very same bytes", async () => {
    const { db } = await open();
    const results = await issueCertificates(db, { auth: unavailable }, [testRequest(key), testRequest(key)]);
    assert.ok(
      results.every((r) => !r.ok && /signer unavailable \(left pending for recovery\)/.test(r.reason)),
    );
    await assert.rejects(
      issueCertificate(db, { auth: unavailable }, testRequest(key)),
      (e: unknown) => e instanceof JpkiError && e.code === "signer-unavailable" && e.status === 503,
    );
    for (const r of results) assert.equal((await getCertificate(db, r.serial))?.status, "pending");

    const pendingSerials = (await listCertificates(db, { status: "pending" })).items.map((c) => c.serial);
    assert.equal(pendingSerials.length, 3);
    const stillDown = await recoverInterruptedIssuances(db, { auth: unavailable }, { policies });
    assert.deepEqual(stillDown.stillPending.sort(), pendingSerials);

    const report = await recoverInterruptedIssuances(db, { auth: rsaSigner(key) }, { policies });
    assert.deepEqual(report.issued.sort(), pendingSerials);
    for (const r of results) {
      const stored = await getCertificate(db, r.serial);
      assert.equal(stored?.status, "issued");
      assert.ok(stored?.der?.equals(expectedCertificate(stored.tbs)));
    }
    const events = await db
      .selectFrom("lifecycle_events")
      .select("event")
      .where("serial", "=", results[0]!.serial)
      .orderBy("id")
      .execute();
    assert.deepEqual(
      events.map((e) => e.event),
      ["recovered"],
    );
    assert.deepEqual(await verifyAudit(db), []);
    assert.deepEqual(await recoverInterruptedIssuances(db, { auth: rsaSigner(key) }, { policies }), {
      issued: [],
      failed: [],
      stillPending: [],
    });
  });

  test("when storing the signed certificates fails, rows stay pending and recovery stores the same bytes", async () => {
    const { db } = await open();
    const signed: Buffer[] = [];
    // Once the pending rows are stored, make every later audit insert fail: step 3 cannot commit.
    const breakAudit = async (trx: typeof db) => {
      if (dialect === "sqlite")
        await sql`create trigger reject_audit before insert on audit_log begin select raise(abort, 'audit refused'); end`.execute(
          trx,
        );
      else {
        await sql`create function reject_audit() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$`.execute(
          trx,
        );
        await sql`create trigger reject_audit before insert on audit_log for each row execute function reject_audit()`.execute(
          trx,
        );
      }
    };
    await assert.rejects(
      issueCertificates(
        db,
        { auth: rsaSigner(key, (der) => signed.push(der)) },
        [testRequest(key), testRequest(key)],
        {
          onPending: breakAudit,
        },
      ),
      /audit refused/,
    );
    assert.equal(signed.length, 2);
    const pending = await listCertificates(db, { status: "pending" });
    assert.equal(pending.items.length, 2);
    assert.ok(pending.items.every((c) => c.der === null));
    await sql`drop trigger reject_audit${dialect === "postgres" ? sql` on audit_log` : sql``}`.execute(db);
    const report = await recoverInterruptedIssuances(db, { auth: rsaSigner(key) }, { policies });
    assert.equal(report.issued.length, 2);
    for (const der of signed) {
      const serial = new X509Certificate(der).serialNumber.toLowerCase();
      assert.ok((await getCertificate(db, serial))?.der?.equals(der));
    }
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("recovery marks failed what it cannot finish: unreadable TBS, no signer, a refusing signer", async () => {
    const { db } = await open();
    const [unreadable, noSigner, refused] = await issueCertificates(
      db,
      { auth: unavailable, sign: unavailable },
      [testRequest(key), testRequest(key, { issuer: "sign", kind: "card-sign" }), testRequest(key)],
    );
    await db
      .updateTable("certificates")
      .set({ tbs: Buffer.from("30ff00", "hex") })
      .where("serial", "=", unreadable!.serial)
      .execute();
    let calls = 0;
    const good = rsaSigner(key);
    const refusesRefused: CertificateSigner = {
      issue: async (tbs) => {
        calls++;
        const row = await getCertificate(db, refused!.serial);
        if (row?.tbs.equals(tbs)) throw new Error("key retired");
        return good.issue(tbs);
      },
    };
    const report = await recoverInterruptedIssuances(db, { auth: refusesRefused }, { policies });
    assert.deepEqual(report.issued, []);
    assert.deepEqual(report.stillPending, []);
    const reasons = new Map(report.failed.map((f) => [f.serial, f.reason]));
    assert.match(reasons.get(unreadable!.serial) ?? "", /unreadable/);
    assert.match(reasons.get(noSigner!.serial) ?? "", /no signer for issuer sign/);
    assert.match(reasons.get(refused!.serial) ?? "", /key retired/);
    assert.equal(calls, 1);
    for (const r of [unreadable, noSigner, refused])
      assert.equal((await getCertificate(db, r!.serial))?.status, "failed");
    assert.equal((await listCertificates(db, { status: "pending" })).items.length, 0);
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("recovery leaves young pending rows to their own process when asked", async () => {
    const { db } = await open();
    await issueCertificates(db, { auth: unavailable }, [testRequest(key)]);
    const report = await recoverInterruptedIssuances(
      db,
      { auth: rsaSigner(key) },
      { olderThanMs: 60_000, policies },
    );
    assert.deepEqual(report, { issued: [], failed: [], stillPending: [] });
    assert.equal((await listCertificates(db, { status: "pending" })).items.length, 1);
  });

  test("a late finisher does not overwrite what recovery stored, and reports it", async () => {
    const { db } = await open();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow: CertificateSigner = {
      issue: async (tbs) => {
        await gate;
        return rsaSigner(key).issue(tbs);
      },
    };
    const issuing = issueCertificates(db, { auth: slow }, [testRequest(key)]);
    // Wait until the pending row exists, then let another "process" recover it first.
    for (let i = 0; i < 100 && (await listCertificates(db, { status: "pending" })).items.length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    const report = await recoverInterruptedIssuances(db, { auth: rsaSigner(key) }, { policies });
    assert.equal(report.issued.length, 1);
    release();
    const [result] = await issuing;
    assert.ok(result?.ok);
    assert.ok(result.der.equals((await getCertificate(db, result.serial))!.der!));
    const events = await db
      .selectFrom("lifecycle_events")
      .select("event")
      .where("serial", "=", result.serial)
      .execute();
    assert.deepEqual(
      events.map((e) => e.event),
      ["recovered"],
    );
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("listing filters and pages through certificates in serial order", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    const person = await registry.addPerson({
      name: "a",
      sex: "male",
      birthDate: "1970-01-01",
      address: "x",
    });
    const card = await registry.addCard({
      personId: person.id,
      cardNumber: "TEST-0001",
      issuedAt: new Date("2025-01-01"),
      expiresAt: new Date("2035-01-01"),
    });
    const signers = { auth: rsaSigner(key), sign: rsaSigner(key) };
    const [cardAuth] = await issueCertificates(db, signers, [
      testRequest(key, { personId: person.id, cardId: card.id }),
    ]);
    await issueCertificates(db, signers, [
      ...Array.from({ length: 6 }, () =>
        testRequest(key, {
          kind: "phone-auth",
          medium: "sim",
          personId: person.id,
          parentSerial: cardAuth!.serial,
        }),
      ),
      testRequest(key, { issuer: "sign", kind: "card-sign", personId: person.id, cardId: card.id }),
    ]);
    const phone = await listCertificates(db, { kind: "phone-auth", parentSerial: cardAuth!.serial });
    assert.equal(phone.items.length, 6);
    assert.equal((await listCertificates(db, { cardId: card.id })).items.length, 2);
    assert.equal((await listCertificates(db, { issuer: "sign" })).items[0]?.kind, "card-sign");
    assert.equal(
      (await listCertificates(db, { status: ["issued", "pending"], personId: person.id })).items.length,
      8,
    );
    const pages: string[][] = [];
    let after: string | undefined;
    do {
      const page = await listCertificates(db, {}, { limit: 3, ...(after ? { after } : {}) });
      pages.push(page.items.map((c) => c.serial));
      after = page.next;
    } while (after);
    assert.deepEqual(
      pages.map((p) => p.length),
      [3, 3, 2],
    );
    const all = pages.flat();
    assert.deepEqual(all, [...all].sort());
  });

  test(`batches of 1000 stay within one statement's parameter limits (${dialect})`, async () => {
    const { db } = await open();
    const fake: CertificateSigner = {
      issue: async (tbs) =>
        assembleSigned(tbs, signatureAlgorithmIdentifier("rsa-2048"), Buffer.alloc(256, 1)),
    };
    const results = await issueCertificates(
      db,
      { auth: fake },
      Array.from({ length: 1000 }, () => testRequest(key)),
    );
    assert.ok(results.every((r) => r.ok));
    const n = await sql<{
      n: number;
    }>`select count(*) as n from certificates where status = 'issued'`.execute(db);
    assert.equal(Number(n.rows[0]!.n), 1000);
  });
});
