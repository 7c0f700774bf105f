/** The registry role's public API (DESIGN.md §3): what the CLI, the RA and the benchmarks call. */
export {
  type AuditEntry,
  type AuditFinding,
  type AuditFindingKind,
  type AuditHead,
  appendAudit,
  auditHead,
  verifyAudit,
} from "./audit.js";
export {
  dialectOf,
  isoTime,
  type OpenOptions,
  openRegistryDatabase,
  type RegistryDatabase,
  type RegistryDialect,
} from "./db.js";
export {
  type CertificateFilters,
  type CertificatePage,
  type CertificateRecord,
  type CertificateSigner,
  type CertificateSigners,
  DEFAULT_SHARDS,
  getCertificate,
  type IssuanceOptions,
  type IssuanceRequest,
  type IssuanceResult,
  issueCertificate,
  issueCertificates,
  listCertificates,
  normaliseSerial,
  type Paging,
  type RecoveryOptions,
  type RecoveryReport,
  recoverInterruptedIssuances,
  SHARD_SETTING,
  type StoredIssuance,
  shardCount,
} from "./issuance.js";
export { migrateRegistry } from "./migrations/index.js";
export {
  type CardRecord,
  type NewCard,
  type NewPerson,
  type NewSim,
  type PersonRecord,
  Registry,
  type RegistryOptions,
  type SimRecord,
} from "./registry.js";
export type {
  CertificateIssuer,
  CertificateKind,
  CertificateMedium,
  CertificateStatus,
  RegistrySchema,
} from "./schema.js";
