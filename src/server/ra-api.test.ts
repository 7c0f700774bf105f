/**
 * The RA's and the carriers' relay JSON APIs over real HTTP, on both databases: a phone that runs
 * apart from J-LIS applies online through them (its relay agent pulling J-LIS's secured commands
 * from the carrier), many applications at once go through the desk in batches, and bad requests get
 * a 4xx with a JSON reason.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { httpJlis, httpRelayAgent } from "../phone/http-jlis.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { forEachDialect } from "../testing/dialects.js";
import { createStatusService } from "./http.js";

forEachDialect((_dialect, open) => {
  test("a phone applies online over HTTP; concurrent applications; refusals as JSON", async () => {
    const database = await open({ migrate: false });
    await database.close();
    const sandbox = await openRaSandbox(database.url);
    const logged: string[] = [];
    const service = createStatusService(sandbox.authority, { refresher: false, log: (l) => logged.push(l) });
    const url = await service.listen(0, "127.0.0.1");
    const agents: { stop(): Promise<void> }[] = [];
    try {
      const jlis = httpJlis(url);
      const phoneApp = async () => {
        const phone = await sandbox.phone();
        phone.stopRelay(); // the phone reaches the carrier over HTTP instead of in process
        agents.push(httpRelayAgent(url, phone.sim.iccid, phone.uicc, { waitSeconds: 2 }));
        return phone.app(jlis);
      };

      const citizen = await sandbox.citizen();
      const app = await phoneApp();
      const signed = await app.prepareOnlineApplication({
        card: citizen.card,
        signPassword: DEFAULT_SIGN_PASSWORD,
      });
      const submitted = await jlis.submit(signed);
      assert.equal(submitted.status, "issued");
      const delivered = await jlis.deliver(submitted.applicationId);
      assert.equal(delivered.status, "delivered");
      assert.equal(await app.ensurePin("1357"), "set");
      assert.ok((await app.certificate("1357")).length > 500);

      const status = await fetch(`${url}/api/ra/applications/${submitted.applicationId.toLowerCase()}`);
      assert.equal(status.status, 200);
      const shown = (await status.json()) as {
        status: string;
        history: { status: string }[];
        personId?: string;
      };
      assert.equal(shown.status, "delivered");
      assert.equal(shown.personId, undefined, "no personal reference without proof of who asks");
      assert.deepEqual(
        shown.history.map((e) => e.status),
        ["received", "verified", "issued", "delivering", "delivered"],
      );

      // The replay is refused with 409 and a reason.
      await assert.rejects(
        jlis.submit(signed),
        (error: unknown) =>
          error instanceof JpkiError && error.code === "conflict" && /replayed/.test(error.message),
      );

      // Several citizens at once: each gets its own certificate.
      const many = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const other = await sandbox.citizen();
          const otherApp = await phoneApp();
          return otherApp.prepareOnlineApplication({ card: other.card, signPassword: DEFAULT_SIGN_PASSWORD });
        }),
      );
      const answers = await Promise.all(many.map((s) => jlis.submit(s)));
      assert.deepEqual(
        answers.map((a) => a.status),
        many.map(() => "issued"),
      );
      assert.equal(new Set(answers.map((a) => a.certificateSerial)).size, 6);

      // Bad requests: JSON reasons, 4xx.
      const bad = async (path: string, init: RequestInit, status: number) => {
        const response = await fetch(`${url}${path}`, init);
        assert.equal(response.status, status, path);
        const body = (await response.json()) as { error: string; reason: string };
        assert.ok(body.error && body.reason, JSON.stringify(body));
        return body;
      };
      await bad(
        "/api/ra/applications",
        { method: "POST", headers: { "content-type": "text/plain" }, body: "x" },
        415,
      );
      await bad(
        "/api/ra/applications",
        { method: "POST", headers: { "content-type": "application/cms" }, body: Buffer.alloc(70_000) },
        413,
      );
      await bad(
        "/api/ra/applications",
        { method: "POST", headers: { "content-type": "application/cms" }, body: "garbage" },
        400,
      );
      await bad("/api/ra/applications/AP-0000-0000-0000", {}, 404);
      await bad("/api/ra/applications/12345", {}, 400);
      await bad("/api/ra/sims/8981000000000000000/key", { method: "POST", body: "{not json" }, 400);
      await bad("/api/ra/nonces", {}, 405);
      await bad("/api/ra/unknown", {}, 404);
      assert.deepEqual(logged, [], "no request made the server fail");
      assert.deepEqual(await sandbox.authority.registry.verifyAudit(), []);
    } finally {
      for (const agent of agents) await agent.stop();
      await service.close();
      await sandbox.close();
    }
  });
});
