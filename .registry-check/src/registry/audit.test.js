import { strict as assert } from "node:assert";
import { test } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../testing/dialects.js";
import { AUDIT_GENESIS_HASH, appendAudit, auditHash, auditHead, canonicalJson, verifyAudit, } from "./audit.js";
import { issueCertificates } from "./issuance.js";
import { Registry } from "./registry.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";
const key = await generateTestKey();
test("the entry encoding is unambiguous: moving bytes between fields changes the hash", () => {
    const base = {
        seq: 1,
        at: "2026-01-01T00:00:00.000Z",
        actor: "ab",
        action: "c",
        subject: "s",
        details: "{}",
    };
    const shifted = { ...base, actor: "a", action: "bc" };
    assert.notEqual(auditHash(AUDIT_GENESIS_HASH, base), auditHash(AUDIT_GENESIS_HASH, shifted));
    assert.notEqual(auditHash(AUDIT_GENESIS_HASH, base), auditHash(AUDIT_GENESIS_HASH, { ...base, seq: 2 }));
});
test("canonical JSON sorts keys at every level and writes bytes as hex", () => {
    assert.equal(canonicalJson({ b: 1, a: { d: Buffer.from([0xde, 0xad]), c: [2, { f: 1, e: 0 }] }, z: undefined }), '{"a":{"c":[2,{"e":0,"f":1}],"d":"dead"},"b":1}');
});
/** Ten audited changes: settings written one by one. */
async function tenEntries(registry) {
    for (let i = 1; i <= 10; i++)
        await registry.setSetting(`key${i}`, `value ${i}`);
}
async function rejectAuditInserts(db, dialect) {
    if (dialect === "sqlite") {
        await sql `create trigger reject_audit before insert on audit_log begin select raise(abort, 'audit refused'); end`.execute(db);
    }
    else {
        await sql `create function reject_audit() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$`.execute(db);
        await sql `create trigger reject_audit before insert on audit_log for each row execute function reject_audit()`.execute(db);
    }
}
async function counts(db) {
    const count = async (table) => Number((await db.selectFrom(table).select(db.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
    return {
        persons: await count("persons"),
        certificates: await count("certificates"),
        events: await count("lifecycle_events"),
        audit: await count("audit_log"),
    };
}
forEachDialect((dialect, open) => {
    test("an untouched chain verifies, and the head names its last entry", async () => {
        const { db } = await open();
        const registry = new Registry(db);
        await tenEntries(registry);
        assert.deepEqual(await verifyAudit(db), []);
        const head = await auditHead(db);
        assert.equal(head.seq, 10);
        const last = await db.selectFrom("audit_log").selectAll().where("seq", "=", 10).executeTakeFirstOrThrow();
        assert.equal(last.hash, head.hash);
    });
    test("appendAudit refuses to run outside a transaction", async () => {
        const { db } = await open();
        await assert.rejects(appendAudit(db, { actor: "t", action: "x", subject: "y" }), /inside the transaction/);
    });
    test("concurrent writers on several connections serialize on the head", async () => {
        const { db } = await open({ poolSize: 8 });
        const registry = new Registry(db);
        await Promise.all(Array.from({ length: 40 }, (_, i) => registry.addPerson({ name: `人 ${i}`, sex: "female", birthDate: "1990-01-01", address: "東京都" })));
        assert.deepEqual(await verifyAudit(db), []);
        assert.equal((await auditHead(db)).seq, 40);
    });
    test("fail closed: when audit inserts are rejected, the person is not added", async () => {
        const { db } = await open();
        const registry = new Registry(db);
        await registry.addPerson({ name: "before", sex: "male", birthDate: "1980-02-29", address: "大阪府" });
        const before = await counts(db);
        const headBefore = await auditHead(db);
        await rejectAuditInserts(db, dialect);
        await assert.rejects(registry.addPerson({ name: "after", sex: "male", birthDate: "1980-03-01", address: "大阪府" }), /audit refused/);
        assert.deepEqual(await counts(db), before);
        assert.deepEqual(await auditHead(db), headBefore);
    });
    test("fail closed: when audit inserts are rejected, no certificate is stored and nothing is signed", async () => {
        const { db } = await open();
        await rejectAuditInserts(db, dialect);
        let signed = 0;
        const signers = { auth: rsaSigner(key, () => signed++) };
        await assert.rejects(issueCertificates(db, signers, [testRequest(key), testRequest(key)]), /audit refused/);
        assert.equal(signed, 0);
        assert.deepEqual(await counts(db), { persons: 0, certificates: 0, events: 0, audit: 0 });
    });
    test("fail closed: with the audit head gone, changes fail and leave nothing", async () => {
        const { db } = await open();
        const registry = new Registry(db);
        await sql `drop table audit_head`.execute(db);
        await assert.rejects(registry.addPerson({ name: "x", sex: "male", birthDate: "2000-01-01", address: "札幌市" }));
        await assert.rejects(issueCertificates(db, { auth: rsaSigner(key) }, [testRequest(key)]));
        assert.deepEqual(await counts(db), { persons: 0, certificates: 0, events: 0, audit: 0 });
    });
    if (dialect === "postgres")
        test("fail closed: a head locked by another session times the change out, leaving nothing", async () => {
            const handle = await open({ poolSize: 2 });
            const registry = new Registry(handle.db);
            const blocker = await handle.reopen({ poolSize: 1 });
            let failure;
            await blocker.db.transaction().execute(async (trx) => {
                await sql `lock table audit_head in access exclusive mode`.execute(trx);
                // The change first, then its audit entry, as the registry does; the entry cannot get the head.
                failure = await handle.db
                    .transaction()
                    .execute(async (inner) => {
                    await sql `set local lock_timeout = '200ms'`.execute(inner);
                    await inner.insertInto("settings").values({ key: "k", value: "v" }).execute();
                    await appendAudit(inner, { actor: "t", action: "setting.set", subject: "k" });
                })
                    .then(() => undefined, (error) => error);
            });
            assert.match(String(failure), /lock timeout/);
            assert.equal(await registry.getSetting("k"), undefined);
            assert.deepEqual(await verifyAudit(handle.db), []);
        });
    test("a modified entry is named", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        await db
            .updateTable("audit_log")
            .set({ details: '{"from":null,"to":"forged"}' })
            .where("seq", "=", 4)
            .execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [[4, "modified"]]);
    });
    test("a modified entry given a fresh, self-consistent hash is named", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        const row = await db.selectFrom("audit_log").selectAll().where("seq", "=", 4).executeTakeFirstOrThrow();
        const forged = { ...row, actor: "someone else" };
        await db
            .updateTable("audit_log")
            .set({ actor: forged.actor, hash: auditHash(row.prev_hash, forged) })
            .where("seq", "=", 4)
            .execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [[4, "modified"]]);
    });
    test("a deleted entry is named, in the middle and at the tail", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        await db.deleteFrom("audit_log").where("seq", "=", 6).execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [[6, "deleted"]]);
        await db.deleteFrom("audit_log").where("seq", "=", 10).execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [
            [6, "deleted"],
            [10, "deleted"],
        ]);
    });
    test("an entry appended behind the head's back is named, even with a correct hash", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        const last = await db.selectFrom("audit_log").selectAll().where("seq", "=", 10).executeTakeFirstOrThrow();
        const forged = {
            seq: 11,
            at: last.at,
            actor: "intruder",
            action: "setting.set",
            subject: "key",
            details: "{}",
            prev_hash: last.hash,
        };
        await db
            .insertInto("audit_log")
            .values({ ...forged, hash: auditHash(last.hash, forged) })
            .execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [[11, "inserted"]]);
    });
    test("an entry inserted in the middle (later entries renumbered) is named", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        // Make room at 5: move 5..10 to 6..11 (through negative numbers, so the key never collides).
        await sql `update audit_log set seq = -(seq + 1) where seq >= 5`.execute(db);
        await sql `update audit_log set seq = -seq where seq < 0`.execute(db);
        const fourth = await db
            .selectFrom("audit_log")
            .selectAll()
            .where("seq", "=", 4)
            .executeTakeFirstOrThrow();
        const forged = {
            seq: 5,
            at: fourth.at,
            actor: "intruder",
            action: "setting.set",
            subject: "key",
            details: "{}",
            prev_hash: fourth.hash,
        };
        await db
            .insertInto("audit_log")
            .values({ ...forged, hash: auditHash(fourth.hash, forged) })
            .execute();
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [[5, "inserted"]]);
    });
    test("two swapped entries are named", async () => {
        const { db } = await open();
        await tenEntries(new Registry(db));
        await sql `update audit_log set seq = case seq when 3 then -7 when 7 then -3 else seq end where seq in (3, 7)`.execute(db);
        await sql `update audit_log set seq = -seq where seq < 0`.execute(db);
        assert.deepEqual((await verifyAudit(db)).map((f) => [f.seq, f.kind]), [
            [3, "reordered"],
            [7, "reordered"],
        ]);
    });
});
//# sourceMappingURL=audit.test.js.map