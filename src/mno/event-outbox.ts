/**
 * The carrier's outbox of events for J-LIS (carrier-events.ts): an event is signed and stored in the
 * carrier's own database (carrier-store.ts, not J-LIS's registry) in the same transaction as the
 * carrier changes the SIM's subscription, then delivered until J-LIS acknowledges it. A delivery
 * that fails (J-LIS down, the network, a reply lost after J-LIS applied it) is retried with backoff:
 * J-LIS keys events by the carrier's id, so a repeated delivery is acknowledged and applied once. An
 * event J-LIS refuses for good (malformed, a SIM that is not this carrier's) stops there, with the
 * reason, for the carrier's operators: retrying would never change the answer.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import type Database from "better-sqlite3";
import { JpkiError } from "../errors.js";
import {
  type CarrierEvent,
  type CarrierEventKind,
  carrierEventKey,
  SIM_STATE_AFTER,
  type SignedCarrierEvent,
  signCarrierEvent,
} from "./carrier-events.js";
import { carrierDatabase, setSubscriptionState } from "./carrier-store.js";
import { CARRIERS } from "./carriers.js";

/** J-LIS's answer to a delivery. */
export interface EventAcknowledgement {
  /** False when J-LIS had the event already (an earlier delivery whose answer was lost). */
  readonly applied: boolean;
  /** What J-LIS did with it (then, for an event it had already): the SIM's status and the certificates revoked. */
  readonly simStatus?: string;
  readonly revoked?: readonly string[];
}

/**
 * Hands one event to J-LIS. Throws `EventRefused` when J-LIS refuses it for good; any other error is
 * taken as a failed delivery, tried again later.
 */
export type EventSender = (signed: SignedCarrierEvent) => Promise<EventAcknowledgement>;

export class EventRefused extends Error {
  override readonly name = "EventRefused";
}

export type OutboxState = "pending" | "delivered" | "refused";

export interface OutboxEntry {
  readonly event: CarrierEvent;
  readonly state: OutboxState;
  readonly attempts: number;
  readonly lastError: string | null;
}

export interface DeliveryPass {
  delivered: number;
  /** Deliveries J-LIS acknowledged as already applied. */
  duplicates: number;
  failed: number;
  refused: number;
}

/** First retry after 1 s, doubling up to 5 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempts - 1), 300_000);
}

interface Row {
  id: string;
  signed: string;
  state: OutboxState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
}

export class CarrierEventOutbox {
  private constructor(
    readonly carrier: string,
    private readonly dataDir: string,
    private readonly database: Database.Database,
  ) {}

  /** The outbox of `carrier` in its database (carrier-store.ts), created on first use. */
  static open(dataDir: string, carrier: string): CarrierEventOutbox {
    return new CarrierEventOutbox(carrier, dataDir, carrierDatabase(dataDir, carrier));
  }

  /** Signs and stores an event about SIM `iccid`; it leaves at the next delivery pass. */
  record(
    kind: CarrierEventKind,
    iccid: string,
    options: { requestedBySubscriber?: boolean; now?: Date } = {},
  ): CarrierEvent {
    if (kind === "sim-swap" && options.requestedBySubscriber === undefined)
      throw new JpkiError("bad-input", "a SIM swap says whether the subscriber asked for it");
    const now = options.now ?? new Date();
    const event: CarrierEvent = {
      id: randomUUID(),
      carrier: this.carrier,
      kind,
      iccid,
      ...(kind === "sim-swap" ? { requestedBySubscriber: options.requestedBySubscriber! } : {}),
      occurredAt: now.toISOString(),
    };
    const signed = signCarrierEvent(event, carrierEventKey(this.dataDir, this.carrier));
    // The subscription's new state and the event for J-LIS: both or neither (a SIM this carrier did
    // not issue, as a light MVNO's, is in its host's inventory, which follows its own network).
    this.database.transaction(() => {
      setSubscriptionState(this.database, iccid, SIM_STATE_AFTER[kind]);
      this.database
        .prepare(
          "insert into outbox (id, signed, state, next_attempt_at, created_at) values (?, ?, 'pending', ?, ?)",
        )
        .run(event.id, JSON.stringify(signed), now.getTime(), now.toISOString());
    })();
    return event;
  }

  /**
   * Delivers the events due at `now`, oldest first, one at a time (J-LIS applies them in the order
   * the carrier decided them). Stops at the first failed delivery: later events wait behind it.
   */
  async deliver(send: EventSender, now = Date.now()): Promise<DeliveryPass> {
    const pass: DeliveryPass = { delivered: 0, duplicates: 0, failed: 0, refused: 0 };
    const due = this.database
      .prepare("select * from outbox where state = 'pending' order by seq")
      .all() as Row[];
    for (const row of due) {
      if (row.next_attempt_at > now) break;
      try {
        const answer = await send(JSON.parse(row.signed) as SignedCarrierEvent);
        this.settle(row.id, "delivered", null);
        pass.delivered++;
        if (!answer.applied) pass.duplicates++;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (error instanceof EventRefused) {
          this.settle(row.id, "refused", message);
          pass.refused++;
          continue;
        }
        this.database
          .prepare(
            "update outbox set attempts = attempts + 1, next_attempt_at = ?, last_error = ? where id = ?",
          )
          .run(now + retryDelayMs(row.attempts + 1), message, row.id);
        pass.failed++;
        break;
      }
    }
    return pass;
  }

  /** Every event in the outbox, oldest first. */
  entries(): OutboxEntry[] {
    const rows = this.database.prepare("select * from outbox order by seq").all() as Row[];
    return rows.map((row) => ({
      event: JSON.parse(
        Buffer.from((JSON.parse(row.signed) as SignedCarrierEvent).event, "base64").toString("utf8"),
      ) as CarrierEvent,
      state: row.state,
      attempts: row.attempts,
      lastError: row.last_error,
    }));
  }

  private settle(id: string, state: OutboxState, error: string | null): void {
    this.database
      .prepare("update outbox set state = ?, attempts = attempts + 1, last_error = ? where id = ?")
      .run(state, error, id);
  }
}

/** Delivery over HTTP to J-LIS's `POST /api/ra/carrier-events` at `baseUrl`. A 4xx is a final refusal. */
export function httpEventSender(baseUrl: string, timeoutMs = 10_000): EventSender {
  return async (signed) => {
    const response = await fetch(new URL("/api/ra/carrier-events", baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(signed),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json().catch(() => ({}))) as {
      applied?: boolean;
      simStatus?: string;
      revoked?: string[];
      reason?: string;
    };
    if (response.status >= 400 && response.status < 500)
      throw new EventRefused(`J-LIS refused the event (${response.status}): ${body.reason ?? ""}`);
    if (!response.ok) throw new Error(`J-LIS answered ${response.status}: ${body.reason ?? ""}`);
    return { applied: body.applied === true, simStatus: body.simStatus, revoked: body.revoked };
  };
}

/** One delivery pass over the outbox of every carrier that has one in the data directory. */
export async function deliverCarrierOutboxes(dataDir: string, send: EventSender): Promise<DeliveryPass> {
  const total: DeliveryPass = { delivered: 0, duplicates: 0, failed: 0, refused: 0 };
  for (const { name } of CARRIERS) {
    if (!existsSync(path.join(dataDir, "carriers", name, "carrier.sqlite"))) continue;
    const pass = await CarrierEventOutbox.open(dataDir, name).deliver(send);
    for (const key of Object.keys(total) as (keyof DeliveryPass)[]) total[key] += pass[key];
  }
  return total;
}
