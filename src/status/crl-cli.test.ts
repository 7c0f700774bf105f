/** `jpki-mobile crl publish` through the command line's entry point: summary, files, and a quiet second run. */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { CrlPublishResult } from "../cli/commands/crl.js";
import { main } from "../cli/main.js";
import { CrlReason } from "../pki/crl.js";
import { revokeCertificate } from "../registry/lifecycle.js";
import { runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { readPublishedCrl } from "./crl.js";
import { openCrlFixture } from "./crl-fixture.js";

/** Runs the CLI in this process; returns its exit status and what it printed on stdout. */
async function cli(args: string[]): Promise<{ status: number; stdout: string }> {
  const write = process.stdout.write;
  let stdout = "";
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { status: await main(args), stdout };
  } finally {
    process.stdout.write = write;
  }
}

test("crl publish signs every shard, prints a summary, and writes the CRLs in the URL layout", async () => {
  const fixture = await openCrlFixture(undefined, 3);
  const out = mkdtempSync(path.join(tmpdir(), "jpki-crl-out-"));
  try {
    const cert = await fixture.issue("card-auth", 2);
    await revokeCertificate(fixture.authority.registry.db, cert.serial, {
      actor: "test",
      reason: CrlReason.keyCompromise,
    });

    const run = await cli(["crl", "publish", "--data", fixture.dir, "--out", out, "--json"]);
    assert.equal(run.status, 0);
    const result = JSON.parse(run.stdout) as CrlPublishResult;
    assert.equal(result.signed, 12);
    assert.equal(result.files, 12);
    assert.deepEqual(
      result.cas.map((ca) => [ca.issuer, ca.shards, ca.entries, ca.fullCrlNumbers, ca.deltaCrlNumbers]),
      [
        ["sign", 3, 0, [1, 1], [2, 2]],
        ["auth", 3, 1, [1, 1], [2, 2]],
      ],
    );
    assert.deepEqual(result.cas[1]!.largestShard.shard, 2);

    for (const issuer of ["sign", "auth"] as const)
      for (let shard = 0; shard < 3; shard++)
        for (const [kind, name] of [
          ["full", `${shard}.crl`],
          ["delta", `${shard}-delta.crl`],
        ] as const) {
          const file = path.join(out, "crl", issuer, name);
          const stored = await readPublishedCrl(fixture.authority.registry.db, issuer, shard, kind);
          assert.deepEqual(readFileSync(file), stored?.der, file);
          assert.equal(statSync(file).mode & 0o777, 0o644);
        }
    const verified = withTempDir((dir) => {
      const ca = writeCertificate(dir, "ca", fixture.authority.certificates.auth);
      const file = path.join(out, "crl", "auth", "2.crl");
      return runTool("openssl", [
        "crl",
        "-inform",
        "DER",
        "-in",
        file,
        "-CAfile",
        ca.pem,
        "-noout",
        "-text",
        "-verify",
      ]);
    });
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, new RegExp(`Serial Number: ${cert.serial.toUpperCase()}`));

    // Nothing changed: nothing is signed, and the text summary says so.
    const quiet = await cli(["crl", "publish", "--data", fixture.dir]);
    assert.equal(quiet.status, 0);
    assert.match(quiet.stdout, /^CA\s+shards\s+entries \(delta\)/);
    assert.match(quiet.stdout, /\nauth\s+3\s+1 \(0\)\s+1 \/ 2\s+0 \+ 0\s+2: 1 entries/);
    assert.match(quiet.stdout, /Nothing was due/);
    assert.deepEqual(readdirSync(path.join(out, "crl")).sort(), ["auth", "sign"]);
  } finally {
    await fixture.close();
    rmSync(out, { recursive: true, force: true });
  }
});

test("crl publish --help describes the files and periods", async () => {
  const run = await cli(["crl", "publish", "--help"]);
  assert.equal(run.status, 0);
  assert.match(run.stdout, /DIR\/crl\/auth\/0-delta\.crl/);
  assert.match(run.stdout, /crl\.fullPeriodSeconds/);
});
