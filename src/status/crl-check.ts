/**
 * A signed CRL read back before it is published: nothing leaves the publisher that does not parse as
 * a CertificateList (RFC 5280 §5.1), carry exactly the TBSCertList that was built, and verify with the
 * CA certificate's public key. The signer verifies its own signatures too (except where the key's
 * device already does), but this check is independent of the key and of the signer's code path: it
 * would also catch a signer that assembled the wrong bytes around a good signature.
 */
import { type KeyObject, verify } from "node:crypto";
import { readTbsCertList } from "../ca/tbs.js";
import { JpkiError } from "../errors.js";
import { OID_ECDSA_WITH_SHA256, OID_SHA256_WITH_RSA } from "../pki/algorithms.js";
import { children, DerError, type DerNode, expectTag, readOid, readTlvAt, Tag } from "../pki/der.js";

export interface CheckedCrl {
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Entries in revokedCertificates, counted by walking its TLVs. */
  readonly entries: number;
}

/** What the CRL must be: the TBSCertList that was signed, and how many entries it holds. */
export interface ExpectedCrl {
  readonly tbs: Buffer;
  readonly entries: number;
}

/** The three fields of `SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }` (§5.1.1). */
interface CertificateListParts {
  tbs: DerNode;
  signatureAlgorithm: DerNode;
  signature: Buffer;
}

/**
 * Reads the envelope only: a CRL shard may hold 200,000 entries (JPKI-FACTS §4), so the TBSCertList is
 * framed, not decoded entry by entry (its bytes are compared with what was built instead).
 */
function readCertificateList(der: Buffer): CertificateListParts {
  const root = expectTag(readTlvAt(der, 0), Tag.sequence, "CertificateList");
  if (root.end !== der.length) throw new DerError("trailing bytes after the CertificateList");
  const parts = children(root);
  if (parts.length !== 3) throw new DerError("a CertificateList has exactly three fields");
  const [tbs, signatureAlgorithm, signatureValue] = parts as [DerNode, DerNode, DerNode];
  expectTag(tbs, Tag.sequence, "tbsCertList");
  expectTag(signatureAlgorithm, Tag.sequence, "signatureAlgorithm");
  const bits = expectTag(signatureValue, Tag.bitString, "signatureValue").content;
  if (bits.length < 2 || bits[0] !== 0) throw new DerError("signatureValue must be whole octets");
  return { tbs, signatureAlgorithm, signature: bits.subarray(1) };
}

/** Counts the entries of revokedCertificates (§5.1.2.6), the TBS's SEQUENCE after its times, if any. */
function countEntries(tbs: DerNode): number {
  const fields = children(tbs);
  const times = fields.findIndex((f) => f.tag === Tag.utcTime || f.tag === Tag.generalizedTime);
  let i = times + 1;
  if (fields[i]?.tag === Tag.utcTime || fields[i]?.tag === Tag.generalizedTime) i++; // nextUpdate
  const list = fields[i];
  if (list?.tag !== Tag.sequence) return 0;
  let count = 0;
  let offset = list.contentStart;
  while (offset < list.end) {
    const entry = expectTag(readTlvAt(list.input, offset), Tag.sequence, "revokedCertificates entry");
    offset = entry.end;
    count++;
  }
  if (offset !== list.end) throw new DerError("an entry runs past revokedCertificates");
  return count;
}

/** Entries of a DER CertificateList, counted without decoding them. */
export function countCrlEntries(der: Buffer): number {
  return countEntries(readCertificateList(der).tbs);
}

/**
 * Parses `der` as a CertificateList and checks it against what was built and signed: same TBS bytes,
 * the outer signatureAlgorithm equal to the TBS's signature field (§5.1.1.2), sha256WithRSAEncryption
 * or ecdsa-with-SHA256 matching the CA key's type, a signature that verifies with `caKey`, and the
 * expected number of entries. Throws JpkiError("integrity") naming what is wrong.
 */
export function checkSignedCrl(der: Buffer, expected: ExpectedCrl, caKey: KeyObject): CheckedCrl {
  const fail = (why: string, cause?: unknown): never => {
    throw new JpkiError("integrity", `the signed CRL is not publishable: ${why}`, { cause });
  };
  let parts: CertificateListParts;
  let fields: ReturnType<typeof readTbsCertList>;
  let entries: number;
  try {
    parts = readCertificateList(der);
    fields = readTbsCertList(parts.tbs.encoded);
    entries = countEntries(parts.tbs);
  } catch (error) {
    if (error instanceof DerError) return fail(error.message, error);
    throw error;
  }
  if (!parts.tbs.encoded.equals(expected.tbs)) fail("its tbsCertList is not the one that was built");
  if (!parts.signatureAlgorithm.encoded.equals(fields.signature))
    fail("signatureAlgorithm differs from the tbsCertList's signature field (RFC 5280 §5.1.1.2)");
  const algorithm = readOid(children(parts.signatureAlgorithm)[0]!);
  const keyType = algorithm === OID_SHA256_WITH_RSA ? "rsa" : algorithm === OID_ECDSA_WITH_SHA256 ? "ec" : "";
  if (keyType !== caKey.asymmetricKeyType)
    fail(`signature algorithm ${algorithm} does not fit the CA's ${caKey.asymmetricKeyType} key`);
  if (!verify("sha256", parts.tbs.encoded, { key: caKey, dsaEncoding: "der" }, parts.signature))
    fail("its signature does not verify with the CA certificate's key");
  if (entries !== expected.entries) fail(`it holds ${entries} entries, ${expected.entries} were built`);
  return { thisUpdate: fields.thisUpdate, nextUpdate: fields.nextUpdate, entries };
}
