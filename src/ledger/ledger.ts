/**
 * Responsibility and cost sharing (the seed's 責任分界点・費用負担, DESIGN §4 flow 9): every billable
 * event is one append-only ledger row naming the party that pays, the party that is paid, the rate
 * and the amount, written in the transaction of the event itself (or, for what is billed by the
 * month, when the month is closed). The monthly report is a sum of rows, so anyone holding the rows
 * gets the same figures.
 *
 * Who pays whom, by default (the rates file changes the prices and the issuance's payer):
 *
 * | event                                   | payer                 | payee                               |
 * | --------------------------------------- | --------------------- | ----------------------------------- |
 * | a smartphone certificate issued         | `state` (国)          | `jlis`                              |
 * | a delivery over the air                 | `jlis`                | the carrier that issued the SIM     |
 * | SIM space, per applet and month         | `jlis`                | the carrier that issued the SIM     |
 * | a citizen served at a municipal counter | `jlis`                | the municipality                    |
 * | status lookups (OCSP, CRL), per month   | the registered verifier | `jlis`                            |
 *
 * A light MVNO's SIMs are its host's: the host MNO runs their OTA and lends their space, so it is paid.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { type Kysely, sql } from "kysely";
import { JpkiError } from "../errors.js";
import { jstDateOf } from "../pki/validity.js";
import { appendAudit } from "../registry/audit.js";
import { bulkInsert, column } from "../registry/bulk.js";
import { isoTime } from "../registry/db.js";
import type { RegistrySchema } from "../registry/schema.js";

export const BILLABLE_KINDS = [
  "issuance",
  "ota-delivery",
  "sim-space",
  "counter-handling",
  "status-lookup",
] as const;
export type BillableKind = (typeof BILLABLE_KINDS)[number];

/** A price: `yen` for every `per` units (status lookups are priced per thousand). */
export interface Rate {
  readonly yen: number;
  readonly per: number;
}

export interface LedgerRates {
  readonly issuance: Rate & { readonly payer: string };
  readonly otaDelivery: Rate;
  readonly simSpace: Rate;
  readonly counterHandling: Rate;
  readonly statusLookup: Rate;
}

/** The sandbox's prices: round figures to make a report readable, not anybody's tariff. */
export const DEFAULT_RATES: LedgerRates = {
  issuance: { yen: 100, per: 1, payer: "state" },
  otaDelivery: { yen: 5, per: 1 },
  simSpace: { yen: 10, per: 1 },
  counterHandling: { yen: 300, per: 1 },
  statusLookup: { yen: 20, per: 1000 },
};

export const RATES_FILE = "ledger-rates.json";

const PARTY = /^(state|jlis|citizen|carrier:[a-z][a-z0-9-]*|municipality:\d{6}|verifier:[\w-]+)$/;

function rateOf(value: unknown, name: string, fallback: Rate): Rate {
  if (value === undefined) return fallback;
  const rate = value as Record<string, unknown>;
  const yen = rate?.["yen"] ?? fallback.yen;
  const per = rate?.["per"] ?? fallback.per;
  if (!Number.isSafeInteger(yen) || (yen as number) < 0 || !Number.isSafeInteger(per) || (per as number) < 1)
    throw new JpkiError(
      "bad-input",
      `${RATES_FILE}: ${name} needs whole yen (0 or more) per whole units (1 or more)`,
    );
  return { yen: yen as number, per: per as number };
}

/** The data directory's rates (`ledger-rates.json`, each field optional), else the defaults. */
export function loadRates(dataDir: string): LedgerRates {
  const file = path.join(dataDir, RATES_FILE);
  if (!existsSync(file)) return DEFAULT_RATES;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new JpkiError("bad-input", `${file} is not JSON: ${(error as Error).message}`);
  }
  const payer =
    (json["issuance"] as Record<string, unknown> | undefined)?.["payer"] ?? DEFAULT_RATES.issuance.payer;
  if (typeof payer !== "string" || !PARTY.test(payer))
    throw new JpkiError(
      "bad-input",
      `${RATES_FILE}: issuance.payer must name a party (state, citizen, carrier:NAME, ...)`,
    );
  return {
    issuance: { ...rateOf(json["issuance"], "issuance", DEFAULT_RATES.issuance), payer },
    otaDelivery: rateOf(json["otaDelivery"], "otaDelivery", DEFAULT_RATES.otaDelivery),
    simSpace: rateOf(json["simSpace"], "simSpace", DEFAULT_RATES.simSpace),
    counterHandling: rateOf(json["counterHandling"], "counterHandling", DEFAULT_RATES.counterHandling),
    statusLookup: rateOf(json["statusLookup"], "statusLookup", DEFAULT_RATES.statusLookup),
  };
}

const loaded = new Map<string, LedgerRates>();

/** The rates of the data directory, read once per process (a change to the file takes a restart). */
export function ratesOf(dataDir: string): LedgerRates {
  let rates = loaded.get(dataDir);
  if (!rates) {
    rates = loadRates(dataDir);
    loaded.set(dataDir, rates);
  }
  return rates;
}

/** `YYYY-MM` of an instant in Japan time. */
export function billingMonth(at: Date): string {
  const { year, month } = jstDateOf(at);
  return `${year}-${String(month).padStart(2, "0")}`;
}

/** The month before the one `now` is in, in Japan time. */
export function previousMonth(now: Date): string {
  const [year, month] = billingMonth(now).split("-").map(Number) as [number, number];
  return month === 1 ? `${year - 1}-12` : `${year}-${String(month - 1).padStart(2, "0")}`;
}

export function parseMonth(text: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(text)) throw new JpkiError("bad-input", `a month is YYYY-MM: ${text}`);
  return text;
}

export interface Billable {
  readonly kind: BillableKind;
  /** The event billed; a second row for the same source is never written. */
  readonly source: string;
  readonly payer: string;
  readonly payee: string;
  readonly quantity: number;
  readonly rate: Rate;
  readonly reference: string;
  /** Billing month (default: the month of `at`). */
  readonly month?: string;
}

const COLUMNS = [
  column("id"),
  column("source"),
  column("kind"),
  column("payer"),
  column("payee"),
  column("quantity", "bigint"),
  column("rate_yen", "bigint"),
  column("rate_per", "bigint"),
  column("amount_yen", "bigint"),
  column("month"),
  column("at"),
  column("reference"),
  column("actor"),
];

/** Rounded half up to the yen, per row. */
export const amountOf = (quantity: number, rate: Rate): number =>
  Math.round((quantity * rate.yen) / rate.per);

/**
 * Writes the rows of billable events inside the caller's transaction, with their audit entries. A
 * source already billed is skipped (so a repeated step bills once). Returns the rows written.
 */
export async function recordBillable(
  trx: Kysely<RegistrySchema>,
  entries: readonly Billable[],
  actor: string,
  now = new Date(),
): Promise<number> {
  if (entries.length === 0) return 0;
  for (const e of entries)
    if (!PARTY.test(e.payer) || !PARTY.test(e.payee) || !Number.isSafeInteger(e.quantity) || e.quantity < 0)
      throw new JpkiError(
        "internal",
        `a billable ${e.kind} with parties ${e.payer} → ${e.payee} is malformed`,
      );
  const at = isoTime(now);
  const month = billingMonth(now);
  const inserted = await bulkInsert(
    trx,
    "ledger_entries",
    COLUMNS,
    entries.map((e) => [
      randomUUID(),
      e.source,
      e.kind,
      e.payer,
      e.payee,
      e.quantity,
      e.rate.yen,
      e.rate.per,
      amountOf(e.quantity, e.rate),
      e.month ?? month,
      at,
      e.reference,
      actor,
    ]),
    { skipConflictsOn: "source" },
  );
  const written = new Set(inserted.map((r) => r["source"] as string));
  await appendAudit(
    trx,
    entries
      .filter((e) => written.has(e.source))
      .map((e) => ({
        actor,
        action: "ledger.entry",
        subject: e.source,
        details: {
          amountYen: amountOf(e.quantity, e.rate),
          payee: e.payee,
          payer: e.payer,
          quantity: e.quantity,
        },
      })),
  );
  return written.size;
}

export const carrierParty = (carrier: string) => `carrier:${carrier}`;
export const municipalityParty = (code: string) => `municipality:${code}`;
export const verifierParty = (id: string) => `verifier:${id}`;

/**
 * Closes `month` for what is billed by the month: the SIM space of every SIM that held a live
 * smartphone certificate at some time in the month, and each verifier's status lookups. Idempotent
 * for the SIM space; the lookups of a month are billed once, when it is first closed (close a month
 * after it ends). Returns the rows written.
 */
export async function closeMonth(
  db: Kysely<RegistrySchema>,
  rates: LedgerRates,
  month: string,
  actor = "ledger:close",
  now = new Date(),
): Promise<number> {
  parseMonth(month);
  const [year, m] = month.split("-").map(Number) as [number, number];
  // The month's bounds in Japan time, as ISO instants (JST is UTC+9, no daylight saving).
  const start = new Date(Date.UTC(year, m - 1, 1) - 9 * 3_600_000).toISOString();
  const end = new Date(Date.UTC(year, m, 1) - 9 * 3_600_000).toISOString();
  return db.transaction().execute(async (trx) => {
    // A SIM holds an applet with a credential from its certificate's delivery to its end.
    const sims = await trx
      .selectFrom("certificates")
      .innerJoin("sims", "sims.id", "certificates.sim_id")
      .select(["sims.iccid", "sims.carrier"])
      .where("certificates.kind", "in", ["phone-auth", "phone-sign"])
      .where("certificates.der", "is not", null)
      .where("certificates.not_before", "<", end)
      .where((eb) =>
        eb.or([eb("certificates.revoked_at", "is", null), eb("certificates.revoked_at", ">=", start)]),
      )
      .where("certificates.not_after", ">=", start)
      .groupBy(["sims.iccid", "sims.carrier"])
      .execute();
    const lookups = await trx
      .selectFrom("verifier_lookups")
      .select(["verifier_id", sql<number>`sum(count)`.as("count")])
      .where("day", ">=", `${month}-01`)
      .where("day", "<=", `${month}-31`)
      .groupBy("verifier_id")
      .execute();
    return recordBillable(
      trx,
      [
        ...sims
          .filter((s) => s.carrier)
          .map(
            (s): Billable => ({
              kind: "sim-space",
              source: `sim-space:${s.iccid}:${month}`,
              payer: "jlis",
              payee: carrierParty(s.carrier!),
              quantity: 1,
              rate: rates.simSpace,
              reference: s.iccid,
              month,
            }),
          ),
        ...lookups.map(
          (l): Billable => ({
            kind: "status-lookup",
            source: `status-lookup:${l.verifier_id}:${month}`,
            payer: verifierParty(l.verifier_id),
            payee: "jlis",
            quantity: Number(l.count),
            rate: rates.statusLookup,
            reference: l.verifier_id,
            month,
          }),
        ),
      ],
      actor,
      now,
    );
  });
}

export interface PartyTotal {
  readonly party: string;
  readonly paysYen: number;
  readonly receivesYen: number;
  /** receives − pays. */
  readonly netYen: number;
}

export interface Settlement {
  readonly payer: string;
  readonly payee: string;
  readonly kind: BillableKind;
  readonly quantity: number;
  readonly amountYen: number;
}

export interface LedgerReport {
  readonly month: string;
  readonly totalYen: number;
  readonly parties: readonly PartyTotal[];
  /** Per payer, payee and kind. */
  readonly settlements: readonly Settlement[];
}

/** The month's figures, summed from its rows. */
export async function ledgerReport(db: Kysely<RegistrySchema>, month: string): Promise<LedgerReport> {
  parseMonth(month);
  const rows = await db
    .selectFrom("ledger_entries")
    .select([
      "payer",
      "payee",
      "kind",
      sql<number>`sum(quantity)`.as("quantity"),
      sql<number>`sum(amount_yen)`.as("amount"),
    ])
    .where("month", "=", month)
    .groupBy(["payer", "payee", "kind"])
    .orderBy("payer")
    .orderBy("payee")
    .orderBy("kind")
    .execute();
  const settlements = rows.map(
    (r): Settlement => ({
      payer: r.payer,
      payee: r.payee,
      kind: r.kind as BillableKind,
      quantity: Number(r.quantity),
      amountYen: Number(r.amount),
    }),
  );
  const totals = new Map<string, { pays: number; receives: number }>();
  const of = (party: string) => {
    let total = totals.get(party);
    if (!total) {
      total = { pays: 0, receives: 0 };
      totals.set(party, total);
    }
    return total;
  };
  for (const s of settlements) {
    of(s.payer).pays += s.amountYen;
    of(s.payee).receives += s.amountYen;
  }
  return {
    month,
    totalYen: settlements.reduce((sum, s) => sum + s.amountYen, 0),
    parties: [...totals]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([party, t]) => ({
        party,
        paysYen: t.pays,
        receivesYen: t.receives,
        netYen: t.receives - t.pays,
      })),
    settlements,
  };
}
