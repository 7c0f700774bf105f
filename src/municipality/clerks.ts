/**
 * Counter clerks (窓口職員): accounts bound to one municipality, by its local government code and
 * name, each with a bearer token the clerk's console presents to J-LIS. The token is random (256
 * bits), shown once when the account is made, and kept only as its SHA-256; an account is active or
 * disabled. Every change is audited in the transaction that makes it, without the token or its hash.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { appendAudit, sha256Hex } from "../registry/audit.js";
import { isoTime } from "../registry/db.js";
import type { ClerksTable, RegistrySchema } from "../registry/schema.js";
import { parseMunicipalityCode, parseMunicipalityName } from "./codes.js";

export type ClerkStatus = ClerksTable["status"];

/** An authenticated clerk, as J-LIS records it next to what the clerk did. */
export interface Clerk {
  readonly id: string;
  readonly label: string | null;
  readonly municipalityCode: string;
  readonly municipalityName: string;
}

export interface ClerkRecord extends Clerk {
  readonly status: ClerkStatus;
  readonly createdAt: string;
}

const TOKEN_BYTES = 32;
/** What a token looks like; anything else is refused before it is hashed or looked up. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,256}$/;
const MAX_LABEL = 100;

/** The actor the audit log and the applications record for a clerk. */
export const clerkActor = (clerk: Pick<Clerk, "id" | "municipalityCode">) =>
  `clerk:${clerk.id}@${clerk.municipalityCode}`;

export interface NewClerk {
  /** The municipality's code (全国地方公共団体コード), as typed. */
  readonly municipalityCode: string;
  /** The municipality's full name (東京都千代田区): registered with its first clerk, checked for the next. */
  readonly municipalityName: string;
  /** Who the account is for (optional). */
  readonly label?: string;
  readonly actor: string;
  readonly now?: Date;
}

/**
 * Makes a clerk account and returns its token, which is not stored and cannot be shown again. The
 * municipality is registered with its first clerk; a later clerk of the same code must give the same
 * name, so that one code never stands for two places.
 */
export async function addClerk(
  db: Kysely<RegistrySchema>,
  input: NewClerk,
): Promise<{ clerk: ClerkRecord; token: string }> {
  const code = parseMunicipalityCode(input.municipalityCode);
  const name = parseMunicipalityName(input.municipalityName);
  const label = input.label?.trim() || null;
  if (label !== null && [...label].length > MAX_LABEL)
    throw new JpkiError("bad-input", `a clerk's label has at most ${MAX_LABEL} characters`);
  const at = isoTime(input.now);
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  const row: ClerksTable = {
    id: randomUUID(),
    municipality_code: code,
    label,
    token_hash: sha256Hex(Buffer.from(token, "utf8")),
    status: "active",
    created_at: at,
    updated_at: at,
  };
  await db.transaction().execute(async (trx) => {
    const known = await trx
      .selectFrom("municipalities")
      .select("name")
      .where("code", "=", code)
      .executeTakeFirst();
    if (known && known.name !== name)
      throw new JpkiError(
        "conflict",
        `municipality ${code} is registered as ${known.name}, not ${name}: check the code or the name`,
      );
    if (!known) {
      await trx.insertInto("municipalities").values({ code, name, created_at: at }).execute();
      await appendAudit(trx, {
        actor: input.actor,
        action: "municipality.add",
        subject: code,
        details: { name },
      });
    }
    await trx.insertInto("clerks").values(row).execute();
    await appendAudit(trx, {
      actor: input.actor,
      action: "clerk.add",
      subject: row.id,
      details: { label, municipalityCode: code },
    });
  });
  return {
    clerk: {
      id: row.id,
      label,
      municipalityCode: code,
      municipalityName: name,
      status: "active",
      createdAt: at,
    },
    token,
  };
}

/**
 * The active clerk whose token this is. A malformed or unknown token and a disabled account are
 * refused (`forbidden`), the disabled one saying so, since the clerk can do something about it.
 */
export async function authenticateClerk(db: Kysely<RegistrySchema>, token: string): Promise<Clerk> {
  if (!TOKEN_SHAPE.test(token))
    throw new JpkiError("forbidden", "the clerk token is not valid: use the token `clerk add` printed");
  const row = await db
    .selectFrom("clerks")
    .innerJoin("municipalities", "municipalities.code", "clerks.municipality_code")
    .select(["clerks.id", "clerks.label", "clerks.status", "municipalities.code", "municipalities.name"])
    .where("clerks.token_hash", "=", sha256Hex(Buffer.from(token, "utf8")))
    .executeTakeFirst();
  if (!row)
    throw new JpkiError("forbidden", "the clerk token is not valid: use the token `clerk add` printed");
  if (row.status !== "active")
    throw new JpkiError(
      "forbidden",
      `clerk account ${row.id} (${row.name}) is disabled: ask the municipality's administrator to enable it`,
    );
  return { id: row.id, label: row.label, municipalityCode: row.code, municipalityName: row.name };
}

/** Every clerk account, oldest first. */
export async function listClerks(db: Kysely<RegistrySchema>): Promise<ClerkRecord[]> {
  const rows = await db
    .selectFrom("clerks")
    .innerJoin("municipalities", "municipalities.code", "clerks.municipality_code")
    .select([
      "clerks.id",
      "clerks.label",
      "clerks.status",
      "clerks.created_at",
      "municipalities.code",
      "municipalities.name",
    ])
    .orderBy("clerks.created_at")
    .orderBy("clerks.id")
    .execute();
  return rows.map((r) => ({
    id: r.id,
    label: r.label,
    status: r.status,
    createdAt: r.created_at,
    municipalityCode: r.code,
    municipalityName: r.name,
  }));
}

export interface ClerkStatusChange {
  readonly clerkId: string;
  readonly from: ClerkStatus;
  readonly to: ClerkStatus;
}

/** Disables (`disabled`) or enables (`active`) a clerk account, audited with the reason. */
export async function setClerkStatus(
  db: Kysely<RegistrySchema>,
  clerkId: string,
  to: ClerkStatus,
  options: { actor: string; reason?: string | undefined; now?: Date },
): Promise<ClerkStatusChange> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom("clerks")
      .select(["id", "status"])
      .where("id", "=", clerkId)
      .executeTakeFirst();
    if (!row) throw new JpkiError("not-found", `no clerk account ${clerkId}: see \`clerk list\``);
    if (row.status === to) throw new JpkiError("conflict", `clerk account ${clerkId} is ${to} already`);
    await trx
      .updateTable("clerks")
      .set({ status: to, updated_at: isoTime(options.now) })
      .where("id", "=", clerkId)
      .execute();
    await appendAudit(trx, {
      actor: options.actor,
      action: to === "disabled" ? "clerk.disable" : "clerk.enable",
      subject: clerkId,
      details: { from: row.status, reason: options.reason ?? null, to },
    });
    return { clerkId, from: row.status, to };
  });
}
