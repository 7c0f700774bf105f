/**
 * `jpki-mobile carrier event` and `carrier outbox` as a carrier's operator runs them, in child
 * processes: a report from a carrier that does not speak for the SIM is refused and stays refused in
 * the outbox; the SIM's own light MVNO reports a swap nobody asked for and the certificate is revoked
 * at once; usage errors exit 2 before anything is recorded.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { openRegistryDatabase } from "../../registry/db.js";
import { cliSandbox } from "../../testing/cli.js";

const cli = cliSandbox("carrier");
const { ok } = cli;

test("carrier event revokes the SIM's certificate; a carrier that does not speak for the SIM is refused", async () => {
  await ok(["ca", "init"]);
  const citizen = JSON.parse(
    await ok([
      "citizen",
      "add",
      "--name",
      "試験 三郎",
      "--birth",
      "1985-03-03",
      "--sex",
      "male",
      "--address",
      "京都府京都市1-1",
      "--json",
    ]),
  ) as { cardState: string };
  const sim = JSON.parse(await ok(["sim", "create", "--carrier", "hibari", "--json"])) as {
    simState: string;
    iccid: string;
  };
  const applied = JSON.parse(
    await ok(["apply", "--card", citizen.cardState, "--sim", sim.simState, "--json"]),
  ) as { certificateSerial: string };

  const usage = await cli.run([
    "carrier",
    "event",
    "--carrier",
    "hibari",
    "--kind",
    "moved",
    "--iccid",
    sim.iccid,
  ]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--kind must be one of port-out, sim-swap/);
  const notSwap = await cli.run([
    "carrier",
    "event",
    "--carrier",
    "hibari",
    "--kind",
    "port-out",
    "--not-requested",
    "--iccid",
    sim.iccid,
  ]);
  assert.equal(notSwap.code, 2);

  const other = await cli.run([
    "carrier",
    "event",
    "--carrier",
    "kaede",
    "--kind",
    "port-out",
    "--iccid",
    sim.iccid,
  ]);
  assert.equal(other.code, 1);
  assert.match(other.stdout, /refused: SIM \d+ was issued by sakura; kaede cannot report on it/);
  const stillIssued = JSON.parse(await ok(["cert", "show", applied.certificateSerial, "--json"])) as {
    status: string;
  };
  assert.equal(stillIssued.status, "issued");

  const swap = JSON.parse(
    await ok([
      "carrier",
      "event",
      "--carrier",
      "hibari",
      "--kind",
      "sim-swap",
      "--not-requested",
      "--iccid",
      sim.iccid,
      "--json",
    ]),
  ) as { state: string; simStatus: string; revoked: string[]; event: { requestedBySubscriber: boolean } };
  assert.deepEqual(
    [swap.state, swap.simStatus, swap.revoked, swap.event.requestedBySubscriber],
    ["delivered", "swapped", [applied.certificateSerial], false],
  );
  const revoked = JSON.parse(await ok(["cert", "show", applied.certificateSerial, "--json"])) as {
    status: string;
  };
  assert.equal(revoked.status, "revoked");

  const kaede = JSON.parse(await ok(["carrier", "outbox", "--carrier", "kaede", "--json"])) as {
    state: string;
  }[];
  assert.deepEqual(
    kaede.map((e) => e.state),
    ["refused"],
  );
  assert.match(await ok(["carrier", "outbox", "--carrier", "hibari"]), /delivered sim-swap/);

  // A new SIM after the swap, applied for with the consent to the link query: the application says so.
  const next = JSON.parse(await ok(["sim", "create", "--carrier", "hibari", "--json"])) as {
    simState: string;
  };
  const again = JSON.parse(
    await ok(["apply", "--card", citizen.cardState, "--sim", next.simState, "--link-consent", "--json"]),
  ) as { applicationId: string };
  const registry = await openRegistryDatabase(path.join(cli.data, "registry.sqlite"));
  try {
    const row = await registry.db
      .selectFrom("applications")
      .select("evidence")
      .where("id", "=", again.applicationId)
      .executeTakeFirstOrThrow();
    assert.equal((JSON.parse(row.evidence) as { linkConsent?: boolean }).linkConsent, true);
  } finally {
    await registry.close();
  }
});
