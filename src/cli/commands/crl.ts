/**
 * `crl publish`: signs the CRLs that are due, for every shard of both CAs (docs/crl.md), and can
 * write every published CRL as a file in the layout of its URL.
 */
import path from "node:path";
import type { CaPurpose } from "../../pki/names.js";
import { type PublishReport, publishCrls, type ShardPublication } from "../../status/crl.js";
import { writeCrlFiles } from "../../status/crl-files.js";
import { type Command, printResult, progress, stringOption } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

/** Per CA: what its shards publish now. */
export interface CaCrlSummary {
  issuer: CaPurpose;
  shards: number;
  /** Entries of the complete CRLs, and of the deltas. */
  entries: number;
  deltaEntries: number;
  /** Lowest and highest CRL number of the complete CRLs, and of the deltas. */
  fullCrlNumbers: [number, number];
  deltaCrlNumbers: [number, number];
  /** CRLs signed by this run. */
  signedFull: number;
  signedDelta: number;
  bytes: number;
  largestShard: { shard: number; entries: number; bytes: number };
}

export interface CrlPublishResult {
  changeSequence: number;
  signed: number;
  cas: CaCrlSummary[];
  /** Directory the files were written under (`--out`), and how many. */
  out: string | null;
  files: number;
  shards: readonly ShardPublication[];
}

function summarise(issuer: CaPurpose, shards: readonly ShardPublication[]): CaCrlSummary {
  const range = (values: number[]): [number, number] => [Math.min(...values), Math.max(...values)];
  const largest = shards.reduce((a, b) =>
    b.full.entries > a.full.entries || (b.full.entries === a.full.entries && b.full.bytes > a.full.bytes)
      ? b
      : a,
  );
  return {
    issuer,
    shards: shards.length,
    entries: shards.reduce((n, s) => n + s.full.entries, 0),
    deltaEntries: shards.reduce((n, s) => n + s.delta.entries, 0),
    fullCrlNumbers: range(shards.map((s) => s.full.crlNumber)),
    deltaCrlNumbers: range(shards.map((s) => s.delta.crlNumber)),
    signedFull: shards.filter((s) => s.full.signed).length,
    signedDelta: shards.filter((s) => s.delta.signed).length,
    bytes: shards.reduce((n, s) => n + s.full.bytes + s.delta.bytes, 0),
    largestShard: { shard: largest.shard, entries: largest.full.entries, bytes: largest.full.bytes },
  };
}

function summary(report: PublishReport, out: string | null, files: number): CrlPublishResult {
  const issuers = [...new Set(report.shards.map((s) => s.issuer))];
  return {
    changeSequence: report.changeSequence,
    signed: report.signed,
    cas: issuers.map((issuer) =>
      summarise(
        issuer,
        report.shards.filter((s) => s.issuer === issuer),
      ),
    ),
    out,
    files,
    shards: report.shards,
  };
}

const numbers = ([low, high]: [number, number]) => (low === high ? String(low) : `${low}–${high}`);
const kilobytes = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

function render(result: CrlPublishResult): string {
  const header = [
    "CA",
    "shards",
    "entries (delta)",
    "CRL numbers (complete / delta)",
    "signed now",
    "largest shard",
  ];
  const rows = result.cas.map((ca) => [
    ca.issuer,
    String(ca.shards),
    `${ca.entries} (${ca.deltaEntries})`,
    `${numbers(ca.fullCrlNumbers)} / ${numbers(ca.deltaCrlNumbers)}`,
    `${ca.signedFull} + ${ca.signedDelta}`,
    `${ca.largestShard.shard}: ${ca.largestShard.entries} entries, ${kilobytes(ca.largestShard.bytes)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const lines = [line(header), ...rows.map(line), ""];
  lines.push(
    result.signed === 0
      ? `Nothing was due: every CRL is current (registry change ${result.changeSequence}).`
      : `Signed ${result.signed} CRLs reflecting registry change ${result.changeSequence}.`,
  );
  if (result.out) lines.push(`Wrote ${result.files} files under ${path.join(result.out, "crl")}.`);
  return lines.join("\n");
}

export const crlPublish: Command = {
  name: "crl publish",
  summary: "sign the CRLs that are due (every shard, complete and delta) and write them as files",
  help: `
Usage: jpki-mobile crl publish [--data DIR] [--out DIR] [--full] [--json]

Publishes the certificate revocation lists of both CAs: for each shard, a complete CRL (by default
valid 24 hours, signed again after 12) and a delta CRL (valid 1 hour: what changed since the complete
CRL; signed again when a certificate of the shard changes status, or after 30 minutes). CRLs that are
current are kept. Each CRL is read back and its signature verified before it is stored in the
registry, from which the server answers /crl/{auth|sign}/{shard}.crl and .../{shard}-delta.crl.
Periods come from the registry settings crl.fullPeriodSeconds and crl.deltaPeriodSeconds (docs/crl.md).

${DATA_HELP}
  --out DIR       also write every published CRL as a DER file in the layout of its URL:
                  DIR/crl/auth/0.crl, DIR/crl/auth/0-delta.crl, ... (each replaced atomically)
  --full          sign every complete CRL again now, whatever its age
${JSON_HELP}

Example:
  jpki-mobile crl publish --out /var/www/jpki && ls /var/www/jpki/crl/auth
`,
  options: { ...dataOption, ...jsonOption, out: { type: "string" }, full: { type: "boolean" } },
  async run(values) {
    const out = stringOption(values, "out");
    return withAuthority(values, "cli:crl-publish", async (authority) => {
      const signing = progress("CRL shards");
      const report = await publishCrls(authority, {
        full: values.full === true,
        onProgress: (done, total) => signing.update(done, total),
      });
      signing.end();
      let files = 0;
      if (out !== undefined) {
        const writing = progress("CRL files");
        files = (
          await writeCrlFiles(authority, out, report.shards, (done, total) => writing.update(done, total))
        ).length;
        writing.end();
      }
      printResult(values.json === true, summary(report, out ?? null, files), render);
      return 0;
    });
  },
};
