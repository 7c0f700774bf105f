/**
 * The relying-party SDK (利用者証明検証者, DESIGN §4 flow 8): a relying party issues login challenges
 * bound to its own identity and checks the phone's answer: the SIM's signature over exactly that
 * challenge, the certificate's path to the JPKI user-authentication CA, its validity, key usage and
 * policy, and its status by OCSP at the JPKI status server. It depends on src/pki and Node only, so a
 * relying party can run it without any other part of this project.
 *
 *   const rp = new RelyingParty({ id, origin, trustAnchors: [authCaDer], status: { url, token } });
 *   const challenge = rp.issueChallenge();            // to the phone: challenge.der, challenge.challengeId
 *   const login = await rp.verifyLogin({ challengeId, certificate, signature });   // or throws LoginRefusedError
 */
import { constants, verify } from "node:crypto";
import { type ParsedCertificate, parseCertificate, renderName } from "../pki/certificate.js";
import { DerError } from "../pki/der.js";
import { CITIZEN_POLICY_OIDS, type CitizenCertificateKind } from "../pki/profiles.js";
import { publicKeyFromSpki } from "../pki/public-key.js";
import {
  type ChallengeStore,
  createLoginChallenge,
  DEFAULT_CHALLENGE_TTL_MS,
  type LoginChallenge,
  MemoryChallengeStore,
  parseLoginChallenge,
  type RelyingPartyIdentity,
} from "./challenge.js";
import { LoginRefusedError } from "./errors.js";
import { type CertificateStatusResult, type OcspClientOptions, OcspStatusChecker } from "./ocsp-client.js";
import {
  certificatePolicies,
  type TrustAnchor,
  trustAnchor,
  validateLoginCertificate,
} from "./path-validation.js";

/** A certificate is about 1.3 KB; anything over this is not a JPKI certificate. */
export const MAX_LOGIN_CERTIFICATE_BYTES = 16 * 1024;
/** RSA-2048 signatures are 256 bytes; 512 allows RSA-4096 and refuses anything absurd early. */
export const MAX_LOGIN_SIGNATURE_BYTES = 512;

/** User-authentication policies accepted by default: the smartphone's, and the card's (JPKI-FACTS §2). */
export const DEFAULT_LOGIN_POLICIES: readonly string[] = [
  CITIZEN_POLICY_OIDS["phone-auth"],
  CITIZEN_POLICY_OIDS["card-auth"],
];

export interface RelyingPartyOptions extends RelyingPartyIdentity {
  /** The JPKI user-authentication CA certificate(s), DER: the trust anchors (RFC 5280 §6.1.1 (d)). */
  readonly trustAnchors: readonly Buffer[];
  /** Status by OCSP: the responder URL and this relying party's verifier token, or a checker to share. */
  readonly status: OcspClientOptions | OcspStatusChecker;
  /** Certificate policy OIDs a login certificate may assert (default DEFAULT_LOGIN_POLICIES). */
  readonly policies?: readonly string[];
  /** Lifetime of a challenge (default 2 minutes). */
  readonly challengeTtlMs?: number;
  /** Where challenges wait for their answer (default: this process's memory). */
  readonly challengeStore?: ChallengeStore;
  /** The clock of challenges and certificate validity. */
  readonly now?: () => Date;
}

/** What the phone sends back. */
export interface LoginResponse {
  readonly challengeId: string;
  /** The user-authentication certificate, DER, read from the SIM. */
  readonly certificate: Buffer;
  /** RSASSA-PKCS1-v1_5 with SHA-256 over the challenge's DER (RFC 8017 §8.2), made by the SIM. */
  readonly signature: Buffer;
  /**
   * The challenge as the phone signed it (optional). Never what is verified, which is always this
   * relying party's own copy; when given and different, it names whose challenge was signed.
   */
  readonly challenge?: Buffer;
}

/** A login that passed every check. */
export interface VerifiedLogin {
  /** The certificate's serial, lower-case hex: the stable account key (no personal data in it). */
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  readonly kind: CitizenCertificateKind | "other";
  readonly policy: string;
  readonly notAfter: Date;
  readonly certificate: Buffer;
  readonly status: CertificateStatusResult;
  readonly challengeId: string;
  readonly at: Date;
}

const KIND_OF_POLICY = new Map<string, CitizenCertificateKind>(
  (Object.entries(CITIZEN_POLICY_OIDS) as [CitizenCertificateKind, string][]).map(([kind, oid]) => [
    oid,
    kind,
  ]),
);

const CHALLENGE_ID = /^[A-Za-z0-9_-]{43}$/;

export class RelyingParty {
  readonly identity: RelyingPartyIdentity;
  readonly statusChecker: OcspStatusChecker;
  readonly anchors: readonly TrustAnchor[];
  private readonly store: ChallengeStore;
  private readonly policies: readonly string[];
  private readonly ttlMs: number;
  private readonly now: () => Date;

  constructor(options: RelyingPartyOptions) {
    // Checked once here, so a misconfigured relying party fails at start, not at the first login.
    const probe = createLoginChallenge({ id: options.id, origin: options.origin });
    this.identity = { id: probe.id, origin: options.origin };
    if (options.trustAnchors.length === 0)
      throw new LoginRefusedError(
        "configuration",
        "a relying party needs the JPKI user-authentication CA certificate",
      );
    this.anchors = options.trustAnchors.map(trustAnchor);
    this.statusChecker =
      options.status instanceof OcspStatusChecker ? options.status : new OcspStatusChecker(options.status);
    this.store = options.challengeStore ?? new MemoryChallengeStore();
    this.policies = options.policies ?? DEFAULT_LOGIN_POLICIES;
    this.ttlMs = options.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
    this.now = options.now ?? (() => new Date());
  }

  /** A new challenge for one login attempt, remembered until it is answered or expires. */
  issueChallenge(): LoginChallenge {
    const challenge = createLoginChallenge(this.identity, { now: this.now(), ttlMs: this.ttlMs });
    this.store.put(challenge);
    return challenge;
  }

  /**
   * Checks a login response; resolves with who logged in, or throws LoginRefusedError naming the
   * failed check. The checks, in order (docs/relying-party.md):
   *
   *  1. input sizes;
   *  2. the challenge: issued here, not used before (it is used up now, whatever follows), not expired,
   *     naming this relying party;
   *  3. the certificate: DER, path to a trust anchor, validity, end entity, key usage, policy
   *     (RFC 5280 §6.1, path-validation.ts);
   *  4. the signature: RSASSA-PKCS1-v1_5 / SHA-256 (RFC 8017 §8.2.2) over this relying party's copy of
   *     the challenge, with the certificate's key: proof that the SIM holding the key answered this
   *     challenge;
   *  5. status: OCSP at the status server (cached `good` answers unless `bypassStatusCache`).
   *
   * Status comes last: it is the only check that costs a network round trip and a charged lookup.
   */
  async verifyLogin(
    response: LoginResponse,
    options: { bypassStatusCache?: boolean } = {},
  ): Promise<VerifiedLogin> {
    // 1. Input.
    if (typeof response.challengeId !== "string" || !CHALLENGE_ID.test(response.challengeId))
      throw new LoginRefusedError("input", "challengeId is not a challenge id (43 base64url characters)");
    if (response.certificate.length === 0 || response.certificate.length > MAX_LOGIN_CERTIFICATE_BYTES)
      throw new LoginRefusedError("input", `the certificate has 1 to ${MAX_LOGIN_CERTIFICATE_BYTES} bytes`);
    if (response.signature.length === 0 || response.signature.length > MAX_LOGIN_SIGNATURE_BYTES)
      throw new LoginRefusedError("input", `the signature has 1 to ${MAX_LOGIN_SIGNATURE_BYTES} bytes`);

    // 2. The challenge, used up by this attempt.
    const now = this.now();
    const taken = this.store.take(response.challengeId, now);
    if (taken === "used")
      throw new LoginRefusedError(
        "challenge-used",
        "this challenge was already used: a login answers a fresh one",
      );
    if (taken === "unknown")
      throw new LoginRefusedError(
        "challenge-unknown",
        "this relying party issued no such challenge (it may be another relying party's, or expired long ago)",
      );
    const challenge = taken;
    if (now > challenge.expiresAt)
      throw new LoginRefusedError(
        "challenge-expired",
        `the challenge expired at ${challenge.expiresAt.toISOString()}: ask for a new one`,
      );
    if (challenge.id !== this.identity.id || challenge.origin !== this.identity.origin)
      throw new LoginRefusedError("challenge-other-rp", "the challenge was issued for another relying party");
    if (response.challenge && !response.challenge.equals(challenge.der))
      this.explainOtherChallenge(response.challenge);

    // 3. The certificate and its path.
    let cert: ParsedCertificate;
    try {
      cert = parseCertificate(response.certificate);
    } catch (error) {
      if (error instanceof DerError)
        throw new LoginRefusedError(
          "certificate",
          `the certificate is not a DER X.509 certificate: ${error.message}`,
          {
            cause: error,
          },
        );
      throw error;
    }
    const anchor = validateLoginCertificate(cert, this.anchors, { policies: this.policies, now });

    // 4. Proof of possession: the SIM's signature over exactly this challenge.
    if (!verifyLoginSignature(cert, challenge.der, response.signature))
      throw new LoginRefusedError(
        "signature",
        "the signature does not verify over this relying party's challenge with the certificate's key",
      );

    // 5. Status.
    const status = await this.statusChecker.check(cert, anchor.certificate, {
      bypassCache: options.bypassStatusCache === true,
    });

    const policy = certificatePolicies(cert).find((p) => this.policies.includes(p))!;
    return {
      serial: cert.serialHex,
      subject: renderName(cert.subjectDer),
      issuer: renderName(cert.issuerDer),
      kind: KIND_OF_POLICY.get(policy) ?? "other",
      policy,
      notAfter: cert.notAfter,
      certificate: cert.der,
      status,
      challengeId: challenge.challengeId,
      at: now,
    };
  }

  /** The phone signed other bytes than our challenge: say whose, when they are a challenge at all. */
  private explainOtherChallenge(signed: Buffer): never {
    let other: LoginChallenge | undefined;
    try {
      other = parseLoginChallenge(signed);
    } catch {
      // Not a challenge: the signature check would fail anyway; say so here.
    }
    if (other && (other.id !== this.identity.id || other.origin !== this.identity.origin))
      throw new LoginRefusedError(
        "challenge-other-rp",
        `the phone signed a challenge of another relying party (${JSON.stringify(other.id)} at ${other.origin}), not this one's`,
      );
    throw new LoginRefusedError(
      "signature",
      "the phone signed other bytes than this relying party's challenge",
    );
  }
}

/**
 * RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) with SHA-256 of `message`: what the SIM's SIGN
 * makes over the DigestInfo the phone sends. RSA keys only: every JPKI key is RSA-2048.
 */
export function verifyLoginSignature(cert: ParsedCertificate, message: Buffer, signature: Buffer): boolean {
  try {
    const key = publicKeyFromSpki(cert.spki);
    if (key.asymmetricKeyType !== "rsa") return false;
    return verify("sha256", message, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}
