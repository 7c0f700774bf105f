/**
 * The crash test: a child process issues batches and is SIGKILLed at random moments, several
 * times; after restart and recovery no signed certificate is unknown to the registry, no serial is used
 * twice, nothing stays pending, every finished issuance reads back, and the audit chain verifies.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readTlvAt } from "../pki/der.js";
import { forEachDialect } from "../testing/dialects.js";
import { verifyAudit } from "./audit.js";
import type { CertificateRecord } from "./issuance.js";
import { listCertificates, recoverInterruptedIssuances } from "./issuance.js";
import { DEFAULT_POLICIES } from "./lifecycle.js";
import { generateTestKey, rsaSigner } from "./test-fixtures.js";

const key = await generateTestKey();
const here = fileURLToPath(import.meta.url);
const childScript = join(here, "..", `crash-child${extname(here)}`);

const MIN_ROUNDS = 5;
const MAX_ROUNDS = 15;

/** Starts a child, waits until it has started issuing; `kill` SIGKILLs it and waits for the end. */
async function startChild(env: NodeJS.ProcessEnv): Promise<{ said: string; kill(): Promise<void> }> {
  const child = spawn(process.execPath, [...process.execArgv, childScript], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const started = await new Promise<boolean>((resolve) => {
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("\n")) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (!started) throw new Error(`the crash child exited early: ${stderr}`);
  return {
    said: stdout.trim(),
    kill: async () => {
      child.kill("SIGKILL");
      const { signal } = await exited;
      assert.equal(signal, "SIGKILL", `the child ended by itself: ${stderr}`);
    },
  };
}

/** Starts `count` children on the same database, lets them issue a random while, SIGKILLs them all. */
async function runAndKill(env: NodeJS.ProcessEnv, count = 1): Promise<string> {
  const children = [];
  for (let i = 0; i < count; i++) children.push(await startChild(env));
  await new Promise((r) => setTimeout(r, 50 + Math.random() * 600));
  await Promise.all(children.map((c) => c.kill()));
  return children.map((c) => c.said).join(" | ");
}

/**
 * Certificates in the escaped file. A record cut short by a kill never fully left: it is a fragment
 * whose DER length does not add up (each record starts on a fresh line, so fragments stand alone).
 */
function readEscaped(path: string): Buffer[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "latin1")
    .split("\n")
    .filter((line) => line !== "" && /^([0-9a-f]{2})+$/.test(line))
    .map((line) => Buffer.from(line, "hex"))
    .filter((der) => {
      try {
        return readTlvAt(der, 0).encoded.length === der.length;
      } catch {
        return false;
      }
    });
}

async function allCertificates(db: Parameters<typeof listCertificates>[0]): Promise<CertificateRecord[]> {
  const out: CertificateRecord[] = [];
  let after: string | undefined;
  do {
    const page = await listCertificates(db, {}, { limit: 1000, ...(after ? { after } : {}) });
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out;
}

forEachDialect((dialect, open) => {
  for (const writers of [1, 2])
    test(`SIGKILL at random moments loses no escaped certificate and reuses no serial (${writers} writing processes)`, {
      timeout: 180_000,
    }, async (t) => {
      const handle = await open();
      const dir = mkdtempSync(join(tmpdir(), "jpki-crash-"));
      try {
        const keyPath = join(dir, "ca.key");
        writeFileSync(keyPath, key.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
        const escapedPath = join(dir, "escaped");
        const env = { JPKI_CRASH_DB: handle.url, JPKI_CRASH_KEY: keyPath, JPKI_CRASH_ESCAPED: escapedPath };

        // Kill until enough rounds have run and at least one kill caught the worst case: a certificate
        // signed and escaped while its row was still pending.
        let escapedWhilePending = 0;
        let rounds = 0;
        while (rounds < MIN_ROUNDS || (escapedWhilePending === 0 && rounds < MAX_ROUNDS)) {
          const said = await runAndKill(env, writers);
          rounds++;
          const pending = (await listCertificates(handle.db, { status: "pending" }, { limit: 1000 })).items;
          const escapedSerials = new Set(
            readEscaped(escapedPath).map((der) => new X509Certificate(der).serialNumber.toLowerCase()),
          );
          const caught = pending.filter((r) => escapedSerials.has(r.serial)).length;
          escapedWhilePending += caught;
          t.diagnostic(
            `${dialect} round ${rounds}: child ${said}; after the kill ${pending.length} pending, ${caught} of them escaped`,
          );
        }
        assert.ok(escapedWhilePending > 0, "no kill landed between signing and storing a certificate");

        // Restart: recovery, with a signer that also counts as an escape.
        const report = await recoverInterruptedIssuances(
          handle.db,
          {
            auth: rsaSigner(key, (der) => appendFileSync(escapedPath, `\n${der.toString("hex")}\n`)),
          },
          { policies: DEFAULT_POLICIES },
        );
        assert.deepEqual(report.failed, []);
        assert.deepEqual(report.stillPending, []);

        const rows = await allCertificates(handle.db);
        const bySerial = new Map(rows.map((r) => [r.serial, r]));
        assert.equal(bySerial.size, rows.length);
        assert.deepEqual(
          rows.filter((r) => r.status !== "issued").map((r) => [r.serial, r.status]),
          [],
          "every row is issued: none pending, none failed",
        );

        const escaped = readEscaped(escapedPath);
        assert.ok(escaped.length > 0);
        const escapedBySerial = new Map<string, Buffer>();
        for (const der of escaped) {
          const serial = new X509Certificate(der).serialNumber.toLowerCase();
          const earlier = escapedBySerial.get(serial);
          // Re-signing after a crash must give the same certificate, never a second one with that serial.
          if (earlier) assert.ok(earlier.equals(der), `two different certificates with serial ${serial}`);
          escapedBySerial.set(serial, der);
          const row = bySerial.get(serial);
          assert.ok(row, `escaped certificate ${serial} is unknown to the registry`);
          assert.ok(row.der?.equals(der), `the registry holds other bytes for ${serial}`);
        }

        for (const row of rows) {
          const x509 = new X509Certificate(row.der!);
          assert.ok(x509.verify(key.publicKey));
          assert.equal(x509.serialNumber.toLowerCase(), row.serial);
        }
        assert.deepEqual(await verifyAudit(handle.db), []);
        t.diagnostic(
          `${dialect}: ${rounds} kills, ${rows.length} certificates, ${escapedBySerial.size} escaped, ${report.issued.length} recovered at the end`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
