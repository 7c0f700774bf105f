/**
 * The post office's restricted delivery on both databases: handed over only to the addressee, at the
 * address on the envelope, after the identity check; held from the first failed attempt and returned
 * after the holding period; the letter sealed in the table and erased when it leaves; every change
 * audited. Who lives where comes from a test world, not the registry.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import { verifyAudit } from "../registry/audit.js";
import { forEachDialect } from "../testing/dialects.js";
import { envelopeKey, openLetter, sealLetter } from "./envelope.js";
import { parseTrackingNumber, RestrictedDeliveryService, sameAddress } from "./restricted-delivery.js";

const DAY = 24 * 3600_000;
const HOME = "京都府京都市左京区一乗寺1-2-3";
const refusedWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === code && pattern.test(error.message);

test("the envelope key is made once (mode 0600) and a letter opens only for its own tracking number", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-post-"));
  try {
    const key = envelopeKey(dir);
    assert.ok(envelopeKey(dir).equals(key));
    assert.equal(statSync(path.join(dir, "post", "envelope.key")).mode & 0o777, 0o600);
    const sealed = sealLetter(key, "1234-5678-9012", Buffer.from("secret"));
    assert.equal(openLetter(key, "1234-5678-9012", sealed).toString(), "secret");
    assert.throws(() => openLetter(key, "1234-5678-9013", sealed), /does not open/);
    assert.ok(!sealed.includes(Buffer.from("secret")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tracking numbers: any one digit mistyped is refused; dashes and spaces are optional", () => {
  assert.equal(parseTrackingNumber("123456789015"), "1234-5678-9015");
  assert.equal(parseTrackingNumber(" 1234 5678 9015 "), "1234-5678-9015");
  fc.assert(
    fc.property(fc.nat(11), fc.integer({ min: 1, max: 9 }), (position, delta) => {
      const digits = "123456789015".split("");
      digits[position] = String((Number(digits[position]) + delta) % 10);
      assert.throws(() => parseTrackingNumber(digits.join("")), /not a tracking number/);
    }),
  );
  assert.ok(sameAddress("京都府京都市左京区一乗寺１-２-３ ", HOME), "full-width digits read as digits");
});

forEachDialect((_dialect, open) => {
  async function office(world: Record<string, string>, holdDays?: number) {
    const database = await open();
    const dir = mkdtempSync(path.join(tmpdir(), "jpki-post-"));
    const post = new RestrictedDeliveryService(database.db, {
      envelopeKey: envelopeKey(dir),
      whereabouts: async (id) => world[id],
      ...(holdDays !== undefined ? { holdDays } : {}),
    });
    const send = (addresseeId: string) =>
      post.send({
        sender: "J-LIS",
        senderReference: `REF-${addresseeId}`,
        addresseeId,
        addresseeName: `Person ${addresseeId}`,
        address: HOME,
        letter: Buffer.from(`letter for ${addresseeId}`),
        actor: "test:sender",
      });
    return { db: database.db, post, send, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }

  test("handed over to the addressee at home after the identity check, never to anyone else, once", async () => {
    const { db, post, send, cleanup } = await office({ alice: HOME, bob: HOME });
    try {
      const item = await send("alice");
      assert.equal(item.status, "sent");
      const attempt = (over: Partial<Parameters<typeof post.attemptDelivery>[0]>) =>
        post.attemptDelivery({
          trackingNumber: item.trackingNumber,
          identityChecked: true,
          actor: "test:carrier",
          ...over,
        });

      const noCheck = await attempt({ identityChecked: false });
      assert.deepEqual(
        [noCheck.handedOver, !noCheck.handedOver && noCheck.reason],
        [false, "identity-not-checked"],
      );
      const housemate = await attempt({ recipientId: "bob" });
      assert.deepEqual(
        [housemate.handedOver, !housemate.handedOver && housemate.reason],
        [false, "not-the-addressee"],
      );
      await assert.rejects(
        attempt({ atAddress: "京都府京都市北区" }),
        refusedWith("bad-input", /made only there/),
      );

      const handed = await attempt({});
      assert.ok(handed.handedOver);
      assert.equal(handed.letter.toString(), "letter for alice");
      assert.deepEqual([handed.item.status, handed.item.deliveryAttempts], ["delivered", 3]);
      const row = await db.selectFrom("mail_items").selectAll().executeTakeFirstOrThrow();
      assert.equal(row.sealed_letter, null, "the letter left the post office");
      await assert.rejects(attempt({}), refusedWith("conflict", /was delivered/));
      // Two carriers at once: one hands it over.
      const again = await send("bob");
      const both = await Promise.allSettled(
        [1, 2].map(() =>
          post.attemptDelivery({
            trackingNumber: again.trackingNumber,
            identityChecked: true,
            actor: "test:carrier",
          }),
        ),
      );
      assert.equal(both.filter((r) => r.status === "fulfilled").length, 1);
      assert.deepEqual(await verifyAudit(db), []);
      const actions = (await db.selectFrom("audit_log").select("action").orderBy("seq").execute()).map(
        (r) => r.action,
      );
      assert.deepEqual(actions.slice(0, 4), [
        "mail.sent",
        "mail.delivery-failed",
        "mail.delivery-failed",
        "mail.delivered",
      ]);
    } finally {
      cleanup();
    }
  });

  test("an addressee living elsewhere: held from the first attempt for the holding period, then returned unopened", async () => {
    const { db, post, send, cleanup } = await office({ carol: "沖縄県那覇市1-1" }, 3);
    try {
      const item = await send("carol");
      const start = new Date();
      const first = await post.attemptDelivery({
        trackingNumber: item.trackingNumber,
        identityChecked: true,
        actor: "test:carrier",
        now: start,
      });
      assert.deepEqual([first.handedOver, !first.handedOver && first.reason], [false, "addressee-not-found"]);
      assert.equal(first.item.holdUntil, new Date(start.getTime() + 3 * DAY).toISOString());
      // A second attempt does not extend the holding period.
      const second = await post.attemptDelivery({
        trackingNumber: item.trackingNumber,
        identityChecked: true,
        actor: "test:carrier",
        now: new Date(start.getTime() + DAY),
      });
      assert.equal(second.item.holdUntil, first.item.holdUntil);
      assert.deepEqual(
        await post.returnOverdue({ actor: "test:post", now: new Date(start.getTime() + 2 * DAY) }),
        [],
      );
      assert.deepEqual(await post.returnedTo("J-LIS"), []);
      const returned = await post.returnOverdue({
        actor: "test:post",
        now: new Date(start.getTime() + 3 * DAY),
      });
      assert.deepEqual(
        returned.map((m) => m.status),
        ["returned"],
      );
      assert.deepEqual(
        (await post.returnedTo("J-LIS")).map((m) => m.senderReference),
        ["REF-carol"],
      );
      const row = await db.selectFrom("mail_items").selectAll().executeTakeFirstOrThrow();
      assert.deepEqual([row.status, row.sealed_letter, row.delivery_attempts], ["returned", null, 2]);
      await assert.rejects(
        post.attemptDelivery({
          trackingNumber: item.trackingNumber,
          identityChecked: true,
          actor: "test:carrier",
        }),
        refusedWith("conflict", /was returned/),
      );
      // An attempt after the holding period sends the item back rather than handing it over.
      const late = await send("carol");
      await post.attemptDelivery({
        trackingNumber: late.trackingNumber,
        identityChecked: false,
        actor: "c",
        now: start,
      });
      const after = await post.attemptDelivery({
        trackingNumber: late.trackingNumber,
        identityChecked: true,
        actor: "c",
        now: new Date(start.getTime() + 4 * DAY),
      });
      assert.deepEqual(
        [after.handedOver, !after.handedOver && after.reason, after.item.status],
        [false, "returned", "returned"],
      );
      assert.deepEqual(await verifyAudit(db), []);
    } finally {
      cleanup();
    }
  });
});
