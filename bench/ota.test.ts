/**
 * `bench ota` at a small size: every delivery made through the gateway with the SIM's proof of
 * receipt checked, coherent counts and shares; no speed is asserted (benchmarks measure, tests check).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runOtaBench } from "./ota.js";

test("bench ota runs end to end at a small size and reports coherent figures", async () => {
  const phases = new Set<string>();
  const result = await runOtaBench({ sims: 3, deliveries: 2, onProgress: (phase) => phases.add(phase) });
  assert.equal(result.deliveries, 6);
  assert.ok(result.deliveriesPerSecond > 0 && result.directDeliveriesPerSecond > 0);
  // A delivery: SELECT, the host certificate, MUTUAL AUTHENTICATE, then INSTALL and STORE DATA in one script.
  assert.equal(result.scriptsPerDelivery, 4);
  assert.ok(result.apdusPerDelivery >= 7);
  const { jlis, gateway, phoneAndSim, back } = result.shares;
  assert.ok(Math.abs(jlis + gateway + phoneAndSim + back - 1) < 0.01);
  assert.ok(phoneAndSim > 0 && jlis > 0);
  assert.ok(result.latency.medianMs > 0 && result.latency.p90Ms >= result.latency.medianMs);
  assert.ok(phases.has("SIMs with the applet, key and certificate"));
  assert.ok(phases.has("deliveries over the air"));
});
