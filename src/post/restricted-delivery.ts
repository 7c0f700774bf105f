/**
 * Restricted-delivery mail (本人限定受取郵便), as the sandbox's post office runs it: the sender's
 * letter goes to the addressee's address; the post office hands it over only to the addressee, at
 * that address, after checking an identity document. When the addressee is not found there (a person
 * whose residence, 居所, is elsewhere than the address of record, 住所), the item is held at the post
 * office for the holding period (default 7 days, counted from the first attempt) and then goes back
 * to the sender, unopened.
 *
 *   sent ──▶ delivered   (handed to the addressee; the letter leaves the post office)
 *     └────▶ returned    (the holding period ended; the sender learns of it)
 *
 * What the post office keeps is what it needs: the tracking number, the sender and its reference, the
 * name and address on the envelope, the status and times. The letter is sealed (envelope.ts) and
 * erased at handover or return. Every change is audited in the registry's chain.
 *
 * Who is actually at an address is the world outside the post office: a `Whereabouts` function
 * answers it (in the sandbox, from the registry's residence and address of record).
 */
import { randomInt } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { appendAudit } from "../registry/audit.js";
import { isoTime, toBuffer } from "../registry/db.js";
import type { MailItemsTable, RegistrySchema } from "../registry/schema.js";
import { openLetter, sealLetter } from "./envelope.js";

/** The holding period's default (保管期間): 7 days at the post office before the item goes back. */
export const DEFAULT_HOLD_DAYS = 7;
const DAY_MS = 24 * 3600_000;

export type MailStatus = MailItemsTable["status"];

export interface MailItem {
  /** `1234-5678-9012`: 11 random digits and a Luhn check digit. */
  readonly trackingNumber: string;
  readonly sender: string;
  readonly senderReference: string;
  readonly addresseeName: string;
  readonly address: string;
  readonly status: MailStatus;
  readonly deliveryAttempts: number;
  readonly lastFailure: string | null;
  readonly holdUntil: string | null;
  readonly sentAt: string;
  readonly deliveredAt: string | null;
  readonly returnedAt: string | null;
}

const toItem = (row: MailItemsTable): MailItem => ({
  trackingNumber: row.tracking_number,
  sender: row.sender,
  senderReference: row.sender_reference,
  addresseeName: row.addressee_name,
  address: row.address,
  status: row.status,
  deliveryAttempts: row.delivery_attempts,
  lastFailure: row.last_failure,
  holdUntil: row.hold_until,
  sentAt: row.sent_at,
  deliveredAt: row.delivered_at,
  returnedAt: row.returned_at,
});

/** Where person `personId` actually lives, or undefined when nobody knows them. */
export type Whereabouts = (personId: string) => Promise<string | undefined>;

/** The sandbox's world: a person lives at their residence (居所) when one is recorded, else at their address. */
export function sandboxWhereabouts(db: Kysely<RegistrySchema>): Whereabouts {
  return async (personId) => {
    const person = await db
      .selectFrom("persons")
      .select(["address", "residence"])
      .where("id", "=", personId)
      .executeTakeFirst();
    return person ? (person.residence ?? person.address) : undefined;
  };
}

/** Addresses compared as a carrier reads them: the same after NFKC (full-width digits) and spacing. */
export function sameAddress(a: string, b: string): boolean {
  const canonical = (s: string) => s.normalize("NFKC").replace(/\s+/g, " ").trim();
  return canonical(a) === canonical(b);
}

function luhnDigit(digits: string): number {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]) * (i % 2 === 0 ? 2 : 1);
    if (d > 9) d -= 9;
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

function newTrackingNumber(): string {
  let digits = "";
  for (let i = 0; i < 11; i++) digits += String(randomInt(0, 10));
  digits += String(luhnDigit(digits));
  return digits.match(/.{4}/g)!.join("-");
}

/** Reads a tracking number as typed (with or without dashes or spaces); refuses a mistyped one. */
export function parseTrackingNumber(text: string): string {
  const digits = text.normalize("NFKC").replace(/[\s-]/g, "");
  if (!/^\d{12}$/.test(digits) || luhnDigit(digits.slice(0, 11)) !== Number(digits[11]))
    throw new JpkiError(
      "bad-input",
      `${JSON.stringify(text)} is not a tracking number (12 digits, 1234-5678-9012; check the last digit)`,
    );
  return digits.match(/.{4}/g)!.join("-");
}

export interface NewMail {
  readonly sender: string;
  readonly senderReference: string;
  readonly addresseeId: string;
  readonly addresseeName: string;
  readonly address: string;
  /** The letter: sealed at once, never stored open. */
  readonly letter: Buffer;
  readonly actor: string;
  readonly now?: Date;
}

export interface DeliveryAttempt {
  readonly trackingNumber: string;
  /** Where the carrier is (default: the address on the envelope; any other address is refused). */
  readonly atAddress?: string;
  /** Who comes to the door and asks for the item (default: the addressee, if they live there). */
  readonly recipientId?: string;
  /** Whether the carrier checked the recipient's identity document (a restricted delivery needs it). */
  readonly identityChecked: boolean;
  readonly actor: string;
  readonly now?: Date;
}

export type DeliveryOutcome =
  | { readonly handedOver: true; readonly item: MailItem; readonly letter: Buffer }
  | {
      readonly handedOver: false;
      readonly item: MailItem;
      readonly reason: "addressee-not-found" | "identity-not-checked" | "not-the-addressee" | "returned";
      readonly message: string;
    };

export interface RestrictedDeliveryOptions {
  /** The data directory's envelope key (envelope.ts). */
  readonly envelopeKey: Buffer;
  /** Who lives where (default: the sandbox's registry). */
  readonly whereabouts?: Whereabouts;
  /** Holding period in days (default 7). */
  readonly holdDays?: number;
}

/** The post office's restricted-delivery service on the registry database. */
export class RestrictedDeliveryService {
  private readonly whereabouts: Whereabouts;
  private readonly holdMs: number;

  constructor(
    private readonly db: Kysely<RegistrySchema>,
    private readonly options: RestrictedDeliveryOptions,
  ) {
    this.whereabouts = options.whereabouts ?? sandboxWhereabouts(db);
    const days = options.holdDays ?? DEFAULT_HOLD_DAYS;
    if (!(days >= 0)) throw new JpkiError("bad-input", "the holding period must be 0 days or more");
    this.holdMs = days * DAY_MS;
  }

  /**
   * The sender's side: posts a letter, inside `trx` when given (the sender records its side in the
   * same transaction), else in a transaction of its own.
   */
  async send(mail: NewMail, trx?: Kysely<RegistrySchema>): Promise<MailItem> {
    if (!trx) return this.db.transaction().execute((t) => this.send(mail, t));
    const at = isoTime(mail.now);
    let trackingNumber = newTrackingNumber();
    while (await this.find(trx, trackingNumber)) trackingNumber = newTrackingNumber();
    const row: MailItemsTable = {
      tracking_number: trackingNumber,
      sender: mail.sender,
      sender_reference: mail.senderReference,
      addressee_id: mail.addresseeId,
      addressee_name: mail.addresseeName,
      address: mail.address,
      status: "sent",
      sealed_letter: sealLetter(this.options.envelopeKey, trackingNumber, mail.letter),
      delivery_attempts: 0,
      last_failure: null,
      hold_until: null,
      sent_at: at,
      delivered_at: null,
      returned_at: null,
      updated_at: at,
    };
    await trx.insertInto("mail_items").values(row).execute();
    await appendAudit(trx, {
      actor: mail.actor,
      action: "mail.sent",
      subject: trackingNumber,
      details: { service: "restricted-delivery", sender: row.sender, senderReference: row.sender_reference },
    });
    return toItem(row);
  }

  /**
   * The carrier's side: one delivery attempt. Hands the letter over only to the addressee, found at
   * the address on the envelope, after the identity check; otherwise the item is held (the first
   * attempt starts the holding period) and the outcome says why. An attempt after the holding period
   * sends the item back instead.
   */
  async attemptDelivery(attempt: DeliveryAttempt): Promise<DeliveryOutcome> {
    const now = attempt.now ?? new Date();
    const trackingNumber = parseTrackingNumber(attempt.trackingNumber);
    const row = await this.find(this.db, trackingNumber);
    if (!row) throw new JpkiError("not-found", `no mail item ${trackingNumber}`);
    if (row.status !== "sent")
      throw new JpkiError(
        "conflict",
        `mail ${trackingNumber} was ${row.status} (${row.delivered_at ?? row.returned_at}): there is nothing to deliver`,
      );
    if (attempt.atAddress !== undefined && !sameAddress(attempt.atAddress, row.address))
      throw new JpkiError(
        "bad-input",
        `mail ${trackingNumber} is addressed to ${row.address}: a restricted delivery is made only there`,
      );
    if (row.hold_until !== null && row.hold_until <= isoTime(now)) {
      const [returned] = await this.returnItems([row.tracking_number], attempt.actor, now);
      return {
        handedOver: false,
        item: returned ?? toItem(row),
        reason: "returned",
        message: `the holding period ended at ${row.hold_until}: the item went back to ${row.sender}`,
      };
    }

    const recipientId = attempt.recipientId ?? row.addressee_id;
    const livesAt = await this.whereabouts(recipientId);
    const failure:
      | { reason: "addressee-not-found" | "identity-not-checked" | "not-the-addressee"; message: string }
      | undefined =
      livesAt === undefined || !sameAddress(livesAt, row.address)
        ? {
            reason: "addressee-not-found",
            message: `${row.addressee_name} was not found at ${row.address}: the item is held at the post office`,
          }
        : !attempt.identityChecked
          ? {
              reason: "identity-not-checked",
              message:
                "a restricted delivery is handed over only after the recipient's identity document is checked",
            }
          : recipientId !== row.addressee_id
            ? {
                reason: "not-the-addressee",
                message: `the identity document is not ${row.addressee_name}'s: a restricted delivery goes to the addressee only`,
              }
            : undefined;

    if (failure) {
      const holdUntil = row.hold_until ?? isoTime(new Date(now.getTime() + this.holdMs));
      const item = await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable("mail_items")
          .set((eb) => ({
            delivery_attempts: eb("delivery_attempts", "+", 1),
            last_failure: failure.message,
            hold_until: holdUntil,
            updated_at: isoTime(now),
          }))
          .where("tracking_number", "=", trackingNumber)
          .where("status", "=", "sent")
          .executeTakeFirst();
        if (updated.numUpdatedRows !== 1n)
          throw new JpkiError(
            "conflict",
            `mail ${trackingNumber} changed during the attempt: look it up again`,
          );
        await appendAudit(trx, {
          actor: attempt.actor,
          action: "mail.delivery-failed",
          subject: trackingNumber,
          details: { reason: failure.reason, holdUntil },
        });
        return (await this.find(trx, trackingNumber))!;
      });
      return { handedOver: false, item: toItem(item), ...failure };
    }

    // Handed over: the letter is opened for the addressee once and leaves the post office.
    const letter = openLetter(this.options.envelopeKey, trackingNumber, toBuffer(row.sealed_letter!));
    const item = await this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable("mail_items")
        .set((eb) => ({
          status: "delivered" as const,
          sealed_letter: null,
          delivery_attempts: eb("delivery_attempts", "+", 1),
          delivered_at: isoTime(now),
          updated_at: isoTime(now),
        }))
        .where("tracking_number", "=", trackingNumber)
        .where("status", "=", "sent")
        .executeTakeFirst();
      if (updated.numUpdatedRows !== 1n)
        throw new JpkiError("conflict", `mail ${trackingNumber} was delivered or returned meanwhile`);
      await appendAudit(trx, {
        actor: attempt.actor,
        action: "mail.delivered",
        subject: trackingNumber,
        details: { identityChecked: true },
      });
      return (await this.find(trx, trackingNumber))!;
    });
    return { handedOver: true, item: toItem(item), letter };
  }

  /** The post office's daily sweep: items held past their holding period go back to their sender. */
  async returnOverdue(options: { actor: string; now?: Date }): Promise<MailItem[]> {
    const now = options.now ?? new Date();
    const overdue = await this.db
      .selectFrom("mail_items")
      .select("tracking_number")
      .where("status", "=", "sent")
      .where("hold_until", "<=", isoTime(now))
      .orderBy("hold_until")
      .execute();
    return this.returnItems(
      overdue.map((r) => r.tracking_number),
      options.actor,
      now,
    );
  }

  /** The sender's side: its items that came back (optionally only those for `senderReference`). */
  async returnedTo(sender: string, senderReference?: string): Promise<MailItem[]> {
    let query = this.db
      .selectFrom("mail_items")
      .selectAll()
      .where("sender", "=", sender)
      .where("status", "=", "returned");
    if (senderReference !== undefined) query = query.where("sender_reference", "=", senderReference);
    return (await query.orderBy("returned_at").execute()).map(toItem);
  }

  async get(trackingNumber: string): Promise<MailItem | undefined> {
    const row = await this.find(this.db, parseTrackingNumber(trackingNumber));
    return row ? toItem(row) : undefined;
  }

  /** Items in a status (default: still out, `sent`), oldest first. */
  async list(status: MailStatus = "sent"): Promise<MailItem[]> {
    const rows = await this.db
      .selectFrom("mail_items")
      .selectAll()
      .where("status", "=", status)
      .orderBy("sent_at")
      .orderBy("tracking_number")
      .execute();
    return rows.map(toItem);
  }

  /** Items of a sender's reference, oldest first. */
  async bySenderReference(sender: string, senderReference: string): Promise<MailItem[]> {
    const rows = await this.db
      .selectFrom("mail_items")
      .selectAll()
      .where("sender", "=", sender)
      .where("sender_reference", "=", senderReference)
      .orderBy("sent_at")
      .execute();
    return rows.map(toItem);
  }

  private async returnItems(
    trackingNumbers: readonly string[],
    actor: string,
    now: Date,
  ): Promise<MailItem[]> {
    const returned: MailItem[] = [];
    for (const trackingNumber of trackingNumbers) {
      const item = await this.db.transaction().execute(async (trx) => {
        // Unopened, it goes back; its letter is destroyed with the return.
        const updated = await trx
          .updateTable("mail_items")
          .set({
            status: "returned",
            sealed_letter: null,
            returned_at: isoTime(now),
            updated_at: isoTime(now),
          })
          .where("tracking_number", "=", trackingNumber)
          .where("status", "=", "sent")
          .executeTakeFirst();
        if (updated.numUpdatedRows !== 1n) return undefined; // delivered or returned meanwhile
        const row = (await this.find(trx, trackingNumber))!;
        await appendAudit(trx, {
          actor,
          action: "mail.returned",
          subject: trackingNumber,
          details: { sender: row.sender, senderReference: row.sender_reference, reason: row.last_failure },
        });
        return toItem(row);
      });
      if (item) returned.push(item);
    }
    return returned;
  }

  private find(db: Kysely<RegistrySchema>, trackingNumber: string): Promise<MailItemsTable | undefined> {
    return db
      .selectFrom("mail_items")
      .selectAll()
      .where("tracking_number", "=", trackingNumber)
      .executeTakeFirst();
  }
}
