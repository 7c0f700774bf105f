/**
 * Minimal to-be-signed structures for the signer's tests, written with der.ts as their ASN.1 reads
 * (RFC 5280 §4.1 and §5.1, RFC 6960 §4.2.1). Not profiles: src/pki builds the real ones.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { type KeyAlgorithm, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import {
  boolean,
  enumerated,
  explicit,
  generalizedTime,
  integer,
  NULL,
  namedBits,
  octetString,
  oid,
  printableString,
  sequence,
  setOf,
  utf8String,
  x509Time,
} from "../pki/der.js";
import { keyIdentifier } from "../pki/extensions.js";

export const execFileAsync = promisify(execFile);

/** Runs openssl and returns stdout + stderr (openssl prints "OK" lines on either). */
export async function openssl(args: string[]): Promise<string> {
  const { stdout, stderr } = await execFileAsync("openssl", args, { encoding: "utf8" });
  return stdout + stderr;
}

export function testName(commonName: string): Buffer {
  return sequence(
    setOf(sequence(oid("2.5.4.6"), printableString("JP"))),
    setOf(sequence(oid("2.5.4.10"), utf8String("JPKI TEST"))),
    setOf(sequence(oid("2.5.4.3"), utf8String(commonName))),
  );
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

export interface TbsOptions {
  serial: bigint;
  algorithm: KeyAlgorithm;
  issuer: Buffer;
  subject: Buffer;
  subjectSpki: Buffer;
  issuerSpki: Buffer;
  kind: "ca" | "leaf" | "ocsp";
  notBefore?: Date;
  notAfter?: Date;
  /** Overrides the signature AlgorithmIdentifier (to test refusals). */
  signatureAlgorithm?: Buffer;
}

/** A v3 TBSCertificate with BasicConstraints, KeyUsage, key identifiers and, for "ocsp", the EKU. */
export function tbsCertificate(options: TbsOptions): Buffer {
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
  const extensions = [
    extension("2.5.29.19", true, options.kind === "ca" ? sequence(boolean(true)) : sequence()),
    // keyCertSign (5) + cRLSign (6) for a CA; digitalSignature (0) otherwise.
    extension("2.5.29.15", true, namedBits(options.kind === "ca" ? [5, 6] : [0])),
    extension("2.5.29.14", false, octetString(keyIdentifier(options.subjectSpki))),
    extension(
      "2.5.29.35",
      false,
      sequence(Buffer.concat([Buffer.from([0x80, 20]), keyIdentifier(options.issuerSpki)])),
    ),
  ];
  if (options.kind === "ocsp") {
    extensions.push(extension("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.9"))));
    extensions.push(extension("1.3.6.1.5.5.7.48.1.5", false, NULL)); // id-pkix-ocsp-nocheck
  }
  return sequence(
    explicit(0, integer(2)),
    integer(options.serial),
    options.signatureAlgorithm ?? signatureAlgorithmIdentifier(options.algorithm),
    options.issuer,
    sequence(x509Time(notBefore), x509Time(notAfter)),
    options.subject,
    options.subjectSpki,
    explicit(3, sequence(...extensions)),
  );
}

/** A v2 TBSCertList revoking `serials` (reason omitted), with a CRLNumber extension. */
export function tbsCertList(options: {
  algorithm: KeyAlgorithm;
  issuer: Buffer;
  serials: bigint[];
  signatureAlgorithm?: Buffer;
}): Buffer {
  const now = new Date();
  const entries = options.serials.map((serial) => sequence(integer(serial), x509Time(now)));
  return sequence(
    integer(1),
    options.signatureAlgorithm ?? signatureAlgorithmIdentifier(options.algorithm),
    options.issuer,
    x509Time(now),
    x509Time(new Date(now.getTime() + 86_400_000)),
    ...(entries.length ? [sequence(...entries)] : []),
    explicit(0, sequence(extension("2.5.29.20", false, integer(1)))),
  );
}

/**
 * ResponseData answering "good" for `serial` of the CA (`caName`, `caSpki`), CertID with SHA-1
 * (RFC 6960 §4.1.1), responderID byKey.
 */
export function responseData(options: {
  responderSpki: Buffer;
  caName: Buffer;
  caSpki: Buffer;
  serial: bigint;
  byName?: Buffer;
}): Buffer {
  const sha1 = (data: Buffer) => createHash("sha1").update(data).digest();
  const now = new Date();
  now.setUTCMilliseconds(0);
  const certId = sequence(
    sequence(oid("1.3.14.3.2.26"), NULL),
    octetString(sha1(options.caName)),
    octetString(keyIdentifier(options.caSpki)), // KeyHash: SHA-1 of the key bits, as method (1) of §4.2.1.2
    integer(options.serial),
  );
  const good = Buffer.from([0x80, 0x00]); // certStatus good [0] IMPLICIT NULL
  const single = sequence(
    certId,
    good,
    generalizedTime(now),
    explicit(0, generalizedTime(new Date(now.getTime() + 3_600_000))),
  );
  const responderId = options.byName
    ? explicit(1, options.byName)
    : explicit(2, octetString(keyIdentifier(options.responderSpki)));
  return sequence(responderId, generalizedTime(now), sequence(single));
}

/** OCSPResponse { successful, responseBytes { id-pkix-ocsp-basic, BasicOCSPResponse } } (RFC 6960 §4.2.1). */
export function ocspResponse(basic: Buffer): Buffer {
  return sequence(enumerated(0), explicit(0, sequence(oid("1.3.6.1.5.5.7.48.1.1"), octetString(basic))));
}
