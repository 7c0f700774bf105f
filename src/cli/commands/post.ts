/**
 * `post deliver`, `post return-overdue` and `post list`: the sandbox's post office for
 * restricted-delivery mail (本人限定受取郵便, src/post/). The carrier's delivery attempt prints the
 * letter only when it is handed over, to the addressee after the identity check; returns go back to
 * J-LIS at once, which refers the application to the municipal counter (src/ra/postal.ts).
 */
import { JpkiError } from "../../errors.js";
import { envelopeKey } from "../../post/envelope.js";
import {
  DEFAULT_HOLD_DAYS,
  type DeliveryOutcome,
  type MailItem,
  type MailStatus,
  RestrictedDeliveryService,
} from "../../post/restricted-delivery.js";
import type { ApplicationRecord } from "../../ra/applications.js";
import { referReturnedApplications } from "../../ra/postal.js";
import type { Authority } from "../../server/authority.js";
import { type Command, type OptionValues, printResult, stringOption, UsageError } from "../command.js";
import { DATA_HELP, dataOption, JSON_HELP, jsonOption, withAuthority } from "./options.js";

/** The data directory's post office; `--hold-days` sets the holding period an attempt starts. */
export function postOffice(authority: Authority, values: OptionValues = {}): RestrictedDeliveryService {
  const text = stringOption(values, "hold-days");
  const holdDays = text === undefined ? undefined : Number(text);
  if (holdDays !== undefined && !(Number.isInteger(holdDays) && holdDays >= 0))
    throw new UsageError(`--hold-days must be a whole number of days, 0 or more: ${text}`);
  return new RestrictedDeliveryService(authority.registry.db, {
    envelopeKey: envelopeKey(authority.dataDir),
    ...(holdDays !== undefined ? { holdDays } : {}),
  });
}

const renderReferred = (a: ApplicationRecord) =>
  `J-LIS: application ${a.id} referred to the municipal counter (the letter came back).`;

interface DeliveryReport {
  readonly trackingNumber: string;
  readonly handedOver: boolean;
  readonly status: MailStatus;
  readonly reason?: string;
  readonly message?: string;
  readonly holdUntil?: string | null;
  /** The letter's text: printed only when it was handed over. */
  readonly letter?: string;
}

const reportOf = (outcome: DeliveryOutcome): DeliveryReport =>
  outcome.handedOver
    ? {
        trackingNumber: outcome.item.trackingNumber,
        handedOver: true,
        status: outcome.item.status,
        letter: outcome.letter.toString("utf8"),
      }
    : {
        trackingNumber: outcome.item.trackingNumber,
        handedOver: false,
        status: outcome.item.status,
        reason: outcome.reason,
        message: outcome.message,
        holdUntil: outcome.item.holdUntil,
      };

const renderReport = (r: DeliveryReport) =>
  r.handedOver
    ? `Mail ${r.trackingNumber}: handed to the addressee. The letter reads:\n\n${r.letter}\n`
    : `Mail ${r.trackingNumber}: not handed over (${r.reason}): ${r.message}${r.status === "sent" ? `; held until ${r.holdUntil}` : ""}.`;

function parseTime(text: string | undefined, option: string): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime()))
    throw new UsageError(`--${option} must be an ISO-8601 date or time: ${text}`);
  return date;
}

export const postDeliver: Command = {
  name: "post deliver",
  summary: "restricted-delivery mail: the carrier's delivery attempt (the letter goes to the addressee only)",
  help: `
Usage: jpki-mobile post deliver [--data DIR] [--tracking N] [--at-address ADDRESS] [--recipient PERSON_ID]
                                [--identity-checked] [--hold-days N] [--json]

One delivery attempt of restricted-delivery mail (本人限定受取郵便): the item is handed over only to
the addressee, found at the address on the envelope, after the carrier checked their identity
document; the letter (with J-LIS's access code) is then printed, once. Otherwise the item stays at
the post office and the first attempt starts its holding period; a person whose residence (居所) is
not the address of record is not found there, and the item goes back to J-LIS when the period ends.

${DATA_HELP}
  --tracking N          the item's tracking number (default: every item still out)
  --at-address ADDRESS  where the carrier is (default: the address on the envelope; any other is refused)
  --recipient ID        who comes to the door (a person id; default: the addressee)
  --identity-checked    the carrier checked the recipient's identity document (required to hand over)
  --hold-days N         holding period started by a first failed attempt (default ${DEFAULT_HOLD_DAYS})
${JSON_HELP} [{ "trackingNumber", "handedOver", "status", "letter" | "reason", "message", "holdUntil" }]

Example:
  jpki-mobile post deliver --tracking 1234-5678-9015 --identity-checked
`,
  options: {
    ...dataOption,
    ...jsonOption,
    tracking: { type: "string" },
    "at-address": { type: "string" },
    recipient: { type: "string" },
    "identity-checked": { type: "boolean" },
    "hold-days": { type: "string" },
  },
  async run(values) {
    return withAuthority(values, "cli:post-deliver", async (authority) => {
      const post = postOffice(authority, values);
      const tracking = stringOption(values, "tracking");
      const items = tracking === undefined ? await post.list("sent") : [{ trackingNumber: tracking }];
      if (items.length === 0) throw new JpkiError("not-found", "no mail is out for delivery");
      const atAddress = stringOption(values, "at-address");
      const recipientId = stringOption(values, "recipient");
      const reports: DeliveryReport[] = [];
      for (const item of items) {
        const outcome = await post.attemptDelivery({
          trackingNumber: item.trackingNumber,
          identityChecked: values["identity-checked"] === true,
          actor: "post:carrier",
          ...(atAddress !== undefined ? { atAddress } : {}),
          ...(recipientId !== undefined ? { recipientId } : {}),
        });
        reports.push(reportOf(outcome));
      }
      // An attempt past the holding period sends the item back: J-LIS learns of it at once.
      const referred = await referReturnedApplications(authority, post);
      printResult(values.json === true, reports, (list) =>
        [...list.map(renderReport), ...referred.map(renderReferred)].join("\n"),
      );
      return 0;
    });
  },
};

const renderItem = (m: MailItem) =>
  `  ${m.trackingNumber}  ${m.status.padEnd(9)} to ${m.addresseeName}, ${m.address}` +
  (m.status === "sent" && m.holdUntil ? ` (held until ${m.holdUntil})` : "");

export const postReturnOverdue: Command = {
  name: "post return-overdue",
  summary: "restricted-delivery mail held past its holding period goes back to J-LIS",
  help: `
Usage: jpki-mobile post return-overdue [--data DIR] [--now TIME] [--json]

The post office's daily sweep: every item held past its holding period goes back to its sender,
unopened (its letter is destroyed). J-LIS then voids the access code of each returned letter and
refers its application to the municipal counter.

${DATA_HELP}
  --now TIME      the sweep's time, ISO-8601 (default: now), to see what a later day returns
${JSON_HELP} { "returned": [mail items], "referred": [applications] }
`,
  options: { ...dataOption, ...jsonOption, now: { type: "string" } },
  async run(values) {
    const now = parseTime(stringOption(values, "now"), "now");
    return withAuthority(values, "cli:post-return", async (authority) => {
      const post = postOffice(authority);
      const returned = await post.returnOverdue({ actor: "post:office", ...(now ? { now } : {}) });
      const referred = await referReturnedApplications(authority, post, now ? { now } : {});
      printResult(values.json === true, { returned, referred }, (r) =>
        [
          r.returned.length === 0
            ? "No mail is past its holding period."
            : `Returned to the sender:\n${r.returned.map(renderItem).join("\n")}`,
          ...r.referred.map(renderReferred),
        ].join("\n"),
      );
      return 0;
    });
  },
};

const STATUSES: readonly MailStatus[] = ["sent", "delivered", "returned"];

export const postList: Command = {
  name: "post list",
  summary: "restricted-delivery mail items by status (default: still out)",
  help: `
Usage: jpki-mobile post list [--data DIR] [--status sent|delivered|returned] [--json]

The post office's items: tracking number, status, addressee and address, holding deadline. Never
the letters.

${DATA_HELP}
  --status S      sent (still out, the default), delivered or returned
${JSON_HELP}
`,
  options: { ...dataOption, ...jsonOption, status: { type: "string" } },
  async run(values) {
    const status = (stringOption(values, "status") ?? "sent") as MailStatus;
    if (!STATUSES.includes(status)) throw new UsageError(`--status must be one of ${STATUSES.join(", ")}`);
    return withAuthority(values, "cli:post-list", async (authority) => {
      const items = await postOffice(authority).list(status);
      printResult(values.json === true, items, (list) =>
        list.length === 0 ? `No mail is ${status}.` : list.map(renderItem).join("\n"),
      );
      return 0;
    });
  },
};

export const postCommands: readonly Command[] = [postDeliver, postReturnOverdue, postList];
