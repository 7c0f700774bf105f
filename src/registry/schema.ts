/**
 * The registry's tables as Kysely sees them. Times are ISO-8601 UTC text (`2026-11-25T21:51:52.123Z`):
 * they sort as text and read the same on SQLite and PostgreSQL. Binary columns are `blob` on SQLite and
 * `bytea` on PostgreSQL and always come back as Buffer (db.ts normalises rows).
 */
import type { Generated, Insertable, Selectable } from "kysely";

/** Which CA (or outside authority) signs: JPKI signing CA, JPKI user-authentication CA, SIM maker CA. */
export type CertificateIssuer = "sign" | "auth" | "sim-maker";

export const certificateIssuers: readonly CertificateIssuer[] = ["sign", "auth", "sim-maker"];

/**
 * What a certificate is for. `card-*` live on the My Number card, `phone-*` in the SIM's JPKI applet
 * (移動端末設備用), `ocsp` are delegated responders, `ca` the roots, `sim-attestation` the SIM maker's.
 */
export type CertificateKind =
  | "card-sign"
  | "card-auth"
  | "phone-auth"
  | "phone-sign"
  | "ocsp"
  | "ca"
  | "sim-attestation"
  /** J-LIS's SCP11a key agreement certificate (OCE), from the SIM maker's CA. */
  | "scp11-oce";

export const certificateKinds: readonly CertificateKind[] = [
  "card-sign",
  "card-auth",
  "phone-auth",
  "phone-sign",
  "ocsp",
  "ca",
  "sim-attestation",
  "scp11-oce",
];

/** Where the private key lives. */
export type CertificateMedium = "card" | "sim" | "none";

export const certificateMedia: readonly CertificateMedium[] = ["card", "sim", "none"];

/**
 * `pending`: serial and TBS stored, not (known to be) signed. `issued`: DER stored. `failed`: could not
 * be finished; the TBS stays for the record. The lifecycle adds the rest.
 */
export type CertificateStatus = "pending" | "issued" | "failed" | "suspended" | "revoked" | "expired";

type Timestamp = string;

export interface PersonsTable {
  id: string;
  name: string;
  sex: string;
  /** YYYY-MM-DD (the card's 生年月日, Gregorian). */
  birth_date: string;
  /** 住所: address of record (住民票), where restricted-delivery mail goes. */
  address: string;
  /** 居所: where the person actually lives, when it differs from the address of record. */
  residence: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CardsTable {
  id: string;
  person_id: string;
  /** The card's identifier (a test card number; never a real My Number). */
  card_number: string;
  issued_at: Timestamp;
  expires_at: Timestamp;
  /** `active`, later `lost`, `returned`, `dead`. */
  status: string;
  /** The emulated card's state file. */
  state_path: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SimsTable {
  id: string;
  iccid: string;
  eid: string | null;
  carrier: string | null;
  status: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CertificatesTable {
  /** Lowercase hex of the serial number's 16 bytes (positive, first byte non-zero). */
  serial: string;
  issuer: CertificateIssuer;
  kind: CertificateKind;
  medium: CertificateMedium;
  person_id: string | null;
  card_id: string | null;
  sim_id: string | null;
  /** The card certificate a phone certificate was issued against (link query, cascades). */
  parent_serial: string | null;
  status: CertificateStatus;
  /**
   * TBSCertificate DER, stored before signing (Boulder's order). Emptied when `der`, which holds it
   * byte for byte, is stored: recovery needs it only while the row is `pending`.
   */
  tbs: Buffer;
  der: Buffer | null;
  not_before: Timestamp;
  not_after: Timestamp;
  /** CRL shard, fixed at issuance and written into the certificate's CRL distribution point. */
  shard: number;
  failure_reason: string | null;
  revoked_at: Timestamp | null;
  /** CRLReason code (RFC 5280 §5.3.1). */
  revocation_reason: number | null;
  invalidity_date: Timestamp | null;
  /** The revokedCertificates entry, DER, made at revocation so a CRL is "concatenate and sign". */
  crl_entry: Buffer | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface LifecycleEventsTable {
  /** Also the registry's change sequence: increases with every certificate state change. */
  id: Generated<number>;
  serial: string;
  event: string;
  from_status: string | null;
  to_status: string;
  reason: string | null;
  actor: string;
  at: Timestamp;
}

export interface AuditLogTable {
  seq: number;
  at: Timestamp;
  actor: string;
  action: string;
  subject: string;
  /** Canonical JSON (sorted keys). */
  details: string;
  /** Hex SHA-256. */
  prev_hash: string;
  hash: string;
}

/** One row (id 1): the last sequence number and hash, locked by every writer. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

/** A registered verifier (署名検証者 / 利用者証明検証者): only these get OCSP answers and CRLs. */
export interface VerifiersTable {
  id: string;
  name: string;
  /** Which certificates' status it may ask: `auth`, `sign`, or `both`. */
  kind: "auth" | "sign" | "both";
  /** SHA-256 (hex) of its bearer token; the token itself is shown once, at registration. */
  token_hash: string;
  status: "active" | "disabled";
  created_at: Timestamp;
}

/** Lookups per verifier, JST day and channel (`ocsp`, `crl`): the fee basis. */
export interface VerifierLookupsTable {
  verifier_id: string;
  /** YYYY-MM-DD, Japan time. */
  day: string;
  channel: "ocsp" | "crl";
  count: number;
}

/** The latest CRL of each shard of each CA, full and delta. */
export interface CrlsTable {
  issuer: CertificateIssuer;
  shard: number;
  kind: "full" | "delta";
  /** CRLNumber: one increasing sequence per CA and shard, shared by full and delta CRLs (RFC 5280 §5.2.3). */
  crl_number: number;
  /** A delta's base: the full CRL number it applies to. */
  base_crl_number: number | null;
  /** The registry's change sequence the CRL reflects. */
  change_sequence: number;
  this_update: Timestamp;
  next_update: Timestamp;
  entries: number;
  der: Buffer;
}

/** A pre-signed OCSP answer (without nonce) per live certificate. */
export interface OcspResponsesTable {
  serial: string;
  issuer: CertificateIssuer;
  /** The status the answer gives: good, revoked, held (revoked with reason certificateHold) or unknown. */
  status: string;
  /** The registry's change sequence when it was signed: a later change of this certificate voids it. */
  change_sequence: number;
  produced_at: Timestamp;
  next_update: Timestamp;
  /** BasicOCSPResponse DER. */
  der: Buffer;
}

/** An application for a smartphone certificate (src/ra/applications.ts), by its number. */
export interface ApplicationsTable {
  id: string;
  channel: "online" | "postal" | "counter";
  status:
    | "received"
    /** Postal channel: the restricted-delivery mail with the access code is out (src/ra/postal.ts). */
    | "awaiting-code"
    /** Postal channel: the mail came back; the municipal counter continues the application. */
    | "referred-to-counter"
    | "verified"
    | "issued"
    | "delivering"
    | "delivered"
    | "failed";
  person_id: string | null;
  iccid: string | null;
  certificate_serial: string | null;
  failure_reason: string | null;
  /** What the channel checked and recorded, as canonical JSON. */
  evidence: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** One status an application went through, with why and who. */
export interface ApplicationEventsTable {
  id: Generated<number>;
  application_id: string;
  status: ApplicationsTable["status"];
  reason: string | null;
  actor: string;
  at: Timestamp;
}

/** Nonces of the online channel: stored as SHA-256 (hex), single use, short-lived. */
export interface ApplicationNoncesTable {
  nonce_hash: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  application_id: string | null;
}

/**
 * An access code of the postal channel (src/ra/access-codes.ts): only a salted hash, never the code.
 * Void when used, past `expires_at`, after the maximum of wrong attempts, or voided (mail returned).
 */
export interface AccessCodesTable {
  id: string;
  application_id: string;
  /** 16 random octets, the HMAC-SHA256 key of `code_hash`. */
  salt: Buffer;
  /** HMAC-SHA256(salt, the code in its canonical form). */
  code_hash: Buffer;
  failed_attempts: number;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  voided_at: Timestamp | null;
  void_reason: string | null;
}

/**
 * A restricted-delivery mail item (本人限定受取郵便) in the post office's hands (src/post/): who it is
 * for and where, its status, and the sealed letter until it is handed over or returned.
 */
export interface MailItemsTable {
  tracking_number: string;
  sender: string;
  /** The sender's reference (J-LIS: the application number), for returns. */
  sender_reference: string;
  /** The sandbox person the name on the envelope designates (the simulation's ground truth). */
  addressee_id: string;
  addressee_name: string;
  address: string;
  status: "sent" | "delivered" | "returned";
  /** The letter, AES-256-GCM under the envelope key; emptied (NULL) at handover or return. */
  sealed_letter: Buffer | null;
  delivery_attempts: number;
  last_failure: string | null;
  /** Set at the first attempt: held at the post office until then, then returned to the sender. */
  hold_until: Timestamp | null;
  sent_at: Timestamp;
  delivered_at: Timestamp | null;
  returned_at: Timestamp | null;
  updated_at: Timestamp;
}

/** A municipality (市区町村) whose clerks serve at a counter, by its local government code. */
export interface MunicipalitiesTable {
  /** 全国地方公共団体コード: 6 digits, the last a check digit (src/municipality/codes.ts). */
  code: string;
  /** Its full name with the prefecture, e.g. 東京都千代田区: the address of record starts with it. */
  name: string;
  created_at: Timestamp;
}

/** A counter clerk's account (src/municipality/clerks.ts), bound to one municipality. */
export interface ClerksTable {
  id: string;
  municipality_code: string;
  /** Who the account is for (a name or a desk), for people reading the audit log. */
  label: string | null;
  /** SHA-256 (hex) of the clerk's token; the token itself is shown once, when the account is made. */
  token_hash: string;
  status: "active" | "disabled";
  created_at: Timestamp;
  updated_at: Timestamp;
}

/**
 * One identity verification at the counter (本人確認, src/ra/counter.ts), recorded in the transaction
 * of what it allowed: a counter application (`subject` = the application number) or a PIN unblock
 * (`subject` = the SIM's ICCID).
 */
export interface CounterIdentityChecksTable {
  id: string;
  clerk_id: string;
  municipality_code: string;
  /** `card-signature`: the card signed J-LIS's challenge; `documents`: the clerk saw the documents. */
  method: "card-signature" | "documents";
  purpose: "application" | "pin-unblock";
  person_id: string;
  card_id: string;
  /** The card signing certificate that signed (card-signature). */
  signing_serial: string | null;
  /** The documents the clerk saw, comma-separated kinds (documents). */
  documents: string | null;
  subject: string;
  at: Timestamp;
}

/** A key J-LIS made for a SIM, sealed, between its certificate's issuance and its delivery (src/ra/injected-keys.ts). */
export interface InjectedKeysTable {
  application_id: string;
  /** PKCS#8 DER sealed with AES-256-GCM under `jlis/injected-keys.key`, bound to the application. */
  sealed_key: Buffer;
  created_at: Timestamp;
}

/** A carrier's event-signing public key, enrolled with J-LIS (src/mno/carrier-events.ts). */
export interface CarrierKeysTable {
  carrier: string;
  /** SubjectPublicKeyInfo DER (P-256). */
  public_key: Buffer;
  enrolled_at: Timestamp;
}

/** A carrier event J-LIS applied, once (src/ra/carrier-events.ts). */
export interface CarrierEventsTable {
  carrier: string;
  /** The carrier's id for the event: with the carrier, what makes a repeated delivery the same event. */
  id: string;
  kind: string;
  iccid: string;
  occurred_at: Timestamp;
  received_at: Timestamp;
  event: Buffer;
  signature: Buffer;
  /** JSON: the SIM's status after the event and the certificates revoked. */
  outcome: string;
}

/** One billable event (src/ledger/ledger.ts); append-only. */
export interface LedgerEntriesTable {
  id: string;
  /** The event billed (`issuance:<serial>`, ...): unique, so nothing is billed twice. */
  source: string;
  kind: string;
  payer: string;
  payee: string;
  quantity: number;
  /** The rate: rate_yen for every rate_per units. */
  rate_yen: number;
  rate_per: number;
  amount_yen: number;
  /** YYYY-MM, Japan time. */
  month: string;
  at: Timestamp;
  /** What the entry is about: a serial, an application, a SIM, a verifier. */
  reference: string;
  actor: string;
}

export interface RegistrySchema {
  persons: PersonsTable;
  cards: CardsTable;
  sims: SimsTable;
  certificates: CertificatesTable;
  lifecycle_events: LifecycleEventsTable;
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
  settings: SettingsTable;
  verifiers: VerifiersTable;
  verifier_lookups: VerifierLookupsTable;
  crls: CrlsTable;
  ocsp_responses: OcspResponsesTable;
  applications: ApplicationsTable;
  application_events: ApplicationEventsTable;
  application_nonces: ApplicationNoncesTable;
  access_codes: AccessCodesTable;
  mail_items: MailItemsTable;
  municipalities: MunicipalitiesTable;
  clerks: ClerksTable;
  counter_identity_checks: CounterIdentityChecksTable;
  injected_keys: InjectedKeysTable;
  carrier_keys: CarrierKeysTable;
  carrier_events: CarrierEventsTable;
  ledger_entries: LedgerEntriesTable;
}

export type Person = Selectable<PersonsTable>;
export type Card = Selectable<CardsTable>;
export type Sim = Selectable<SimsTable>;
export type CertificateRow = Selectable<CertificatesTable>;
export type LifecycleEvent = Selectable<LifecycleEventsTable>;
export type AuditRow = Selectable<AuditLogTable>;
export type NewCertificateRow = Insertable<CertificatesTable>;
