/**
 * Property test of the audit diagnosis on chains built in memory: whatever single tampering is applied
 * (at any position, in any chain length), the findings name exactly that entry and that kind.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import fc from "fast-check";
import { AUDIT_GENESIS_HASH, type AuditFindingKind, auditHash, diagnoseAuditChain } from "./audit.js";
import type { AuditRow } from "./schema.js";

function chain(length: number): AuditRow[] {
  const rows: AuditRow[] = [];
  let prev = AUDIT_GENESIS_HASH;
  for (let seq = 1; seq <= length; seq++) {
    const row = {
      seq,
      at: `2026-01-01T00:00:${String(seq % 60).padStart(2, "0")}.000Z`,
      actor: "ra",
      action: "certificate.issued",
      subject: `serial-${seq}`,
      details: `{"n":${seq}}`,
      prev_hash: prev,
      hash: "",
    };
    row.hash = auditHash(prev, row);
    prev = row.hash;
    rows.push(row);
  }
  return rows;
}

type Tamper =
  | { kind: "modify"; at: number }
  | { kind: "rehash"; at: number }
  | { kind: "delete"; at: number }
  | { kind: "append" }
  | { kind: "insert"; at: number }
  | { kind: "swap"; a: number; b: number };

/** Applies the tampering; returns the rows and the findings it must produce. */
function tamper(rows: AuditRow[], t: Tamper): { rows: AuditRow[]; expected: [number, AuditFindingKind][] } {
  const copy = rows.map((r) => ({ ...r }));
  const n = copy.length;
  switch (t.kind) {
    case "modify":
      copy[t.at - 1]!.details = '{"forged":true}';
      return { rows: copy, expected: [[t.at, "modified"]] };
    case "rehash": {
      const row = copy[t.at - 1]!;
      row.actor = "intruder";
      row.hash = auditHash(row.prev_hash, row);
      return { rows: copy, expected: [[t.at, "modified"]] };
    }
    case "delete":
      return { rows: copy.filter((r) => r.seq !== t.at), expected: [[t.at, "deleted"]] };
    case "append": {
      const last = copy[n - 1]!;
      const forged = { ...last, seq: n + 1, actor: "intruder", prev_hash: last.hash };
      forged.hash = auditHash(last.hash, forged);
      return { rows: [...copy, forged], expected: [[n + 1, "inserted"]] };
    }
    case "insert": {
      const prev = t.at === 1 ? AUDIT_GENESIS_HASH : copy[t.at - 2]!.hash;
      const forged = { ...copy[t.at - 1]!, seq: t.at, actor: "intruder", prev_hash: prev };
      forged.hash = auditHash(prev, forged);
      for (const r of copy) if (r.seq >= t.at) r.seq += 1;
      const out = [...copy, forged].sort((x, y) => x.seq - y.seq);
      return { rows: out, expected: [[t.at, "inserted"]] };
    }
    case "swap": {
      copy[t.a - 1]!.seq = t.b;
      copy[t.b - 1]!.seq = t.a;
      return {
        rows: copy.sort((x, y) => x.seq - y.seq),
        expected: [
          [t.a, "reordered"],
          [t.b, "reordered"],
        ],
      };
    }
  }
}

const scenario = fc.integer({ min: 2, max: 40 }).chain((length) =>
  fc.record({
    length: fc.constant(length),
    tamper: fc.oneof(
      fc.integer({ min: 1, max: length }).map((at): Tamper => ({ kind: "modify", at })),
      fc.integer({ min: 1, max: length }).map((at): Tamper => ({ kind: "rehash", at })),
      fc.integer({ min: 1, max: length }).map((at): Tamper => ({ kind: "delete", at })),
      fc.constant<Tamper>({ kind: "append" }),
      fc.integer({ min: 1, max: length }).map((at): Tamper => ({ kind: "insert", at })),
      fc
        .tuple(fc.integer({ min: 1, max: length }), fc.integer({ min: 1, max: length }))
        .filter(([a, b]) => a !== b)
        .map(([a, b]): Tamper => ({ kind: "swap", a: Math.min(a, b), b: Math.max(a, b) })),
    ),
  }),
);

test("an untouched chain of any length has no findings", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 50 }), (length) => {
      const rows = chain(length);
      const head = { seq: length, hash: rows[length - 1]?.hash ?? AUDIT_GENESIS_HASH };
      assert.deepEqual(diagnoseAuditChain(rows, head), []);
    }),
  );
});

test("any single tampering is named: the entry and the kind, nothing else", () => {
  fc.assert(
    fc.property(scenario, ({ length, tamper: t }) => {
      const rows = chain(length);
      const head = { seq: length, hash: rows[length - 1]!.hash };
      const { rows: tampered, expected } = tamper(rows, t);
      const findings = diagnoseAuditChain(tampered, head).map((f): [number, AuditFindingKind] => [
        f.seq,
        f.kind,
      ]);
      assert.deepEqual(findings, expected);
    }),
    { numRuns: 500 },
  );
});
