/**
 * The registry role's front: people, cards, SIMs, settings and certificates, every change audited in
 * its own transaction. It never signs: issuance takes the CA's signers as an argument.
 */
import { randomUUID } from "node:crypto";
import { JpkiError } from "../errors.js";
import { appendAudit, auditHead, verifyAudit } from "./audit.js";
import { isoTime, openRegistryDatabase, } from "./db.js";
import { getCertificate, issueCertificates, listCertificates, recoverInterruptedIssuances, } from "./issuance.js";
const toPerson = (r) => ({
    id: r.id,
    name: r.name,
    sex: r.sex,
    birthDate: r.birth_date,
    address: r.address,
    residence: r.residence,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
});
const toCard = (r) => ({
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
const toSim = (r) => ({
    id: r.id,
    iccid: r.iccid,
    eid: r.eid,
    carrier: r.carrier,
    status: r.status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
});
function requireText(value, what, max = 1000) {
    if (typeof value !== "string" || value.trim() === "")
        throw new JpkiError("bad-input", `${what} is required`);
    if (value.length > max)
        throw new JpkiError("bad-input", `${what} is longer than ${max} characters`);
    return value;
}
function requireDate(value, what) {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
    const date = match
        ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])))
        : undefined;
    if (!match || !date || date.toISOString().slice(0, 10) !== value)
        throw new JpkiError("bad-input", `${what} must be a date YYYY-MM-DD, got ${JSON.stringify(value)}`);
    return value;
}
/** A unique-constraint violation, on either dialect. */
function isUniqueViolation(error) {
    const e = error;
    return (e?.code === "23505" ||
        e?.code === "SQLITE_CONSTRAINT_UNIQUE" ||
        e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY");
}
export class Registry {
    db;
    #handle;
    #actor;
    /** Wraps an open database; `close()` then leaves it open. Use `Registry.open` to own it. */
    constructor(db, options = {}) {
        this.db = db;
        this.#handle = options.handle;
        this.#actor = options.actor ?? "registry";
    }
    /** Opens (and migrates) the database at `url`: a SQLite file or `postgres://` URL. */
    static async open(url, options = {}) {
        const handle = await openRegistryDatabase(url, options);
        return new Registry(handle.db, { ...options, handle });
    }
    get dialect() {
        return this.#handle?.dialect;
    }
    async close() {
        await this.#handle?.close();
    }
    async addPerson(person, actor = this.#actor) {
        const now = isoTime();
        const row = {
            id: randomUUID(),
            name: requireText(person.name, "name"),
            sex: requireText(person.sex, "sex", 20),
            birth_date: requireDate(person.birthDate, "birth date"),
            address: requireText(person.address, "address"),
            residence: person.residence == null || person.residence === ""
                ? null
                : requireText(person.residence, "residence"),
            created_at: now,
            updated_at: now,
        };
        await this.db.transaction().execute(async (trx) => {
            await trx.insertInto("persons").values(row).execute();
            await appendAudit(trx, { actor, action: "person.add", subject: row.id, details: { ...toPerson(row) } });
        });
        return toPerson(row);
    }
    async getPerson(id) {
        const row = await this.db.selectFrom("persons").selectAll().where("id", "=", id).executeTakeFirst();
        return row ? toPerson(row) : undefined;
    }
    async listPersons(paging = {}) {
        const limit = Math.min(Math.max(Math.trunc(paging.limit ?? 100), 1), 1000);
        let query = this.db.selectFrom("persons").selectAll();
        if (paging.after !== undefined)
            query = query.where("id", ">", paging.after);
        const rows = await query
            .orderBy("id")
            .limit(limit + 1)
            .execute();
        const items = rows.slice(0, limit).map(toPerson);
        return rows.length > limit ? { items, next: items[items.length - 1].id } : { items };
    }
    async addCard(card, actor = this.#actor) {
        if (!(card.issuedAt.getTime() < card.expiresAt.getTime()))
            throw new JpkiError("bad-input", "a card must be issued before it expires");
        const now = isoTime();
        const row = {
            id: randomUUID(),
            person_id: card.personId,
            card_number: requireText(card.cardNumber, "card number", 64),
            issued_at: isoTime(card.issuedAt),
            expires_at: isoTime(card.expiresAt),
            status: "active",
            state_path: card.statePath ?? null,
            created_at: now,
            updated_at: now,
        };
        try {
            await this.db.transaction().execute(async (trx) => {
                const person = await trx
                    .selectFrom("persons")
                    .select("id")
                    .where("id", "=", card.personId)
                    .executeTakeFirst();
                if (!person)
                    throw new JpkiError("not-found", `no person ${card.personId}`);
                await trx.insertInto("cards").values(row).execute();
                await appendAudit(trx, { actor, action: "card.add", subject: row.id, details: { ...toCard(row) } });
            });
        }
        catch (error) {
            if (isUniqueViolation(error))
                throw new JpkiError("conflict", `card number ${card.cardNumber} is already registered`, {
                    cause: error,
                });
            throw error;
        }
        return toCard(row);
    }
    async getCard(id) {
        const row = await this.db.selectFrom("cards").selectAll().where("id", "=", id).executeTakeFirst();
        return row ? toCard(row) : undefined;
    }
    async cardsOf(personId) {
        const rows = await this.db
            .selectFrom("cards")
            .selectAll()
            .where("person_id", "=", personId)
            .orderBy("issued_at")
            .execute();
        return rows.map(toCard);
    }
    async setCardStatePath(id, statePath, actor = this.#actor) {
        await this.db.transaction().execute(async (trx) => {
            const updated = await trx
                .updateTable("cards")
                .set({ state_path: statePath, updated_at: isoTime() })
                .where("id", "=", id)
                .executeTakeFirst();
            if (updated.numUpdatedRows !== 1n)
                throw new JpkiError("not-found", `no card ${id}`);
            await appendAudit(trx, { actor, action: "card.state-path", subject: id, details: { statePath } });
        });
    }
    async addSim(sim, actor = this.#actor) {
        const now = isoTime();
        const row = {
            id: randomUUID(),
            iccid: requireText(sim.iccid, "ICCID", 22),
            eid: sim.eid ?? null,
            carrier: sim.carrier ?? null,
            status: "active",
            created_at: now,
            updated_at: now,
        };
        try {
            await this.db.transaction().execute(async (trx) => {
                await trx.insertInto("sims").values(row).execute();
                await appendAudit(trx, { actor, action: "sim.add", subject: row.id, details: { ...toSim(row) } });
            });
        }
        catch (error) {
            if (isUniqueViolation(error))
                throw new JpkiError("conflict", `ICCID ${sim.iccid} is already registered`, { cause: error });
            throw error;
        }
        return toSim(row);
    }
    async getSim(id) {
        const row = await this.db.selectFrom("sims").selectAll().where("id", "=", id).executeTakeFirst();
        return row ? toSim(row) : undefined;
    }
    async getSimByIccid(iccid) {
        const row = await this.db.selectFrom("sims").selectAll().where("iccid", "=", iccid).executeTakeFirst();
        return row ? toSim(row) : undefined;
    }
    async getSetting(key) {
        const row = await this.db
            .selectFrom("settings")
            .select("value")
            .where("key", "=", key)
            .executeTakeFirst();
        return row?.value;
    }
    async setSetting(key, value, actor = this.#actor) {
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
    issueCertificates(signers, requests, options = {}) {
        return issueCertificates(this.db, signers, requests, { actor: this.#actor, ...options });
    }
    recoverInterruptedIssuances(signers, options = {}) {
        return recoverInterruptedIssuances(this.db, signers, options);
    }
    getCertificate(serial) {
        return getCertificate(this.db, serial);
    }
    listCertificates(filters = {}, paging = {}) {
        return listCertificates(this.db, filters, paging);
    }
    verifyAudit() {
        return verifyAudit(this.db);
    }
    auditHead() {
        return auditHead(this.db);
    }
}
//# sourceMappingURL=registry.js.map