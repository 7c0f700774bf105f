/**
 * CMS SignedData against independent implementations: what we build is verified by `openssl cms
 * -verify`, GnuTLS `certtool --p7-verify` and NSS `cmsutil -D`, each with the signing CA as the only
 * trust anchor; what `openssl cms -sign` makes is verified by ours. Every tampering is refused with
 * its own reason.
 */
import * as assert from "node:assert/strict";
import { createHash, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { JpkiError } from "../errors.js";
import { createNssDb, nssTrustRoot, runTool, withTempDir, writeCertificate } from "../testing/tools.js";
import { OID_SHA256_WITH_RSA } from "./algorithms.js";
import { parseCertificate } from "./certificate.js";
import {
  buildSignedData,
  InvalidSignedDataError,
  type SignedDataFault,
  type SignedDataInput,
  sha256DigestInfo,
  softwareDigestInfoSigner,
  verifySignedData,
} from "./cms.js";
import {
  explicit,
  generalizedTime,
  integer,
  NULL,
  octetString,
  oid,
  sequence,
  setOf,
  tlv,
  utcTime,
} from "./der.js";
import {
  OID_AA_CONTENT_TYPE,
  OID_AA_MESSAGE_DIGEST,
  OID_AA_SIGNING_TIME,
  OID_CT_DATA,
  OID_CT_SIGNED_DATA,
  OID_RSA_ENCRYPTION,
  OID_SHA256,
} from "./oids.js";
import { pemEncode } from "./pem.js";
import { buildTestHierarchy } from "./test-hierarchy.js";

const h = buildTestHierarchy();
const citizenKey = h.keys.citizen.privateKey;
const signingTime = new Date("2026-11-25T09:30:00Z");
const content = Buffer.from('{"application":"smartphone JPKI","nonce":"00112233"}\n');
/** A content type of this test only: 2.25 is the UUID arc (X.667), free for anyone to use. */
const OTHER_CONTENT_TYPE = "2.25.329800735698586629295641978511506172918";

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();

function input(overrides: Partial<SignedDataInput> = {}): SignedDataInput {
  return {
    content,
    signerCertificate: h.cardSign,
    certificates: [h.signCa],
    signingTime,
    sign: softwareDigestInfoSigner(citizenKey),
    ...overrides,
  };
}

function assertRefused(der: Buffer, fault: SignedDataFault, reason: RegExp): void {
  assert.throws(
    () => verifySignedData(der),
    (error: unknown) => {
      assert.ok(error instanceof InvalidSignedDataError, `not the typed error: ${error}`);
      assert.equal(error.code, "bad-input");
      assert.equal(error.fault, fault, error.message);
      assert.match(error.message, reason);
      return true;
    },
  );
}

/** `openssl cms -verify` with the signing CA alone; returns the exit code and the content it wrote. */
function opensslCmsVerify(der: Buffer): { code: number; content: Buffer; stderr: string } {
  return withTempDir((dir) => {
    const ca = writeCertificate(dir, "ca", h.signCa);
    writeFileSync(join(dir, "in.der"), der);
    const out = join(dir, "out");
    const result = runTool("openssl", [
      "cms",
      "-verify",
      "-inform",
      "DER",
      "-binary",
      "-no-CApath",
      "-no-CAstore",
      "-CAfile",
      ca.pem,
      "-in",
      join(dir, "in.der"),
      "-out",
      out,
    ]);
    return {
      code: result.code,
      content: result.code === 0 ? readFileSync(out) : Buffer.alloc(0),
      stderr: result.stderr,
    };
  });
}

/** `openssl cms -sign` with the citizen's key and certificate (`extra` adds options). */
function opensslCmsSign(data: Buffer, extra: readonly string[] = []): Buffer {
  return withTempDir((dir) => {
    const cert = writeCertificate(dir, "cert", h.cardSign);
    writeFileSync(join(dir, "key.pem"), citizenKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(join(dir, "ca.pem"), pemEncode(h.signCa));
    writeFileSync(join(dir, "data"), data);
    const args = ["cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER"];
    args.push("-signer", cert.pem, "-inkey", join(dir, "key.pem"), "-in", join(dir, "data"));
    args.push("-out", join(dir, "out.der"), ...extra.map((a) => a.replace("{ca}", join(dir, "ca.pem"))));
    const result = runTool("openssl", args);
    assert.equal(result.code, 0, result.stderr);
    return readFileSync(join(dir, "out.der"));
  });
}

describe("DigestInfo", () => {
  test("SHA-256 DigestInfo is the prefix of JPKI-FACTS §1 (RFC 8017 §9.2 note 1) followed by the hash", () => {
    const hash = sha256(Buffer.from("abc"));
    assert.deepEqual(
      sha256DigestInfo(hash),
      Buffer.concat([hex("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"), hash]),
    );
    assert.throws(() => sha256DigestInfo(Buffer.alloc(20)), RangeError);
  });

  test("the software signer is what the card does: PKCS#1 v1.5 type 01 over the DigestInfo", async () => {
    const digestInfo = sha256DigestInfo(sha256(content));
    const signature = await softwareDigestInfoSigner(citizenKey)(digestInfo);
    const { sign } = await import("node:crypto");
    assert.deepEqual(signature, sign("sha256", content, citizenKey));
  });
});

describe("buildSignedData", () => {
  test("the encoding: ContentInfo of id-signedData, version 1, attributes in DER order", async () => {
    const der = await buildSignedData(input());
    // ContentInfo ::= SEQUENCE { 06 09 2A 86 48 86 F7 0D 01 07 02 (id-signedData), [0] ... }
    assert.deepEqual(der.subarray(4, 17), hex("06 09 2A 86 48 86 F7 0D 01 07 02 A0 82"));
    // SignedData ::= SEQUENCE { INTEGER 1, SET { SEQUENCE { id-sha256 } } (parameters absent, RFC 5754 §2) ...
    assert.deepEqual(der.subarray(23, 41), hex("02 01 01 31 0D 30 0B 06 09 60 86 48 01 65 03 04 02 01"));
    // The signed attributes, sorted (X.690 §11.6): contentType (id-data), signingTime, messageDigest.
    const contentTypeAttribute = hex(
      "30 18 06 09 2A 86 48 86 F7 0D 01 09 03 31 0B 06 09 2A 86 48 86 F7 0D 01 07 01",
    );
    const signingTimeAttribute = hex(
      "30 1C 06 09 2A 86 48 86 F7 0D 01 09 05 31 0F 17 0D 32 36 31 31 32 35 30 39 33 30 30 30 5A",
    );
    const digestAttribute = Buffer.concat([
      hex("30 2F 06 09 2A 86 48 86 F7 0D 01 09 04 31 22 04 20"),
      sha256(content),
    ]);
    const signedAttrs = Buffer.concat([
      hex("A0 69"),
      contentTypeAttribute,
      signingTimeAttribute,
      digestAttribute,
    ]);
    assert.ok(der.includes(signedAttrs), "signedAttrs [0] IMPLICIT with the three attributes in order");
    // signatureAlgorithm rsaEncryption with NULL (RFC 3370 §3.2), then the 256-byte signature.
    assert.ok(der.includes(hex("30 0D 06 09 2A 86 48 86 F7 0D 01 01 01 05 00 04 82 01 00")));
    const verified = verifySignedData(der);
    assert.deepEqual(verified.content, content);
    assert.equal(verified.contentType, OID_CT_DATA);
    assert.deepEqual(verified.signerCertificate, h.cardSign);
    assert.equal(verified.certificates.length, 2);
    assert.deepEqual(verified.signingTime, signingTime);
    assert.equal(verified.digestAlgorithm, OID_SHA256);
    assert.equal(verified.signatureAlgorithm, OID_RSA_ENCRYPTION);
  });

  test("the signature covers the attributes as a SET OF (31), not as [0] IMPLICIT (RFC 5652 §5.4)", async () => {
    let signed: Buffer | undefined;
    const der = await buildSignedData(
      input({
        sign: async (digestInfo) => {
          signed = digestInfo;
          return softwareDigestInfoSigner(citizenKey)(digestInfo);
        },
      }),
    );
    const start = der.indexOf(hex("A0 69 30 18"));
    const asSet = Buffer.concat([hex("31"), der.subarray(start + 1, start + 2 + 0x69)]);
    assert.deepEqual(signed, sha256DigestInfo(sha256(asSet)));
  });

  test("OpenSSL verifies it against the signing CA and prints our content", async () => {
    const der = await buildSignedData(input());
    const result = opensslCmsVerify(der);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Verification successful/);
    assert.deepEqual(result.content, content);
    // The signer certificate alone is enough: OpenSSL finds the CA in -CAfile.
    const alone = opensslCmsVerify(await buildSignedData(input({ certificates: [] })));
    assert.equal(alone.code, 0, alone.stderr);
  });

  test("OpenSSL verifies a content type other than id-data (SignedData version 3, RFC 5652 §5.1)", async () => {
    const der = await buildSignedData(input({ contentType: OTHER_CONTENT_TYPE }));
    assert.deepEqual(der.subarray(23, 26), hex("02 01 03"));
    const result = opensslCmsVerify(der);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.content, content);
    assert.equal(verifySignedData(der).contentType, OTHER_CONTENT_TYPE);
  });

  test("GnuTLS certtool --p7-verify accepts it with the signing CA", async () => {
    const der = await buildSignedData(input());
    withTempDir((dir) => {
      const ca = writeCertificate(dir, "ca", h.signCa);
      writeFileSync(join(dir, "in.der"), der);
      const args = ["--p7-verify", "--inder", "--infile", join(dir, "in.der")];
      const result = runTool("certtool", [...args, "--load-ca-certificate", ca.pem, "--p7-show-data"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout + result.stderr, /Signature status: ok/);
      assert.ok(result.stdout.includes(content.toString()), result.stdout);
      // A flipped signature bit is caught by GnuTLS too, so the check above means something.
      const bad = Buffer.from(der);
      bad[bad.length - 5]! ^= 1;
      writeFileSync(join(dir, "in.der"), bad);
      assert.notEqual(runTool("certtool", [...args, "--load-ca-certificate", ca.pem]).code, 0);
    });
  });

  test("NSS cmsutil -D decodes and verifies it with the signing CA trusted", async () => {
    const der = await buildSignedData(input());
    withTempDir((dir) => {
      const db = createNssDb(join(dir));
      nssTrustRoot(db, h.signCa, "ca", "C,C,C");
      writeFileSync(join(dir, "in.der"), der);
      const decode = (file: string) =>
        runTool("cmsutil", ["-D", "-d", db, "-i", file, "-o", join(dir, "out")]);
      const result = decode(join(dir, "in.der"));
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(readFileSync(join(dir, "out")), content);
      const bad = Buffer.from(der);
      bad[bad.length - 5]! ^= 1;
      writeFileSync(join(dir, "bad.der"), bad);
      assert.match(decode(join(dir, "bad.der")).stderr, /BAD_SIGNATURE/);
    });
  });

  test("refuses a signature made with another key, and signers without an RSA key", async () => {
    await assert.rejects(
      buildSignedData(input({ sign: softwareDigestInfoSigner(h.keys.signCa.privateKey) })),
      (error: unknown) =>
        error instanceof JpkiError && error.code === "bad-input" && /does not verify/.test(error.message),
    );
    await assert.rejects(
      buildSignedData(input({ signerCertificate: h.simAttestation })),
      (error: unknown) =>
        error instanceof JpkiError && /ec .*RSA of 2048 bits is required/.test(error.message),
    );
    await assert.rejects(
      buildSignedData(input({ signerCertificate: Buffer.from("3000", "hex") })),
      JpkiError,
    );
    await assert.rejects(buildSignedData(input({ signingTime: new Date(Number.NaN) })), /signingTime/);
  });
});

describe("verifySignedData with OpenSSL's CMS", () => {
  test("reads and verifies `openssl cms -sign -nodetach -binary -md sha256`", () => {
    for (const extra of [["-nodetach"], ["-nodetach", "-certfile", "{ca}"], ["-nodetach", "-nosmimecap"]]) {
      const verified = verifySignedData(opensslCmsSign(content, extra));
      assert.deepEqual(verified.content, content, extra.join(" "));
      assert.deepEqual(verified.signerCertificate, h.cardSign);
      assert.equal(verified.certificates.length, extra.includes("-certfile") ? 2 : 1);
      assert.equal(verified.contentType, OID_CT_DATA);
      assert.ok(Math.abs(verified.signingTime.getTime() - Date.now()) < 120_000);
    }
  });

  test("refuses what OpenSSL makes outside the profile, saying what", () => {
    assertRefused(opensslCmsSign(content), "unsupported", /detached/);
    assertRefused(
      opensslCmsSign(content, ["-nodetach", "-noattr"]),
      "unsupported",
      /signedAttrs are missing/,
    );
    assertRefused(opensslCmsSign(content, ["-nodetach", "-keyid"]), "unsupported", /subjectKeyIdentifier/);
    // -stream writes BER with indefinite lengths (X.690 §8.1.3.6), which DER forbids.
    assertRefused(opensslCmsSign(content, ["-nodetach", "-stream"]), "malformed", /indefinite length/);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-made SignedData for the faults an honest encoder never writes

const attribute = (type: string, ...values: Buffer[]) => sequence(oid(type), setOf(...values));
const retag = (der: Buffer, tag: number) => Buffer.concat([Buffer.from([tag]), der.subarray(1)]);
const SHA256_ALGORITHM = sequence(oid(OID_SHA256));

interface HandMade {
  content?: Buffer;
  eContentType?: string;
  version?: number;
  attributes?: Buffer[];
  /** Attributes as given, not sorted. */
  unsorted?: boolean;
  key?: KeyObject;
  signatureAlgorithm?: Buffer;
  certificates?: Buffer[];
  signerInfos?: number;
  trailer?: Buffer[];
}

/** A SignedData assembled field by field with the DER writer, signed with the software signer. */
async function handMade(o: HandMade = {}): Promise<Buffer> {
  const data = o.content ?? content;
  const eContentType = o.eContentType ?? OID_CT_DATA;
  const attributes = o.attributes ?? [
    attribute(OID_AA_CONTENT_TYPE, oid(eContentType)),
    attribute(OID_AA_SIGNING_TIME, utcTime(signingTime)),
    attribute(OID_AA_MESSAGE_DIGEST, octetString(sha256(data))),
  ];
  const set = o.unsorted ? tlv(0x31, Buffer.concat(attributes)) : setOf(...attributes);
  const signature = await softwareDigestInfoSigner(o.key ?? citizenKey)(sha256DigestInfo(sha256(set)));
  const cert = parseCertificate(h.cardSign);
  const signerInfo = sequence(
    integer(1),
    sequence(cert.issuerDer, integer(cert.serial)),
    SHA256_ALGORITHM,
    retag(set, 0xa0),
    o.signatureAlgorithm ?? sequence(oid(OID_RSA_ENCRYPTION), NULL),
    octetString(signature),
    ...(o.trailer ?? []),
  );
  const signedData = sequence(
    integer(o.version ?? (eContentType === OID_CT_DATA ? 1 : 3)),
    setOf(SHA256_ALGORITHM),
    sequence(oid(eContentType), explicit(0, octetString(data))),
    retag(setOf(...(o.certificates ?? [h.cardSign])), 0xa0),
    setOf(...Array.from({ length: o.signerInfos ?? 1 }, () => signerInfo)),
  );
  return sequence(oid(OID_CT_SIGNED_DATA), explicit(0, signedData));
}

describe("verifySignedData refuses every tampering, with a clear reason", () => {
  test("the hand-made baseline verifies (so each refusal below is the fault's doing)", async () => {
    assert.deepEqual(verifySignedData(await handMade()).content, content);
    const asSha256WithRsa = await handMade({ signatureAlgorithm: sequence(oid(OID_SHA256_WITH_RSA), NULL) });
    assert.equal(verifySignedData(asSha256WithRsa).signatureAlgorithm, OID_SHA256_WITH_RSA);
    assert.equal(opensslCmsVerify(asSha256WithRsa).code, 0);
  });

  test("a changed content byte: messageDigest mismatch", async () => {
    const der = await buildSignedData(input());
    const at = der.indexOf(content);
    der[at + 3]! ^= 0x01;
    assertRefused(der, "digest-mismatch", /messageDigest attribute is not the SHA-256 of the content/);
    assert.notEqual(opensslCmsVerify(der).code, 0);
  });

  test("a changed signed attribute (the signing time): bad signature", async () => {
    const der = await buildSignedData(input());
    const at = der.indexOf(hex("17 0D 32 36 31 31 32 35"));
    der[at + 9]! = 0x31; // 2026-11-25 → 2026-11-15
    assertRefused(der, "bad-signature", /does not verify with the signer certificate's public key/);
  });

  test("the signer certificate's key with other rsaEncryption parameters: refused, though OpenSSL reads the same key", async () => {
    const der = await buildSignedData(input());
    // The signer's SPKI is the last rsaEncryption AlgorithmIdentifier before the SignerInfos.
    const spkiAlgorithm = hex("06 09 2A 86 48 86 F7 0D 01 01 01 05 00");
    const at = der.lastIndexOf(spkiAlgorithm, der.indexOf(h.cardSign.subarray(-64)));
    assert.ok(at > 0);
    for (const tag of [0x07, 0x30, 0x80]) {
      const changed = Buffer.from(der);
      changed[at + 11] = tag; // NULL (05 00) becomes another empty value
      assertRefused(changed, "unsupported", /not encoded as rsaEncryption with NULL parameters/);
    }
  });

  test("a changed signature bit: bad signature", async () => {
    const der = await buildSignedData(input());
    der[der.length - 1]! ^= 0x80;
    assertRefused(der, "bad-signature", /signature does not verify/);
  });

  test("a messageDigest that does not match, correctly signed: digest mismatch", async () => {
    const der = await handMade({
      attributes: [
        attribute(OID_AA_CONTENT_TYPE, oid(OID_CT_DATA)),
        attribute(OID_AA_SIGNING_TIME, utcTime(signingTime)),
        attribute(OID_AA_MESSAGE_DIGEST, octetString(sha256(Buffer.from("another application")))),
      ],
    });
    assertRefused(der, "digest-mismatch", /messageDigest/);
    assert.notEqual(opensslCmsVerify(der).code, 0);
  });

  test("a contentType attribute that differs from eContentType, correctly signed", async () => {
    const der = await handMade({
      eContentType: OTHER_CONTENT_TYPE,
      attributes: [
        attribute(OID_AA_CONTENT_TYPE, oid(OID_CT_DATA)),
        attribute(OID_AA_SIGNING_TIME, utcTime(signingTime)),
        attribute(OID_AA_MESSAGE_DIGEST, octetString(sha256(content))),
      ],
    });
    assertRefused(der, "content-type-mismatch", /contentType attribute 1\.2\.840\.113549\.1\.7\.1 differs/);
  });

  test("the wrong certificate: another serial is not the signer; the right serial with another key fails", async () => {
    assertRefused(
      await handMade({ certificates: [h.phoneSign] }),
      "signer-not-found",
      /no embedded certificate/,
    );
    assertRefused(await handMade({ key: h.keys.ocsp.privateKey }), "bad-signature", /does not verify/);
    assertRefused(
      await handMade({ certificates: [h.cardSign, h.cardSign] }),
      "signer-not-found",
      /two embedded certificates have the SignerInfo's issuer and serial number/,
    );
  });

  test("attributes out of DER order, missing, repeated or multi-valued", async () => {
    const ct = attribute(OID_AA_CONTENT_TYPE, oid(OID_CT_DATA));
    const time = attribute(OID_AA_SIGNING_TIME, utcTime(signingTime));
    const digest = attribute(OID_AA_MESSAGE_DIGEST, octetString(sha256(content)));
    assertRefused(
      await handMade({ attributes: [digest, ct, time], unsorted: true }),
      "malformed",
      /signedAttrs: SET OF elements are not in DER order/,
    );
    assertRefused(
      await handMade({ attributes: [ct, time] }),
      "malformed",
      /messageDigest attribute is missing/,
    );
    assertRefused(
      await handMade({ attributes: [time, digest] }),
      "malformed",
      /contentType attribute is missing/,
    );
    assertRefused(
      await handMade({ attributes: [ct, digest] }),
      "malformed",
      /signingTime attribute is missing/,
    );
    assertRefused(
      await handMade({
        attributes: [ct, digest, attribute(OID_AA_SIGNING_TIME, utcTime(signingTime), utcTime(new Date()))],
      }),
      "malformed",
      /exactly one value/,
    );
    assertRefused(
      await handMade({
        attributes: [ct, digest, attribute(OID_AA_SIGNING_TIME, generalizedTime(signingTime))],
      }),
      "malformed",
      /must be UTCTime/,
    );
  });

  test("two SignerInfos, unsigned attributes, a wrong version, unknown algorithms", async () => {
    // A second signer (here the same SignerInfo twice) is refused before anything is verified.
    assertRefused(
      await handMade({ signerInfos: 2 }),
      "unsupported",
      /exactly one SignerInfo is accepted, found 2/,
    );
    assertRefused(
      await handMade({ trailer: [tlv(0xa1, attribute(OID_AA_SIGNING_TIME, utcTime(signingTime)))] }),
      "unsupported",
      /unsignedAttrs/,
    );
    assertRefused(await handMade({ version: 3 }), "malformed", /version 3 where RFC 5652 §5\.1 requires 1/);
    assertRefused(
      await handMade({ eContentType: OTHER_CONTENT_TYPE, version: 1 }),
      "malformed",
      /requires 3/,
    );
    assertRefused(
      await handMade({ signatureAlgorithm: sequence(oid("1.2.840.113549.1.1.10")) }),
      "unsupported",
      /signature algorithm 1\.2\.840\.113549\.1\.1\.10/,
    );
    assertRefused(
      await handMade({ signatureAlgorithm: sequence(oid(OID_RSA_ENCRYPTION)) }),
      "malformed",
      /rsaEncryption takes NULL/,
    );
  });

  test("trailing bytes, a size over the limit, a depth over the limit, not a SignedData", async () => {
    const der = await buildSignedData(input());
    assertRefused(Buffer.concat([der, hex("00")]), "malformed", /trailing bytes/);
    assert.throws(() => verifySignedData(der, { maxBytes: 1000 }), /bytes exceed the limit of 1000/);
    assert.throws(() => verifySignedData(der, { maxDepth: 4 }), /nesting too deep/);
    const big = await buildSignedData(input({ content: Buffer.alloc(64 * 1024) }));
    assertRefused(big, "too-large", /exceed the limit of 65536/);
    assertRefused(
      sequence(oid(OID_CT_DATA), explicit(0, octetString(content))),
      "unsupported",
      /not id-signedData/,
    );
    assertRefused(hex("30 80 00 00"), "malformed", /indefinite length/);
    assertRefused(Buffer.alloc(0), "malformed", /truncated/);
  });
});
