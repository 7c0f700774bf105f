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
 *   applet (EF 000A, 000B); the application goes `delivering` → `delivered`.
 */
import type { CardTransport } from "../card/card.js";
import { type GeneratedKey, JlisDomainSession } from "../card/uicc/host.js";
import { JpkiError } from "../errors.js";
import { toBuffer } from "../registry/db.js";
import type { Authority } from "../server/authority.js";
import { advanceApplication, getApplication } from "./applications.js";
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
  actor = "ra:provisioning",
): Promise<void> {
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
  await session.storeAuthenticationCertificates(toBuffer(certificate.der), authority.certificates.auth);
  await db.transaction().execute((trx) => advanceApplication(trx, applicationId, "delivered", { actor }));
}
