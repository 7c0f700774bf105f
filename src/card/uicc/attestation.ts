/**
 * Key attestation: the SIM's J-LIS security domain vouches that a key pair was generated inside this
 * SIM's JPKI applet. The statement is signed with the security domain's P-256 key, whose certificate
 * comes from the SIM maker's attestation CA, so J-LIS can check it offline, also when it travels
 * inside a citizen's application.
 *
 *   KeyAttestation ::= SEQUENCE {
 *     statement           KeyAttestationStatement,
 *     signatureAlgorithm  AlgorithmIdentifier,        -- ecdsa-with-SHA256
 *     signature           BIT STRING }                -- by SK.SD (the security domain's key)
 *
 *   KeyAttestationStatement ::= SEQUENCE {
 *     version             INTEGER (1),
 *     publicKeySha256     OCTET STRING (SIZE (32)),   -- over the SubjectPublicKeyInfo DER
 *     iccid               PrintableString,
 *     eid                 PrintableString,
 *     instanceAid         OCTET STRING,               -- the applet instance's AID
 *     instanceId          OCTET STRING (SIZE (16)),   -- drawn when the instance was installed
 *     keyReference        INTEGER,                    -- 0x17 user authentication, 0x1A signing
 *     nonce               OCTET STRING }              -- the caller's, 8 to 64 bytes
 */
import { createHash, type KeyObject, sign, verify } from "node:crypto";
import { JpkiError } from "../../errors.js";
import { assembleSigned, OID_ECDSA_WITH_SHA256, signatureAlgorithmIdentifier } from "../../pki/algorithms.js";
import { parseCertificate, readAlgorithmIdentifier } from "../../pki/certificate.js";
import {
  children,
  DerError,
  expectTag,
  integer,
  octetString,
  printableString,
  readDer,
  readInteger,
  readString,
  sequence,
  Tag,
} from "../../pki/der.js";
import { publicKeyFromSpki } from "../../pki/public-key.js";

export interface KeyAttestationStatement {
  publicKeySha256: Buffer;
  iccid: string;
  eid: string;
  instanceAid: Buffer;
  instanceId: Buffer;
  keyReference: number;
  nonce: Buffer;
}

/** Nonce sizes a caller may use. */
export const ATTESTATION_NONCE_LENGTH = { min: 8, max: 64 } as const;

export const spkiSha256 = (spki: Uint8Array): Buffer => createHash("sha256").update(spki).digest();

function encodeStatement(s: KeyAttestationStatement): Buffer {
  return sequence(
    integer(1),
    octetString(s.publicKeySha256),
    printableString(s.iccid),
    printableString(s.eid),
    octetString(s.instanceAid),
    octetString(s.instanceId),
    integer(s.keyReference),
    octetString(s.nonce),
  );
}

/** The card's side: the signed attestation of `statement` with the security domain's private key. */
export function signKeyAttestation(statement: KeyAttestationStatement, sdKey: KeyObject): Buffer {
  const tbs = encodeStatement(statement);
  const signature = sign("sha256", tbs, { key: sdKey, dsaEncoding: "der" });
  return assembleSigned(tbs, signatureAlgorithmIdentifier("ec-p256"), signature);
}

function parseStatement(der: Buffer): KeyAttestationStatement {
  const fields = children(expectTag(readDer(der), Tag.sequence, "KeyAttestationStatement"));
  if (fields.length !== 8) throw new DerError("KeyAttestationStatement has 8 fields");
  const octets = (i: number, what: string) => expectTag(fields[i], Tag.octetString, what).content;
  if (readInteger(fields[0]!) !== 1n) throw new DerError("unknown KeyAttestation version");
  const keyReference = readInteger(fields[6]!);
  if (keyReference < 0n || keyReference > 0xffn) throw new DerError("keyReference out of range");
  return {
    publicKeySha256: Buffer.from(octets(1, "publicKeySha256")),
    iccid: readString(fields[2]!),
    eid: readString(fields[3]!),
    instanceAid: Buffer.from(octets(4, "instanceAid")),
    instanceId: Buffer.from(octets(5, "instanceId")),
    keyReference: Number(keyReference),
    nonce: Buffer.from(octets(7, "nonce")),
  };
}

/**
 * The verifier's side (J-LIS): checks the attestation's signature with the security domain's
 * certificate (`sdCertificate`, DER; its chain to a trusted SIM maker is the caller's check) and that
 * it covers `spki`. Returns the statement; throws JpkiError("bad-input") otherwise.
 */
export function verifyKeyAttestation(
  attestation: Buffer,
  spki: Buffer,
  sdCertificate: Buffer,
): KeyAttestationStatement {
  const refuse = (reason: string, cause?: unknown): never => {
    throw new JpkiError("bad-input", `the key attestation is not valid: ${reason}`, { cause });
  };
  let statement: KeyAttestationStatement;
  let tbs: Buffer;
  let signature: Buffer;
  try {
    const [statementNode, algorithm, signatureNode, ...rest] = children(
      expectTag(readDer(attestation, { maxBytes: 4096, maxDepth: 4 }), Tag.sequence, "KeyAttestation"),
    );
    if (rest.length) throw new DerError("KeyAttestation has 3 fields");
    if (readAlgorithmIdentifier(algorithm, "signatureAlgorithm") !== OID_ECDSA_WITH_SHA256)
      throw new DerError("the signature algorithm is not ecdsa-with-SHA256");
    const bits = expectTag(signatureNode, Tag.bitString, "signature").content;
    if (bits[0] !== 0) throw new DerError("signature BIT STRING with unused bits");
    tbs = expectTag(statementNode, Tag.sequence, "statement").encoded;
    signature = bits.subarray(1);
    statement = parseStatement(tbs);
  } catch (error) {
    return refuse("malformed", error);
  }
  let sdKey: KeyObject;
  try {
    sdKey = publicKeyFromSpki(parseCertificate(sdCertificate).spki);
  } catch (error) {
    return refuse("the security domain certificate is unreadable", error);
  }
  let valid = false;
  try {
    valid = verify("sha256", tbs, { key: sdKey, dsaEncoding: "der" }, signature);
  } catch {
    valid = false;
  }
  if (!valid) refuse("the signature does not verify with the security domain's certificate");
  if (!statement.publicKeySha256.equals(spkiSha256(spki))) refuse("it attests another public key");
  return statement;
}
