/**
 * An application whose certificate could not be signed (the CA's key device away) waits, `verified`,
 * with its pending certificate; the next start's recovery signs it and the application follows, on
 * both databases.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SignerUnavailableError } from "../errors.js";
import { openAuthority } from "../server/authority.js";
import { forEachDialect } from "../testing/dialects.js";
import { getApplication } from "./applications.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { OnlineChannel } from "./online.js";
import { submitApplication } from "./ra.js";
import { openRaSandbox } from "./ra-fixture.js";

forEachDialect((_dialect, open) => {
  test("an application left verified by an unavailable signer is issued by the next start's recovery", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    try {
      const { authority } = sandbox;
      const citizen = await sandbox.citizen();
      const phone = await sandbox.phone();
      const app = phone.app();
      const signedData = await app.prepareOnlineApplication({
        card: citizen.card,
        signPassword: DEFAULT_SIGN_PASSWORD,
      });
      // The user-authentication CA's key device stops answering.
      const signer = authority.signers.auth;
      const away: typeof authority = {
        ...authority,
        signers: {
          ...authority.signers,
          auth: Object.assign(Object.create(signer) as typeof signer, {
            issue: () => Promise.reject(new SignerUnavailableError("the HSM does not answer")),
          }),
        },
      };
      await assert.rejects(
        submitApplication(away, new OnlineChannel(), { signedData }),
        (error: unknown) => error instanceof Error && /finished when the CA is back/.test(error.message),
      );
      const waiting = await authority.registry.db
        .selectFrom("applications")
        .select(["id", "status", "certificate_serial"])
        .executeTakeFirstOrThrow();
      assert.equal(waiting.status, "verified");
      const pending = await authority.registry.getCertificate(waiting.certificate_serial!);
      assert.equal(pending?.status, "pending");

      // The next start: recovery signs the pending certificate, and the application follows.
      const restarted = await openAuthority(authority.dataDir, { actor: "test" });
      try {
        const issued = await restarted.registry.getCertificate(waiting.certificate_serial!);
        assert.equal(issued?.status, "issued");
        const application = await getApplication(restarted.registry.db, waiting.id);
        assert.deepEqual(
          application?.history.map((e) => [e.status, e.actor]),
          [
            ["received", "ra:online"],
            ["verified", "ra:online"],
            ["issued", "system:recovery"],
          ],
        );
        assert.deepEqual(await restarted.registry.verifyAudit(), []);
      } finally {
        await restarted.close();
      }
    } finally {
      await sandbox.close();
    }
  });
});
