/**
 * `jpki-mobile verifier list | disable | enable` as an operator runs them, in child processes: the
 * list with lookup totals, status changes audited with their reason, and one-line refusals with a
 * non-zero exit for an unknown ID or a change already made.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { openRegistryDatabase } from "../../registry/db.js";
import { runCli } from "../../testing/cli.js";

const dir = mkdtempSync(path.join(tmpdir(), "jpki-verifier-"));
const data = path.join(dir, "data");
const env = { JPKI_CA_PASSPHRASE: "verifier command test" };
after(() => rmSync(dir, { recursive: true, force: true }));

const jpki = (args: string[]) => runCli(args, env);

async function ok(args: string[]): Promise<string> {
  const run = await jpki(args);
  assert.equal(run.code, 0, `${args.join(" ")}: exit ${run.code}: ${run.stderr}`);
  return run.stdout;
}

interface Listed {
  id: string;
  name: string;
  kind: string;
  status: string;
  createdAt: string;
  lookups: { ocsp: number; crl: number };
}

test("verifier list, disable and enable: totals, audited changes, clear refusals", async () => {
  await ok(["ca", "init", "--data", data]);
  assert.equal(await ok(["verifier", "list", "--data", data]), "No verifiers.\n");
  const bank = JSON.parse(
    await ok(["verifier", "add", "--data", data, "--name", "例示銀行", "--kind", "auth", "--json"]),
  ) as { verifierId: string };
  const portal = JSON.parse(
    await ok(["verifier", "add", "--data", data, "--name", "portal", "--kind", "both", "--json"]),
  ) as { verifierId: string };

  // Lookups as status servers write them: two days of OCSP, one CRL download.
  const registry = await openRegistryDatabase(path.join(data, "registry.sqlite"));
  try {
    await registry.db
      .insertInto("verifier_lookups")
      .values([
        { verifier_id: bank.verifierId, day: "2026-11-25", channel: "ocsp", count: 5 },
        { verifier_id: bank.verifierId, day: "2026-11-26", channel: "ocsp", count: 2 },
        { verifier_id: bank.verifierId, day: "2026-11-26", channel: "crl", count: 1 },
      ])
      .execute();
  } finally {
    await registry.close();
  }

  const listed = JSON.parse(await ok(["verifier", "list", "--data", data, "--json"])) as Listed[];
  assert.deepEqual(
    listed.map((v) => [v.id, v.name, v.kind, v.status, v.lookups]),
    [
      [bank.verifierId, "例示銀行", "auth", "active", { ocsp: 7, crl: 1 }],
      [portal.verifierId, "portal", "both", "active", { ocsp: 0, crl: 0 }],
    ],
  );
  const text = await ok(["verifier", "list", "--data", data]);
  assert.match(
    text,
    new RegExp(`^${bank.verifierId}  auth active {3}since \\S+Z {2}ocsp 7 {2}crl 1 {2}例示銀行$`, "m"),
  );

  const disabled = JSON.parse(
    await ok([
      "verifier",
      "disable",
      bank.verifierId,
      "--data",
      data,
      "--reason",
      "contract ended",
      "--json",
    ]),
  );
  assert.deepEqual(disabled, {
    verifierId: bank.verifierId,
    name: "例示銀行",
    from: "active",
    to: "disabled",
  });

  // Refusals: one line naming the problem, exit 1; a missing ID is a usage error, exit 2.
  const again = await jpki(["verifier", "disable", bank.verifierId, "--data", data]);
  assert.equal(again.code, 1);
  assert.equal(
    again.stderr,
    `jpki-mobile verifier disable: cannot disable verifier ${bank.verifierId}: it is disabled\n`,
  );
  const unknown = await jpki(["verifier", "enable", "no-such-verifier", "--data", data]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, "jpki-mobile verifier enable: no verifier with id no-such-verifier\n");
  const missing = await jpki(["verifier", "disable", "--data", data]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^jpki-mobile verifier disable: expected ID\n/);

  const after = JSON.parse(await ok(["verifier", "list", "--data", data, "--json"])) as Listed[];
  assert.deepEqual(
    after.map((v) => [v.status, v.lookups]),
    [
      ["disabled", { ocsp: 7, crl: 1 }],
      ["active", { ocsp: 0, crl: 0 }],
    ],
  );
  assert.equal(
    await ok(["verifier", "enable", bank.verifierId, "--data", data]),
    `Verifier ${bank.verifierId} (例示銀行): disabled → active.\n`,
  );

  await ok(["audit", "verify", "--data", data]);
  const audit = await openRegistryDatabase(path.join(data, "registry.sqlite"));
  try {
    const entries = await audit.db
      .selectFrom("audit_log")
      .select(["action", "actor", "details"])
      .where("subject", "=", bank.verifierId)
      .orderBy("seq")
      .execute();
    assert.deepEqual(
      entries.map((e) => [e.action, e.actor, JSON.parse(e.details).reason]),
      [
        ["verifier.add", "cli:verifier", undefined],
        ["verifier.disable", "cli:verifier", "contract ended"],
        ["verifier.enable", "cli:verifier", null],
      ],
    );
  } finally {
    await audit.close();
  }

  const overview = await jpki(["help"]);
  for (const name of ["verifier list", "verifier disable", "verifier enable"])
    assert.match(overview.stdout, new RegExp(`^  ${name} `, "m"));
  assert.match(await ok(["verifier", "disable", "--help"]), /--reason TEXT/);
});
