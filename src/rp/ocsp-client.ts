/**
 * Certificate status for a relying party, by OCSP (RFC 6960) against the JPKI status server, which
 * answers registered verifiers only (利用者証明検証者, JPKI-FACTS §3): every request carries the
 * relying party's token as `Authorization: Bearer` (RFC 6750 §2.1), and every answer the server gives
 * is counted, and charged, for it. A short cache of `good` answers per certificate keeps a busy login
 * page from asking about the same certificate at every login; a revoked, held or unknown answer is
 * never cached, so the next login asks again.
 */
import { createHash, randomBytes } from "node:crypto";
import { JpkiError } from "../errors.js";
import type { ParsedCertificate } from "../pki/certificate.js";
import { verifyCertificateSignature } from "../pki/certificate.js";
import { CrlReason } from "../pki/crl.js";
import { DerError } from "../pki/der.js";
import { KeyUsageBit } from "../pki/extensions.js";
import { ocspCertId } from "../pki/ocsp.js";
import { OID_KP_OCSP_SIGNING } from "../pki/oids.js";
import { LoginRefusedError } from "./errors.js";
import { exchange } from "./http-client.js";
import {
  certIdHashName,
  crlReasonName,
  encodeOcspRequest,
  OCSP_RESPONSE_LIMITS,
  OCSP_RESPONSE_STATUS_NAMES,
  parseOcspResponse,
  type ReadBasicOcspResponse,
  type ReadSingleResponse,
  verifyWithSpki,
} from "./ocsp-response.js";
import { extendedKeyUsages, hasKeyUsage } from "./path-validation.js";

export interface OcspClientOptions {
  /** The responder's URL, e.g. `http://127.0.0.1:8080/ocsp` (POST, RFC 6960 Appendix A.1). */
  readonly url: string;
  /** The relying party's registered-verifier token (`jpki-mobile verifier add`). */
  readonly token: string;
  /**
   * Send a fresh nonce (RFC 8954) and require it echoed: the answer is then signed for this request,
   * so it cannot be a replayed older one. Without, the server may answer from its pre-signed answers
   * (RFC 5019), cheaper for it, and freshness rests on thisUpdate/nextUpdate. Default true.
   */
  readonly nonce?: boolean;
  /** How long a `good` answer is reused for one certificate; 0 disables the cache. Default 60 s. */
  readonly cacheTtlMs?: number;
  /** Entries kept at most (oldest out first). Default 100,000. */
  readonly maxCacheEntries?: number;
  /** Clock difference tolerated between this server and the responder. Default 5 minutes. */
  readonly clockSkewMs?: number;
  /** An answer without nextUpdate is taken only this long after its thisUpdate. Default 24 hours. */
  readonly maxAgeMs?: number;
  /** Per request. Default 5 s. */
  readonly timeoutMs?: number;
  /** The clock of the cache and of the freshness checks (tests move it). */
  readonly now?: () => Date;
}

/** A `good` answer, from the responder or from the cache. */
export interface CertificateStatusResult {
  readonly status: "good";
  readonly source: "responder" | "cache";
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  /** Whether the answer echoed the request's nonce (false for cached answers and nonce-less requests). */
  readonly nonceChecked: boolean;
}

interface CacheEntry {
  readonly until: number;
  readonly result: CertificateStatusResult;
}

const sha1 = (data: Buffer) => createHash("sha1").update(data).digest();

const unavailable = (message: string, cause?: unknown) =>
  new LoginRefusedError(
    "status-unavailable",
    `the certificate's status could not be established: ${message}`,
    {
      cause,
    },
  );

export class OcspStatusChecker {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheTtlMs: number;
  private readonly maxCacheEntries: number;
  private readonly clockSkewMs: number;
  private readonly maxAgeMs: number;
  private readonly now: () => Date;

  constructor(readonly options: OcspClientOptions) {
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.maxCacheEntries = options.maxCacheEntries ?? 100_000;
    this.clockSkewMs = options.clockSkewMs ?? 5 * 60_000;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3_600_000;
    this.now = options.now ?? (() => new Date());
    if (!Number.isFinite(this.cacheTtlMs) || this.cacheTtlMs < 0)
      throw new JpkiError("bad-input", "the status cache's lifetime must be 0 or more milliseconds");
  }

  /** Entries in the cache (expired ones included until they are next looked up). */
  get cached(): number {
    return this.cache.size;
  }

  /** Forgets every cached answer (e.g. when told of a revocation out of band). */
  clearCache(): void {
    this.cache.clear();
  }

  /**
   * The status of `cert`, issued by `issuer`: resolves when it is `good`, throws LoginRefusedError
   * (status-revoked, status-held, status-unknown, status-unavailable) otherwise.
   */
  async check(
    cert: ParsedCertificate,
    issuer: ParsedCertificate,
    options: { bypassCache?: boolean } = {},
  ): Promise<CertificateStatusResult> {
    const key = `${sha1(issuer.spki).toString("hex")}:${cert.serialHex}`;
    const now = this.now();
    if (this.cacheTtlMs > 0 && !options.bypassCache) {
      const hit = this.cache.get(key);
      if (hit && hit.until > now.getTime()) return { ...hit.result, source: "cache", nonceChecked: false };
      if (hit) this.cache.delete(key);
    }
    const result = await this.ask(cert, issuer);
    if (this.cacheTtlMs > 0) {
      // Never reuse an answer beyond its own nextUpdate (RFC 5019 §6.2's bound for any cache).
      const until = Math.min(
        now.getTime() + this.cacheTtlMs,
        result.nextUpdate?.getTime() ?? Number.POSITIVE_INFINITY,
      );
      this.cache.delete(key);
      if (this.cache.size >= this.maxCacheEntries) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(key, { until, result });
    }
    return result;
  }

  /** One OCSP exchange, every check of RFC 6960 §3.2 applied to the answer. */
  private async ask(cert: ParsedCertificate, issuer: ParsedCertificate): Promise<CertificateStatusResult> {
    const nonce = this.options.nonce === false ? undefined : randomBytes(32);
    const request = encodeOcspRequest(ocspCertId(issuer.subjectDer, issuer.spki, cert.serial), nonce);
    let reply: Awaited<ReturnType<typeof exchange>>;
    try {
      reply = await exchange(this.options.url, {
        method: "POST",
        headers: {
          "content-type": "application/ocsp-request",
          accept: "application/ocsp-response",
          authorization: `Bearer ${this.options.token}`,
        },
        body: request,
        timeoutMs: this.options.timeoutMs ?? 5000,
        maxBytes: OCSP_RESPONSE_LIMITS.maxBytes,
      });
    } catch (error) {
      throw unavailable(`the status server did not answer (${(error as Error).message})`, error);
    }
    if (reply.status !== 200) throw unavailable(`the status server answered HTTP ${reply.status}`);

    let basic: ReadBasicOcspResponse;
    try {
      const read = parseOcspResponse(reply.body);
      if (read.responseStatus === 6)
        throw unavailable(
          "the status server refused this relying party's verifier credentials (unauthorized, RFC 6960 §2.3): check the token and that the verifier is registered for user-authentication certificates",
        );
      if (!read.basic)
        throw unavailable(
          `the status server answered ${OCSP_RESPONSE_STATUS_NAMES[read.responseStatus] ?? `status ${read.responseStatus}`}`,
        );
      basic = read.basic;
    } catch (error) {
      if (error instanceof DerError)
        throw unavailable(`the answer is not an OCSP response (${error.message})`, error);
      throw error;
    }

    const now = this.now();
    this.checkSigner(basic, issuer, now);
    if (nonce && !basic.nonce?.equals(nonce))
      throw unavailable(
        "the answer does not echo this request's nonce (RFC 8954 §2.1): it may be a replayed answer",
      );
    const single = this.findResponse(basic, cert, issuer);
    this.checkTimes(basic, single, now);

    if (single.status === "good")
      return {
        status: "good",
        source: "responder",
        thisUpdate: single.thisUpdate,
        ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
        nonceChecked: nonce !== undefined,
      };
    if (single.status === "unknown")
      throw new LoginRefusedError(
        "status-unknown",
        "the status server does not know this certificate (unknown): it is not a certificate the JPKI vouches for now",
      );
    if (single.reason === CrlReason.certificateHold)
      throw new LoginRefusedError(
        "status-held",
        `the certificate is suspended (一時利用停止, certificateHold) since ${single.revocationTime.toISOString()}`,
      );
    throw new LoginRefusedError(
      "status-revoked",
      `the certificate was revoked at ${single.revocationTime.toISOString()} (${crlReasonName(single.reason)})`,
    );
  }

  /**
   * Who signed (RFC 6960 §3.2 (2), (3), §4.2.2.2): the CA itself, or a delegated responder whose
   * certificate, sent in `certs`, the CA issued directly with id-kp-OCSPSigning and which is valid
   * now. The ResponderID names that signer; the signature over ResponseData verifies with its key.
   * Locally configured responders (§4.2.2.2 case 2) are not used: the JPKI delegates per CA.
   */
  private checkSigner(basic: ReadBasicOcspResponse, issuer: ParsedCertificate, now: Date): void {
    const named = (c: ParsedCertificate) =>
      "byKey" in basic.responderId
        ? basic.responderId.byKey.equals(sha1(c.subjectPublicKey))
        : basic.responderId.byName.equals(c.subjectDer);
    let signerSpki: Buffer;
    if (named(issuer)) signerSpki = issuer.spki;
    else {
      const responder = basic.certs.find(named);
      if (!responder)
        throw unavailable("the answer is signed by a responder it does not identify with a certificate");
      if (
        !responder.issuerDer.equals(issuer.subjectDer) ||
        !verifyCertificateSignature(responder, issuer.spki)
      )
        throw unavailable(
          "the responder's certificate was not issued by the certificate's CA (RFC 6960 §4.2.2.2)",
        );
      if (!extendedKeyUsages(responder)?.includes(OID_KP_OCSP_SIGNING))
        throw unavailable("the responder's certificate lacks id-kp-OCSPSigning (RFC 6960 §4.2.2.2)");
      if (!hasKeyUsage(responder, KeyUsageBit.digitalSignature))
        throw unavailable("the responder's certificate may not make signatures");
      if (now < responder.notBefore || now > responder.notAfter)
        throw unavailable("the responder's certificate is outside its validity period");
      signerSpki = responder.spki;
    }
    if (!verifyWithSpki(basic.signatureAlgorithmOid, basic.tbsResponseData, basic.signature, signerSpki))
      throw unavailable("the answer's signature does not verify (RFC 6960 §3.2 (2))");
  }

  /** The SingleResponse about this certificate (RFC 6960 §3.2 (1)): same serial, same issuer hashes. */
  private findResponse(
    basic: ReadBasicOcspResponse,
    cert: ParsedCertificate,
    issuer: ParsedCertificate,
  ): ReadSingleResponse {
    const matching = basic.responses.filter((r) => {
      if (!r.serial.equals(cert.serial)) return false;
      const hash = certIdHashName(r.hashAlgorithm);
      if (!hash) return false;
      const digest = (data: Buffer) => createHash(hash).update(data).digest();
      return (
        r.issuerNameHash.equals(digest(issuer.subjectDer)) &&
        r.issuerKeyHash.equals(digest(issuer.subjectPublicKey))
      );
    });
    if (matching.length !== 1) throw unavailable("the answer is not about this certificate");
    return matching[0]!;
  }

  /**
   * Freshness (RFC 6960 §3.2 (4), (5); RFC 5019 §4): thisUpdate and producedAt not in the future,
   * nextUpdate not in the past, each within the tolerated clock skew; an answer without nextUpdate
   * no older than maxAgeMs.
   */
  private checkTimes(basic: ReadBasicOcspResponse, single: ReadSingleResponse, now: Date): void {
    const t = now.getTime();
    const skew = this.clockSkewMs;
    if (basic.producedAt.getTime() > t + skew || single.thisUpdate.getTime() > t + skew)
      throw unavailable(
        `the answer claims to be from the future (thisUpdate ${single.thisUpdate.toISOString()})`,
      );
    if (single.nextUpdate) {
      if (single.nextUpdate < single.thisUpdate)
        throw unavailable("the answer's nextUpdate precedes its thisUpdate");
      if (single.nextUpdate.getTime() < t - skew)
        throw unavailable(`the answer is stale (nextUpdate ${single.nextUpdate.toISOString()})`);
    } else if (single.thisUpdate.getTime() < t - skew - this.maxAgeMs)
      throw unavailable(`the answer is stale (thisUpdate ${single.thisUpdate.toISOString()}, no nextUpdate)`);
  }
}
