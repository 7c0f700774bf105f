/**
 * The OTA gateway's scripts: the same id is the same script; a script runs on the SIM exactly once
 * although the phone's post is lost; the state goes queued → fetched → executed with the SIM's
 * responses kept as proof of receipt, or expired; a refusal stops a script; J-LIS's STORE DATA
 * blocks go as one script and every response is checked against its own command's MAC state, so a
 * response changed on the way is caught; the HTTP API for J-LIS submits and reads scripts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SecureChannelError } from "../card/gp/secure-messaging.js";
import { DEFAULT_SIGN_PASSWORD } from "../ra/card-issuance.js";
import { openJlisSession } from "../ra/provisioning.js";
import { openRaSandbox } from "../ra/ra-fixture.js";
import { createStatusService } from "../server/http.js";
import { OtaRelay, relayForPhone, ScriptJournal } from "./ota-relay.js";

const ok = Buffer.from([0x90, 0x00]);
const refused = Buffer.from([0x6a, 0x80]);

/** A SIM that answers 90 00, or 6A 80 to a command starting with FF, and counts what it ran. */
function countingSim() {
  const ran: Buffer[] = [];
  return {
    ran,
    async transmit(command: Uint8Array) {
      ran.push(Buffer.from(command));
      return command[0] === 0xff ? refused : ok;
    },
  };
}

test("same id, same script; a lost post never runs the script twice; states and proof of receipt", async () => {
  const relay = new OtaRelay("sakura", { timeoutMs: 200 });
  const iccid = "8981900000000000001";
  const commands = [Buffer.from("00a4040000", "hex"), Buffer.from("80e2000000", "hex")];
  const first = relay.submitScript(iccid, commands, "s-1");
  assert.equal(relay.submitScript(iccid, commands, "s-1"), first, "a retried submission is the same script");
  assert.throws(
    () => relay.submitScript(iccid, [commands[0]!], "s-1"),
    /submitted before with other commands/,
  );
  assert.equal(relay.status("s-1")?.state, "queued");

  const sim = countingSim();
  const journal = new ScriptJournal();
  const [pulled] = relay.pull(iccid);
  assert.equal(relay.status("s-1")?.state, "fetched");
  // The phone runs the script, then its post is lost; it pulls again and posts what it kept.
  await journal.run(sim, pulled!);
  const [again] = relay.pull(iccid);
  assert.equal(again?.id, "s-1");
  const responses = await journal.run(sim, again!);
  assert.equal(sim.ran.length, 2, "each command ran once on the SIM");
  assert.equal(relay.respond(iccid, "s-1", responses), true);
  assert.equal(relay.respond(iccid, "s-1", responses), false, "taken once");
  assert.deepEqual(await first, [ok, ok]);
  assert.deepEqual(relay.status("s-1"), {
    id: "s-1",
    iccid,
    state: "executed",
    commands: 2,
    responses: [ok, ok],
  });
  assert.deepEqual(relay.pull(iccid), []);
  assert.deepEqual(
    relay.relayed.map((e) => [e.script, e.index, e.response]),
    [
      ["s-1", 0, ok],
      ["s-1", 1, ok],
    ],
  );

  // A refusal stops the script; the responses up to it come back.
  const stop = relayForPhone(relay, iccid, sim);
  try {
    const partial = await relay.submitScript(iccid, [
      commands[0]!,
      Buffer.from("ff00000000", "hex"),
      commands[1]!,
    ]);
    assert.deepEqual(partial, [ok, refused]);
    assert.equal(sim.ran.length, 4);
  } finally {
    stop();
  }
  // Nobody pulls: the script expires and J-LIS's call fails with a retryable error.
  await assert.rejects(relay.submitScript(iccid, commands, "s-3"), /did not run script s-3/);
  assert.equal(relay.status("s-3")?.state, "expired");
  assert.equal(relay.respond(iccid, "s-3", [ok, ok]), false);
});

test("J-LIS's STORE DATA goes as one script; a response changed on the way fails its R-MAC; HTTP API", async () => {
  const sandbox = await openRaSandbox();
  const service = createStatusService(sandbox.authority, { refresher: false, log: () => undefined });
  try {
    const { authority } = sandbox;
    const phone = await sandbox.phone();
    const iccid = phone.sim.iccid;
    const citizen = await sandbox.citizen();
    const before = phone.relay.relayed.length;
    const answer = await phone.app().applyOnline({ card: citizen.card, signPassword: DEFAULT_SIGN_PASSWORD });
    assert.equal(answer.status, "delivered");
    // The delivery: INSTALL [for personalization] and every STORE DATA block in one script.
    const sizes = new Map<string, number>();
    for (const e of phone.relay.relayed.slice(before)) sizes.set(e.script, (sizes.get(e.script) ?? 0) + 1);
    const multi = [...sizes.values()].filter((n) => n > 1);
    assert.equal(multi.length, 1);
    assert.ok(multi[0]! >= 4, `a script of ${multi[0]} commands`);

    // A carrier that changes one byte of the third response: J-LIS's check of that response fails.
    phone.stopRelay();
    let armed = false;
    let tampered = 0;
    const tampering = {
      async transmit(command: Uint8Array) {
        const response = Buffer.from(await phone.uicc.transmit(command));
        if (armed && ++tampered === 3 && response.length > 2) response[0]! ^= 0x01;
        return response;
      },
    };
    const stop = relayForPhone(phone.relay, iccid, tampering);
    try {
      const again = await openJlisSession(authority, phone.relay.transportFor(iccid), iccid);
      armed = true;
      await assert.rejects(
        again.storeAuthenticationCertificates(authority.certificates.auth, authority.certificates.auth),
        (error) => error instanceof SecureChannelError && /R-MAC/.test(error.message),
      );
    } finally {
      stop();
    }

    // J-LIS in another process: POST a script, read its state, the phone runs it.
    const url = await service.listen(0);
    const api = `${url}/api/mno/scripts`;
    const select = Buffer.from("00a4040007a0000000030000", "hex").toString("base64");
    const submitted = await fetch(api, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ iccid, id: "http-1", commands: [select] }),
    });
    assert.equal(submitted.status, 202);
    assert.equal(((await submitted.json()) as { state: string }).state, "queued");
    // The phone pulls it over HTTP, runs it on the SIM and posts the responses.
    const pulled = await fetch(`${url}/api/mno/relay/${iccid}`);
    const { scripts } = (await pulled.json()) as { scripts: { id: string; commands: string[] }[] };
    assert.deepEqual(scripts, [{ id: "http-1", commands: [select] }]);
    const responses = await new ScriptJournal().run(phone.uicc, {
      id: "http-1",
      commands: scripts[0]!.commands.map((c) => Buffer.from(c, "base64")),
    });
    const post = (body: unknown) =>
      fetch(`${url}/api/mno/relay/${iccid}/http-1`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    assert.equal((await post({ responses: responses.map((r) => r.toString("base64")) })).status, 204);
    assert.equal((await post({ responses: responses.map((r) => r.toString("base64")) })).status, 409);
    const status = (await (await fetch(`${api}/http-1`)).json()) as { state: string; responses: string[] };
    assert.equal(status.state, "executed");
    assert.equal(status.responses.length, 1);
    assert.equal((await fetch(`${api}/nope`)).status, 404);
    const bad = await fetch(api, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ iccid, commands: ["%%"] }),
    });
    assert.equal(bad.status, 400);
  } finally {
    await service.close();
    await sandbox.close();
  }
});
