/**
 * Keys J-LIS makes for a SIM (`keyGeneration = injected`, the seed's literal design): the RSA key is
 * made at the examination, sealed in the registry in the transaction that stores its certificate
 * (AES-256-GCM under `DATA/jlis/injected-keys.key`, bound to the application), written to the SIM
 * inside J-LIS's SCP11a channel at delivery (encrypted again under the session's S-DEK, so the
 * relay carries nothing it can open), and destroyed in the transaction that records the delivery,
 * or when the certificate is revoked as undeliverable.
 */

import type { KeyObject } from "node:crypto";
import path from "node:path";
import type { Kysely } from "kysely";
import { JpkiError } from "../errors.js";
import { isoTime, toBuffer } from "../registry/db.js";
import type { RegistrySchema } from "../registry/schema.js";
import { seal, sealingKey, unseal } from "../util/sealed.js";

export function injectedKeysKeyPath(dataDir: string): string {
  return path.join(dataDir, "jlis", "injected-keys.key");
}

/** Seals `key` for application `applicationId`, inside the caller's transaction. */
export async function storeInjectedKey(
  trx: Kysely<RegistrySchema>,
  dataDir: string,
  applicationId: string,
  key: KeyObject,
): Promise<void> {
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  await trx
    .insertInto("injected_keys")
    .values({
      application_id: applicationId,
      sealed_key: seal(sealingKey(injectedKeysKeyPath(dataDir)), applicationId, pkcs8),
      created_at: isoTime(),
    })
    .execute();
}

/** The PKCS#8 DER of application `applicationId`'s injected key; undefined when it has none. */
export async function injectedKeyOf(
  db: Kysely<RegistrySchema>,
  dataDir: string,
  applicationId: string,
): Promise<Buffer | undefined> {
  const row = await db
    .selectFrom("injected_keys")
    .select("sealed_key")
    .where("application_id", "=", applicationId)
    .executeTakeFirst();
  if (!row) return undefined;
  const pkcs8 = unseal(sealingKey(injectedKeysKeyPath(dataDir)), applicationId, toBuffer(row.sealed_key));
  if (!pkcs8)
    throw new JpkiError(
      "integrity",
      `the injected key of application ${applicationId} does not open with jlis/injected-keys.key: was it replaced?`,
    );
  return pkcs8;
}

/** Destroys application `applicationId`'s injected key, inside the caller's transaction. */
export async function destroyInjectedKey(trx: Kysely<RegistrySchema>, applicationId: string): Promise<void> {
  await trx.deleteFrom("injected_keys").where("application_id", "=", applicationId).execute();
}
