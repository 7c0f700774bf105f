/**
 * Certification path validation for a login certificate, as RFC 5280 §6.1 runs it on the JPKI's
 * one-tier hierarchy (JPKI-FACTS §2): the trust anchor is the user-authentication CA's self-signed
 * root, configured by the relying party; the path is the anchor and the citizen's certificate. Each
 * refusal names the check that failed.
 */
import { createHash } from "node:crypto";
import {
  type CertificateExtension,
  findExtension,
  type ParsedCertificate,
  parseCertificate,
  verifyCertificateSignature,
} from "../pki/certificate.js";
import { children, DerError, expectTag, readDer, readOid, Tag } from "../pki/der.js";
import { KeyUsageBit } from "../pki/extensions.js";
import {
  OID_CE_AUTHORITY_KEY_IDENTIFIER,
  OID_CE_BASIC_CONSTRAINTS,
  OID_CE_CERTIFICATE_POLICIES,
  OID_CE_CRL_DISTRIBUTION_POINTS,
  OID_CE_EXT_KEY_USAGE,
  OID_CE_ISSUER_ALT_NAME,
  OID_CE_KEY_USAGE,
  OID_CE_SUBJECT_ALT_NAME,
  OID_CE_SUBJECT_KEY_IDENTIFIER,
  OID_PE_AUTHORITY_INFO_ACCESS,
  OID_PKIX_OCSP_NOCHECK,
} from "../pki/oids.js";
import { LoginRefusedError } from "./errors.js";

/** Extensions this validator understands; an unknown critical one fails the path (RFC 5280 §4.2). */
const UNDERSTOOD_EXTENSIONS = new Set([
  OID_CE_AUTHORITY_KEY_IDENTIFIER,
  OID_CE_BASIC_CONSTRAINTS,
  OID_CE_CERTIFICATE_POLICIES,
  OID_CE_CRL_DISTRIBUTION_POINTS,
  OID_CE_EXT_KEY_USAGE,
  OID_CE_ISSUER_ALT_NAME,
  OID_CE_KEY_USAGE,
  OID_CE_SUBJECT_ALT_NAME,
  OID_CE_SUBJECT_KEY_IDENTIFIER,
  OID_PE_AUTHORITY_INFO_ACCESS,
  OID_PKIX_OCSP_NOCHECK,
]);

const EXTENSION_LIMITS = { maxBytes: 16 * 1024, maxDepth: 8 };

/** A trust anchor (RFC 5280 §6.1.1 (d)): a CA certificate the relying party trusts as configured. */
export interface TrustAnchor {
  readonly certificate: ParsedCertificate;
  /** SHA-256 of the anchor's DER, hex: how logs and errors name it. */
  readonly fingerprint: string;
}

/** Reads a configured trust anchor; refuses one that is not a CA certificate allowed to sign certificates. */
export function trustAnchor(der: Buffer): TrustAnchor {
  const certificate = parseCertificate(der);
  if (!isCa(certificate))
    throw new LoginRefusedError("configuration", "the configured trust anchor is not a CA certificate");
  if (!hasKeyUsage(certificate, KeyUsageBit.keyCertSign))
    throw new LoginRefusedError("configuration", "the configured trust anchor may not sign certificates");
  return { certificate, fingerprint: createHash("sha256").update(der).digest("hex") };
}

/** BasicConstraints cA (RFC 5280 §4.2.1.9); absent means an end entity. */
export function isCa(cert: ParsedCertificate): boolean {
  const extension = findExtension(cert, OID_CE_BASIC_CONSTRAINTS);
  if (!extension) return false;
  const [first] = children(
    expectTag(readDer(extension.value, EXTENSION_LIMITS), Tag.sequence, "BasicConstraints"),
  );
  return first?.tag === Tag.boolean && first.content[0] === 0xff;
}

/**
 * Whether KeyUsage (RFC 5280 §4.2.1.3) asserts `bit`; a certificate without the extension allows
 * every use, which is why callers that need it present check that too.
 */
export function hasKeyUsage(cert: ParsedCertificate, bit: number): boolean {
  const extension = findExtension(cert, OID_CE_KEY_USAGE);
  if (!extension) return true;
  const bits = expectTag(readDer(extension.value, EXTENSION_LIMITS), Tag.bitString, "KeyUsage").content;
  const byte = bits[1 + (bit >> 3)] ?? 0;
  return (byte & (0x80 >> (bit & 7))) !== 0;
}

/** The policy OIDs of certificatePolicies (RFC 5280 §4.2.1.4), qualifiers ignored. */
export function certificatePolicies(cert: ParsedCertificate): string[] {
  const extension = findExtension(cert, OID_CE_CERTIFICATE_POLICIES);
  if (!extension) return [];
  const list = children(
    expectTag(readDer(extension.value, EXTENSION_LIMITS), Tag.sequence, "certificatePolicies"),
  );
  return list.map((info) =>
    readOid(
      expectTag(children(expectTag(info, Tag.sequence, "PolicyInformation"))[0], Tag.oid, "policyIdentifier"),
    ),
  );
}

/** The purposes of ExtKeyUsage (RFC 5280 §4.2.1.12), or undefined when absent. */
export function extendedKeyUsages(cert: ParsedCertificate): string[] | undefined {
  const extension = findExtension(cert, OID_CE_EXT_KEY_USAGE);
  if (!extension) return undefined;
  return children(expectTag(readDer(extension.value, EXTENSION_LIMITS), Tag.sequence, "ExtKeyUsage")).map(
    readOid,
  );
}

function unknownCritical(cert: ParsedCertificate): CertificateExtension | undefined {
  return cert.extensions.find((e) => e.critical && !UNDERSTOOD_EXTENSIONS.has(e.oid));
}

export interface LoginCertificateRequirements {
  /** Policy OIDs accepted (any one of them must be asserted). */
  readonly policies: readonly string[];
  readonly now: Date;
}

/**
 * The checks of RFC 5280 §6.1.3 for a path of one certificate under `anchors`, and what a login
 * certificate must further be. Returns the anchor that issued it. In order:
 *
 *  1. issuer: a configured anchor whose subject is the certificate's issuer (§6.1.3 (a)(4)) and whose
 *     key verifies its signature (§6.1.3 (a)(1));
 *  2. validity: notBefore ≤ now ≤ notAfter, the anchor's too (§6.1.3 (a)(2));
 *  3. an end entity: not a CA (a CA certificate proves no person);
 *  4. no critical extension this validator does not understand (§6.1.4 (o), §4.2);
 *  5. KeyUsage present with digitalSignature (§4.2.1.3: the login signature is one) and without
 *     nonRepudiation (a signing certificate's key is not for logging in);
 *  6. one of the accepted certificate policies (§6.1.5 (g) with the policies as user-initial-policy-set).
 */
export function validateLoginCertificate(
  cert: ParsedCertificate,
  anchors: readonly TrustAnchor[],
  requirements: LoginCertificateRequirements,
): TrustAnchor {
  try {
    const candidates = anchors.filter((a) => a.certificate.subjectDer.equals(cert.issuerDer));
    const anchor = candidates.find((a) => verifyCertificateSignature(cert, a.certificate.spki));
    if (!anchor)
      throw new LoginRefusedError(
        "chain",
        candidates.length === 0
          ? "the certificate was not issued by the trusted JPKI user-authentication CA"
          : "the certificate's signature does not verify with the trusted CA's key",
      );
    const { now } = requirements;
    for (const [which, c] of [
      ["certificate", cert],
      ["trusted CA certificate", anchor.certificate],
    ] as const) {
      if (now < c.notBefore)
        throw new LoginRefusedError(
          "validity",
          `the ${which} is not valid before ${c.notBefore.toISOString()}`,
        );
      if (now > c.notAfter)
        throw new LoginRefusedError("validity", `the ${which} expired at ${c.notAfter.toISOString()}`);
    }
    if (isCa(cert)) throw new LoginRefusedError("key-usage", "a CA certificate cannot log a person in");
    const critical = unknownCritical(cert);
    if (critical)
      throw new LoginRefusedError(
        "chain",
        `the certificate has an unknown critical extension ${critical.oid}`,
      );
    if (!findExtension(cert, OID_CE_KEY_USAGE) || !hasKeyUsage(cert, KeyUsageBit.digitalSignature))
      throw new LoginRefusedError(
        "key-usage",
        "the certificate's key usage does not include digitalSignature",
      );
    // A signing certificate (署名用電子証明書) asserts nonRepudiation: its key makes signatures with
    // legal effect, and a login must not be a way to obtain one.
    if (hasKeyUsage(cert, KeyUsageBit.nonRepudiation))
      throw new LoginRefusedError(
        "key-usage",
        "the certificate is a signing certificate (nonRepudiation), not a user-authentication certificate",
      );
    const policies = certificatePolicies(cert);
    if (!policies.some((p) => requirements.policies.includes(p)))
      throw new LoginRefusedError(
        "policy",
        `the certificate's policy (${policies.join(", ") || "none"}) is not a JPKI user-authentication policy this relying party accepts`,
      );
    return anchor;
  } catch (error) {
    if (error instanceof DerError)
      throw new LoginRefusedError(
        "certificate",
        `the certificate's extensions are malformed: ${error.message}`,
        {
          cause: error,
        },
      );
    throw error;
  }
}
