/** The card benchmark runs end to end and reports figures that hang together (not a timing assertion). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { pcscSkipReason } from "../src/testing/pcsc.js";
import { benchCard, type CardBenchPhase, latency, type RoundTripRate } from "./card.js";

/** Without pcscd and vpcd the PC/SC figure must say why; in CI they must be there (this throws). */
const pcscMissing = await pcscSkipReason();

function assertRate(rate: RoundTripRate, seconds: number): void {
  assert.ok(rate.roundTrips > 0 && rate.roundTrips % 2 === 0, "whole SELECT + READ BINARY pairs");
  assert.ok(rate.seconds >= seconds, "the time budget is used up");
  assert.ok(Math.abs(rate.roundTripsPerSecond - rate.roundTrips / rate.seconds) < 1e-9);
}

test("latency: median and nearest-rank p99, in microseconds", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => (100 - i) / 1000);
  assert.deepEqual(latency(hundred), { medianMicroseconds: 50.5, p99Microseconds: 99 });
  assert.deepEqual(latency([0.003, 0.001, 0.002]), { medianMicroseconds: 2, p99Microseconds: 3 });
  assert.throws(() => latency([]), RangeError);
});

test("bench card measures in process, over the vpcd link, through PC/SC, and SIGN beside Node", async () => {
  const phases: CardBenchPhase[] = [];
  const lastReport = new Map<CardBenchPhase, [number, number]>();
  const result = await benchCard({
    seconds: 0.2,
    signatures: 200,
    onProgress: (phase, done, total) => {
      if (phases.at(-1) !== phase) phases.push(phase);
      lastReport.set(phase, [done, total]);
    },
  });
  assert.deepEqual(result.roundTripApdus, ["00A4020C020006", "00B0000020"]);
  assertRate(result.inProcess, 0.2);
  assert.ok(result.vpcdLink.available);
  assertRate(result.vpcdLink.oneWrite, 0.2);
  assertRate(result.vpcdLink.splitWrites, 0.2);
  if (pcscMissing) {
    assert.equal(result.pcsc.available, false);
    assert.ok(!result.pcsc.available && result.pcsc.reason.length > 0);
  } else {
    assert.ok(result.pcsc.available, JSON.stringify(result.pcsc));
    assert.match(result.pcsc.reader, /^Virtual PCD 00 \d\d$/);
    assertRate(result.pcsc, 0.2);
  }

  const { sign } = result;
  assert.equal(sign.signatures, 200);
  for (const measured of [sign.card, sign.node]) {
    assert.ok(measured.medianMicroseconds > 0);
    assert.ok(measured.p99Microseconds >= measured.medianMicroseconds);
  }
  assert.ok(Math.abs(sign.ratio.median - sign.card.medianMicroseconds / sign.node.medianMicroseconds) < 1e-9);
  assert.ok(Math.abs(sign.ratio.p99 - sign.card.p99Microseconds / sign.node.p99Microseconds) < 1e-9);

  // Each phase reports progress once it starts and ends at its total.
  assert.deepEqual(phases, [
    "in process",
    "vpcd link, one write",
    "vpcd link, split writes",
    ...(pcscMissing ? [] : ["pcscd" as const]),
    "sign",
  ]);
  for (const [done, total] of lastReport.values()) assert.equal(done, total);
  assert.deepEqual(lastReport.get("sign"), [200, 200]);
});

/** Runs the command line with stdout and stderr captured. */
async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { write: writeOut } = process.stdout;
  const { write: writeErr } = process.stderr;
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const status = await main(args);
    return { status, stdout: out.join(""), stderr: err.join("") };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

test("jpki-mobile bench card --no-vpcd --json prints the figures for scripts", async () => {
  const run = await cli(["bench", "card", "--no-vpcd", "--seconds", "0.1", "--count", "20", "--json"]);
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.deepEqual(Object.keys(result), ["roundTripApdus", "inProcess", "vpcdLink", "pcsc", "sign"]);
  assert.ok(result.inProcess.roundTripsPerSecond > 0);
  assert.deepEqual(result.vpcdLink, { available: false, reason: "not measured (vpcd turned off)" });
  assert.deepEqual(result.pcsc, result.vpcdLink);
  assert.equal(result.sign.signatures, 20);
  assert.ok(result.sign.card.p99Microseconds >= result.sign.card.medianMicroseconds);
});

test("bench takes ca, card, crl, ocsp, issue or ota, and refuses the other benchmark's options", async () => {
  const cases: [string[], RegExp][] = [
    [["bench", "cards"], /unknown benchmark cards: choose ca, card, crl, ocsp, issue or ota/],
    [["bench"], /expected what to measure \(ca, card, crl, ocsp, issue or ota\)/],
    [["bench", "ota", "--citizens", "3"], /--citizens applies to bench issue, not bench ota/],
    [["bench", "issue", "--sims", "3"], /--sims applies to bench ota, not bench issue/],
    [["bench", "card", "--pg", "postgres://x"], /--pg applies to bench ca, not bench card/],
    [["bench", "ca", "--no-vpcd"], /--no-vpcd applies to bench card, not bench ca/],
    [["bench", "card", "--seconds", "0"], /--seconds must be a positive number/],
    [["bench", "card", "--count", "1.5"], /--count must be a positive integer/],
  ];
  for (const [args, message] of cases) {
    const run = await cli(args);
    assert.equal(run.status, 2, args.join(" "));
    assert.match(run.stderr, message);
  }
  const help = await cli(["bench", "--help"]);
  assert.match(help.stdout, /jpki-mobile bench card \[--seconds S\] \[--count N\] \[--no-vpcd\] \[--json\]/);
});
