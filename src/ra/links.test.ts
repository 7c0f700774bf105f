/**
 * The link query on both databases: a registered verifier holding a superseded smartphone
 * certificate learns the holder's current one only when the application for it carried the
 * citizen's consent; otherwise, and for any certificate that was not superseded, the same 404; no
 * token or a signing-only verifier gets 401; every answer is audited.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { addVerifier } from "../registry/verifiers.js";
import { createStatusService } from "../server/http.js";
import { forEachDialect } from "../testing/dialects.js";
import { DEFAULT_SIGN_PASSWORD } from "./card-issuance.js";
import { openRaSandbox } from "./ra-fixture.js";

forEachDialect((_dialect, open) => {
  test("the current certificate is told only with the citizen's consent, and only for a superseded one", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    const service = createStatusService(sandbox.authority, { refresher: false, log: () => undefined });
    try {
      const db = sandbox.authority.registry.db;
      const url = await service.listen(0);
      const citizen = await sandbox.citizen();
      const apply = async (linkConsent: boolean) => {
        const phone = await sandbox.phone();
        const answer = await phone
          .app()
          .applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD, linkConsent });
        assert.equal(answer.status, "delivered");
        return answer.certificateSerial!;
      };
      const { token } = await addVerifier(db, { name: "bank", kind: "auth" });
      const signOnly = await addVerifier(db, { name: "notary", kind: "sign" });
      const ask = async (serial: unknown, bearer = token) => {
        const response = await fetch(`${url}/api/ra/links`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          },
          body: JSON.stringify({ serial }),
        });
        return { status: response.status, body: (await response.json()) as Record<string, string> };
      };

      const first = await apply(false);
      assert.equal((await ask(first)).status, 404, "not superseded: no link");
      const second = await apply(true);
      const linked = await ask(first);
      assert.equal(linked.status, 200);
      assert.deepEqual([linked.body["superseded"], linked.body["current"]], [first, second]);
      const der = await db
        .selectFrom("certificates")
        .select("der")
        .where("serial", "=", second)
        .executeTakeFirst();
      assert.deepEqual(Buffer.from(linked.body["certificate"]!, "base64"), Buffer.from(der!.der!));

      // A third certificate applied for without consent: nobody learns it, from either earlier one.
      await apply(false);
      assert.equal((await ask(first)).status, 404);
      assert.equal((await ask(second)).status, 404);

      assert.equal((await ask(first, "")).status, 401);
      assert.equal((await ask(first, signOnly.token)).status, 401);
      assert.equal((await ask("not hex")).status, 400);
      assert.equal((await ask("0badbeef")).status, 404);
      assert.equal((await ask(citizen.authSerial)).status, 404, "a card certificate is never linked");

      const audited = await db
        .selectFrom("audit_log")
        .select(["subject", "details"])
        .where("action", "=", "certificate.link-query")
        .execute();
      assert.deepEqual(
        audited.map((a) => [a.subject, (JSON.parse(a.details) as { current: string | null }).current]),
        [
          [first, null],
          [first, second],
          [first, null],
          [second, null],
          ["0badbeef", null],
          [citizen.authSerial, null],
        ],
      );
    } finally {
      await service.close();
      await sandbox.close();
    }
  });
});
