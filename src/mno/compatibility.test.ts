/**
 * The compatibility list: every carrier with both kinds of SIM, a light MVNO's SIMs delivered by its
 * host, and the same list over HTTP as support tools read it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { createStatusService } from "../server/http.js";
import { CARRIERS } from "./carriers.js";
import { compatibilityList } from "./compatibility.js";

test("every carrier and SIM kind is listed; a light MVNO's SIMs are delivered by its host; served at /api/support", async () => {
  const list = compatibilityList();
  assert.equal(list.length, CARRIERS.length * 2);
  for (const carrier of CARRIERS)
    assert.deepEqual(
      list.filter((e) => e.carrier === carrier.name).map((e) => e.simKind),
      ["physical", "esim"],
    );
  const hibari = list.filter((e) => e.carrier === "hibari");
  assert.ok(hibari.every((e) => e.otaBy === "sakura" && e.kind === "light-mvno"));
  assert.ok(list.filter((e) => e.kind !== "light-mvno").every((e) => e.otaBy === e.carrier));
  assert.match(list.find((e) => e.simKind === "esim")!.note, /apply again/);

  const sandbox = await openRaSandbox();
  const service = createStatusService(sandbox.authority, { refresher: false, log: () => undefined });
  try {
    const url = await service.listen(0);
    const response = await fetch(`${url}/api/support/compatibility`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { entries: list });
    const post = await fetch(`${url}/api/support/compatibility`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(((await post.json()) as { error: string }).error, "method-not-allowed");
  } finally {
    await service.close();
    await sandbox.close();
  }
});
