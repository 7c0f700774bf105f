/**
 * `jpki-mobile rp serve` and `jpki-mobile login` as a user runs them, in child processes, against a
 * data directory whose citizen's phone holds a delivered certificate and whose status server runs:
 * the relying party registers itself once and prints its URL, `login` with the SIM state file logs
 * in (and reports a wrong PIN with the tries left), SIGTERM stops the relying party with status 0.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { openLoginSandbox, SIM_PIN } from "../../rp/rp-fixture.js";
import { cliArgs, firstLine, runCli } from "../../testing/cli.js";

const jpki = (args: string[]) => runCli(args);

test("rp serve registers once and serves; login logs in with the SIM state file; SIGTERM stops it", async () => {
  const sandbox = await openLoginSandbox();
  let child: ChildProcess | undefined;
  try {
    const data = sandbox.ra.dir;
    const statusUrl = sandbox.ocspUrl.replace(/\/ocsp$/, "");
    const serve = () =>
      spawn(
        process.execPath,
        cliArgs([
          "rp",
          "serve",
          "--data",
          data,
          "--port",
          "0",
          "--status-url",
          statusUrl,
          "--id",
          "cli-bank",
          "--json",
        ]),
        { stdio: ["ignore", "pipe", "pipe"] },
      );
    child = serve();
    const listening = JSON.parse(await firstLine(child)) as { url: string; rpId: string; verifierId: string };
    assert.equal(listening.rpId, "cli-bank");
    const credentials = path.join(data, "relying-parties", "cli-bank.json");
    assert.equal(statSync(credentials).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(credentials, "utf8")).verifierId, listening.verifierId);

    const simState = sandbox.phone.sim.simState;
    const wrong = await jpki(["login", "--rp", listening.url, "--sim", simState, "--pin", "9999"]);
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /wrong user-authentication PIN .*: 2 tries left/);

    const ok = await jpki(["login", "--rp", listening.url, "--sim", simState, "--pin", SIM_PIN, "--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    const session = JSON.parse(ok.stdout) as Record<string, string>;
    assert.deepEqual(
      [session["serial"], session["kind"], session["rpId"], session["origin"]],
      [sandbox.serial, "phone-auth", "cli-bank", listening.url],
    );

    const exited = new Promise<number | null>((resolve) => child!.on("exit", resolve));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);

    // A second run reuses the registration.
    child = serve();
    let errText = "";
    child.stderr!.on("data", (c: Buffer) => {
      errText += c.toString();
    });
    const again = JSON.parse(await firstLine(child)) as { verifierId: string };
    assert.equal(again.verifierId, listening.verifierId);
    const stopped = new Promise<string>((resolve) =>
      child!.on("exit", (code, signal) => resolve(`${code}/${signal}`)),
    );
    child.kill("SIGTERM");
    assert.equal(await stopped, "0/null", errText);
    child = undefined;

    const usage = await jpki(["rp", "serve", "--data", data]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--status-url is required/);
  } finally {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await sandbox.close();
  }
});
