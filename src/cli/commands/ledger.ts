/**
 * `ledger report` and `ledger close`: the month's settlement between J-LIS, the State, carriers,
 * municipalities and relying parties (src/ledger/ledger.ts), summed from the ledger's rows.
 */
import {
  billingMonth,
  closeMonth,
  type LedgerReport,
  ledgerReport,
  parseMonth,
  previousMonth,
  ratesOf,
} from "../../ledger/ledger.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

function monthOption(text: string | undefined): string {
  if (text === undefined) return billingMonth(new Date());
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(text)) throw new UsageError(`--month must be YYYY-MM: ${text}`);
  return parseMonth(text);
}

const yen = (amount: number) => `¥${amount.toLocaleString("en-US")}`;

function renderReport(report: LedgerReport): string {
  if (report.settlements.length === 0) return `Ledger ${report.month}: no billable event.`;
  const width = Math.max(...report.parties.map((p) => p.party.length), 5);
  const lines = [
    `Ledger ${report.month}: ${yen(report.totalYen)} in all`,
    "",
    `  ${"party".padEnd(width)}  ${"pays".padStart(12)}  ${"receives".padStart(12)}  ${"net".padStart(12)}`,
    ...report.parties.map(
      (p) =>
        `  ${p.party.padEnd(width)}  ${yen(p.paysYen).padStart(12)}  ${yen(p.receivesYen).padStart(12)}  ${yen(p.netYen).padStart(12)}`,
    ),
    "",
    "  who pays whom, for what:",
    ...report.settlements.map(
      (s) =>
        `    ${s.payer} → ${s.payee}: ${s.kind} × ${s.quantity.toLocaleString("en-US")} = ${yen(s.amountYen)}`,
    ),
  ];
  return lines.join("\n");
}

const csvField = (value: string | number) => {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

function renderCsv(report: LedgerReport): string {
  return [
    "month,payer,payee,kind,quantity,amount_yen",
    ...report.settlements.map((s) =>
      [report.month, s.payer, s.payee, s.kind, s.quantity, s.amountYen].map(csvField).join(","),
    ),
  ].join("\n");
}

export const ledgerReportCommand: Command = {
  name: "ledger report",
  summary: "the month's settlement: what each party pays and receives, and for what",
  help: `
Usage: jpki-mobile ledger report [--month YYYY-MM] [--data DIR] [--json | --csv]

Sums the month's ledger rows (Japan time): issuances (paid to J-LIS, by the State by default),
deliveries over the air and SIM space (paid by J-LIS to the carrier that issued the SIM: a light
MVNO's host), counter handling (paid by J-LIS to the municipality), status lookups (paid by each
registered verifier to J-LIS). The rows are append-only: the same month always reports the same
figures. SIM space and status lookups are billed when the month is closed (\`ledger close\`;
\`jpki-mobile start\` closes each month once it has ended).

${DATA_HELP}
  --month YYYY-MM   the month (default: this month)
${JSON_HELP} { "month", "totalYen", "parties": [{ "party", "paysYen", "receivesYen", "netYen" }],
                      "settlements": [{ "payer", "payee", "kind", "quantity", "amountYen" }] }
  --csv             the settlements as CSV: month,payer,payee,kind,quantity,amount_yen

Rates: DATA/ledger-rates.json (docs/ledger.md), else the documented defaults.

Example:
  jpki-mobile ledger report --month 2026-11 --csv > settlement-2026-11.csv
`,
  options: { ...dataOption, ...jsonOption, month: { type: "string" }, csv: { type: "boolean" } },
  async run(values) {
    const month = monthOption(stringOption(values, "month"));
    if (values.json === true && values.csv === true) throw new UsageError("choose --json or --csv, not both");
    return withAuthority(values, "cli:ledger", async (authority) => {
      const report = await ledgerReport(authority.registry.db, month);
      if (values.csv === true) process.stdout.write(`${renderCsv(report)}\n`);
      else printResult(values.json === true, report, renderReport);
      return 0;
    });
  },
};

export const ledgerCloseCommand: Command = {
  name: "ledger close",
  summary: "bill a month's SIM space and status lookups",
  help: `
Usage: jpki-mobile ledger close [--month YYYY-MM] [--data DIR] [--json]

Records, once, what is billed by the month: one applet-month of SIM space for every SIM that held
a live smartphone certificate during the month, and each verifier's status lookups of the month.
Closing again writes nothing new for the SIM space; lookups are billed at the first close, so close
a month after it has ended.

${DATA_HELP}
  --month YYYY-MM   the month (default: last month)
${JSON_HELP} { "month", "written" }
`,
  options: { ...dataOption, ...jsonOption, month: { type: "string" } },
  async run(values) {
    const text = stringOption(values, "month");
    const month = text === undefined ? previousMonth(new Date()) : monthOption(text);
    return withAuthority(values, "cli:ledger", async (authority) => {
      const written = await closeMonth(authority.registry.db, ratesOf(authority.dataDir), month);
      printResult(
        values.json === true,
        { month, written },
        () => `Ledger ${month} closed: ${written} rows written.`,
      );
      return 0;
    });
  },
};

export const ledgerCommands: readonly Command[] = [ledgerReportCommand, ledgerCloseCommand];
