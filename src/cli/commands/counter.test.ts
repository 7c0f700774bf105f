/**
 * `jpki-mobile clerk ...` and `counter ...` as a municipality runs them, in child processes on a fresh
 * data directory: a clerk account, a counter application with the card's signature, one refused for
 * too few documents and one accepted with documents, a disabled clerk refused, a blocked SIM PIN
 * reset at the counter, and the audit chain intact.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InProcessTransport } from "../../card/in-process-transport.js";
import { openUicc } from "../../card/uicc/uicc.js";
import { JpkiCard, PinBlockedError, WrongPinError } from "../../phone/jpki-card.js";
import { cliSandbox } from "../../testing/cli.js";

const cli = cliSandbox("counter");
const { ok } = cli;

test("clerk add, counter apply by card and by documents, refusals, counter unblock-pin", async () => {
  await ok(["ca", "init"]);
  const citizen = JSON.parse(
    await ok([
      "citizen",
      "add",
      "--name",
      "窓口 花子",
      "--birth",
      "1990-02-28",
      "--sex",
      "female",
      "--address",
      "東京都千代田区霞が関2-1-2",
      "--json",
    ]),
  ) as { cardState: string };
  const sim = JSON.parse(await ok(["sim", "create", "--carrier", "sakura", "--json"])) as {
    simState: string;
    iccid: string;
  };
  const clerk = JSON.parse(
    await ok([
      "clerk",
      "add",
      "--municipality",
      "131016",
      "--name",
      "東京都千代田区",
      "--label",
      "窓口 1",
      "--json",
    ]),
  ) as { id: string; token: string; municipalityCode: string };
  assert.equal(clerk.municipalityCode, "131016");
  assert.match(clerk.token, /^[A-Za-z0-9_-]{43}$/);
  assert.doesNotMatch(await ok(["clerk", "list"]), new RegExp(clerk.token), "the token is shown once");

  const bad = await cli.run(["clerk", "add", "--municipality", "131017", "--name", "東京都千代田区"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /check digit should be 6/);

  const visit = ["--clerk-token", clerk.token, "--card", citizen.cardState, "--sim", sim.simState];
  const applied = JSON.parse(await ok(["counter", "apply", ...visit, "--pin", "2468", "--json"])) as {
    applicationId: string;
    status: string;
    channel: string;
    pin: string;
  };
  assert.deepEqual([applied.status, applied.channel, applied.pin], ["delivered", "counter", "set"]);
  const shown = await ok(["application", "show", applied.applicationId]);
  assert.match(shown, /\(counter\): delivered/);
  assert.match(shown, new RegExp(`clerk:${clerk.id}@131016`));

  const few = await cli.run([
    "counter",
    "apply",
    ...visit,
    "--identity",
    "documents",
    "--documents",
    "pension-book",
  ]);
  assert.equal(few.code, 1);
  assert.match(few.stderr, /identity documents are not enough/);
  const missing = await cli.run(["counter", "apply", ...visit, "--identity", "documents"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /needs --documents/);
  const text = await ok([
    "counter",
    "apply",
    ...visit,
    "--identity",
    "documents",
    "--documents",
    "license",
    "--pin",
    "2468",
  ]);
  assert.match(text, /at the counter\): delivered.*the SIM keeps its PIN/);

  // The phone: three wrong PINs block the SIM.
  const phone = new InProcessTransport(openUicc(sim.simState));
  const simCard = await JpkiCard.open(phone);
  await assert.rejects(simCard.verify("auth", "0000"), WrongPinError);
  await assert.rejects(simCard.verify("auth", "0000"), WrongPinError);
  await assert.rejects(simCard.verify("auth", "0000"), PinBlockedError);
  await phone.close();

  const unblocked = JSON.parse(
    await ok([
      "counter",
      "unblock-pin",
      ...visit,
      "--identity",
      "documents",
      "--documents",
      "passport",
      "--new-pin",
      "9753",
      "--json",
    ]),
  ) as { iccid: string; certificateSerial: string };
  assert.equal(unblocked.iccid, sim.iccid);
  const after = new InProcessTransport(openUicc(sim.simState));
  const unblockedCard = await JpkiCard.open(after);
  assert.equal(await unblockedCard.triesLeft("auth"), 3);
  await unblockedCard.verify("auth", "9753");
  await after.close();

  await ok(["clerk", "disable", clerk.id, "--reason", "moved to another office"]);
  const disabled = await cli.run(["counter", "unblock-pin", ...visit, "--new-pin", "1111"]);
  assert.equal(disabled.code, 1);
  assert.match(disabled.stderr, /is disabled: ask the municipality's administrator/);
  const wrong = await cli.run(["counter", "apply", ...visit.slice(0, 1), "nonsense", ...visit.slice(2)]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /clerk token is not valid/);
  await ok(["audit", "verify"]);
});
