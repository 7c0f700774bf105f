/**
 * `jpki-mobile verifier add` and `jpki-mobile start` as a user runs them, in child processes: the
 * token printed once works with `openssl ocsp`, the server prints its URLs, stops on SIGTERM with
 * status 0, and its lookup counts are in the registry afterwards.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { openRegistryDatabase } from "../../registry/db.js";
import { lookupCounts } from "../../registry/verifiers.js";
import { cliArgs, firstLine, runCli } from "../../testing/cli.js";

const dir = mkdtempSync(path.join(tmpdir(), "jpki-start-"));
const data = path.join(dir, "data");
const env = { ...process.env, JPKI_CA_PASSPHRASE: "start command test" };
const execFileAsync = promisify(execFile);
after(() => rmSync(dir, { recursive: true, force: true }));

const jpki = (args: string[]) => runCli(args, env);

/** Set by the first test: the verifier's token, its id, and a citizen certificate with its serial. */
let served: { token: string; verifierId: string; certFile: string; serial: string } | undefined;

/** `openssl ocsp` asks `url` about the citizen certificate (POST, no nonce: a pre-signed answer). */
async function askOcsp(url: string, token: string, certFile: string): Promise<string> {
  const { stdout } = await execFileAsync("openssl", [
    "ocsp",
    "-issuer",
    path.join(dir, "auth-ca.pem"),
    "-cert",
    certFile,
    "-url",
    url,
    "-no_nonce",
    "-header",
    `Authorization=Bearer ${token}`,
    "-CAfile",
    path.join(dir, "auth-ca.pem"),
  ]);
  return stdout;
}

/** Processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

test("verifier add prints a token once; start serves with it, stops on SIGTERM and writes the counts", async () => {
  assert.equal((await jpki(["ca", "init", "--data", data])).code, 0);
  const citizen = await jpki([
    "citizen",
    "add",
    "--data",
    data,
    "--name",
    "試験 一郎",
    "--birth",
    "1970-01-01",
    "--sex",
    "male",
    "--address",
    "大阪府",
    "--json",
  ]);
  assert.equal(citizen.code, 0, citizen.stderr);
  const { authSerial, signSerial } = JSON.parse(citizen.stdout) as { authSerial: string; signSerial: string };
  // The signing certificate's notAfter passes (as if years went by): the server's expiry job marks it.
  const before = await openRegistryDatabase(path.join(data, "registry.sqlite"));
  try {
    await before.db
      .updateTable("certificates")
      .set({ not_after: "2020-01-01T00:00:00.000Z" })
      .where("serial", "=", signSerial)
      .execute();
  } finally {
    await before.close();
  }

  const usage = await jpki(["verifier", "add", "--data", data, "--name", "x", "--kind", "everything"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--kind must be one of auth, sign, both/);
  const added = await jpki([
    "verifier",
    "add",
    "--data",
    data,
    "--name",
    "例示銀行",
    "--kind",
    "auth",
    "--json",
  ]);
  assert.equal(added.code, 0, added.stderr);
  const { verifierId, token } = JSON.parse(added.stdout) as { verifierId: string; token: string };
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  const text = await jpki(["verifier", "add", "--data", data, "--name", "other", "--kind", "both"]);
  assert.match(text.stdout, /Token \(shown once, keep it secret\): [A-Za-z0-9_-]{43}\n/);

  assert.equal((await jpki(["ca", "export", "--data", data, "--out", dir])).code, 0);
  const shown = await jpki(["cert", "show", authSerial, "--data", data, "--pem"]);
  const certFile = path.join(dir, "citizen.pem");
  writeFileSync(certFile, shown.stdout);
  served = { token, verifierId, certFile, serial: authSerial };

  const server = spawn(process.execPath, cliArgs(["start", "--data", data, "--port", "0", "--json"]), {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => server.on("exit", (code) => resolve(code)));
  try {
    const urls = JSON.parse(await firstLine(server)) as Record<string, string>;
    assert.match(urls.url!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(urls.ocsp, `${urls.url}/ocsp`);
    assert.equal(urls.docs, `${urls.url}/docs`);
    const asked = await execFileAsync("openssl", [
      "ocsp",
      "-issuer",
      path.join(dir, "auth-ca.pem"),
      "-cert",
      certFile,
      "-url",
      urls.ocsp!,
      "-header",
      `Authorization=Bearer ${token}`,
      "-CAfile",
      path.join(dir, "auth-ca.pem"),
    ]);
    assert.match(asked.stdout, /citizen\.pem: good/);
    assert.match(asked.stderr, /Response verify OK/);
    const health = await fetch(urls.health!);
    assert.equal(health.status, 200);
    // The expiry job ran at start.
    const registry = await openRegistryDatabase(path.join(data, "registry.sqlite"));
    try {
      const statusOf = async () =>
        (
          await registry.db
            .selectFrom("certificates")
            .select("status")
            .where("serial", "=", signSerial)
            .executeTakeFirstOrThrow()
        ).status;
      for (let i = 0; i < 100 && (await statusOf()) !== "expired"; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await statusOf(), "expired");
    } finally {
      await registry.close();
    }
  } finally {
    server.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
  // The lookup is in the registry once the process has ended (written at the latest on shutdown).
  const registry = await openRegistryDatabase(path.join(data, "registry.sqlite"));
  try {
    assert.deepEqual(
      (await lookupCounts(registry.db, { verifierId })).map((r) => [r.channel, r.count]),
      [["ocsp", 1]],
    );
  } finally {
    await registry.close();
  }
});

test("start --workers 2 serves from two processes; none answers good after a revocation; counts add up", async () => {
  assert.ok(served, "the first test set up the data directory");
  const { token, verifierId, certFile, serial } = served;
  const usage = await jpki(["start", "--data", data, "--workers", "0"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--workers must be a whole number from 1 to 64/);

  const counted = async () => {
    const registry = await openRegistryDatabase(path.join(data, "registry.sqlite"));
    try {
      return (await lookupCounts(registry.db, { verifierId })).reduce((n, r) => n + r.count, 0);
    } finally {
      await registry.close();
    }
  };
  const before = await counted();
  const server = spawn(
    process.execPath,
    cliArgs(["start", "--data", data, "--port", "0", "--workers", "2", "--json"]),
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => server.on("exit", (code) => resolve(code)));
  try {
    const urls = JSON.parse(await firstLine(server)) as Record<string, string | number>;
    assert.equal(urls.workers, 2);
    assert.equal(childrenOf(server.pid!).length, 2, "two worker processes");
    // Connections go to the workers in turn: each of them answers, and remembers the answer.
    for (let i = 0; i < 4; i++) assert.match(await askOcsp(String(urls.ocsp), token, certFile), /: good/);
    const revoked = await jpki(["revoke", serial, "--data", data, "--reason", "keyCompromise"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    // Every answer after the revocation committed says so, whichever worker gives it (RFC 6960 §2.2).
    for (let i = 0; i < 4; i++) assert.match(await askOcsp(String(urls.ocsp), token, certFile), /: revoked/);
  } finally {
    server.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
  // Both workers wrote their lookups when they stopped.
  assert.equal((await counted()) - before, 8);
});
