/**
 * J-LIS's side of the carriers' events (src/mno/carrier-events.ts, DESIGN §4 flow 7): a SIM ported
 * out, swapped, deactivated or its eSIM profile deleted no longer holds its holder's credential, so
 * its smartphone certificates are revoked (cessationOfOperation) as soon as the event arrives.
 *
 * An event counts only if the carrier that signed it is enrolled with J-LIS and speaks for the SIM:
 * the carrier that issued it, or a light MVNO selling contracts on that carrier's SIMs. The event is
 * recorded under the carrier's own id in the same transaction as its effects, so a delivery repeated
 * after a lost answer, or two deliveries racing, apply it once.
 *
 * A carrier change the citizen makes with a new SIM is a new application on that SIM: it supersedes
 * the old certificate in the transaction that stores the new one, so the old carrier's port-out,
 * arriving later, finds nothing left to revoke.
 */
import { verify } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import {
  type CarrierEvent,
  type CarrierEventKind,
  carrierEventPublicKey,
  readSignedCarrierEvent,
  SIM_STATE_AFTER,
} from "../mno/carrier-events.js";
import { findCarrier } from "../mno/carriers.js";
import {
  CarrierEventOutbox,
  type EventAcknowledgement,
  EventRefused,
  type EventSender,
  type OutboxEntry,
} from "../mno/event-outbox.js";
import { CrlReason } from "../pki/crl.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import { appendAudit } from "../registry/audit.js";
import { isoTime, toBuffer } from "../registry/db.js";
import { revokeSimCertificates } from "../registry/lifecycle.js";
import { changeSimStatus } from "../registry/registry.js";
import type { RegistrySchema } from "../registry/schema.js";
import type { Authority } from "../server/authority.js";

export interface CarrierEventOutcome {
  /** The SIM's status after the event. */
  readonly simStatus: string;
  /** Smartphone certificates revoked because of it. */
  readonly revoked: readonly string[];
}

export interface ReceivedCarrierEvent {
  readonly event: CarrierEvent;
  /** False when J-LIS had applied this event before (a repeated delivery): nothing changed now. */
  readonly applied: boolean;
  readonly outcome: CarrierEventOutcome;
}

/**
 * Enrols `carrier`'s event-signing public key (SPKI DER) with J-LIS. Enrolling the same key again is
 * a no-op; another key for an enrolled carrier is refused (a key change is an operator's decision).
 */
export async function enrolCarrierKey(
  db: Kysely<RegistrySchema>,
  carrier: string,
  publicKey: Buffer,
  actor = "jlis:operator",
): Promise<void> {
  findCarrier(carrier);
  publicKeyFromSpki(publicKey);
  await db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom("carrier_keys")
      .select("public_key")
      .where("carrier", "=", carrier)
      .executeTakeFirst();
    if (row) {
      if (toBuffer(row.public_key).equals(publicKey)) return;
      throw new JpkiError("conflict", `carrier ${carrier} is enrolled with another event key`);
    }
    await trx
      .insertInto("carrier_keys")
      .values({ carrier, public_key: publicKey, enrolled_at: isoTime() })
      .execute();
    await appendAudit(trx, { actor, action: "carrier.enrol", subject: carrier, details: {} });
  });
}

const forbid = (message: string): never => {
  throw new JpkiError("forbidden", message);
};

/** Checks, records and applies one signed carrier event (the body J-LIS received). */
export async function receiveCarrierEvent(
  authority: Authority,
  body: unknown,
  now = new Date(),
): Promise<ReceivedCarrierEvent> {
  const db = authority.registry.db;
  const { event, bytes, signature } = readSignedCarrierEvent(body);
  const key = await db
    .selectFrom("carrier_keys")
    .select("public_key")
    .where("carrier", "=", event.carrier)
    .executeTakeFirst();
  if (!key) return forbid(`carrier ${event.carrier} is not enrolled with J-LIS`);
  let valid = false;
  try {
    valid = verify(
      "sha256",
      bytes,
      { key: publicKeyFromSpki(toBuffer(key.public_key)), dsaEncoding: "der" },
      signature,
    );
  } catch {
    valid = false;
  }
  if (!valid) forbid(`the event is not signed by carrier ${event.carrier}'s enrolled key`);

  const sim = await authority.registry.getSimByIccid(event.iccid);
  if (!sim) throw new JpkiError("not-found", `SIM ${event.iccid} is not in any carrier's inventory`);
  const sender = findCarrier(event.carrier);
  const speaksFor =
    sim.carrier === sender.name || (sender.kind === "light-mvno" && sender.host === sim.carrier);
  if (!speaksFor)
    forbid(`SIM ${event.iccid} was issued by ${sim.carrier}; ${sender.name} cannot report on it`);

  const actor = `carrier:${event.carrier}`;
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto("carrier_events")
      .values({
        carrier: event.carrier,
        id: event.id,
        kind: event.kind,
        iccid: event.iccid,
        occurred_at: event.occurredAt,
        received_at: isoTime(now),
        event: bytes,
        signature,
        outcome: "{}",
      })
      .onConflict((c) => c.columns(["carrier", "id"]).doNothing())
      .executeTakeFirst();
    if ((inserted.numInsertedOrUpdatedRows ?? 0n) === 0n) {
      const earlier = await trx
        .selectFrom("carrier_events")
        .select(["outcome", "event"])
        .where("carrier", "=", event.carrier)
        .where("id", "=", event.id)
        .executeTakeFirstOrThrow();
      if (!toBuffer(earlier.event).equals(bytes))
        throw new JpkiError(
          "conflict",
          `carrier ${event.carrier} sent event ${event.id} before with other content`,
        );
      return { event, applied: false, outcome: JSON.parse(earlier.outcome) as CarrierEventOutcome };
    }
    const simStatus = SIM_STATE_AFTER[event.kind];
    const fraud = event.kind === "sim-swap" && event.requestedBySubscriber === false;
    const why = `${event.kind}${fraud ? " the subscriber did not ask for" : ""} reported by ${event.carrier} (event ${event.id})`;
    await changeSimStatus(trx, sim.id, simStatus, why, actor);
    const revoked = await revokeSimCertificates(trx, sim.id, {
      actor,
      reason: CrlReason.cessationOfOperation,
      note: why,
      now,
    });
    const outcome: CarrierEventOutcome = { simStatus, revoked: revoked.map((r) => r.serial) };
    await trx
      .updateTable("carrier_events")
      .set({ outcome: JSON.stringify(outcome) })
      .where("carrier", "=", event.carrier)
      .where("id", "=", event.id)
      .execute();
    await appendAudit(trx, {
      actor,
      action: "carrier.event",
      subject: event.iccid,
      details: { fraud, id: event.id, kind: event.kind, revoked: outcome.revoked },
    });
    return { event, applied: true, outcome };
  });
}

/** A refusal that another delivery of the same event would meet again. */
const isFinalRefusal = (error: unknown): error is JpkiError =>
  error instanceof JpkiError && ["bad-input", "forbidden", "not-found", "conflict"].includes(error.code);

/** Delivery to J-LIS in the same process (the all-in-one server, tests). */
export function inProcessEventSender(authority: Authority): EventSender {
  return async (signed) => {
    try {
      const { applied, outcome } = await receiveCarrierEvent(authority, signed);
      return { applied, ...outcome };
    } catch (error) {
      if (isFinalRefusal(error)) throw new EventRefused(error.message, { cause: error });
      throw error;
    }
  };
}

/**
 * The all-in-one sandbox's report (`carrier event`, the demo): carrier `carrier` records an event
 * about SIM `iccid` in its outbox and delivers it to J-LIS in this process at once, its event key
 * enrolled on first use (both parties share the data directory). Returns the event, its outbox entry
 * and, once delivered, J-LIS's acknowledgement.
 */
export async function reportCarrierEvent(
  authority: Authority,
  carrier: string,
  kind: CarrierEventKind,
  iccid: string,
  options: { requestedBySubscriber?: boolean } = {},
): Promise<{ event: CarrierEvent; entry: OutboxEntry; acknowledgement?: EventAcknowledgement }> {
  const actor = `carrier:${carrier}`;
  await enrolCarrierKey(
    authority.registry.db,
    carrier,
    carrierEventPublicKey(authority.dataDir, carrier),
    actor,
  );
  const outbox = CarrierEventOutbox.open(authority.dataDir, carrier);
  const event = outbox.record(kind, iccid, options);
  const send = inProcessEventSender(authority);
  // Events go in order, this one last: the last acknowledgement is this event's once it is delivered.
  let last: EventAcknowledgement | undefined;
  await outbox.deliver(async (signed) => {
    last = await send(signed);
    return last;
  });
  const entry = outbox.entries().find((e) => e.event.id === event.id)!;
  return { event, entry, ...(entry.state === "delivered" && last ? { acknowledgement: last } : {}) };
}
