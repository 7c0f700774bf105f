/**
 * The municipal counter end to end, on both databases: a clerk of the municipality of the address of
 * record identifies the citizen by the card's signature or by documents, J-LIS generates the key on
 * the SIM through the counter terminal, issues and writes the certificate through it, and the SIM then
 * signs; a postal application whose letter came back is completed at the counter; every refusal
 * (wrong or disabled clerk, another municipality, too few documents, a held card certificate, a
 * replayed statement, another person's application); and the PIN unblock after three wrong PINs.
 */
import assert from "node:assert/strict";
import { constants, createPublicKey, publicDecrypt, randomBytes } from "node:crypto";
import { test } from "node:test";
import { InProcessTransport } from "../card/in-process-transport.js";
import { openMyNumberCard } from "../card/mynacard.js";
import { JpkiError } from "../errors.js";
import { addClerk, setClerkStatus } from "../municipality/clerks.js";
import { applyAtCounter, identifyAtCounter, unblockPinAtCounter } from "../municipality/console.js";
import { CounterTerminal } from "../municipality/terminal.js";
import type { JpkiApp } from "../phone/app.js";
import { PinBlockedError, WrongPinError } from "../phone/jpki-card.js";
import { parseCertificate } from "../pki/certificate.js";
import { sha256DigestInfo } from "../pki/cms.js";
import { envelopeKey } from "../post/envelope.js";
import { RestrictedDeliveryService } from "../post/restricted-delivery.js";
import { revokeCertificate, suspendCertificate } from "../registry/lifecycle.js";
import { forEachDialect } from "../testing/dialects.js";
import { getApplication } from "./applications.js";
import { issueMyNumberCard } from "./card-issuance.js";
import { submitCounterApplication } from "./counter.js";
import { issueNonce } from "./nonces.js";
import { referReturnedApplications, requestPostalApplication } from "./postal.js";
import { generateKeyOnSim } from "./provisioning.js";
import {
  type Citizen,
  FIXTURE_SIGN_PASSWORD,
  openRaSandbox,
  type Phone,
  type RaSandbox,
} from "./ra-fixture.js";

const CHIYODA = { municipalityCode: "131016", municipalityName: "東京都千代田区" };
const OSAKA = { municipalityCode: "271004", municipalityName: "大阪府大阪市" };
const ADDRESS = "東京都千代田区霞が関二丁目1番2号";
const DAY = 24 * 3600_000;

const refusedWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof JpkiError && error.code === code && pattern.test(error.message);

const _appOf = (_sandbox: RaSandbox, phone: Phone) => phone.app();

/** The SIM's signature over a random hash opens with the certificate's key (RFC 8017 §8.2). */
async function signsWith(app: JpkiApp, pin: string, certificate: Buffer): Promise<void> {
  const hash = randomBytes(32);
  const signature = await app.signHash(hash, pin);
  const key = createPublicKey({ key: parseCertificate(certificate).spki, format: "der", type: "spki" });
  assert.ok(
    publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature).equals(sha256DigestInfo(hash)),
  );
}

forEachDialect((_dialect, open) => {
  async function sandboxOn(): Promise<RaSandbox> {
    const database = await open({ migrate: false });
    await database.close();
    return openRaSandbox(database.url);
  }

  async function counterOf(sandbox: RaSandbox, municipality = CHIYODA) {
    const { token, clerk } = await addClerk(sandbox.authority.registry.db, {
      ...municipality,
      label: "窓口 一番",
      actor: "test",
    });
    return { token, clerk, terminal: new CounterTerminal(clerk.municipalityCode) };
  }

  const byCard = (citizen: Citizen) =>
    ({ method: "card-signature", card: citizen.card, signPassword: FIXTURE_SIGN_PASSWORD }) as const;

  test("apply at the counter with the card's signature, and with documents: issued, written through the terminal, the SIM signs", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const { token, clerk, terminal } = await counterOf(sandbox);

      for (const identity of ["card-signature", "documents"] as const) {
        const citizen = await sandbox.citizen(`窓口 ${identity}`);
        const phone = await sandbox.phone();
        assert.deepEqual(await terminal.tap(phone.uicc), { iccid: phone.sim.iccid, eid: phone.sim.eid });
        const application = await applyAtCounter(authority, terminal, {
          clerkToken: token,
          identity:
            identity === "card-signature"
              ? byCard(citizen)
              : { method: "documents", card: citizen.card, documents: "license" },
        });
        terminal.release();
        assert.equal(application.channel, "counter");
        assert.equal(application.personId, citizen.citizenId);
        assert.deepEqual(
          application.history.map((e) => e.status),
          ["received", "verified", "issued", "delivering", "delivered"],
        );
        assert.equal(application.history[0]!.actor, `clerk:${clerk.id}@131016`);
        assert.deepEqual(application.evidence["counter"], {
          clerk: clerk.id,
          municipality: "131016",
          municipalityName: "東京都千代田区",
          identity,
          ...(identity === "card-signature"
            ? { signingCertificate: citizen.signSerial }
            : { documents: "license" }),
        });
        const check = await db
          .selectFrom("counter_identity_checks")
          .selectAll()
          .where("subject", "=", application.id)
          .executeTakeFirstOrThrow();
        assert.deepEqual(
          [
            check.clerk_id,
            check.municipality_code,
            check.method,
            check.purpose,
            check.person_id,
            check.card_id,
          ],
          [clerk.id, "131016", identity, "application", citizen.citizenId, citizen.cardId],
        );
        const row = await authority.registry.getCertificate(application.certificateSerial!);
        assert.deepEqual(
          [row?.kind, row?.status, row?.parentSerial],
          ["phone-auth", "issued", citizen.authSerial],
        );

        // The citizen chooses the PIN in the phone; the SIM signs with the new key.
        const app = phone.app();
        assert.equal(await app.ensurePin("2580"), "set");
        await signsWith(app, "2580", row!.der!);
        assert.equal(phone.relay.relayed.length, 0, "no carrier on the counter's path");
      }
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("a postal application whose letter came back is completed at the counter of the address of record", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const post = new RestrictedDeliveryService(authority.registry.db, {
        envelopeKey: envelopeKey(sandbox.dir),
      });
      const name = "転居 四郎";
      const citizen = await issueMyNumberCard(authority, {
        name,
        birth: "1988-06-15",
        sex: "male",
        address: ADDRESS,
        residence: "大阪府大阪市北区梅田一丁目1番",
      });
      const phone = await sandbox.phone();
      const other = await sandbox.phone();
      const sent = new Date();
      const { application, mail } = await requestPostalApplication(authority, post, {
        name,
        birth: "1988-06-15",
        sex: "male",
        address: ADDRESS,
        sim: { iccid: phone.sim.iccid, eid: phone.sim.eid, carrier: phone.sim.brand },
      });
      const attempt = await post.attemptDelivery({
        trackingNumber: mail.trackingNumber,
        identityChecked: true,
        actor: "post:carrier",
        now: sent,
      });
      assert.equal(attempt.handedOver, false);
      await post.returnOverdue({ actor: "post:carrier", now: new Date(sent.getTime() + 7 * DAY) });
      assert.deepEqual(
        (await referReturnedApplications(authority, post)).map((a) => a.status),
        ["referred-to-counter"],
      );

      const { token, terminal } = await counterOf(sandbox);
      const card = (await sandbox.citizen("別人 五郎")).card;
      const ownCard = new InProcessTransport(openMyNumberCard(citizen.cardState));
      const input = (identityCard: typeof card) => ({
        clerkToken: token,
        identity: {
          method: "card-signature",
          card: identityCard,
          signPassword: FIXTURE_SIGN_PASSWORD,
        } as const,
        continues: application.id.toLowerCase(),
      });

      // Another person cannot complete it, nor can it go to another SIM.
      await terminal.tap(phone.uicc);
      await assert.rejects(
        applyAtCounter(authority, terminal, input(card)),
        refusedWith("forbidden", /another person's/),
      );
      await terminal.tap(other.uicc);
      await assert.rejects(
        applyAtCounter(authority, terminal, input(ownCard)),
        refusedWith("forbidden", /is for SIM/),
      );
      assert.equal(
        (await getApplication(authority.registry.db, application.id))?.status,
        "referred-to-counter",
      );

      await terminal.tap(phone.uicc);
      const completed = await applyAtCounter(authority, terminal, input(ownCard));
      assert.equal(completed.id, application.id);
      assert.equal(completed.channel, "postal", "the application keeps the channel it was filed through");
      assert.deepEqual(
        completed.history.map((e) => e.status),
        ["received", "awaiting-code", "referred-to-counter", "verified", "issued", "delivering", "delivered"],
      );
      assert.equal((completed.evidence["counter"] as { identity: string }).identity, "card-signature");
      assert.equal(completed.evidence["mailReturned"], mail.trackingNumber, "the postal evidence stays");
      // Once completed, it cannot be completed again.
      await assert.rejects(
        applyAtCounter(authority, terminal, input(ownCard)),
        refusedWith("forbidden", /delivered, not referred to the counter/),
      );
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("refusals: wrong token, disabled clerk, another municipality, too few documents, held card certificate, replayed statement", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const { token, clerk, terminal } = await counterOf(sandbox);
      await terminal.tap(phone.uicc);
      const applications = async () =>
        (await db.selectFrom("applications").select("status").execute()).length;

      // An unknown token leaves nothing behind.
      await assert.rejects(
        applyAtCounter(authority, terminal, { clerkToken: "A".repeat(43), identity: byCard(citizen) }),
        refusedWith("forbidden", /clerk token is not valid/),
      );
      assert.equal(await applications(), 0);

      // A disabled clerk, then enabled again.
      await setClerkStatus(db, clerk.id, "disabled", { actor: "test", reason: "left the office" });
      await assert.rejects(
        applyAtCounter(authority, terminal, { clerkToken: token, identity: byCard(citizen) }),
        refusedWith("forbidden", /is disabled/),
      );
      await setClerkStatus(db, clerk.id, "active", { actor: "test" });

      // A clerk of Osaka City does not serve a resident of Chiyoda.
      const osaka = await counterOf(sandbox, OSAKA);
      await osaka.terminal.tap(phone.uicc);
      await assert.rejects(
        applyAtCounter(authority, osaka.terminal, { clerkToken: osaka.token, identity: byCard(citizen) }),
        refusedWith(
          "forbidden",
          /not in 大阪府大阪市: the counter of the municipality of the address of record/,
        ),
      );
      // Unless the policy lets any municipality serve.
      const anyCounter = await applyAtCounter(authority, osaka.terminal, {
        clerkToken: osaka.token,
        identity: byCard(citizen),
        options: { jurisdiction: "any" },
      });
      assert.equal(anyCounter.status, "delivered");
      await terminal.tap(phone.uicc);

      // One non-photo document is not enough; two different ones are.
      await assert.rejects(
        applyAtCounter(authority, terminal, {
          clerkToken: token,
          identity: { method: "documents", card: citizen.card, documents: "health-insurance" },
        }),
        refusedWith("forbidden", /not enough: .*health insurance card.* alone does not identify/),
      );
      await assert.rejects(
        applyAtCounter(authority, terminal, {
          clerkToken: token,
          identity: { method: "documents", card: citizen.card, documents: "license,license" },
        }),
        refusedWith("bad-input", /named twice/),
      );
      const twoDocuments = await applyAtCounter(authority, terminal, {
        clerkToken: token,
        identity: { method: "documents", card: citizen.card, documents: "health-insurance, pension-book" },
      });
      assert.equal(twoDocuments.status, "delivered");

      // A signed statement is used once.
      const identity = await identifyAtCounter(authority, token, byCard(citizen), "application");
      const claim = async () => {
        const { nonce } = await issueNonce(db);
        const key = await generateKeyOnSim(authority, terminal.relayForJlis(), {
          iccid: phone.sim.iccid,
          nonce,
        });
        return {
          iccid: phone.sim.iccid,
          eid: phone.sim.eid,
          appletInstance: await terminal.appletInstance(),
          publicKey: key.spki,
          attestation: key.attestation,
          nonce,
        };
      };
      await submitCounterApplication(authority, { clerkToken: token, identity, claim: await claim() });
      await assert.rejects(
        submitCounterApplication(authority, { clerkToken: token, identity, claim: await claim() }),
        refusedWith("conflict", /already used/),
      );
      // A statement signed for a PIN unblock does not make an application.
      const forUnblock = await identifyAtCounter(authority, token, byCard(citizen), "pin-unblock");
      await assert.rejects(
        submitCounterApplication(authority, {
          clerkToken: token,
          identity: forUnblock,
          claim: await claim(),
        }),
        refusedWith("bad-input", /for pin-unblock, not application/),
      );
      // Another clerk cannot use a statement signed at this counter.
      await assert.rejects(
        submitCounterApplication(authority, {
          clerkToken: osaka.token,
          identity: await identifyAtCounter(authority, token, byCard(citizen), "application"),
          claim: await claim(),
        }),
        refusedWith("bad-input", /another clerk's counter/),
      );

      // The card's signing certificate is held: the card's signature no longer identifies anyone.
      await suspendCertificate(db, citizen.signSerial, { actor: "test" });
      await assert.rejects(
        applyAtCounter(authority, terminal, { clerkToken: token, identity: byCard(citizen) }),
        refusedWith("forbidden", /signing certificate is suspended/),
      );

      const failed = await db
        .selectFrom("applications")
        .select("failure_reason")
        .where("status", "=", "failed")
        .execute();
      assert.ok(failed.length >= 6, failed.map((f) => f.failure_reason).join("\n"));
      const refusedChecks = await db
        .selectFrom("audit_log")
        .select("details")
        .where("action", "=", "counter.identity-refused")
        .execute();
      assert.ok(refusedChecks.length >= 5);
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });

  test("PIN unblock: three wrong PINs block the SIM, the counter resets it through J-LIS's channel, the new PIN signs", async () => {
    const sandbox = await sandboxOn();
    try {
      const { authority } = sandbox;
      const db = authority.registry.db;
      const citizen = await sandbox.citizen();
      const stranger = await sandbox.citizen("他人 六郎");
      const phone = await sandbox.phone();
      const { token, terminal } = await counterOf(sandbox);
      await terminal.tap(phone.uicc);
      const application = await applyAtCounter(authority, terminal, {
        clerkToken: token,
        identity: byCard(citizen),
      });
      terminal.release();
      const certificate = (await authority.registry.getCertificate(application.certificateSerial!))!.der!;
      const app = phone.app();
      await app.ensurePin("1357");
      await signsWith(app, "1357", certificate);

      const hash = randomBytes(32);
      await assert.rejects(
        app.signHash(hash, "0000"),
        (e) => e instanceof WrongPinError && e.triesLeft === 2,
      );
      await assert.rejects(
        app.signHash(hash, "0001"),
        (e) => e instanceof WrongPinError && e.triesLeft === 1,
      );
      await assert.rejects(
        app.signHash(hash, "0002"),
        (e) => e instanceof PinBlockedError && /municipal counter/.test(e.message),
      );
      await assert.rejects(
        app.signHash(hash, "1357"),
        PinBlockedError,
        "blocked: even the right PIN is refused",
      );

      await terminal.tap(phone.uicc);
      // Someone else's identity does not reset this SIM's PIN.
      await assert.rejects(
        unblockPinAtCounter(authority, terminal, {
          clerkToken: token,
          identity: { method: "documents", card: stranger.card, documents: "passport" },
          newPin: "9999",
        }),
        refusedWith("forbidden", /another person's: its PIN is not reset/),
      );
      await assert.rejects(
        unblockPinAtCounter(authority, terminal, {
          clerkToken: token,
          identity: byCard(citizen),
          newPin: "12345",
        }),
        refusedWith("bad-input", /4 digits/),
      );

      const before = terminal.relayed.length;
      const result = await unblockPinAtCounter(authority, terminal, {
        clerkToken: token,
        identity: byCard(citizen),
        newPin: "8642",
      });
      terminal.release();
      assert.equal(result.certificateSerial, application.certificateSerial);
      const carried = Buffer.concat(
        terminal.relayed.slice(before).flatMap((e) => [e.command, e.response ?? Buffer.alloc(0)]),
      );
      assert.ok(carried.length > 0);
      assert.equal(
        carried.indexOf(Buffer.from("8642", "latin1")),
        -1,
        "the new PIN crossed the terminal in clear",
      );

      await signsWith(app, "8642", certificate);
      await assert.rejects(
        app.signHash(hash, "1357"),
        (e) => e instanceof WrongPinError && e.triesLeft === 2,
      );
      await signsWith(app, "8642", certificate);

      const actions = (
        await db
          .selectFrom("audit_log")
          .select("action")
          .where("subject", "=", phone.sim.iccid)
          .orderBy("seq")
          .execute()
      ).map((r) => r.action);
      assert.deepEqual(
        actions.filter((a) => a.startsWith("sim.pin-unblock") || a === "counter.identity-verified"),
        ["counter.identity-verified", "sim.pin-unblock.requested", "sim.pin-unblock.done"],
      );

      // A SIM whose certificate is revoked has nothing to unblock.
      await revokeCertificate(db, application.certificateSerial!, { actor: "test", reason: 0 });
      await terminal.tap(phone.uicc);
      await assert.rejects(
        unblockPinAtCounter(authority, terminal, {
          clerkToken: token,
          identity: byCard(citizen),
          newPin: "1111",
        }),
        refusedWith("forbidden", /holds no valid smartphone certificate/),
      );
      assert.deepEqual(await authority.registry.verifyAudit(), []);
    } finally {
      await sandbox.close();
    }
  });
});
