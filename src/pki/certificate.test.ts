import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate } from "@peculiar/asn1-x509";
import fc from "fast-check";
import { runTool } from "../testing/tools.js";
import { assembleSigned, signatureAlgorithmIdentifier } from "./algorithms.js";
import {
  findExtension,
  issuerKeyOf,
  keyAlgorithmOf,
  parseCertificate,
  parseName,
  parseTbsCertificate,
  readJpkiSubjectAltName,
  renderName,
  verifyCertificateSignature,
} from "./certificate.js";
import {
  bitString,
  boolean,
  DerError,
  explicit,
  integer,
  octetString,
  oid,
  sequence,
  setOf,
  tlv,
  utcTime,
} from "./der.js";
import { keyIdentifier } from "./extensions.js";
import { encodeName } from "./names.js";
import { pemDecode, pemDecodeAll, pemEncode } from "./pem.js";
import { buildTestHierarchy, TEST_PERSON } from "./test-hierarchy.js";

const h = buildTestHierarchy();
const all = [
  h.signCa,
  h.authCa,
  h.signOcsp,
  h.authOcsp,
  h.cardSign,
  h.cardAuth,
  h.phoneSign,
  h.phoneAuth,
  h.simMakerCa,
  h.simAttestation,
];

describe("parseCertificate agrees with @peculiar/asn1-x509", () => {
  test("every field of every certificate kind", () => {
    for (const der of all) {
      const ours = parseCertificate(der);
      const theirs = AsnConvert.parse(der, Certificate);
      const t = theirs.tbsCertificate;
      assert.equal(ours.version, t.version + 1);
      assert.equal(ours.serialHex, Buffer.from(t.serialNumber).toString("hex").replace(/^00/, ""));
      assert.deepEqual(ours.issuerDer, Buffer.from(AsnConvert.serialize(t.issuer)));
      assert.deepEqual(ours.subjectDer, Buffer.from(AsnConvert.serialize(t.subject)));
      assert.deepEqual(ours.spki, Buffer.from(AsnConvert.serialize(t.subjectPublicKeyInfo)));
      assert.deepEqual(ours.tbs, Buffer.from(AsnConvert.serialize(t)));
      assert.equal(ours.notBefore.getTime(), t.validity.notBefore.getTime().getTime());
      assert.equal(ours.notAfter.getTime(), t.validity.notAfter.getTime().getTime());
      assert.equal(ours.signatureAlgorithmOid, theirs.signatureAlgorithm.algorithm);
      assert.deepEqual(ours.signature, Buffer.from(theirs.signatureValue));
      assert.deepEqual(
        ours.extensions.map((e) => [e.oid, e.critical, e.value.toString("hex")]),
        Array.from(t.extensions ?? [], (e) => [
          e.extnID,
          e.critical,
          Buffer.from(e.extnValue.buffer).toString("hex"),
        ]),
      );
    }
  });

  test("the serial matches OpenSSL's reading", () => {
    const r = runTool("openssl", ["x509", "-inform", "DER", "-noout", "-serial"], { input: h.cardSign });
    assert.equal(r.stdout.trim().toLowerCase(), `serial=${parseCertificate(h.cardSign).serialHex}`);
  });

  test("names render in encoded order, RFC 4514-escaped", () => {
    assert.match(
      renderName(parseCertificate(h.cardSign).issuerDer),
      /^C=JP, O=JPKI, OU=JPKI for digital signature, /,
    );
    assert.equal(
      renderName(
        encodeName([
          ["O", "a,b+c"],
          ["OU", " lead"],
          ["CN", "#x"],
        ]),
      ),
      "O=a\\,b\\+c, OU=\\ lead, CN=\\#x",
    );
    assert.deepEqual(parseName(encodeName([["CN", "公的"]]))[0], [
      { oid: "2.5.4.3", type: "CN", value: "公的" },
    ]);
  });

  test("the JPKI SubjectAltName reads back; the auth certificates have none", () => {
    assert.deepEqual(readJpkiSubjectAltName(parseCertificate(h.cardSign)), {
      name: TEST_PERSON.name,
      nameSubstitutes: "",
      sex: "1",
      birthDate: "419900401",
      address: TEST_PERSON.address,
      addressSubstitutes: "",
    });
    assert.equal(readJpkiSubjectAltName(parseCertificate(h.cardAuth)), undefined);
    assert.equal(readJpkiSubjectAltName(parseCertificate(h.signCa)), undefined);
    assert.equal(findExtension(parseCertificate(h.cardAuth), "2.5.29.15")?.critical, true);
  });
});

describe("parseCertificate on hostile input", () => {
  test("mutated and truncated certificates: a parse or a DerError, nothing else", () => {
    const der = h.cardSign;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.nat(der.length),
        (edits, cut) => {
          const mutated = Buffer.from(der);
          for (const [at, value] of edits) mutated[at] = value;
          for (const input of [mutated, mutated.subarray(0, cut)]) {
            try {
              const cert = parseCertificate(input);
              readJpkiSubjectAltName(cert);
              renderName(cert.subjectDer);
            } catch (error) {
              if (!(error instanceof DerError)) throw error;
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test("limits: too large or too deep input is refused", () => {
    assert.throws(() => parseCertificate(h.cardSign, { maxBytes: 100 }), DerError);
    assert.throws(() => parseCertificate(h.cardSign, { maxDepth: 3 }), DerError);
    assert.throws(() => parseCertificate(Buffer.concat([h.cardSign, Buffer.from([0])])), DerError);
  });

  test("structural checks: tampered algorithm, duplicate extension, non-positive serial", () => {
    const cert = parseCertificate(h.cardAuth);
    const tbsAlgorithm = h.cardAuth.indexOf(Buffer.from("06092a864886f70d01010b", "hex"));
    const swapped = Buffer.from(h.cardAuth);
    swapped[tbsAlgorithm + 10] = 0x0c; // sha384WithRSAEncryption in the TBS only
    assert.throws(() => parseCertificate(swapped), /differs/);

    const alg = signatureAlgorithmIdentifier("rsa-2048");
    const name = encodeName([["CN", "x"]]);
    const time = utcTime(new Date("2025-01-01T00:00:00Z"));
    const build = (serial: Buffer, extensions: Buffer[]) =>
      assembleSigned(
        sequence(
          explicit(0, integer(2)),
          serial,
          alg,
          name,
          sequence(time, time),
          name,
          cert.spki,
          explicit(3, sequence(...extensions)),
        ),
        alg,
        Buffer.alloc(1),
      );
    const ku = cert.extensions.find((e) => e.oid === "2.5.29.15")!;
    const kuExtension = sequence(oid(ku.oid), boolean(true), octetString(ku.value));
    assert.equal(parseCertificate(build(integer(5), [kuExtension])).serialHex, "05");
    assert.throws(() => parseCertificate(build(integer(5), [kuExtension, kuExtension])), /twice/);
    assert.throws(() => parseCertificate(build(integer(0), [kuExtension])), /positive/);
    assert.throws(() => parseCertificate(build(integer(-1), [kuExtension])), /positive/);
    assert.throws(
      () => parseCertificate(build(tlv(0x02, Buffer.from("0005", "hex")), [kuExtension])),
      /non-minimal/,
    );
    const falseCritical = sequence(oid(ku.oid), boolean(false), octetString(ku.value));
    assert.throws(() => parseCertificate(build(integer(5), [falseCritical])), /TRUE/);
  });
});

describe("parseTbsCertificate (what the CA signer reads before signing)", () => {
  test("reads the same fields as parseCertificate; subjectPublicKey is what key identifiers hash", () => {
    for (const der of all) {
      const cert = parseCertificate(der);
      const { der: _der, serialHex: _hex, signature: _signature, ...tbsFields } = cert;
      assert.deepEqual(parseTbsCertificate(cert.tbs), tbsFields);
      assert.deepEqual(
        Buffer.from(cert.subjectPublicKey),
        Buffer.from(AsnConvert.parse(der, Certificate).tbsCertificate.subjectPublicKeyInfo.subjectPublicKey),
      );
      const ski = findExtension(cert, "2.5.29.14");
      if (ski) assert.deepEqual(ski.value.subarray(2), keyIdentifier(cert.spki));
    }
  });

  test("refuses what RFC 5280 §4.1 does not allow, naming the fault", () => {
    const spki = parseCertificate(h.cardAuth).spki;
    const alg = signatureAlgorithmIdentifier("rsa-2048");
    const name = sequence(setOf(sequence(oid("2.5.4.3"), tlv(0x0c, Buffer.from("x")))));
    const early = utcTime(new Date("2025-01-01T00:00:00Z"));
    const late = utcTime(new Date("2026-01-01T00:00:00Z"));
    const ext = explicit(3, sequence(sequence(oid("2.5.29.19"), octetString(sequence()))));
    type Parts = {
      version?: Buffer[];
      serial?: Buffer;
      alg?: Buffer;
      issuer?: Buffer;
      validity?: Buffer;
      spki?: Buffer;
      tail?: Buffer[];
    };
    const build = (p: Parts) =>
      sequence(
        ...(p.version ?? [explicit(0, integer(2))]),
        p.serial ?? integer(5),
        p.alg ?? alg,
        p.issuer ?? name,
        p.validity ?? sequence(early, late),
        name,
        p.spki ?? spki,
        ...(p.tail ?? [ext]),
      );
    assert.equal(parseTbsCertificate(build({})).version, 3);
    assert.equal(parseTbsCertificate(build({ version: [], tail: [] })).version, 1);
    const cases: [Parts | Buffer, RegExp][] = [
      [Buffer.concat([build({}), Buffer.from([0])]), /trailing bytes after the TBSCertificate/],
      [sequence(Buffer.alloc(70 * 1024)), /exceeds the limit of 65536/],
      [{ version: [explicit(0, integer(0))] }, /version 0 must be v2 \(1\) or v3 \(2\)/],
      [{ version: [explicit(0, integer(3))] }, /version 3 must be/],
      [{ version: [explicit(0, tlv(0x02, Buffer.from("0002", "hex")))] }, /non-minimal/],
      [{ version: [] }, /extensions need v3/],
      [{ serial: integer(Buffer.alloc(21, 1)) }, /longer than 20 octets/],
      [{ serial: integer(0) }, /serialNumber must be positive/],
      [{ serial: tlv(0x02, Buffer.alloc(0)) }, /empty INTEGER/],
      [{ alg: sequence() }, /signature: malformed AlgorithmIdentifier/],
      [{ issuer: sequence(setOf()) }, /issuer: empty RDN/],
      [{ issuer: sequence(setOf(sequence(oid("2.5.4.3")))) }, /needs a type and a value/],
      [{ validity: sequence(late, early) }, /notAfter is before notBefore/],
      [{ spki: sequence(sequence(oid("1.2.840.113549.1.1.1"))) }, /expected algorithm and key/],
      [{ spki: sequence(sequence(), bitString(Buffer.alloc(4))) }, /subjectPublicKeyInfo algorithm/],
      [{ version: [explicit(0, integer(1))], tail: [ext] }, /extensions need v3/],
      [{ version: [], tail: [tlv(0x81, Buffer.from([0]))] }, /unique identifiers need v2 or v3/],
      [{ tail: [tlv(0x82, Buffer.from([0])), tlv(0x81, Buffer.from([0])), ext] }, /unexpected field 9/],
      [{ tail: [explicit(3, sequence())] }, /SEQUENCE SIZE \(1\.\.MAX\)/],
      [{ tail: [ext, ext] }, /unexpected field 9/],
    ];
    for (const [parts, message] of cases) {
      const tbs = Buffer.isBuffer(parts) ? parts : build(parts);
      assert.throws(
        () => parseTbsCertificate(tbs),
        (e: unknown) => e instanceof DerError && message.test(e.message),
      );
    }
    const both = build({
      version: [explicit(0, integer(1))],
      tail: [tlv(0x81, Buffer.from([0])), tlv(0x82, Buffer.from([0]))],
    });
    assert.equal(parseTbsCertificate(both).version, 2);
  });
});

describe("PEM (RFC 7468)", () => {
  test("OpenSSL reads our PEM, and we read OpenSSL's", () => {
    const pem = pemEncode(h.signCa);
    assert.match(
      pem,
      /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/,
    );
    const r = runTool("openssl", ["x509", "-inform", "PEM", "-outform", "PEM"], { input: pem });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(pemDecode(r.stdout), h.signCa);
  });

  test("several blocks, explanatory text, and strictness", () => {
    const text = `subject=...\n${pemEncode(h.signCa)}junk\n${pemEncode(Buffer.from("3000", "hex"), "X509 CRL")}`;
    assert.deepEqual(
      pemDecodeAll(text).map((b) => b.label),
      ["CERTIFICATE", "X509 CRL"],
    );
    assert.deepEqual(pemDecode(text, "X509 CRL"), Buffer.from("3000", "hex"));
    assert.throws(() => pemDecode("nothing here"));
    assert.throws(() => pemDecode("-----BEGIN CERTIFICATE-----\nMAA*\n-----END CERTIFICATE-----\n"));
    assert.throws(() => pemDecode("-----BEGIN CERTIFICATE-----\nMAA=\n-----END X509 CRL-----\n"));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), (bytes) => {
        assert.deepEqual(pemDecode(pemEncode(bytes, "TEST"), "TEST"), Buffer.from(bytes));
      }),
    );
  });
});

describe("keys and signatures", () => {
  test("issuerKeyOf a CA certificate and signature checks", () => {
    const signCa = parseCertificate(h.signCa);
    assert.deepEqual(issuerKeyOf(signCa), h.signIssuer);
    assert.deepEqual(issuerKeyOf(parseCertificate(h.simMakerCa)), h.simMakerIssuer);
    assert.equal(keyAlgorithmOf(h.keys.citizen.spki), "rsa-2048");
    assert.equal(verifyCertificateSignature(parseCertificate(h.cardSign), h.keys.signCa.spki), true);
    assert.equal(verifyCertificateSignature(parseCertificate(h.cardSign), h.keys.authCa.spki), false);
    assert.equal(verifyCertificateSignature(parseCertificate(h.simAttestation), h.keys.simMaker.spki), true);
    assert.equal(verifyCertificateSignature(parseCertificate(h.simAttestation), h.keys.signCa.spki), false);
    const broken = Buffer.from(h.cardAuth);
    broken[broken.length - 1]! ^= 1;
    assert.equal(verifyCertificateSignature(parseCertificate(broken), h.keys.authCa.spki), false);
  });
});
