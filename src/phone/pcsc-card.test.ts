/**
 * The JPKI app with the My Number card in a real PC/SC reader (pcscd with vsmartcard's vpcd, the card
 * served by this process): the card signs an online application through PC/SC, and J-LIS issues and
 * delivers the certificate. The same code that the in-process tests run, over the other transport.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { openMyNumberCard } from "../card/mynacard.js";
import { connectPcscCard, waitForReaderState } from "../card/pcsc-transport.js";
import { serveCardOverVpcd } from "../card/vpcd.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { pcscSkipReason, withVpcdSlot } from "../testing/pcsc.js";

const skip = await pcscSkipReason();

describe("the JPKI app with the card in a PC/SC reader", { skip, timeout: 600_000 }, () => {
  test("the card signs the online application through pcscd; the certificate is delivered", async () => {
    const sandbox = await openRaSandbox();
    try {
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      await withVpcdSlot(async (slot) => {
        const link = serveCardOverVpcd(openMyNumberCard(citizen.cardState), { port: slot.port });
        let card: Awaited<ReturnType<typeof connectPcscCard>> | undefined;
        try {
          await link.waitUntilActive();
          assert.ok(await waitForReaderState(slot.readerName, "present", 10_000));
          card = await connectPcscCard({ reader: slot.readerName });
          const app = phone.app();
          const answer = await app.applyOnline({ card, signPassword: DEFAULT_SIGN_PASSWORD });
          assert.equal(answer.status, "delivered");
          const application = await sandbox.authority.registry.db
            .selectFrom("applications")
            .select(["person_id", "status"])
            .where("id", "=", answer.applicationId)
            .executeTakeFirstOrThrow();
          assert.deepEqual([application.person_id, application.status], [citizen.citizenId, "delivered"]);
        } finally {
          // The card leaves the reader before the PC/SC handle is released: SCardDisconnect blocks
          // this thread, and pcscd may need the card, which this same thread serves, to answer it.
          await link.close();
          await card?.close();
        }
      });
    } finally {
      await sandbox.close();
    }
  });
});
