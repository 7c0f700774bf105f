import { strict as assert } from "node:assert";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { forEachDialect } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import { DEFAULT_POLICIES } from "./lifecycle.js";
import { Registry } from "./registry.js";
import { generateTestKey, rsaSigner, testRequest } from "./test-fixtures.js";

const key = await generateTestKey();

const isCode = (code: string) => (e: unknown) => e instanceof JpkiError && e.code === code;

test("Registry.open owns its database and closes it", async () => {
  const registry = await Registry.open("sqlite::memory:");
  assert.equal(registry.dialect, "sqlite");
  await registry.addSim({ iccid: "8981100000000000001" });
  await registry.close();
});

forEachDialect((_dialect, open) => {
  test("a person, a card and a SIM are stored, read back, and each change is audited with its actor", async () => {
    const { db } = await open();
    const registry = new Registry(db, { actor: "clerk:42" });
    const address = "東京都千代田区霞が関二丁目1番2号".padEnd(200, "〇");
    const person = await registry.addPerson({
      name: "渡邉 𠮷子",
      sex: "female",
      birthDate: "2000-02-29",
      address,
      residence: "大阪府大阪市北区",
    });
    assert.deepEqual(await registry.getPerson(person.id), person);
    assert.equal(person.address.length, 200);
    const card = await registry.addCard({
      personId: person.id,
      cardNumber: "TEST-000000000001",
      issuedAt: new Date("2025-04-01T00:00:00Z"),
      expiresAt: new Date("2035-02-28T15:00:00Z"),
      statePath: "/tmp/card.json",
    });
    assert.deepEqual(await registry.getCard(card.id), card);
    assert.deepEqual(await registry.cardsOf(person.id), [card]);
    await registry.setCardStatePath(card.id, "/tmp/moved.json");
    assert.equal((await registry.getCard(card.id))?.statePath, "/tmp/moved.json");
    const sim = await registry.addSim({
      iccid: "8981100012345678901",
      eid: "89049032000000000000000000000001",
      carrier: "mno-a",
    });
    assert.deepEqual(await registry.getSimByIccid(sim.iccid), sim);
    assert.deepEqual(await registry.getSim(sim.id), sim);

    const audit = await db
      .selectFrom("audit_log")
      .select(["actor", "action", "subject"])
      .orderBy("seq")
      .execute();
    assert.deepEqual(audit, [
      { actor: "clerk:42", action: "person.add", subject: person.id },
      { actor: "clerk:42", action: "card.add", subject: card.id },
      { actor: "clerk:42", action: "card.state-path", subject: card.id },
      { actor: "clerk:42", action: "sim.add", subject: sim.id },
    ]);
    assert.deepEqual(await verifyAudit(db), []);
  });

  test("bad input is refused with a clear error and nothing is written", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    const base = { name: "a", sex: "male", birthDate: "1990-01-01", address: "x" };
    await assert.rejects(registry.addPerson({ ...base, birthDate: "1990-02-30" }), isCode("bad-input"));
    await assert.rejects(registry.addPerson({ ...base, birthDate: "19900101" }), isCode("bad-input"));
    await assert.rejects(registry.addPerson({ ...base, name: " " }), isCode("bad-input"));
    await assert.rejects(
      registry.addCard({
        personId: "nobody",
        cardNumber: "1",
        issuedAt: new Date("2025-01-01"),
        expiresAt: new Date("2030-01-01"),
      }),
      isCode("not-found"),
    );
    assert.deepEqual((await registry.listPersons()).items, []);
    assert.equal((await registry.auditHead()).seq, 0);
  });

  test("a card number or ICCID registered twice is a conflict", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    const person = await registry.addPerson({
      name: "a",
      sex: "male",
      birthDate: "1990-01-01",
      address: "x",
    });
    const card = {
      personId: person.id,
      cardNumber: "TEST-1",
      issuedAt: new Date("2025-01-01"),
      expiresAt: new Date("2030-01-01"),
    };
    await registry.addCard(card);
    await assert.rejects(registry.addCard(card), isCode("conflict"));
    await registry.addSim({ iccid: "8981100000000000009" });
    await assert.rejects(registry.addSim({ iccid: "8981100000000000009" }), isCode("conflict"));
    assert.equal((await registry.auditHead()).seq, 3);
    assert.deepEqual(await registry.verifyAudit(), []);
  });

  test("settings are upserted and each change is audited with its old and new value", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    await registry.setSetting("certificates.shards", "16");
    await registry.setSetting("certificates.shards", "32");
    assert.equal(await registry.getSetting("certificates.shards"), "32");
    const details = await db.selectFrom("audit_log").select("details").orderBy("seq").execute();
    assert.deepEqual(
      details.map((d) => JSON.parse(d.details)),
      [
        { from: null, to: "16" },
        { from: "16", to: "32" },
      ],
    );
  });

  test("persons page in id order", async () => {
    const { db } = await open();
    const registry = new Registry(db);
    for (let i = 0; i < 5; i++)
      await registry.addPerson({ name: `p${i}`, sex: "male", birthDate: "1990-01-01", address: "x" });
    const first = await registry.listPersons({ limit: 3 });
    assert.equal(first.items.length, 3);
    const second = await registry.listPersons({ limit: 3, after: first.next! });
    assert.equal(second.items.length, 2);
    assert.equal(second.next, undefined);
  });

  test("the Registry issues, finds and recovers certificates through the same calls", async () => {
    const { db } = await open();
    const registry = new Registry(db, { actor: "ra" });
    const [result] = await registry.issueCertificates({ auth: rsaSigner(key) }, [testRequest(key)]);
    assert.ok(result?.ok);
    assert.equal((await registry.getCertificate(result.serial))?.status, "issued");
    assert.equal((await registry.listCertificates({ status: "issued" })).items.length, 1);
    assert.deepEqual(
      await registry.recoverInterruptedIssuances({ auth: rsaSigner(key) }, { policies: DEFAULT_POLICIES }),
      {
        issued: [],
        failed: [],
        stillPending: [],
      },
    );
    const actors = await db.selectFrom("audit_log").select("actor").distinct().execute();
    assert.deepEqual(actors, [{ actor: "ra" }]);
  });
});
