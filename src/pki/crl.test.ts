/**
 * CRL shards checked by three independent implementations (OpenSSL, GnuTLS, NSS), by the CA signer's
 * own reader, and against @peculiar/asn1-x509 over random entry sets.
 */
import * as assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  CRLDistributionPoints,
  CRLReason,
  InvalidityDate,
  IssuingDistributionPoint,
  TBSCertList,
} from "@peculiar/asn1-x509";
import fc from "fast-check";
import { readTbsCertList } from "../ca/tbs.js";
import { JpkiError } from "../errors.js";
import {
  createNssDb,
  nssTrustRoot,
  runTool,
  type ToolResult,
  withTempDir,
  writeCertificate,
} from "../testing/tools.js";
import { parseCertificate } from "./certificate.js";
import {
  buildTbsCertList,
  type CrlInput,
  deltaCrlUrl,
  CrlReason as Reason,
  type RevokedCertificate,
} from "./crl.js";
import { children, explicit, readDer, readOid, sequence, x509Time } from "./der.js";
import { keyIdentifier } from "./extensions.js";
import {
  OID_CE_AUTHORITY_KEY_IDENTIFIER,
  OID_CE_CRL_DISTRIBUTION_POINTS,
  OID_CE_CRL_NUMBER,
  OID_CE_CRL_REASON,
  OID_CE_DELTA_CRL_INDICATOR,
  OID_CE_FRESHEST_CRL,
  OID_CE_INVALIDITY_DATE,
  OID_CE_ISSUING_DISTRIBUTION_POINT,
} from "./oids.js";
import { pemEncode } from "./pem.js";
import { cardAuthenticationCertificateTbs, crlUrl } from "./profiles.js";
import { randomSerial, shardOf } from "./serial.js";
import { buildTestHierarchy, signTbs, TEST_BASE_URL } from "./test-hierarchy.js";

const now = new Date();
now.setUTCMilliseconds(0);
const h = buildTestHierarchy(now);
const SHARDS = 64;
const SHARD = 5;
const minutes = (n: number) => new Date(now.getTime() + n * 60_000);

/** A random serial that falls into `shard` (serial.shardOf), as the registry draws them. */
function serialInShard(shard: number): Buffer {
  for (;;) {
    const serial = randomSerial();
    if (shardOf(serial, SHARDS) === shard) return serial;
  }
}

/** A user-authentication certificate of the test auth CA whose CRL distribution point is `shard`'s. */
function certificateInShard(shard: number): { serial: Buffer; der: Buffer } {
  const serial = serialInShard(shard);
  const tbs = cardAuthenticationCertificateTbs({
    serial,
    issuer: h.authIssuer,
    subjectSpki: h.keys.citizen.spki,
    validity: { notBefore: minutes(-60), notAfter: minutes(365 * 24 * 60) },
    baseUrl: TEST_BASE_URL,
    shard,
  });
  return { serial, der: signTbs(tbs, h.keys.authCa) };
}

const bySerial = (a: { serial: Buffer }, b: { serial: Buffer }) => Buffer.compare(a.serial, b.serial);

const revoked = certificateInShard(SHARD); // keyCompromise, with an invalidity date
const held = certificateInShard(SHARD); // certificateHold
const unspecified = certificateInShard(SHARD); // no reason
const good = certificateInShard(SHARD);
const revokedLater = certificateInShard(SHARD); // revoked after the complete CRL: in the delta only
const released = certificateInShard(SHARD); // held in the complete CRL, released in the delta
const otherShard = certificateInShard(SHARD + 1);

const completeEntries: RevokedCertificate[] = [
  {
    serial: revoked.serial,
    revocationDate: minutes(-30),
    reason: Reason.keyCompromise,
    invalidityDate: minutes(-45),
  },
  { serial: held.serial, revocationDate: minutes(-20), reason: Reason.certificateHold },
  { serial: unspecified.serial, revocationDate: minutes(-10) },
  { serial: released.serial, revocationDate: minutes(-15), reason: Reason.certificateHold },
].sort(bySerial);

const deltaEntries: RevokedCertificate[] = [
  { serial: revokedLater.serial, revocationDate: minutes(-1), reason: Reason.superseded },
  { serial: released.serial, revocationDate: minutes(-15), reason: Reason.removeFromCRL },
].sort(bySerial);

const shardInput = {
  issuer: h.authIssuer,
  purpose: "auth",
  baseUrl: TEST_BASE_URL,
  shard: SHARD,
  thisUpdate: minutes(-1),
  nextUpdate: minutes(24 * 60),
} as const;

/** Builds a TBSCertList, checks that the CA signer's reader accepts it, and signs it as the CA. */
function signedCrl(input: Omit<CrlInput, keyof typeof shardInput> & Partial<CrlInput>): {
  tbs: Buffer;
  der: Buffer;
} {
  const tbs = buildTbsCertList({ ...shardInput, ...input });
  readTbsCertList(tbs);
  return { tbs, der: signTbs(tbs, h.keys.authCa) };
}

const complete = signedCrl({ crlNumber: 7n, entries: completeEntries, announceDelta: true });
const delta = signedCrl({ crlNumber: 8n, deltaOf: 7n, entries: deltaEntries });

/** Lower-case hex with colons between the bytes, as NSS prints serials. */
function colonHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex").match(/../g)!.join(":");
}

/** OpenSSL's reading of a CRL: `openssl crl -text -verify` against the auth CA. */
function opensslCrlText(crl: Buffer): ToolResult {
  return withTempDir((dir) => {
    const ca = writeCertificate(dir, "ca", h.authCa);
    writeFileSync(join(dir, "crl.der"), crl);
    return runTool("openssl", [
      "crl",
      "-inform",
      "DER",
      "-in",
      join(dir, "crl.der"),
      "-CAfile",
      ca.pem,
      "-noout",
      "-text",
      "-verify",
    ]);
  });
}

/** `openssl verify -crl_check` of `leaf` with the auth CA trusted and the given CRLs. */
function opensslVerifyWithCrls(leaf: Buffer, crls: Buffer[], useDeltas = false): ToolResult {
  return withTempDir((dir) => {
    const ca = writeCertificate(dir, "ca", h.authCa);
    const cert = writeCertificate(dir, "leaf", leaf);
    const crlFile = join(dir, "crls.pem");
    writeFileSync(crlFile, crls.map((c) => pemEncode(c, "X509 CRL")).join(""));
    const args = [
      "verify",
      "-no-CApath",
      "-no-CAstore",
      "-x509_strict",
      "-CAfile",
      ca.pem,
      "-crl_check",
      "-CRLfile",
      crlFile,
    ];
    if (useDeltas) args.push("-use_deltas");
    return runTool("openssl", [...args, cert.pem]);
  });
}

describe("CRL shard: OpenSSL", () => {
  test("the complete CRL verifies and OpenSSL reads its entries, reasons, dates and extensions", () => {
    const result = opensslCrlText(complete.der);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /verify OK/);
    const text = result.stdout;
    assert.match(text, /Version 2 \(0x1\)/);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Issuer: C = JP, O = JPKI, OU = JPKI for user authentication, .*OU = TEST/);
    assert.match(text, /X509v3 CRL Number: \n\s+7\n/);
    const aki = colonHex(keyIdentifier(h.keys.authCa.spki)).toUpperCase();
    assert.match(text, new RegExp(`X509v3 Authority Key Identifier: \\n\\s+(keyid:)?${aki}`));
    assert.match(
      text,
      new RegExp(
        `X509v3 Issuing Distribution Point: critical\\n\\s+Full Name:\\n\\s+URI:${crlUrl(TEST_BASE_URL, "auth", SHARD)}\\s+Only User Certificates`,
      ),
    );
    assert.match(
      text,
      new RegExp(
        `X509v3 Freshest CRL: \\n\\s+Full Name:\\n\\s+URI:${deltaCrlUrl(TEST_BASE_URL, "auth", SHARD)}`,
      ),
    );
    assert.doesNotMatch(text, /Delta CRL Indicator/);
    // Each entry: serial, then its reason (none for unspecified) and invalidity date.
    const entry = (serial: Buffer) => {
      const start = text.indexOf(`Serial Number: ${serial.toString("hex").toUpperCase()}`);
      assert.ok(start > 0, `entry ${serial.toString("hex").toUpperCase()} listed`);
      const next = text.indexOf("Serial Number:", start + 1);
      return text.slice(start, next > 0 ? next : text.indexOf("Signature Algorithm", start));
    };
    assert.match(entry(revoked.serial), /X509v3 CRL Reason Code: \n\s+Key Compromise/);
    assert.match(entry(revoked.serial), /Invalidity Date: \n\s+\w+ +\d+ [\d:]+ \d{4} GMT/);
    assert.match(entry(held.serial), /Certificate Hold/);
    assert.doesNotMatch(entry(held.serial), /Invalidity Date/);
    assert.doesNotMatch(entry(unspecified.serial), /CRL entry extensions|Reason/);
    assert.equal(text.match(/Serial Number:/g)?.length, 4);
  });

  test("the delta CRL carries DeltaCRLIndicator, removeFromCRL, and the complete CRL's IDP unchanged", () => {
    const result = opensslCrlText(delta.der);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /verify OK/);
    assert.match(result.stdout, /X509v3 CRL Number: \n\s+8\n/);
    assert.match(result.stdout, /X509v3 Delta CRL Indicator: critical\n\s+7\n/);
    assert.match(result.stdout, /Remove From CRL/);
    assert.match(result.stdout, /Superseded/);
    assert.doesNotMatch(result.stdout, /Freshest CRL/); // RFC 5280 §5.2.6: never in a delta
    // Same scope as the base (RFC 5280 §5.2.4 (b)(2)): byte-identical IDP and AKI extensions.
    const extensionsOf = (tbs: Buffer) =>
      new Map(
        AsnConvert.parse(tbs, TBSCertList).crlExtensions!.map((e) => [e.extnID, AsnConvert.serialize(e)]),
      );
    const base = extensionsOf(complete.tbs);
    const deltaExtensions = extensionsOf(delta.tbs);
    for (const id of [OID_CE_ISSUING_DISTRIBUTION_POINT, OID_CE_AUTHORITY_KEY_IDENTIFIER])
      assert.deepEqual(Buffer.from(deltaExtensions.get(id)!), Buffer.from(base.get(id)!));
  });

  test("the IDP's URI is byte for byte the certificates' CRL distribution point", () => {
    const cdp = parseCertificate(good.der).extensions.find((e) => e.oid === OID_CE_CRL_DISTRIBUTION_POINTS)!;
    const certificateName = AsnConvert.parse(cdp.value, CRLDistributionPoints)[0]!.distributionPoint!
      .fullName!;
    const idpExtension = AsnConvert.parse(complete.tbs, TBSCertList).crlExtensions!.find(
      (e) => e.extnID === OID_CE_ISSUING_DISTRIBUTION_POINT,
    )!;
    assert.equal(idpExtension.critical, true);
    const idp = AsnConvert.parse(idpExtension.extnValue, IssuingDistributionPoint);
    assert.deepEqual(
      Buffer.from(AsnConvert.serialize(idp.distributionPoint!.fullName![0]!)),
      Buffer.from(AsnConvert.serialize(certificateName[0]!)),
    );
    assert.equal(idp.onlyContainsUserCerts, true);
    assert.equal(idp.onlyContainsCACerts, false);
    assert.equal(idp.indirectCRL, false);
  });

  test("openssl verify -crl_check: revoked and held certificates are refused, a good one accepted", () => {
    for (const cert of [revoked, held, unspecified, released]) {
      const result = opensslVerifyWithCrls(cert.der, [complete.der]);
      assert.notEqual(result.code, 0);
      assert.match(result.stdout + result.stderr, /certificate revoked/);
    }
    const accepted = opensslVerifyWithCrls(good.der, [complete.der]);
    assert.equal(accepted.code, 0, accepted.stdout + accepted.stderr);
    assert.match(accepted.stdout, /OK/);
  });

  test("openssl verify -crl_check: a shard's CRL does not cover another shard's certificate (IDP check)", () => {
    const result = opensslVerifyWithCrls(otherShard.der, [complete.der]);
    assert.notEqual(result.code, 0);
    assert.match(result.stdout + result.stderr, /different CRL scope/);
  });

  test("openssl verify -use_deltas combines the delta with its base: new revocations and released holds", () => {
    // Without deltas OpenSSL sees only the complete CRL...
    assert.equal(opensslVerifyWithCrls(revokedLater.der, [complete.der, delta.der]).code, 0);
    assert.notEqual(opensslVerifyWithCrls(released.der, [complete.der, delta.der]).code, 0);
    // ...with them, the delta revokes `revokedLater` and releases the hold on `released`. OpenSSL
    // looks for deltas only when FreshestCRL is present and the IDPs match.
    const later = opensslVerifyWithCrls(revokedLater.der, [complete.der, delta.der], true);
    assert.notEqual(later.code, 0);
    assert.match(later.stdout + later.stderr, /certificate revoked/);
    const releasedResult = opensslVerifyWithCrls(released.der, [complete.der, delta.der], true);
    assert.equal(releasedResult.code, 0, releasedResult.stdout + releasedResult.stderr);
    assert.notEqual(opensslVerifyWithCrls(revoked.der, [complete.der, delta.der], true).code, 0);
    assert.equal(opensslVerifyWithCrls(good.der, [complete.der, delta.der], true).code, 0);
  });

  test("an empty shard: no revokedCertificates field; OpenSSL verifies it", () => {
    const empty = signedCrl({ crlNumber: 1n, entries: [] });
    assert.equal(AsnConvert.parse(empty.tbs, TBSCertList).revokedCertificates, undefined);
    const result = opensslCrlText(empty.der);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /No Revoked Certificates/);
    assert.equal(opensslVerifyWithCrls(good.der, [empty.der]).code, 0);
    assert.equal(opensslVerifyWithCrls(revoked.der, [empty.der]).code, 0); // not listed, so accepted
  });

  test("a full shard of 200,000 entries is read by the signer's reader and verified by OpenSSL", () => {
    const entries: RevokedCertificate[] = [];
    for (let i = 0; i < 200_000; i++)
      entries.push({
        serial: counterSerial(i),
        revocationDate: minutes(-i),
        reason: i % 2 ? Reason.superseded : undefined,
      });
    const started = performance.now();
    const crl = signedCrl({ crlNumber: 99n, entries });
    const elapsed = performance.now() - started;
    assert.ok(
      crl.der.length < 10_000_000,
      `${crl.der.length} bytes: JPKI-FACTS §4 keeps a shard under 10 MB`,
    );
    const result = opensslCrlText(crl.der);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /verify OK/);
    assert.equal(result.stdout.match(/Serial Number:/g)?.length, 200_000);
    // Generous: the build is linear (about 0.1 s here); a quadratic one would take minutes.
    assert.ok(elapsed < 10_000, `built in ${elapsed} ms`);
  });
});

/** Increasing 16-byte serials, cheap to make in bulk (a CRL does not check their shard): 0x40, then a counter. */
function counterSerial(i: number): Buffer {
  const serial = Buffer.alloc(16);
  serial[0] = 0x40;
  serial.writeUInt32BE(i, 12);
  return serial;
}

describe("CRL shard: GnuTLS and NSS", () => {
  test("certtool --crl-info reads both CRLs and --verify-crl checks their signature", () => {
    withTempDir((dir) => {
      const ca = writeCertificate(dir, "ca", h.authCa);
      for (const [name, crl, count] of [
        ["complete", complete.der, 4],
        ["delta", delta.der, 2],
      ] as const) {
        const file = join(dir, `${name}.pem`);
        writeFileSync(file, pemEncode(crl, "X509 CRL"));
        const info = runTool("certtool", ["--crl-info", "--infile", file]);
        assert.equal(info.code, 0, info.stderr);
        assert.match(info.stdout, new RegExp(`Revoked certificates \\(${count}\\)`));
        assert.match(info.stdout, /Issuing Distribution Point|2\.5\.29\.28/);
        const verified = runTool("certtool", [
          "--verify-crl",
          "--load-ca-certificate",
          ca.pem,
          "--infile",
          file,
        ]);
        assert.equal(verified.code, 0, verified.stdout + verified.stderr);
        assert.match(verified.stdout, /Verified/);
      }
    });
  });

  test("NSS refuses the critical IDP it does not implement; without it, crlutil reads every entry", () => {
    withTempDir((dir) => {
      const db = createNssDb(dir);
      nssTrustRoot(db, h.authCa, "auth-ca");
      const importCrl = (name: string, der: Buffer) => {
        const file = join(dir, `${name}.der`);
        writeFileSync(file, der);
        return runTool("crlutil", ["-I", "-d", db, "-t", "1", "-i", file]);
      };
      // RFC 5280 §5.2.5 makes the IDP critical, and NSS has no IDP support: a partitioned CRL is
      // unusable with NSS, whose own clients fetch no CRLs.
      const refused = importCrl("complete", complete.der);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /SEC_ERROR_CRL_UNKNOWN_CRITICAL_EXTENSION/);
      // The same TBS with the IDP marked non-critical (entries byte for byte ours), signed again.
      const imported = importCrl("noncritical", signTbs(withNonCriticalIdp(complete.tbs), h.keys.authCa));
      assert.equal(imported.code, 0, imported.stdout + imported.stderr);
      const listed = runTool("crlutil", ["-L", "-d", db, "-n", "auth-ca"]);
      assert.equal(listed.code, 0, listed.stdout + listed.stderr);
      assert.equal(listed.stdout.match(/Entry \d+/g)?.length, completeEntries.length);
      for (const { serial } of completeEntries)
        assert.match(listed.stdout, new RegExp(`Serial Number:\\s+${colonHex(serial)}\\n`));
      assert.match(listed.stdout, /CRL reason code\s+Data: 1 \(0x1\)/); // keyCompromise
      assert.match(listed.stdout, /CRL reason code\s+Data: 6 \(0x6\)/); // certificateHold
      assert.match(listed.stdout, /Invalid Date/);
      assert.match(listed.stdout, /Certificate Authority Key Identifier/);
    });
  });
});

/** `tbs` with its IssuingDistributionPoint re-encoded as non-critical, everything else unchanged. */
function withNonCriticalIdp(tbs: Buffer): Buffer {
  const fields = children(readDer(tbs, { maxBytes: 1 << 24 }));
  const extensions = children(children(fields.at(-1)!)[0]!).map((ext) => {
    const [id, , value] = children(ext);
    return readOid(id!) === OID_CE_ISSUING_DISTRIBUTION_POINT
      ? sequence(id!.encoded, value!.encoded)
      : ext.encoded;
  });
  return sequence(...fields.slice(0, -1).map((f) => f.encoded), explicit(0, sequence(...extensions)));
}

// ---------------------------------------------------------------------------------------------
// Our encoding against an independent parser

/** A CRL entry as @peculiar/asn1-x509 reads it, in the terms of RevokedCertificate. */
function readEntries(
  tbs: Buffer,
): { serial: string; revocationDate: Date; utc: boolean; reason?: number; invalidityDate?: Date }[] {
  const list = AsnConvert.parse(tbs, TBSCertList);
  return (list.revokedCertificates ?? []).map((entry) => {
    const extensions = new Map((entry.crlEntryExtensions ?? []).map((e) => [e.extnID, e]));
    assert.equal(extensions.size, entry.crlEntryExtensions?.length ?? 0);
    const reason = extensions.get(OID_CE_CRL_REASON);
    const invalidity = extensions.get(OID_CE_INVALIDITY_DATE);
    assert.ok(!reason?.critical && !invalidity?.critical, "entry extensions are non-critical");
    return {
      serial: Buffer.from(entry.userCertificate).toString("hex"),
      revocationDate: entry.revocationDate.getTime(),
      utc: entry.revocationDate.utcTime !== undefined,
      ...(reason ? { reason: AsnConvert.parse(reason.extnValue, CRLReason).reason } : {}),
      ...(invalidity ? { invalidityDate: AsnConvert.parse(invalidity.extnValue, InvalidityDate).value } : {}),
    };
  });
}

/** The minimal DER INTEGER content of a positive magnitude, as hex. */
function integerHex(magnitude: Buffer): string {
  let start = 0;
  while (magnitude[start] === 0) start++;
  const bytes = magnitude.subarray(start);
  return (bytes[0]! & 0x80 ? "00" : "") + bytes.toString("hex");
}

const wholeSecond = (min: number, max: number) =>
  fc.integer({ min: min / 1000, max: max / 1000 }).map((s) => new Date(s * 1000));
const YEAR_1950 = Date.UTC(1950, 0, 1);
const YEAR_2100 = Date.UTC(2100, 0, 1);

describe("CRL shard: random entry sets against @peculiar/asn1-x509", () => {
  const reasonCodes = [0, 1, 2, 3, 4, 5, 6, 9, 10] as const;
  const entryArbitrary = (isDelta: boolean) =>
    fc.record(
      {
        serial: fc.uint8Array({ minLength: 1, maxLength: 20 }).filter((b) => b.some((x) => x !== 0)),
        revocationDate: wholeSecond(YEAR_1950, YEAR_2100),
        reason: fc.constantFrom<number>(...reasonCodes, ...(isDelta ? [8] : [])),
        invalidityDate: wholeSecond(YEAR_1950, YEAR_2100),
      },
      { requiredKeys: ["serial", "revocationDate"] },
    );

  for (const isDelta of [false, true]) {
    test(`${isDelta ? "delta" : "complete"} CRLs: every entry, reason and date reads back as given`, () => {
      fc.assert(
        fc.property(
          fc.array(entryArbitrary(isDelta), { maxLength: 40 }),
          fc.bigInt({ min: 1n, max: (1n << 159n) - 1n }),
          (raw, number) => {
            // Unique serials in numeric order, as the registry gives them (leading zero bytes allowed).
            const unique = new Map(raw.map((e) => [integerHex(Buffer.from(e.serial)), e]));
            const entries = [...unique.values()]
              .map((e) => ({ ...e, serial: Buffer.from(e.serial) }) as RevokedCertificate)
              .sort((a, b) => {
                const x = integerHex(Buffer.from(a.serial)).replace(/^00/, "");
                const y = integerHex(Buffer.from(b.serial)).replace(/^00/, "");
                return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
              });
            const tbs = buildTbsCertList({
              ...shardInput,
              crlNumber: number,
              entries,
              ...(isDelta ? { deltaOf: number - 1n } : { announceDelta: true }),
            });
            readTbsCertList(tbs);
            const read = readEntries(tbs);
            assert.equal(read.length, entries.length);
            entries.forEach((entry, i) => {
              const got = read[i]!;
              assert.equal(got.serial, integerHex(Buffer.from(entry.serial)));
              assert.equal(got.revocationDate.getTime(), entry.revocationDate.getTime());
              // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §5.1.2.6), as der.x509Time.
              assert.equal(got.utc, x509Time(entry.revocationDate)[0] === 0x17);
              assert.equal(got.reason, entry.reason === 0 ? undefined : entry.reason);
              assert.equal(got.invalidityDate?.getTime(), entry.invalidityDate?.getTime());
            });
            const list = AsnConvert.parse(tbs, TBSCertList);
            assert.equal(list.version, 1);
            const ids = list.crlExtensions!.map((e) => e.extnID);
            assert.deepEqual(
              ids,
              isDelta
                ? [
                    OID_CE_AUTHORITY_KEY_IDENTIFIER,
                    OID_CE_CRL_NUMBER,
                    OID_CE_DELTA_CRL_INDICATOR,
                    OID_CE_ISSUING_DISTRIBUTION_POINT,
                  ]
                : [
                    OID_CE_AUTHORITY_KEY_IDENTIFIER,
                    OID_CE_CRL_NUMBER,
                    OID_CE_ISSUING_DISTRIBUTION_POINT,
                    OID_CE_FRESHEST_CRL,
                  ],
            );
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  test("a one-shot iterable (generator) gives the same bytes as an array", () => {
    const entries = completeEntries;
    function* stream() {
      yield* entries;
    }
    assert.deepEqual(
      buildTbsCertList({ ...shardInput, crlNumber: 7n, entries: stream() }),
      buildTbsCertList({ ...shardInput, crlNumber: 7n, entries }),
    );
  });
});

describe("CRL shard: refusals", () => {
  const base = { ...shardInput, crlNumber: 3n };
  const entry = (serial: Buffer, extra: Partial<RevokedCertificate> = {}): RevokedCertificate => ({
    serial,
    revocationDate: minutes(-1),
    ...extra,
  });
  const [a, b] = [
    Buffer.from("40000000000000000000000000000001", "hex"),
    Buffer.from("40000000000000000000000000000002", "hex"),
  ];
  const refuses = (input: CrlInput, pattern: RegExp) =>
    assert.throws(
      () => buildTbsCertList(input),
      (e: unknown) => e instanceof JpkiError && pattern.test(e.message),
    );

  test("entries out of order or repeated", () => {
    refuses({ ...base, entries: [entry(b), entry(a)] }, /strictly increasing/);
    refuses({ ...base, entries: [entry(a), entry(a)] }, /strictly increasing/);
    // Numeric order: a shorter serial is smaller whatever its bytes.
    assert.ok(buildTbsCertList({ ...base, entries: [entry(Buffer.from("ff", "hex")), entry(a)] }));
    refuses({ ...base, entries: [entry(a), entry(Buffer.from("ff", "hex"))] }, /strictly increasing/);
  });

  test("bad serials, reasons and dates", () => {
    refuses({ ...base, entries: [entry(Buffer.alloc(3))] }, /positive/);
    refuses({ ...base, entries: [entry(Buffer.alloc(21, 1))] }, /20 octets/);
    refuses({ ...base, entries: [entry(a, { reason: 7 as never })] }, /not a CRLReason/);
    refuses({ ...base, entries: [entry(a, { reason: Reason.removeFromCRL })] }, /delta CRLs only/);
    refuses({ ...base, entries: [entry(a, { revocationDate: new Date(Number.NaN) })] }, /revocationDate/);
    refuses(
      { ...base, entries: [entry(a, { invalidityDate: new Date(Date.UTC(1900, 0, 1)) })] },
      /invalidityDate/,
    );
  });

  test("CRL numbers, update times and the delta's base", () => {
    refuses({ ...base, crlNumber: -1n, entries: [] }, /CRLNumber/);
    refuses({ ...base, crlNumber: 1n << 160n, entries: [] }, /20 octets/);
    refuses({ ...base, deltaOf: 3n, entries: [] }, /greater than its base/);
    refuses({ ...base, deltaOf: 2n, announceDelta: true, entries: [] }, /FreshestCRL/);
    refuses({ ...base, nextUpdate: base.thisUpdate, entries: [] }, /nextUpdate/);
  });
});
