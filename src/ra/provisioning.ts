/**
 * J-LIS's work on a SIM (DESIGN §4 flow 3), over whatever relays the APDUs: the carrier's OTA relay
 * (src/mno/ota-relay.ts), the municipal counter's terminal, or a direct transport in tests. Every
 * command runs inside J-LIS's SCP11a channel with its security domain on the SIM, opened against the
 * domain certificate the registry holds for that SIM (issued by the SIM maker's CA), so neither the
 * relay nor the carrier's card-manager keys can read or forge it.
 *
 * - `generateKeyOnSim`: the applet makes the user-authentication key pair (`keyGeneration =
 *   on-card`, the default) and returns the public key with the SIM's attestation over the caller's
 *   nonce, which the phone puts in the application the card signs.
 * - `deliverCertificate`: writes an issued application's certificate and the CA certificate to the
 *   applet (EF 000A, 000B); the application goes `delivering` → `delivered`. `deliverWithRetry`
 *   tries again with backoff; `revokeUndelivered` ends what could not be delivered in time.
 */
import type { CardTransport } from "../card/card.js";
import { type GeneratedKey, JlisDomainSession } from "../card/uicc/host.js";
import { JpkiError } from "../errors.js";
import { carrierParty, ratesOf, recordBillable } from "../ledger/ledger.js";
import { issuerOfIccid } from "../mno/carrier-store.js";
import { CrlReason } from "../pki/crl.js";
import { isoTime, toBuffer } from "../registry/db.js";
import { LIVE_STATUSES, transitions } from "../registry/lifecycle.js";
import type { Authority } from "../server/authority.js";
import { advanceApplication, getApplication } from "./applications.js";
import { destroyInjectedKey, injectedKeyOf } from "./injected-keys.js";
import { jlisCredentials } from "./jlis-credentials.js";

type Transport = Pick<CardTransport, "transmit">;

/** The user-authentication key in the JPKI applet (JPKI-FACTS §1). */
const AUTH_KEY = 0x17;

/** Opens J-LIS's SCP11a session to the security domain of SIM `iccid` through `transport`. */
export async function openJlisSession(
  authority: Authority,
  transport: Transport,
  iccid: string,
): Promise<JlisDomainSession> {
  const sim = await authority.registry.getSimByIccid(iccid);
  if (!sim) throw new JpkiError("not-found", `SIM ${iccid} is not in any carrier's inventory`);
  const row = await authority.registry.db
    .selectFrom("certificates")
    .select("der")
    .where("sim_id", "=", sim.id)
    .where("kind", "=", "sim-attestation")
    .where("status", "=", "issued")
    .orderBy("created_at", "desc")
    .executeTakeFirst();
  if (!row?.der) throw new JpkiError("forbidden", `SIM ${iccid} has no valid security domain certificate`);
  return JlisDomainSession.open(transport, {
    sdCertificate: toBuffer(row.der),
    credentials: await jlisCredentials(authority),
  });
}

/** Generates the user-authentication key pair in the SIM's applet, attested over `nonce`. */
export async function generateKeyOnSim(
  authority: Authority,
  transport: Transport,
  options: { iccid: string; nonce: Buffer },
): Promise<GeneratedKey> {
  const session = await openJlisSession(authority, transport, options.iccid);
  return session.generateKeyPair(AUTH_KEY, options.nonce);
}

/**
 * Writes the certificate of issued application `applicationId` to its SIM. Idempotent: a delivery
 * repeated after a lost answer writes the same bytes again and finds the application delivered.
 */
export async function deliverCertificate(
  authority: Authority,
  transport: Transport,
  applicationId: string,
  options: {
    readonly actor?: string;
    /**
     * How J-LIS's channel reached the SIM: over the air through the carrier that issued it (the
     * default; the carrier bills J-LIS for the delivery), or through a municipal counter's terminal.
     */
    readonly via?: "ota" | "counter";
  } = {},
): Promise<void> {
  const actor = options.actor ?? "ra:provisioning";
  const db = authority.registry.db;
  const application = await getApplication(db, applicationId);
  if (!application) throw new JpkiError("not-found", `no application ${applicationId}`);
  if (application.status === "delivered") return;
  if (application.status !== "issued" && application.status !== "delivering")
    throw new JpkiError(
      "conflict",
      `application ${applicationId} is ${application.status}: nothing to deliver`,
    );
  const certificate = await db
    .selectFrom("certificates")
    .select(["der", "status"])
    .where("serial", "=", application.certificateSerial ?? "")
    .executeTakeFirst();
  if (!certificate?.der || certificate.status !== "issued")
    throw new JpkiError(
      "conflict",
      `application ${applicationId}'s certificate is ${certificate?.status ?? "missing"}: it is not delivered`,
    );
  if (application.status === "issued")
    await db.transaction().execute((trx) => advanceApplication(trx, applicationId, "delivering", { actor }));
  const session = await openJlisSession(authority, transport, application.iccid ?? "");
  // A key J-LIS made goes first, inside the channel (encrypted under the session's S-DEK).
  const injected = await injectedKeyOf(db, authority.dataDir, applicationId);
  if (injected) await session.injectKey(AUTH_KEY, injected);
  await session.storeAuthenticationCertificates(toBuffer(certificate.der), authority.certificates.auth);
  // The SIM's issuer, from its ICCID's issuer number (how the delivery was routed).
  const issuer = issuerOfIccid(application.iccid ?? "");
  await db.transaction().execute(async (trx) => {
    await advanceApplication(trx, applicationId, "delivered", { actor });
    await destroyInjectedKey(trx, applicationId);
    // The carrier that issued the SIM carried J-LIS's channel over the air (a light MVNO's host).
    if ((options.via ?? "ota") === "ota" && issuer)
      await recordBillable(
        trx,
        [
          {
            kind: "ota-delivery",
            source: `ota-delivery:${applicationId}`,
            payer: "jlis",
            payee: carrierParty(issuer.name),
            quantity: 1,
            rate: ratesOf(authority.dataDir).otaDelivery,
            reference: applicationId,
          },
        ],
        actor,
      );
  });
}

export interface DeliveryRetryOptions {
  /** Tries in all (default 5). */
  readonly attempts?: number;
  /** Wait before the second try, doubled after each failure (default 1 s), up to `maxBackoffMs` (default 60 s). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * `deliverCertificate`, tried again with exponential backoff when the way to the SIM fails (the
 * phone is off, the relay timed out). Delivery is idempotent, so a try whose answer was lost is
 * harmless. Refusals (the application is not deliverable) are not retried. Returns the tries used.
 */
export async function deliverWithRetry(
  authority: Authority,
  transport: () => Transport,
  applicationId: string,
  options: DeliveryRetryOptions = {},
): Promise<number> {
  const attempts = options.attempts ?? 5;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let wait = options.backoffMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      await deliverCertificate(authority, transport(), applicationId);
      return attempt;
    } catch (error) {
      const refused =
        error instanceof JpkiError && ["conflict", "not-found", "forbidden"].includes(error.code);
      if (refused || attempt >= attempts) throw error;
      await sleep(wait);
      wait = Math.min(wait * 2, options.maxBackoffMs ?? 60_000);
    }
  }
}

/** How long an issued certificate may wait for delivery to its SIM (default 7 days). */
export const DEFAULT_DELIVERY_WINDOW_MS = 7 * 86_400_000;
/** The registry setting (seconds) that changes the window for every J-LIS process of the registry. */
export const DELIVERY_WINDOW_SETTING = "ra.deliveryWindowSeconds";

/** The delivery window: the registry setting, else the default. */
export async function deliveryWindowMs(authority: Authority): Promise<number> {
  const setting = await authority.registry.getSetting(DELIVERY_WINDOW_SETTING);
  if (setting === undefined) return DEFAULT_DELIVERY_WINDOW_MS;
  const seconds = Number(setting);
  if (!Number.isInteger(seconds) || seconds < 60)
    throw new JpkiError(
      "integrity",
      `setting ${DELIVERY_WINDOW_SETTING} must be whole seconds, at least 60: ${setting}`,
    );
  return seconds * 1000;
}

/**
 * The sweep of undeliverable certificates: an application issued (or still delivering) longer than
 * `windowMs` ago (default: the registry setting `ra.deliveryWindowSeconds`, else 7 days) has its certificate revoked with reason unspecified (JPKI-FACTS §3: destroyed
 * before delivery) and fails, in one transaction, so no certificate is left dangling. Returns the
 * applications ended.
 */
export async function revokeUndelivered(
  authority: Authority,
  options: { windowMs?: number; now?: Date; actor?: string } = {},
): Promise<string[]> {
  const now = options.now ?? new Date();
  const actor = options.actor ?? "ra:provisioning";
  const cutoff = isoTime(new Date(now.getTime() - (options.windowMs ?? (await deliveryWindowMs(authority)))));
  const db = authority.registry.db;
  const overdue = await db
    .selectFrom("applications")
    .select(["id", "certificate_serial"])
    .where("status", "in", ["issued", "delivering"])
    .where("updated_at", "<", cutoff)
    .execute();
  for (const row of overdue)
    await db.transaction().execute(async (trx) => {
      if (row.certificate_serial) {
        const certificate = await trx
          .selectFrom("certificates")
          .select("status")
          .where("serial", "=", row.certificate_serial)
          .executeTakeFirst();
        if (certificate && LIVE_STATUSES.includes(certificate.status))
          await transitions.revoke(trx, row.certificate_serial, {
            actor,
            reason: CrlReason.unspecified,
            note: `not delivered to the SIM within the delivery window (application ${row.id})`,
            now,
          });
      }
      await advanceApplication(trx, row.id, "failed", {
        actor,
        reason:
          "the certificate could not be delivered to the SIM in time; it was revoked (destroyed before delivery)",
        now,
      });
      await destroyInjectedKey(trx, row.id);
    });
  return overdue.map((r) => r.id);
}
