/**
 * `jpki-mobile apply` and `application show` as a citizen and support staff run them, in child
 * processes on a fresh data directory: the online application end to end on a light MVNO's SIM (the
 * host carrier installs the applet and relays), a wrong signing password refused before the SIM's
 * key is touched, a second application superseding the first, and the status history by number.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { loadUiccState } from "../../card/uicc/state.js";
import { cliSandbox } from "../../testing/cli.js";

const cli = cliSandbox("apply");
const { ok } = cli;

test("apply online on a light MVNO's SIM, refusals, re-application, and the history by number", async () => {
  await ok(["ca", "init"]);
  const citizen = JSON.parse(
    await ok([
      "citizen",
      "add",
      "--name",
      "試験 次郎",
      "--birth",
      "1979-01-31",
      "--sex",
      "male",
      "--address",
      "大阪府大阪市1-2",
      "--json",
    ]),
  ) as { cardState: string; authSerial: string };
  const sim = JSON.parse(await ok(["sim", "create", "--carrier", "hibari", "--json"])) as {
    simState: string;
    iccid: string;
  };
  assert.equal(loadUiccState(sim.simState).applet, null, "a new SIM has no JPKI applet yet");

  const first = JSON.parse(
    await ok(["apply", "--card", citizen.cardState, "--sim", sim.simState, "--pin", "2468", "--json"]),
  ) as { applicationId: string; status: string; certificateSerial: string; pin: string };
  assert.deepEqual([first.status, first.pin], ["delivered", "set"]);
  assert.match(first.applicationId, /^AP-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  const simState = loadUiccState(sim.simState);
  assert.equal(simState.ssd !== null && simState.applet !== null, true, "the carrier installed the applet");

  // A wrong signing password: refused with the tries left, before J-LIS touches the SIM's key.
  const keyBefore = readFileSync(sim.simState, "utf8");
  const wrong = await cli.run([
    "apply",
    "--card",
    citizen.cardState,
    "--sim",
    sim.simState,
    "--sign-password",
    "WRONG1",
  ]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /wrong signing password.*4 tries left/);
  assert.equal(
    JSON.stringify(loadUiccState(sim.simState).applet?.jpki.keys),
    JSON.stringify(JSON.parse(keyBefore).applet.jpki.keys),
    "the SIM's key is unchanged",
  );

  // Applying again (a new key on the same SIM) supersedes the first certificate; the PIN stays.
  const second = JSON.parse(
    await ok(["apply", "--card", citizen.cardState, "--sim", sim.simState, "--pin", "2468", "--json"]),
  ) as { certificateSerial: string; pin: string };
  assert.equal(second.pin, "kept");
  const old = JSON.parse(await ok(["cert", "show", first.certificateSerial, "--json"])) as { status: string };
  assert.equal(old.status, "revoked");

  const shown = JSON.parse(
    await ok(["application", "show", first.applicationId.toLowerCase(), "--json"]),
  ) as {
    status: string;
    history: { status: string }[];
  };
  assert.deepEqual(
    shown.history.map((e) => e.status),
    ["received", "verified", "issued", "delivering", "delivered"],
  );
  const text = await ok(["application", "show", first.applicationId]);
  assert.match(text, /\(online\): delivered/);

  const unknown = await cli.run(["application", "show", "AP-0000-0000-0000"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no application AP-0000-0000-0000/);
  const malformed = await cli.run(["application", "show", "12345"]);
  assert.notEqual(malformed.code, 0);
  assert.match(malformed.stderr, /not an application number/);
  // The other channels through the same command: a postal request (its own options only).
  const postalSim = JSON.parse(await ok(["sim", "create", "--carrier", "sakura", "--json"])) as {
    simState: string;
  };
  const postal = JSON.parse(
    await ok([
      "apply",
      "--channel",
      "postal",
      "--sim",
      postalSim.simState,
      "--name",
      "試験 次郎",
      "--birth",
      "1979-01-31",
      "--sex",
      "male",
      "--address",
      "大阪府大阪市1-2",
      "--json",
    ]),
  ) as { status: string };
  assert.equal(postal.status, "awaiting-code");
  const stray = await cli.run([
    "apply",
    "--channel",
    "online",
    "--name",
    "x",
    "--card",
    citizen.cardState,
    "--sim",
    sim.simState,
  ]);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /--name does not apply to --channel online/);
  await ok(["audit", "verify"]);
});
