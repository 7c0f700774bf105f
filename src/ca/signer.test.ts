import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { JpkiError } from "../errors.js";
import { type KeyAlgorithm, signatureAlgorithmIdentifier } from "../pki/algorithms.js";
import { integer, sequence } from "../pki/der.js";
import { pemEncode } from "../pki/pem.js";
import { createSoftHsmToken, type SoftHsmToken, softHsmMissing } from "../testing/softhsm.js";
import type { KeyStore, SigningKey } from "./keystore.js";
import { Pkcs11KeyStore } from "./pkcs11-keystore.js";
import { CertificateSigner, OcspSigner, selfSign } from "./signer.js";
import { SoftwareKeyStore } from "./software-keystore.js";
import {
  ocspResponse,
  openssl,
  responseData,
  tbsCertificate,
  tbsCertList,
  testName,
} from "./test-fixtures.js";

const missing = softHsmMissing();
if (missing && process.env["CI"]) throw new Error(`PKCS#11 tests need SoftHSM2: ${missing}`);

let work: string;
before(async () => {
  work = await fs.mkdtemp(path.join(tmpdir(), "jpki-signer-"));
});
after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

const serial = () => BigInt(`0x${randomBytes(9).toString("hex")}`) | (1n << 64n);

async function writePem(name: string, label: string, der: Buffer): Promise<string> {
  const file = path.join(work, name);
  await fs.writeFile(file, pemEncode(der, label));
  return file;
}

interface Pki {
  caKey: SigningKey;
  caName: Buffer;
  root: Buffer;
  signer: CertificateSigner;
}

/** A root CA made by selfSign, and its signer with a delegated OCSP responder. */
async function makePki(
  store: KeyStore,
  algorithm: KeyAlgorithm,
  tag: string,
): Promise<Pki & { ocspKey: SigningKey; ocspCert: Buffer }> {
  const caKey = await store.generate(`${tag}-ca`, algorithm);
  const caName = testName(`TEST ${tag} CA`);
  const root = await selfSign(
    caKey,
    tbsCertificate({
      serial: serial(),
      algorithm,
      issuer: caName,
      subject: caName,
      subjectSpki: caKey.publicKeySpki,
      issuerSpki: caKey.publicKeySpki,
      kind: "ca",
    }),
  );
  const bootstrap = new CertificateSigner(caKey, root);
  const ocspKey = await store.generate(`${tag}-ocsp`, algorithm);
  const ocspCert = await bootstrap.issue(
    tbsCertificate({
      serial: serial(),
      algorithm,
      issuer: caName,
      subject: testName(`TEST ${tag} OCSP`),
      subjectSpki: ocspKey.publicKeySpki,
      issuerSpki: caKey.publicKeySpki,
      kind: "ocsp",
    }),
  );
  const signer = new CertificateSigner(caKey, root, {
    ocspResponder: { key: ocspKey, certificate: ocspCert },
  });
  return { caKey, caName, root, signer, ocspKey, ocspCert };
}

interface Backend {
  name: string;
  skip?: string | undefined;
  open(): Promise<KeyStore>;
}

let token: SoftHsmToken | undefined;
const backends: Backend[] = [
  {
    name: "software",
    open: async () =>
      new SoftwareKeyStore({
        directory: path.join(work, `keys-${Math.random()}`),
        passphrase: "test passphrase",
      }),
  },
  {
    name: "pkcs11 (SoftHSM2)",
    skip: missing,
    open: async () => {
      token ??= await createSoftHsmToken();
      return Pkcs11KeyStore.open(token.uri);
    },
  },
];

for (const backend of backends) {
  for (const algorithm of ["rsa-2048", "ec-p256"] as KeyAlgorithm[]) {
    describe(`signer, ${backend.name}, ${algorithm}`, { skip: backend.skip }, () => {
      let store: KeyStore;
      let pki: Awaited<ReturnType<typeof makePki>>;
      before(async () => {
        store = await backend.open();
        pki = await makePki(store, algorithm, `${algorithm}-${Math.random().toString(36).slice(2, 8)}`);
      });
      after(async () => {
        await store?.close();
      });

      test("root + issued certificate: openssl verify accepts the chain", async () => {
        const leafKey = await store.generate(`leaf-${Math.random().toString(36).slice(2, 8)}`, algorithm);
        const leaf = await pki.signer.issue(
          tbsCertificate({
            serial: serial(),
            algorithm,
            issuer: pki.caName,
            subject: testName("TEST subscriber"),
            subjectSpki: leafKey.publicKeySpki,
            issuerSpki: pki.caKey.publicKeySpki,
            kind: "leaf",
          }),
        );
        const rootFile = await writePem(`root-${backend.name}-${algorithm}.pem`, "CERTIFICATE", pki.root);
        const leafFile = await writePem(`leaf-${backend.name}-${algorithm}.pem`, "CERTIFICATE", leaf);
        assert.match(await openssl(["verify", "-x509_strict", "-CAfile", rootFile, rootFile]), /: OK/);
        assert.match(await openssl(["verify", "-x509_strict", "-CAfile", rootFile, leafFile]), /: OK/);
      });

      test("signCrl: openssl crl verifies the CRL against the root", async () => {
        const crl = await pki.signer.signCrl(
          tbsCertList({ algorithm, issuer: pki.caName, serials: [serial(), serial()] }),
        );
        const rootFile = await writePem(`crl-root-${backend.name}-${algorithm}.pem`, "CERTIFICATE", pki.root);
        const crlFile = await writePem(`crl-${backend.name}-${algorithm}.pem`, "X509 CRL", crl);
        const out = await openssl(["crl", "-in", crlFile, "-CAfile", rootFile, "-noout"]);
        assert.match(out, /verify OK/);
      });

      test("signOcsp: openssl ocsp accepts the delegated responder's answer", async () => {
        const leafSerial = serial();
        const basic = await pki.signer.signOcsp(
          responseData({
            responderSpki: pki.ocspKey.publicKeySpki,
            caName: pki.caName,
            caSpki: pki.caKey.publicKeySpki,
            serial: leafSerial,
          }),
        );
        const respFile = path.join(work, `ocsp-${backend.name}-${algorithm}.der`);
        await fs.writeFile(respFile, ocspResponse(basic));
        const rootFile = await writePem(
          `ocsp-root-${backend.name}-${algorithm}.pem`,
          "CERTIFICATE",
          pki.root,
        );
        const out = await openssl(["ocsp", "-respin", respFile, "-CAfile", rootFile, "-resp_text"]);
        assert.match(out, /Response verify OK/);
        assert.match(out, /Cert Status: good/);
      });

      test("refuses a TBSCertificate naming another issuer or another algorithm, and malformed ones", async () => {
        const base = {
          serial: serial(),
          algorithm,
          subject: testName("x"),
          subjectSpki: pki.caKey.publicKeySpki,
          issuerSpki: pki.caKey.publicKeySpki,
          kind: "leaf" as const,
        };
        const refused = (pattern: RegExp) => (error: unknown) =>
          error instanceof JpkiError && error.code === "bad-input" && pattern.test(error.message);
        await assert.rejects(
          pki.signer.issue(tbsCertificate({ ...base, issuer: testName("TEST other CA") })),
          refused(/issuer is not this CA/),
        );
        const other: KeyAlgorithm = algorithm === "rsa-2048" ? "ec-p256" : "rsa-2048";
        await assert.rejects(
          pki.signer.issue(
            tbsCertificate({
              ...base,
              issuer: pki.caName,
              signatureAlgorithm: signatureAlgorithmIdentifier(other),
            }),
          ),
          refused(/AlgorithmIdentifier/),
        );
        const good = tbsCertificate({ ...base, issuer: pki.caName });
        await assert.rejects(pki.signer.issue(good.subarray(0, good.length - 1)), refused(/malformed/));
        await assert.rejects(
          pki.signer.issue(Buffer.concat([good, Buffer.from([0])])),
          refused(/trailing bytes/),
        );
        await assert.rejects(
          pki.signer.issue(tbsCertificate({ ...base, issuer: pki.caName, serial: 0n })),
          refused(/positive/),
        );
        await assert.rejects(
          pki.signer.signCrl(tbsCertList({ algorithm, issuer: testName("TEST other CA"), serials: [1n] })),
          refused(/issuer is not this CA/),
        );
        await assert.rejects(
          pki.signer.signCrl(
            tbsCertList({
              algorithm,
              issuer: pki.caName,
              serials: [1n],
              signatureAlgorithm: signatureAlgorithmIdentifier(other),
            }),
          ),
          refused(/AlgorithmIdentifier/),
        );
        // An answer about another CA's certificate, or naming another responder.
        await assert.rejects(
          pki.signer.signOcsp(
            responseData({
              responderSpki: pki.ocspKey.publicKeySpki,
              caName: testName("TEST other CA"),
              caSpki: pki.caKey.publicKeySpki,
              serial: 5n,
            }),
          ),
          refused(/another issuer/),
        );
        await assert.rejects(
          pki.signer.signOcsp(
            responseData({
              responderSpki: pki.caKey.publicKeySpki,
              caName: pki.caName,
              caSpki: pki.caKey.publicKeySpki,
              serial: 5n,
            }),
          ),
          refused(/byKey/),
        );
        await assert.rejects(
          pki.signer.signOcsp(
            responseData({
              responderSpki: pki.ocspKey.publicKeySpki,
              caName: pki.caName,
              caSpki: pki.caKey.publicKeySpki,
              serial: 5n,
              byName: pki.caName,
            }),
          ),
          refused(/byName/),
        );
      });
    });
  }
}

describe("signer guard rails (software keys)", () => {
  let store: SoftwareKeyStore;
  let pki: Awaited<ReturnType<typeof makePki>>;
  before(async () => {
    store = new SoftwareKeyStore({ directory: path.join(work, "guard"), passphrase: "test passphrase" });
    pki = await makePki(store, "rsa-2048", "guard");
  });

  test("selfSign refuses a TBS whose issuer is not its subject, or that carries another key", async () => {
    const other = await store.generate("guard-other", "rsa-2048");
    const base = {
      serial: serial(),
      algorithm: "rsa-2048" as const,
      subject: pki.caName,
      issuerSpki: pki.caKey.publicKeySpki,
      kind: "ca" as const,
    };
    await assert.rejects(
      selfSign(
        pki.caKey,
        tbsCertificate({
          ...base,
          issuer: testName("TEST someone else"),
          subjectSpki: pki.caKey.publicKeySpki,
        }),
      ),
      /issuer equal to subject/,
    );
    await assert.rejects(
      selfSign(pki.caKey, tbsCertificate({ ...base, issuer: pki.caName, subjectSpki: other.publicKeySpki })),
      /public key of/,
    );
  });

  test("a key whose device returns a wrong signature releases nothing (integrity error)", async () => {
    const broken: SigningKey = {
      label: pki.caKey.label,
      algorithm: pki.caKey.algorithm,
      publicKeySpki: pki.caKey.publicKeySpki,
      sign: async (data) => {
        const good = await pki.caKey.sign(data);
        good[good.length - 1]! ^= 1;
        return good;
      },
    };
    const signer = new CertificateSigner(broken, pki.root);
    await assert.rejects(
      signer.issue(
        tbsCertificate({
          serial: serial(),
          algorithm: "rsa-2048",
          issuer: pki.caName,
          subject: testName("x"),
          subjectSpki: pki.caKey.publicKeySpki,
          issuerSpki: pki.caKey.publicKeySpki,
          kind: "leaf",
        }),
      ),
      (error: unknown) =>
        error instanceof JpkiError && error.code === "integrity" && /does not verify/.test(error.message),
    );
  });

  test("refuses a CA certificate that does not belong to the key, and an OCSP certificate without OCSPSigning", async () => {
    const other = await store.generate("guard-other-2", "rsa-2048");
    assert.throws(
      () => new CertificateSigner(other, pki.root),
      (e: unknown) => e instanceof JpkiError && e.code === "integrity",
    );
    assert.throws(() => new OcspSigner(pki.caKey, pki.root, pki.root), /id-kp-OCSPSigning/);
    const plainLeaf = await pki.signer.issue(
      tbsCertificate({
        serial: serial(),
        algorithm: "rsa-2048",
        issuer: pki.caName,
        subject: testName("not a responder"),
        subjectSpki: other.publicKeySpki,
        issuerSpki: pki.caKey.publicKeySpki,
        kind: "leaf",
      }),
    );
    assert.throws(() => new OcspSigner(other, plainLeaf, pki.root), /id-kp-OCSPSigning/);
  });

  test("bounds what it reads: oversized or deeply nested input is refused before signing", async () => {
    let signed = 0;
    const counting: SigningKey = {
      ...pki.caKey,
      sign: async (d) => {
        signed++;
        return pki.caKey.sign(d);
      },
    };
    const signer = new CertificateSigner(counting, pki.root);
    let deep: Buffer = integer(1);
    for (let i = 0; i < 40; i++) deep = sequence(deep);
    await assert.rejects(signer.issue(deep), /nesting too deep|TBSCertificate is malformed/);
    await assert.rejects(signer.issue(sequence(Buffer.alloc(70 * 1024))), /exceeds the limit/);
    assert.equal(signed, 0);
  });

  test("signOcsp without a configured responder is an internal error", async () => {
    await assert.rejects(
      new CertificateSigner(pki.caKey, pki.root).signOcsp(Buffer.alloc(2)),
      /no OCSP responder/,
    );
  });
});

after(async () => {
  await token?.cleanup();
});
