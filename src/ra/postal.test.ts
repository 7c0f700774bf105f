/**
 * The postal channel end to end, on both databases: the form, the restricted-delivery letter handed
 * to the addressee after the identity check, the access code with the SIM's attestation, issuance,
 * delivery to the SIM and a signature with the new key. Then every way it must not work: wrong codes
 * (one by one and in parallel), an expired code, a code used twice, a code for another application or
 * SIM, a person who lives elsewhere (the letter returns, the counter takes over), a form that matches
 * no one; and the code is nowhere in the database.
 */
import assert from "node:assert/strict";
import { constants, createPublicKey, publicDecrypt, randomBytes } from "node:crypto";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { JpkiCard } from "../phone/jpki-card.js";
import { PostalJpkiApp } from "../phone/postal.js";
import { parseCertificate } from "../pki/certificate.js";
import { sha256DigestInfo } from "../pki/cms.js";
import { envelopeKey, openLetter } from "../post/envelope.js";
import { RestrictedDeliveryService } from "../post/restricted-delivery.js";
import { forEachDialect } from "../testing/dialects.js";
import { ACCESS_CODE_MAX_ATTEMPTS, newAccessCode, useAccessCode } from "./access-codes.js";
import { getApplication } from "./applications.js";
import { issueMyNumberCard } from "./card-issuance.js";
import type { SimKeyClaim } from "./evidence.js";
import { issueNonce } from "./nonces.js";
import {
  COUNTER_REFERRAL_REASON,
  inProcessPostalJlis,
  NO_MATCH_REFUSAL,
  PostalChannel,
  readAccessCodeLetter,
  referReturnedApplications,
  requestPostalApplication,
} from "./postal.js";
import { generateKeyOnSim } from "./provisioning.js";
import { submitApplication } from "./ra.js";
import { openRaSandbox, type Phone, type RaSandbox } from "./ra-fixture.js";

const ADDRESS = "東京都千代田区霞が関二丁目1番2号";
const DAY = 24 * 3600_000;
const CARRIER = "post:carrier";

const refusedWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === code && pattern.test(error.message);

/** The 4 attributes the fixture's citizens are registered with (the name varies). */
const form = (name: string) => ({ name, birth: "1988-06-15", sex: "male", address: ADDRESS });

const simOf = (phone: Phone) => ({ iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand });

/** What the phone sends with the code: J-LIS generates the key on the SIM over the relay, attested over a nonce. */
async function claimOf(sandbox: RaSandbox, phone: Phone): Promise<SimKeyClaim> {
  const { nonce } = await issueNonce(sandbox.authority.registry.db);
  const key = await generateKeyOnSim(sandbox.authority, phone.relay.transportFor(phone.sim.iccid), {
    iccid: phone.sim.iccid,
    nonce,
  });
  return {
    iccid: phone.sim.iccid,
    eid: phone.sim.eid,
    appletInstance: await (await JpkiCard.open(phone.uicc)).instanceId(),
    publicKey: key.spki,
    attestation: key.attestation,
    nonce,
  };
}

forEachDialect((_dialect, open) => {
  async function sandboxOn(): Promise<{ sandbox: RaSandbox; post: RestrictedDeliveryService }> {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    const post = new RestrictedDeliveryService(sandbox.authority.registry.db, {
      envelopeKey: envelopeKey(sandbox.dir),
    });
    return { sandbox, post };
  }

  /** A citizen named `name`, a phone, the postal request, and the letter handed over. */
  async function requestedAndDelivered(sandbox: RaSandbox, post: RestrictedDeliveryService, name: string) {
    await sandbox.citizen(name);
    const phone = await sandbox.phone();
    const { application, mail } = await requestPostalApplication(sandbox.authority, post, {
      ...form(name),
      sim: simOf(phone),
    });
    const handed = await post.attemptDelivery({
      trackingNumber: mail.trackingNumber,
      identityChecked: true,
      actor: CARRIER,
    });
    assert.ok(handed.handedOver);
    const letter = readAccessCodeLetter(handed.letter);
    assert.equal(letter.applicationId, application.id);
    return { phone, applicationId: application.id, accessCode: letter.accessCode };
  }

  async function codeRow(sandbox: RaSandbox, applicationId: string) {
    return sandbox.authority.registry.db
      .selectFrom("access_codes")
      .selectAll()
      .where("application_id", "=", applicationId)
      .executeTakeFirstOrThrow();
  }

  test("apply by post: the letter is handed over after the identity check, the code and the SIM's attestation complete it, the SIM signs", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const citizen = await sandbox.citizen("郵送 一郎");
      const phone = await sandbox.phone();
      const app = new PostalJpkiApp(
        { transport: phone.uicc, iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand },
        inProcessPostalJlis(authority, post, () => phone.relay),
      );
      const requested = await app.applyByPost(form("郵送 一郎"));
      assert.equal(requested.status, "awaiting-code");

      // Without the identity check the carrier keeps the item; with it, the addressee gets the letter.
      const notYet = await post.attemptDelivery({
        trackingNumber: requested.trackingNumber,
        identityChecked: false,
        actor: CARRIER,
      });
      assert.deepEqual(
        [notYet.handedOver, notYet.handedOver ? "" : notYet.reason],
        [false, "identity-not-checked"],
      );
      const handed = await post.attemptDelivery({
        trackingNumber: requested.trackingNumber,
        identityChecked: true,
        actor: CARRIER,
      });
      assert.ok(handed.handedOver);
      assert.equal(handed.item.status, "delivered");
      const letter = readAccessCodeLetter(handed.letter);
      assert.equal(letter.applicationId, requested.applicationId);
      assert.match(handed.letter.toString(), new RegExp(`For the SIM: +${phone.sim.iccid}`));
      // The letter left the post office: the sealed copy is gone, and it is not handed over twice.
      const mailRow = await authority.registry.db
        .selectFrom("mail_items")
        .select("sealed_letter")
        .executeTakeFirstOrThrow();
      assert.equal(mailRow.sealed_letter, null);
      await assert.rejects(
        post.attemptDelivery({
          trackingNumber: requested.trackingNumber,
          identityChecked: true,
          actor: CARRIER,
        }),
        refusedWith("conflict", /was delivered/),
      );

      // Typed as a person may: lower case, spaces instead of dashes.
      const typed = letter.accessCode.toLowerCase().replace(/-/g, " ");
      const done = await app.completeWithAccessCode(letter.applicationId.toLowerCase(), typed);
      assert.equal(done.status, "delivered");
      const application = await getApplication(authority.registry.db, requested.applicationId);
      assert.deepEqual(
        application?.history.map((e) => e.status),
        ["received", "awaiting-code", "verified", "issued", "delivering", "delivered"],
      );
      assert.equal(application?.evidence["accessCode"], "accepted");
      const certificate = await authority.registry.getCertificate(done.certificateSerial!);
      assert.deepEqual(
        [certificate?.kind, certificate?.medium, certificate?.status, certificate?.parentSerial],
        ["phone-auth", "sim", "issued", citizen.authSerial],
      );

      // The citizen sets the PIN in the phone; the SIM signs with the certificate's key.
      await app.setPin("2580");
      const der = await app.certificate("2580");
      assert.ok(der.equals(certificate?.der ?? Buffer.alloc(0)));
      const hash = randomBytes(32);
      const signature = await app.signHash(hash, "2580");
      const publicKey = createPublicKey({ key: parseCertificate(der).spki, format: "der", type: "spki" });
      assert.ok(
        publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature).equals(
          sha256DigestInfo(hash),
        ),
      );

      // The code worked once: the application is done, and the code row says used.
      await assert.rejects(
        app.completeWithAccessCode(letter.applicationId, letter.accessCode),
        refusedWith("conflict", /completed already/),
      );
      assert.notEqual((await codeRow(sandbox, requested.applicationId)).used_at, null);
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("5 wrong codes void the code and fail the application; the 6th try, with the right code, is refused", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const channel = new PostalChannel();
      const { phone, applicationId, accessCode } = await requestedAndDelivered(sandbox, post, "誤入 五郎");
      const claim = await claimOf(sandbox, phone);
      const wrong = () => {
        let code = newAccessCode();
        while (code === accessCode) code = newAccessCode();
        return code;
      };
      // A typing mistake (bad check character) is refused without counting.
      const mistyped = `${accessCode.slice(0, -1)}${accessCode.endsWith("0") ? "1" : "0"}`;
      await assert.rejects(
        submitApplication(authority, channel, { applicationId, accessCode: mistyped, claim }),
        refusedWith("bad-input", /did not count/),
      );
      for (let attempt = 1; attempt <= ACCESS_CODE_MAX_ATTEMPTS; attempt++)
        await assert.rejects(
          submitApplication(authority, channel, { applicationId, accessCode: wrong(), claim }),
          refusedWith(
            "forbidden",
            attempt < ACCESS_CODE_MAX_ATTEMPTS
              ? new RegExp(`wrong access code.*${ACCESS_CODE_MAX_ATTEMPTS - attempt} attempts? left`)
              : /now void after 5 wrong attempts/,
          ),
        );
      assert.equal((await codeRow(sandbox, applicationId)).failed_attempts, ACCESS_CODE_MAX_ATTEMPTS);
      await assert.rejects(
        submitApplication(authority, channel, { applicationId, accessCode, claim }),
        refusedWith("forbidden", /failed: the access code is void after 5 wrong attempts/),
      );
      const application = await getApplication(authority.registry.db, applicationId);
      assert.equal(application?.status, "failed");
      assert.match(application?.failureReason ?? "", /void after 5 wrong attempts.*municipal counter/);
      // No failed application was recorded per attempt: only the one application exists.
      assert.equal((await authority.registry.db.selectFrom("applications").select("id").execute()).length, 1);
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("10 wrong codes in parallel: each one counted up to the limit, the code void, the right code then refused", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const channel = new PostalChannel();
      const { phone, applicationId, accessCode } = await requestedAndDelivered(sandbox, post, "並列 十郎");
      const claim = await claimOf(sandbox, phone);
      const codes = Array.from({ length: 10 }, () => newAccessCode()).filter((c) => c !== accessCode);
      const results = await Promise.allSettled(
        codes.map((code) =>
          submitApplication(authority, channel, { applicationId, accessCode: code, claim }),
        ),
      );
      assert.ok(results.every((r) => r.status === "rejected"));
      const row = await codeRow(sandbox, applicationId);
      assert.equal(row.failed_attempts, ACCESS_CODE_MAX_ATTEMPTS);
      await assert.rejects(
        submitApplication(authority, channel, { applicationId, accessCode, claim }),
        refusedWith("forbidden", /void after 5 wrong attempts/),
      );
      assert.equal((await getApplication(authority.registry.db, applicationId))?.status, "failed");
      const audited = await authority.registry.db
        .selectFrom("audit_log")
        .select("action")
        .where("subject", "=", applicationId)
        .where("action", "in", ["access-code.wrong", "access-code.void"])
        .execute();
      assert.equal(audited.length, ACCESS_CODE_MAX_ATTEMPTS, "every counted attempt is audited, no more");
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("an expired code is refused and fails the application; a code is used once, even by two completions at the same moment", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const channel = new PostalChannel();
      const late = await requestedAndDelivered(sandbox, post, "期限 切子");
      const claim = await claimOf(sandbox, late.phone);
      await assert.rejects(
        submitApplication(
          authority,
          channel,
          { applicationId: late.applicationId, accessCode: late.accessCode, claim },
          { now: new Date(Date.now() + 14 * DAY + 60_000) },
        ),
        refusedWith("forbidden", /expired at/),
      );
      const expired = await getApplication(authority.registry.db, late.applicationId);
      assert.deepEqual([expired?.status, /expired/.test(expired?.failureReason ?? "")], ["failed", true]);

      // Two completions with the same code race: one wins, the other is refused.
      const twice = await requestedAndDelivered(sandbox, post, "二重 使子");
      const first = await claimOf(sandbox, twice.phone);
      const second = { ...(await claimOf(sandbox, twice.phone)) };
      const results = await Promise.allSettled(
        [first, second].map((c) =>
          submitApplication(authority, channel, {
            applicationId: twice.applicationId,
            accessCode: twice.accessCode,
            claim: c,
          }),
        ),
      );
      assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
      const loser = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      assert.ok(loser.reason instanceof JpkiError && loser.reason.code === "conflict", String(loser.reason));

      // And the code itself refuses a second use, whatever the application's state.
      const { id } = await codeRow(sandbox, twice.applicationId);
      await assert.rejects(
        authority.registry.db.transaction().execute((trx) => useAccessCode(trx, id, { actor: "test" })),
        refusedWith("conflict", /already used/),
      );
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("a code works only for its application and on the SIM the request named", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const channel = new PostalChannel();
      const a = await requestedAndDelivered(sandbox, post, "甲 太郎");
      const b = await requestedAndDelivered(sandbox, post, "乙 次郎");

      // A's code on B's application (with B's own SIM): a wrong code for B, counted there.
      await assert.rejects(
        submitApplication(authority, channel, {
          applicationId: b.applicationId,
          accessCode: a.accessCode,
          claim: await claimOf(sandbox, b.phone),
        }),
        refusedWith("forbidden", /wrong access code.*4 attempts left/),
      );
      // A's number and code with B's SIM: refused before the code is looked at.
      await assert.rejects(
        submitApplication(authority, channel, {
          applicationId: a.applicationId,
          accessCode: a.accessCode,
          claim: await claimOf(sandbox, b.phone),
        }),
        refusedWith("forbidden", /is for SIM .* not this one/),
      );
      // A's SIM claiming B's identifiers: the attestation names A's SIM.
      const forged = { ...(await claimOf(sandbox, a.phone)), iccid: b.phone.sim.iccid, eid: b.phone.sim.eid };
      await assert.rejects(
        submitApplication(authority, channel, {
          applicationId: b.applicationId,
          accessCode: b.accessCode,
          claim: forged,
        }),
        refusedWith("bad-input", /another SIM|does not verify/),
      );
      assert.equal((await codeRow(sandbox, a.applicationId)).failed_attempts, 0);
      assert.equal((await codeRow(sandbox, b.applicationId)).failed_attempts, 1);

      // Each still completes with its own code on its own SIM.
      for (const x of [a, b]) {
        const done = await submitApplication(authority, channel, {
          applicationId: x.applicationId,
          accessCode: x.accessCode,
          claim: await claimOf(sandbox, x.phone),
        });
        assert.equal(done.application.status, "issued");
      }
    } finally {
      await sandbox.close();
    }
  });

  test("a person living elsewhere: the letter is not handed over, comes back after the holding period, the counter takes over", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const name = "転居 三郎";
      await issueMyNumberCard(authority, { ...form(name), residence: "大阪府大阪市北区梅田一丁目1番" });
      const phone = await sandbox.phone();
      const sent = new Date();
      const { application, mail } = await requestPostalApplication(authority, post, {
        ...form(name),
        sim: simOf(phone),
      });
      assert.equal(mail.address, ADDRESS, "the letter goes to the address of record");

      const attempt = await post.attemptDelivery({
        trackingNumber: mail.trackingNumber,
        identityChecked: true,
        actor: CARRIER,
        now: sent,
      });
      assert.equal(attempt.handedOver, false);
      assert.equal(attempt.handedOver ? "" : attempt.reason, "addressee-not-found");
      assert.equal(attempt.item.holdUntil, new Date(sent.getTime() + 7 * DAY).toISOString());
      // Delivery elsewhere is not a restricted delivery.
      await assert.rejects(
        post.attemptDelivery({
          trackingNumber: mail.trackingNumber,
          atAddress: "大阪府大阪市北区梅田一丁目1番",
          identityChecked: true,
          actor: CARRIER,
        }),
        refusedWith("bad-input", /made only there/),
      );

      // Held for 7 days, then back to J-LIS.
      assert.deepEqual(
        await post.returnOverdue({ actor: CARRIER, now: new Date(sent.getTime() + 6 * DAY) }),
        [],
      );
      assert.deepEqual(await referReturnedApplications(authority, post), []);
      const returned = await post.returnOverdue({ actor: CARRIER, now: new Date(sent.getTime() + 7 * DAY) });
      assert.deepEqual(
        returned.map((m) => [m.trackingNumber, m.status]),
        [[mail.trackingNumber, "returned"]],
      );
      const referred = await referReturnedApplications(authority, post);
      assert.deepEqual(
        referred.map((a) => [a.id, a.status]),
        [[application.id, "referred-to-counter"]],
      );
      assert.deepEqual(await referReturnedApplications(authority, post), [], "learnt once");
      const record = await getApplication(db, application.id);
      assert.equal(record?.history.at(-1)?.reason, COUNTER_REFERRAL_REASON);
      assert.deepEqual(
        record?.history.map((e) => e.status),
        ["received", "awaiting-code", "referred-to-counter"],
      );
      const code = await codeRow(sandbox, application.id);
      assert.match(code.void_reason ?? "", /came back/);
      const mailRow = await db.selectFrom("mail_items").selectAll().executeTakeFirstOrThrow();
      assert.deepEqual([mailRow.status, mailRow.sealed_letter], ["returned", null]);

      // Whatever code someone tries now, the application is the counter's.
      await assert.rejects(
        submitApplication(authority, new PostalChannel(), {
          applicationId: application.id,
          accessCode: newAccessCode(),
          claim: await claimOf(sandbox, phone),
        }),
        refusedWith("forbidden", /referred-to-counter: the restricted-delivery mail could not be handed/),
      );
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("the access code is nowhere in the database: not while the letter travels, not after it is used", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const name = "秘密 守";
      await sandbox.citizen(name);
      const phone = await sandbox.phone();
      const { application, mail } = await requestPostalApplication(authority, post, {
        ...form(name),
        sim: simOf(phone),
      });
      const tables = (await db.introspection.getTables()).map((t) => t.name);
      assert.ok(tables.includes("mail_items") && tables.includes("access_codes"));

      /** Every text and binary value of every table that holds `code`, in any of its forms. */
      async function occurrences(code: string): Promise<string[]> {
        const forms = [
          code,
          code.replace(/-/g, ""),
          code.toLowerCase(),
          code.replace(/-/g, "").toLowerCase(),
        ];
        const found: string[] = [];
        for (const table of tables) {
          // biome-ignore lint/suspicious/noExplicitAny: every table, whatever its columns
          const rows = await (db as any).selectFrom(table).selectAll().execute();
          for (const row of rows as Record<string, unknown>[])
            for (const [column, value] of Object.entries(row)) {
              const bytes =
                typeof value === "string" ? Buffer.from(value) : Buffer.isBuffer(value) ? value : undefined;
              if (bytes && forms.some((f) => bytes.includes(Buffer.from(f))))
                found.push(`${table}.${column}`);
            }
        }
        return found;
      }

      // The letter travels: the table holds it sealed (the test opens it with the data directory's key).
      const sealed = await db.selectFrom("mail_items").select("sealed_letter").executeTakeFirstOrThrow();
      const { accessCode } = readAccessCodeLetter(
        openLetter(envelopeKey(sandbox.dir), mail.trackingNumber, sealed.sealed_letter!),
      );
      assert.deepEqual(await occurrences(accessCode), []);

      // Handed over: the addressee has the same code, and the post office nothing more.
      const handed = await post.attemptDelivery({
        trackingNumber: mail.trackingNumber,
        identityChecked: true,
        actor: CARRIER,
      });
      assert.ok(handed.handedOver);
      assert.equal(readAccessCodeLetter(handed.letter).accessCode, accessCode);
      assert.deepEqual(await occurrences(accessCode), []);
      // The scan does find a value that is there (so an empty answer means something).
      assert.ok((await occurrences(mail.trackingNumber)).includes("mail_items.tracking_number"));

      await submitApplication(authority, new PostalChannel(), {
        applicationId: application.id,
        accessCode,
        claim: await claimOf(sandbox, phone),
      });
      assert.deepEqual(await occurrences(accessCode), []);
    } finally {
      await sandbox.close();
    }
  });

  test("a form that matches no one is refused with one answer, whichever attribute differs; nothing is mailed", async () => {
    const { sandbox, post } = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const name = "照合 四郎";
      const citizen = await sandbox.citizen(name);
      const phone = await sandbox.phone();
      const sim = simOf(phone);
      const variants = [
        { ...form(name), name: "照合 史郎" },
        { ...form(name), birth: "1988-06-16" },
        { ...form(name), sex: "female" },
        { ...form(name), address: `${ADDRESS}A` },
        { ...form("誰 でもない"), birth: "1970-01-01" },
      ];
      const messages: string[] = [];
      for (const variant of variants)
        await assert.rejects(
          requestPostalApplication(authority, post, { ...variant, sim }),
          (error: unknown) => {
            assert.ok(error instanceof JpkiError && error.code === "forbidden");
            messages.push(error.message);
            return true;
          },
        );
      assert.deepEqual(new Set(messages), new Set([NO_MATCH_REFUSAL]));
      for (const word of ["birth date differs", "wrong name", "sex does not", "address does not"])
        assert.ok(!NO_MATCH_REFUSAL.includes(word));

      // A lost card gives the same answer: the form's sender learns nothing about the person.
      await authority.registry.setCardStatus(citizen.cardId, "lost", "reported lost", "test");
      await assert.rejects(
        requestPostalApplication(authority, post, { ...form(name), sim }),
        refusedWith("forbidden", new RegExp(`^${NO_MATCH_REFUSAL.replace(/[()]/g, "\\$&")}$`)),
      );

      assert.deepEqual(await post.list("sent"), []);
      const recorded = await db
        .selectFrom("applications")
        .select(["status", "person_id", "evidence"])
        .execute();
      assert.equal(recorded.length, variants.length + 1);
      assert.ok(recorded.every((r) => r.status === "failed" && r.person_id === null));
      assert.ok(recorded.every((r) => !r.evidence.includes(name) && !r.evidence.includes("1988")));
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });
});
