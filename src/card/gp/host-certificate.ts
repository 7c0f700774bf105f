/**
 * An X.509 validator for the SCP11a host (OCE) certificate chain. GPC Amendment F §6 defines its own
 * certificate format; this emulation carries the project's P-256 X.509 profiles instead and keeps the
 * rule of Amd F §7.5: the chain, sent from below the trusted root (CA-KLOC) down to the OCE
 * certificate, must verify up to that root, and the leaf's key becomes PK.OCE.ECKA.
 */
import type { KeyObject } from "node:crypto";
import {
  findExtension,
  type ParsedCertificate,
  parseCertificate,
  verifyCertificateSignature,
} from "../../pki/certificate.js";
import { children, readDer, Tag } from "../../pki/der.js";
import { KeyUsageBit } from "../../pki/extensions.js";
import { OID_CE_BASIC_CONSTRAINTS, OID_CE_KEY_USAGE } from "../../pki/oids.js";
import { publicKeyFromSpki } from "../../pki/public-key.js";
import type { HostCertificateValidator } from "./scp11.js";

export class HostCertificateError extends Error {
  override readonly name = "HostCertificateError";
}

/** BasicConstraints cA TRUE (RFC 5280 §4.2.1.9). */
function isCa(cert: ParsedCertificate): boolean {
  const extension = findExtension(cert, OID_CE_BASIC_CONSTRAINTS);
  if (!extension) return false;
  const [first] = children(readDer(extension.value));
  return first?.tag === Tag.boolean && first.content[0] === 0xff;
}

/** Whether KeyUsage (RFC 5280 §4.2.1.3), when present, has bit `bit` set. */
function allowsKeyUsage(cert: ParsedCertificate, bit: number): boolean {
  const extension = findExtension(cert, OID_CE_KEY_USAGE);
  if (!extension) return true;
  const bits = readDer(extension.value).content;
  const byte = bits[1 + (bit >> 3)] ?? 0;
  return (byte & (0x80 >> (bit & 7))) !== 0;
}

/**
 * A HostCertificateValidator trusting `trustedRoots` (DER): each certificate is signed by the one
 * before it (the first by a trusted root), all are within their validity at `now`, the ones above the
 * leaf are CAs, and the leaf holds a P-256 key allowed for key agreement.
 */
export function x509HostCertificateValidator(options: {
  trustedRoots: readonly Buffer[];
  now?: () => Date;
}): HostCertificateValidator {
  const roots = options.trustedRoots.map((der) => parseCertificate(der));
  return (certificates) => {
    if (!certificates.length) throw new HostCertificateError("empty chain");
    const chain = certificates.map((der) => parseCertificate(der));
    const now = options.now?.() ?? new Date();
    let issuers: readonly ParsedCertificate[] = roots;
    chain.forEach((cert, i) => {
      const issuer = issuers.find((candidate) => candidate.subjectDer.equals(cert.issuerDer));
      if (!issuer || !verifyCertificateSignature(cert, issuer.spki))
        throw new HostCertificateError(`certificate ${i} is not signed by a trusted issuer`);
      if (now < cert.notBefore || now > cert.notAfter)
        throw new HostCertificateError(`certificate ${i} is outside its validity period`);
      if (i < chain.length - 1 && !isCa(cert)) throw new HostCertificateError(`certificate ${i} is not a CA`);
      issuers = [cert];
    });
    const leaf = chain[chain.length - 1]!;
    if (!allowsKeyUsage(leaf, KeyUsageBit.keyAgreement))
      throw new HostCertificateError("the host certificate does not allow key agreement");
    const key: KeyObject = publicKeyFromSpki(leaf.spki);
    if (key.asymmetricKeyDetails?.namedCurve !== "prime256v1")
      throw new HostCertificateError("the host key is not P-256");
    return key;
  };
}
