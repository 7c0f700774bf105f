/**
 * Each carrier's own database, `DATA/carriers/<name>/carrier.sqlite` (the carrier's, never J-LIS's
 * registry): the SIM inventory and its subscriptions for the SIMs the carrier issued, and the outbox
 * of events for J-LIS (event-outbox.ts). One connection per file and process, kept open.
 *
 * A subscription: the SIM (ICCID, whose issuer identification number names this carrier; EID), the
 * subscriber identity on the network (IMSI: MCC 440, the carrier's MNC, a 10-digit MSIN), the phone
 * number (MSISDN), the brand the contract is with (this carrier, or a light MVNO selling on its
 * SIMs), and the state. J-LIS asks a SIM's state here through the SIM status API (`simStatus`), found
 * by the ICCID's issuer number, never by the brand.
 */
import { randomInt } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { JpkiError } from "../errors.js";
import { CARRIERS, type Carrier, findCarrier } from "./carriers.js";

export const SUBSCRIPTION_STATES = [
  "active",
  "suspended",
  "ported-out",
  "swapped",
  "deactivated",
  "profile-deleted",
] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export interface Subscription {
  readonly iccid: string;
  readonly eid: string;
  readonly imsi: string;
  readonly msisdn: string;
  readonly brand: string;
  readonly state: SubscriptionState;
  readonly updatedAt: string;
}

/** The SIM status API's answer: who issued the SIM, the contract's brand, and whether it is active. */
export interface SimStatusAnswer {
  readonly iccid: string;
  readonly issuer: string;
  readonly brand: string;
  readonly state: SubscriptionState;
  readonly active: boolean;
}

const open = new Map<string, Database.Database>();

/** The carrier's database in the data directory, created with its tables on first use. */
export function carrierDatabase(dataDir: string, carrier: string): Database.Database {
  findCarrier(carrier);
  const file = path.resolve(dataDir, "carriers", carrier, "carrier.sqlite");
  let database = open.get(file);
  if (database?.open) return database;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  database = new Database(file);
  database.pragma("journal_mode = WAL");
  database.pragma("synchronous = FULL");
  database.pragma("busy_timeout = 10000");
  database.exec(`
    create table if not exists subscriptions (
      iccid text primary key,
      eid text not null,
      imsi text not null unique,
      msisdn text not null unique,
      brand text not null,
      state text not null,
      updated_at text not null);
    create table if not exists outbox (
      seq integer primary key autoincrement,
      id text not null unique,
      signed text not null,
      state text not null,
      attempts integer not null default 0,
      next_attempt_at integer not null,
      last_error text,
      created_at text not null);`);
  open.set(file, database);
  return database;
}

const digits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join("");

interface Row {
  iccid: string;
  eid: string;
  imsi: string;
  msisdn: string;
  brand: string;
  state: SubscriptionState;
  updated_at: string;
}

const toSubscription = (row: Row): Subscription => ({
  iccid: row.iccid,
  eid: row.eid,
  imsi: row.imsi,
  msisdn: row.msisdn,
  brand: row.brand,
  state: row.state,
  updatedAt: row.updated_at,
});

/**
 * A new SIM of `issuer` enters its inventory with a subscription for `brand`: an IMSI (MCC 440, the
 * issuer's number as MNC) and a phone number (080 and 8 digits), both unused.
 */
export function addSubscription(
  dataDir: string,
  issuer: Carrier,
  sim: { iccid: string; eid: string; brand: string },
): Subscription {
  if (!issuer.issuerNumber) throw new JpkiError("internal", `${issuer.name} issues no SIMs`);
  const database = carrierDatabase(dataDir, issuer.name);
  const insert = database.prepare(
    "insert or ignore into subscriptions (iccid, eid, imsi, msisdn, brand, state, updated_at) values (?, ?, ?, ?, ?, 'active', ?)",
  );
  for (let attempt = 0; attempt < 10; attempt++) {
    const result = insert.run(
      sim.iccid,
      sim.eid,
      `440${issuer.issuerNumber}${digits(10)}`,
      `080${digits(8)}`,
      sim.brand,
      new Date().toISOString(),
    );
    if (result.changes === 1) return subscriptionOf(dataDir, issuer.name, sim.iccid)!;
    if (subscriptionOf(dataDir, issuer.name, sim.iccid))
      throw new JpkiError("conflict", `SIM ${sim.iccid} is in ${issuer.name}'s inventory already`);
  }
  throw new JpkiError("internal", "could not draw an unused IMSI and phone number");
}

/** The lookup J-LIS makes for every application, prepared once per connection. */
const lookups = new WeakMap<Database.Database, Database.Statement>();

export function subscriptionOf(dataDir: string, carrier: string, iccid: string): Subscription | undefined {
  const database = carrierDatabase(dataDir, carrier);
  let lookup = lookups.get(database);
  if (!lookup) {
    lookup = database.prepare("select * from subscriptions where iccid = ?");
    lookups.set(database, lookup);
  }
  const row = lookup.get(iccid) as Row | undefined;
  return row ? toSubscription(row) : undefined;
}

/** Changes a subscription's state in `database` (the caller's transaction); false when the SIM is not there. */
export function setSubscriptionState(
  database: Database.Database,
  iccid: string,
  state: SubscriptionState,
): boolean {
  return (
    database
      .prepare("update subscriptions set state = ?, updated_at = ? where iccid = ?")
      .run(state, new Date().toISOString(), iccid).changes === 1
  );
}

/** The carrier that issued SIM `iccid`, by its ICCID's issuer identification number (89 81 NN ...). */
export function issuerOfIccid(iccid: string): Carrier | undefined {
  const number = iccid.slice(4, 6);
  return CARRIERS.find((c) => c.issuerNumber === number && c.kind !== "light-mvno");
}

/** The SIM status API: asks the SIM's issuer; undefined when no carrier has the SIM. */
export function simStatus(dataDir: string, iccid: string): SimStatusAnswer | undefined {
  const issuer = issuerOfIccid(iccid);
  if (!issuer) return undefined;
  const subscription = subscriptionOf(dataDir, issuer.name, iccid);
  if (!subscription) return undefined;
  return {
    iccid,
    issuer: issuer.name,
    brand: subscription.brand,
    state: subscription.state,
    active: subscription.state === "active",
  };
}
