/**
 * Test helpers that run the independent checkers (OpenSSL, GnuTLS certtool, NSS certutil/vfychain) on
 * our DER in a temporary directory, so a test reads as "OpenSSL accepts this chain for this purpose".
 * STYLE.md: every encoder is checked against an independent implementation, not only against itself.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pemEncode } from "../pki/pem.js";

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program and returns its exit code and output (never throws on a non-zero exit). */
export function runTool(
  command: string,
  args: readonly string[],
  options: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
): ToolResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    input: options.input,
    env: options.env ?? process.env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  if (result.error) throw result.error;
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "jpki-tools-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes DER as `<name>.der` and PEM as `<name>.pem`; returns both paths. */
export function writeCertificate(dir: string, name: string, der: Buffer): { der: string; pem: string } {
  const paths = { der: join(dir, `${name}.der`), pem: join(dir, `${name}.pem`) };
  writeFileSync(paths.der, der);
  writeFileSync(paths.pem, pemEncode(der));
  return paths;
}

/** What a chain check needs: the trusted root, the certificate to check, and any intermediates. */
export interface ChainCheck {
  readonly root: Buffer;
  readonly leaf: Buffer;
  readonly intermediates?: readonly Buffer[];
}

/**
 * `openssl verify -x509_strict -purpose P` of `leaf` against `root` alone (the system store is
 * disabled). Purposes: sslclient, sslserver, smimesign, ocsphelper, any, ... (`openssl verify -help`).
 */
export function opensslVerify(check: ChainCheck & { purpose?: string; policy?: string }): ToolResult {
  return withTempDir((dir) => {
    const root = writeCertificate(dir, "root", check.root);
    const leaf = writeCertificate(dir, "leaf", check.leaf);
    const args = ["verify", "-no-CApath", "-no-CAstore", "-x509_strict", "-CAfile", root.pem];
    if (check.intermediates?.length) {
      writeFileSync(join(dir, "untrusted.pem"), check.intermediates.map((c) => pemEncode(c)).join(""));
      args.push("-untrusted", join(dir, "untrusted.pem"));
    }
    if (check.purpose) args.push("-purpose", check.purpose);
    if (check.policy) args.push("-policy", check.policy, "-explicit_policy");
    args.push(leaf.pem);
    return runTool("openssl", args, { cwd: dir });
  });
}

/** `openssl x509 -text` of a certificate, for assertions on OpenSSL's reading of an extension. */
export function opensslText(der: Buffer): ToolResult {
  return runTool("openssl", ["x509", "-inform", "DER", "-noout", "-text", "-nameopt", "utf8"], {
    input: der,
  });
}

/** GnuTLS `certtool --verify --load-ca-certificate root` of `leaf` (plus intermediates). */
export function certtoolVerify(check: ChainCheck & { purpose?: string }): ToolResult {
  return withTempDir((dir) => {
    const root = writeCertificate(dir, "root", check.root);
    const chain = join(dir, "chain.pem");
    writeFileSync(chain, [check.leaf, ...(check.intermediates ?? [])].map((c) => pemEncode(c)).join(""));
    const args = ["--verify", "--load-ca-certificate", root.pem, "--infile", chain];
    if (check.purpose) args.push("--verify-purpose", check.purpose);
    return runTool("certtool", args, { cwd: dir });
  });
}

/** Creates an empty NSS database (SQL format) in `dir` with no password; returns its `sql:` path. */
export function createNssDb(dir: string): string {
  const db = `sql:${dir}`;
  const result = runTool("certutil", ["-N", "-d", db, "--empty-password"]);
  if (result.code !== 0) throw new Error(`certutil -N failed: ${result.stderr}`);
  return db;
}

/**
 * Adds `root` to an NSS database as a trusted CA. Trust flags "SSL,S/MIME,object signing"
 * (certutil(1)): C = trusted CA for issuing, T = trusted CA for client certificates.
 */
export function nssTrustRoot(db: string, root: Buffer, nickname = "root", trust = "CT,C,C"): void {
  withTempDir((dir) => {
    const file = writeCertificate(dir, "root", root);
    const result = runTool("certutil", ["-A", "-d", db, "-n", nickname, "-t", trust, "-i", file.der]);
    if (result.code !== 0) throw new Error(`certutil -A failed: ${result.stderr}`);
  });
}

/** NSS usage numbers of `vfychain -u`. */
export const NssUsage = {
  sslClient: 0,
  sslServer: 1,
  sslCa: 3,
  emailSigner: 4,
  emailRecipient: 5,
  objectSigner: 6,
  ocspResponder: 10,
  anyCa: 11,
} as const;

/**
 * NSS `vfychain -pp -u usage [-o OID.policy]` (CERT_PKIXVerifyCert) of `leaf`, with `root` trusted in a
 * fresh NSS database and the intermediates given on the command line.
 */
export function vfychainVerify(check: ChainCheck & { usage: number; policy?: string }): ToolResult {
  return withTempDir((dir) => {
    const db = createNssDb(dir);
    nssTrustRoot(db, check.root);
    const leaf = writeCertificate(dir, "leaf", check.leaf);
    const args = ["-d", db, "-pp", "-u", String(check.usage)];
    if (check.policy) args.push("-o", `OID.${check.policy}`);
    args.push(leaf.der);
    (check.intermediates ?? []).forEach((c, i) => {
      args.push(writeCertificate(dir, `intermediate${i}`, c).der);
    });
    return runTool("vfychain", args, { cwd: dir });
  });
}

/**
 * `openssl dgst -sha256 -verify`: checks an RSASSA-PKCS1-v1_5 or ECDSA (DER) signature over `data`
 * with the SubjectPublicKeyInfo `spki`, in an implementation independent of the one that signed.
 */
export function opensslVerifySignature(spki: Buffer, data: Buffer, signature: Buffer): ToolResult {
  return withTempDir((dir) => {
    writeFileSync(join(dir, "pub.pem"), pemEncode(spki, "PUBLIC KEY"));
    writeFileSync(join(dir, "data"), data);
    writeFileSync(join(dir, "sig"), signature);
    return runTool("openssl", [
      "dgst",
      "-sha256",
      "-verify",
      join(dir, "pub.pem"),
      "-signature",
      join(dir, "sig"),
      join(dir, "data"),
    ]);
  });
}

export interface AsyncToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program without blocking the event loop (never throws on a non-zero exit). Tools that talk
 * to something served by this process (an emulated card through PC/SC, a server under test) must run
 * this way: the synchronous runTool would deadlock.
 */
export function runToolAsync(
  command: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<AsyncToolResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 60_000,
        encoding: "utf8",
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") reject(error);
        else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}
