/**
 * The registry role's front: people, cards, SIMs, settings and certificates, every change audited in
 * its own transaction. It never signs: issuance takes the CA's signers as an argument.
 */
import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { type AuditFinding, type AuditHead, appendAudit, auditHead, verifyAudit } from "./audit.js";
import {
  isoTime,
  type OpenOptions,
  openRegistryDatabase,
  type RegistryDatabase,
  type RegistryDialect,
} from "./db.js";
import {
  type CertificateFilters,
  type CertificatePage,
  type CertificateRecord,
  type CertificateSigners,
  getCertificate,
  type IssuanceOptions,
  type IssuanceRequest,
  type IssuanceResult,
  issueCertificates,
  listCertificates,
  type Paging,
  type RecoveryOptions,
  type RecoveryReport,
  recoverInterruptedIssuances,
} from "./issuance.js";
import type { CardsTable, PersonsTable, RegistrySchema, SimsTable } from "./schema.js";

/** A resident: the basic 4 information (基本4情報: name, sex, birth date, address) and residence. */
export interface PersonRecord {
  id: string;
  name: string;
  sex: string;
  /** YYYY-MM-DD. */
  birthDate: string;
  /** 住所: address of record. */
  address: string;
  /** 居所: where the person lives, when not at the address of record. */
  residence: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewPerson {
  name: string;
  sex: string;
  birthDate: string;
  address: string;
  residence?: string | null;
}

export interface CardRecord {
  id: string;
  personId: string;
  cardNumber: string;
  issuedAt: string;
  expiresAt: string;
  status: string;
  statePath: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewCard {
  personId: string;
  cardNumber: string;
  issuedAt: Date;
  expiresAt: Date;
  statePath?: string | null;
}

export interface SimRecord {
  id: string;
  iccid: string;
  eid: string | null;
  carrier: string | null;
  status: string;
  createdAt: string;
  updatedAt: string;
}

export interface NewSim {
  iccid: string;
  eid?: string | null;
  carrier?: string | null;
}

const toPerson = (r: PersonsTable): PersonRecord => ({
  id: r.id,
  name: r.name,
  sex: r.sex,
  birthDate: r.birth_date,
  address: r.address,
  residence: r.residence,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toCard = (r: CardsTable): CardRecord => ({
  id: r.id,
  personId: r.person_id,
  cardNumber: r.card_number,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  status: r.status,
  statePath: r.state_path,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toSim = (r: SimsTable): SimRecord => ({
  id: r.id,
  iccid: r.iccid,
  eid: r.eid,
  carrier: r.carrier,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/**
 * Registers a person inside the caller's transaction, audited there: a flow that must register a
 * person together with other rows (a card and its certificates) uses it in its own transaction.
 */
export async function insertPerson(
  trx: Kysely<RegistrySchema>,
  person: NewPerson & { id?: string },
  actor: string,
): Promise<PersonRecord> {
  const now = isoTime();
  const row: PersonsTable = {
    id: person.id ?? randomUUID(),
    name: requireText(person.name, "name"),
    sex: requireText(person.sex, "sex", 20),
    birth_date: requireDate(person.birthDate, "birth date"),
    address: requireText(person.address, "address"),
    residence:
      person.residence == null || person.residence === "" ? null : requireText(person.residence, "residence"),
    created_at: now,
    updated_at: now,
  };
  await trx.insertInto("persons").values(row).execute();
  await appendAudit(trx, { actor, action: "person.add", subject: row.id, details: { ...toPerson(row) } });
  return toPerson(row);
}

/** Registers a card inside the caller's transaction, audited there (see insertPerson). */
export async function insertCard(
  trx: Kysely<RegistrySchema>,
  card: NewCard & { id?: string },
  actor: string,
): Promise<CardRecord> {
  if (!(card.issuedAt.getTime() < card.expiresAt.getTime()))
    throw new JpkiError("bad-input", "a card must be issued before it expires");
  const now = isoTime();
  const row: CardsTable = {
    id: card.id ?? randomUUID(),
    person_id: card.personId,
    card_number: requireText(card.cardNumber, "card number", 64),
    issued_at: isoTime(card.issuedAt),
    expires_at: isoTime(card.expiresAt),
    status: "active",
    state_path: card.statePath ?? null,
    created_at: now,
    updated_at: now,
  };
  const person = await trx
    .selectFrom("persons")
    .select("id")
    .where("id", "=", card.personId)
    .executeTakeFirst();
  if (!person) throw new JpkiError("not-found", `no person ${card.personId}`);
  try {
    await trx.insertInto("cards").values(row).execute();
  } catch (error) {
    if (isUniqueViolation(error))
      throw new JpkiError("conflict", `card number ${card.cardNumber} is already registered`, {
        cause: error,
      });
    throw error;
  }
  await appendAudit(trx, { actor, action: "card.add", subject: row.id, details: { ...toCard(row) } });
  return toCard(row);
}

/** Registers a SIM inside the caller's transaction, audited there (see insertPerson). */
/** Changes a SIM's status inside the caller's transaction, audited. Returns the status it had. */
export async function changeSimStatus(
  trx: Kysely<RegistrySchema>,
  id: string,
  status: string,
  reason: string,
  actor: string,
): Promise<string> {
  const sim = await trx.selectFrom("sims").select("status").where("id", "=", id).executeTakeFirst();
  if (!sim) throw new JpkiError("not-found", `no SIM ${id}`);
  await trx.updateTable("sims").set({ status, updated_at: isoTime() }).where("id", "=", id).execute();
  await appendAudit(trx, {
    actor,
    action: "sim.status",
    subject: id,
    details: { from: sim.status, reason, to: status },
  });
  return sim.status;
}

export async function insertSim(
  trx: Kysely<RegistrySchema>,
  sim: NewSim & { id?: string },
  actor: string,
): Promise<SimRecord> {
  const now = isoTime();
  const row: SimsTable = {
    id: sim.id ?? randomUUID(),
    iccid: requireText(sim.iccid, "ICCID", 22),
    eid: sim.eid ?? null,
    carrier: sim.carrier ?? null,
    status: "active",
    created_at: now,
    updated_at: now,
  };
  try {
    await trx.insertInto("sims").values(row).execute();
  } catch (error) {
    if (isUniqueViolation(error))
      throw new JpkiError("conflict", `ICCID ${sim.iccid} is already registered`, { cause: error });
    throw error;
  }
  await appendAudit(trx, { actor, action: "sim.add", subject: row.id, details: { ...toSim(row) } });
  return toSim(row);
}

function requireText(value: unknown, what: string, max = 1000): string {
  if (typeof value !== "string" || value.trim() === "")
    throw new JpkiError("bad-input", `${what} is required`);
  if (value.length > max) throw new JpkiError("bad-input", `${what} is longer than ${max} characters`);
  return value;
}

function requireDate(value: string, what: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = match
    ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])))
    : undefined;
  if (!match || !date || date.toISOString().slice(0, 10) !== value)
    throw new JpkiError("bad-input", `${what} must be a date YYYY-MM-DD, got ${JSON.stringify(value)}`);
  return value;
}

/** A unique-constraint violation, on either dialect. */
function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return (
    e?.code === "23505" ||
    e?.code === "SQLITE_CONSTRAINT_UNIQUE" ||
    e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}

export interface RegistryOptions {
  /** Recorded as the actor of changes that do not name one (default `registry`). */
  actor?: string;
}

export class Registry {
  readonly #handle: RegistryDatabase | undefined;
  readonly #actor: string;

  /** Wraps an open database; `close()` then leaves it open. Use `Registry.open` to own it. */
  constructor(
    readonly db: Kysely<RegistrySchema>,
    options: RegistryOptions & { handle?: RegistryDatabase } = {},
  ) {
    this.#handle = options.handle;
    this.#actor = options.actor ?? "registry";
  }

  /** Opens (and migrates) the database at `url`: a SQLite file or `postgres://` URL. */
  static async open(url: string, options: OpenOptions & RegistryOptions = {}): Promise<Registry> {
    const handle = await openRegistryDatabase(url, options);
    return new Registry(handle.db, { ...options, handle });
  }

  get dialect(): RegistryDialect | undefined {
    return this.#handle?.dialect;
  }

  async close(): Promise<void> {
    await this.#handle?.close();
  }

  async addPerson(person: NewPerson, actor = this.#actor): Promise<PersonRecord> {
    return this.db.transaction().execute((trx) => insertPerson(trx, person, actor));
  }

  async getPerson(id: string): Promise<PersonRecord | undefined> {
    const row = await this.db.selectFrom("persons").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toPerson(row) : undefined;
  }

  async listPersons(paging: Paging = {}): Promise<{ items: PersonRecord[]; next?: string }> {
    const limit = Math.min(Math.max(Math.trunc(paging.limit ?? 100), 1), 1000);
    let query = this.db.selectFrom("persons").selectAll();
    if (paging.after !== undefined) query = query.where("id", ">", paging.after);
    const rows = await query
      .orderBy("id")
      .limit(limit + 1)
      .execute();
    const items = rows.slice(0, limit).map(toPerson);
    return rows.length > limit ? { items, next: items[items.length - 1]!.id } : { items };
  }

  async addCard(card: NewCard, actor = this.#actor): Promise<CardRecord> {
    return this.db.transaction().execute((trx) => insertCard(trx, card, actor));
  }

  async getCard(id: string): Promise<CardRecord | undefined> {
    const row = await this.db.selectFrom("cards").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toCard(row) : undefined;
  }

  async cardsOf(personId: string): Promise<CardRecord[]> {
    const rows = await this.db
      .selectFrom("cards")
      .selectAll()
      .where("person_id", "=", personId)
      .orderBy("issued_at")
      .execute();
    return rows.map(toCard);
  }

  async setCardStatePath(id: string, statePath: string, actor = this.#actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable("cards")
        .set({ state_path: statePath, updated_at: isoTime() })
        .where("id", "=", id)
        .executeTakeFirst();
      if (updated.numUpdatedRows !== 1n) throw new JpkiError("not-found", `no card ${id}`);
      await appendAudit(trx, { actor, action: "card.state-path", subject: id, details: { statePath } });
    });
  }

  /**
   * Changes a card's status, audited: `void` when its personalisation failed (the card never reached
   * the holder); the lifecycle adds lost, returned and the rest.
   */
  async setCardStatus(id: string, status: string, reason: string, actor = this.#actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const card = await trx.selectFrom("cards").select("status").where("id", "=", id).executeTakeFirst();
      if (!card) throw new JpkiError("not-found", `no card ${id}`);
      await trx.updateTable("cards").set({ status, updated_at: isoTime() }).where("id", "=", id).execute();
      await appendAudit(trx, {
        actor,
        action: "card.status",
        subject: id,
        details: { from: card.status, to: status, reason },
      });
    });
  }

  /** Changes a SIM's status, audited: `void` when making it failed (it never left the SIM maker). */
  async setSimStatus(id: string, status: string, reason: string, actor = this.#actor): Promise<void> {
    await this.db.transaction().execute((trx) => changeSimStatus(trx, id, status, reason, actor));
  }

  async addSim(sim: NewSim, actor = this.#actor): Promise<SimRecord> {
    return this.db.transaction().execute((trx) => insertSim(trx, sim, actor));
  }

  async getSim(id: string): Promise<SimRecord | undefined> {
    const row = await this.db.selectFrom("sims").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toSim(row) : undefined;
  }

  async getSimByIccid(iccid: string): Promise<SimRecord | undefined> {
    const row = await this.db.selectFrom("sims").selectAll().where("iccid", "=", iccid).executeTakeFirst();
    return row ? toSim(row) : undefined;
  }

  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom("settings")
      .select("value")
      .where("key", "=", key)
      .executeTakeFirst();
    return row?.value;
  }

  async setSetting(key: string, value: string, actor = this.#actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const before = await trx
        .selectFrom("settings")
        .select("value")
        .where("key", "=", key)
        .executeTakeFirst();
      await trx
        .insertInto("settings")
        .values({ key, value })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value }))
        .execute();
      await appendAudit(trx, {
        actor,
        action: "setting.set",
        subject: key,
        details: { from: before?.value ?? null, to: value },
      });
    });
  }

  issueCertificates(
    signers: CertificateSigners,
    requests: readonly IssuanceRequest[],
    options: IssuanceOptions = {},
  ): Promise<IssuanceResult[]> {
    return issueCertificates(this.db, signers, requests, { actor: this.#actor, ...options });
  }

  recoverInterruptedIssuances(
    signers: CertificateSigners,
    options: RecoveryOptions,
  ): Promise<RecoveryReport> {
    return recoverInterruptedIssuances(this.db, signers, options);
  }

  getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    return getCertificate(this.db, serial);
  }

  listCertificates(filters: CertificateFilters = {}, paging: Paging = {}): Promise<CertificatePage> {
    return listCertificates(this.db, filters, paging);
  }

  verifyAudit(): Promise<AuditFinding[]> {
    return verifyAudit(this.db);
  }

  auditHead(): Promise<AuditHead> {
    return auditHead(this.db);
  }
}
