/**
 * The relying-party SDK: log citizens in with the JPKI smartphone (or card) user-authentication
 * certificate. docs/relying-party.md describes the challenge bytes, the checks and the cache.
 */
export {
  type ChallengeStore,
  createLoginChallenge,
  DEFAULT_CHALLENGE_TTL_MS,
  LOGIN_CHALLENGE_FORMAT,
  type LoginChallenge,
  MemoryChallengeStore,
  originOf,
  parseLoginChallenge,
  type RelyingPartyIdentity,
} from "./challenge.js";
export { type LoginCheck, LoginRefusedError } from "./errors.js";
export { type CertificateStatusResult, type OcspClientOptions, OcspStatusChecker } from "./ocsp-client.js";
export {
  DEFAULT_LOGIN_POLICIES,
  type LoginResponse,
  RelyingParty,
  type RelyingPartyOptions,
  type VerifiedLogin,
  verifyLoginSignature,
} from "./relying-party.js";
