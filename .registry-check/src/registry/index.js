/** The registry role's public API (DESIGN.md §3): what the CLI, the RA and the benchmarks call. */
export { appendAudit, auditHead, verifyAudit, } from "./audit.js";
export { dialectOf, isoTime, openRegistryDatabase, } from "./db.js";
export { DEFAULT_SHARDS, getCertificate, issueCertificate, issueCertificates, listCertificates, newSerial, normaliseSerial, recoverInterruptedIssuances, SHARD_SETTING, shardCount, shardOf, } from "./issuance.js";
export { migrateRegistry } from "./migrations/index.js";
export { Registry, } from "./registry.js";
//# sourceMappingURL=index.js.map