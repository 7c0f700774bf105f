/**
 * The command line as other programs use it: the package's bin, exit codes, --json shapes, and
 * bad input that leaves nothing half-written. Runs the compiled bin (npm test builds first).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { InProcessTransport } from "../card/in-process-transport.js";
import { loadCardState, pinMatches } from "../card/state.js";
import { CardManagerSession } from "../card/uicc/host.js";
import { iccidIssuerNumber, isValidEid, isValidIccid } from "../card/uicc/identity.js";
import { loadUiccState } from "../card/uicc/state.js";
import { openUicc } from "../card/uicc/uicc.js";
import { cardManagerKeys } from "../mno/carriers.js";
import { dropPostgresSchema } from "../registry/db.js";
import { postgresTestUrl } from "../testing/dialects.js";
import { createSoftHsmToken, softHsmMissing } from "../testing/softhsm.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const bin = path.join(root, "bin", "jpki-mobile.js");
const built = existsSync(path.join(root, "dist", "src", "cli", "main.js"));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, JPKI_CA_PASSPHRASE: "test passphrase", ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(run: Run): T {
  assert.equal(run.status, 0, `exit ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

function openssl(args: string[]): Run {
  const result = spawnSync("openssl", args, { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const citizen = [
  "--name",
  "山田 太郎",
  "--birth",
  "1985-04-02",
  "--sex",
  "male",
  "--address",
  "東京都千代田区霞が関2-1-2",
];

interface CitizenJson {
  citizenId: string;
  cardId: string;
  cardState: string;
  authSerial: string;
  signSerial: string;
}

describe("jpki-mobile command line", { skip: built ? false : "run `npm run build` first" }, () => {
  let work: string;
  let data: string;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), "jpki-cli-"));
    data = path.join(work, "data");
    const init = cli(["ca", "init", "--data", data, "--json"]);
    assert.equal(init.status, 0, init.stderr);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test("--help lists every command and each command has its own help", () => {
    const overview = cli(["--help"]);
    assert.equal(overview.status, 0);
    for (const name of [
      "ca init",
      "ca export",
      "citizen add",
      "cert list",
      "cert show",
      "audit verify",
      "bench",
    ])
      assert.match(overview.stdout, new RegExp(name));
    const help = cli(["citizen", "add", "--help"]);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--auth-pin PIN .*default 1234/);
    assert.match(help.stdout, /--sign-password PW .*default ABC123/);
  });

  test("unknown options and commands are usage errors (exit 2) with a hint", () => {
    const bad = cli(["cert", "list", "--data", data, "--colour"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Unknown option '--colour'.*\n.*--help/s);
    assert.equal(cli(["frobnicate"]).status, 2);
  });

  test("ca init refuses to overwrite an existing CA and changes nothing", () => {
    const keysBefore = readdirSync(path.join(data, "keys")).map((f) =>
      readFileSync(path.join(data, "keys", f), "utf8"),
    );
    const again = cli(["ca", "init", "--data", data]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists.*refusing/);
    assert.equal(again.stderr.trim().split("\n").length, 1, "one-line error");
    const keysAfter = readdirSync(path.join(data, "keys")).map((f) =>
      readFileSync(path.join(data, "keys", f), "utf8"),
    );
    assert.deepEqual(keysAfter, keysBefore);
  });

  test("key files are 0600 and a world-readable key stops every command", () => {
    const keyFiles = readdirSync(path.join(data, "keys"));
    assert.equal(keyFiles.length, 5);
    for (const file of keyFiles)
      assert.equal(statSync(path.join(data, "keys", file)).mode & 0o777, 0o600, file);
    const victim = path.join(data, "keys", keyFiles[0]!);
    chmodSync(victim, 0o644);
    try {
      const run = cli(["cert", "list", "--data", data]);
      assert.equal(run.status, 1);
      assert.match(run.stderr, /chmod 600/);
    } finally {
      chmodSync(victim, 0o600);
    }
  });

  test("a wrong passphrase is a one-line error", () => {
    const run = cli(["cert", "list", "--data", data], { JPKI_CA_PASSPHRASE: "not the passphrase" });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /wrong passphrase/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  });

  test("ca export writes PEM files that openssl reads, and citizen certificates verify against them", () => {
    const out = path.join(work, "export");
    const exported = json<{ files: { file: string; path: string }[] }>(
      cli(["ca", "export", "--data", data, "--out", out, "--json"]),
    );
    assert.deepEqual(exported.files.map((f) => f.file).sort(), [
      "auth-ca.pem",
      "auth-ocsp.pem",
      "sign-ca.pem",
      "sign-ocsp.pem",
      "sim-maker-ca.pem",
    ]);
    const added = json<CitizenJson>(cli(["citizen", "add", "--data", data, ...citizen, "--json"]));
    const signPem = path.join(work, "sign.pem");
    const authPem = path.join(work, "auth.pem");
    const showSign = cli(["cert", "show", added.signSerial, "--data", data, "--pem"]);
    const showAuth = cli(["cert", "show", added.authSerial, "--data", data, "--pem"]);
    assert.equal(showSign.status, 0, showSign.stderr);
    writeFileSync(signPem, showSign.stdout);
    writeFileSync(authPem, showAuth.stdout);
    assert.match(
      openssl(["verify", "-purpose", "smimesign", "-CAfile", path.join(out, "sign-ca.pem"), signPem]).stdout,
      /OK/,
    );
    assert.match(
      openssl(["verify", "-purpose", "sslclient", "-CAfile", path.join(out, "auth-ca.pem"), authPem]).stdout,
      /OK/,
    );
    // Crossed chains must fail: the auth certificate is not under the signing CA.
    assert.notEqual(openssl(["verify", "-CAfile", path.join(out, "sign-ca.pem"), authPem]).status, 0);
  });

  test("citizen add writes a card state file whose keys match its certificates", () => {
    const added = json<CitizenJson>(
      cli([
        "citizen",
        "add",
        "--data",
        data,
        ...citizen,
        "--auth-pin",
        "9876",
        "--sign-password",
        "PASS2024",
        "--json",
      ]),
    );
    assert.equal(statSync(added.cardState).mode & 0o777, 0o600);
    const state = loadCardState(added.cardState);
    assert.equal(state.tokenLabel, "JPKIAPICCTOKEN2");
    assert.equal(state.atr, "3be000ff8131fe4514");
    for (const [certFid, keyFid, serial] of [
      ["0001", "001A", added.signSerial],
      ["000A", "0017", added.authSerial],
    ] as const) {
      const cert = new X509Certificate(Buffer.from(state.files[certFid]!, "base64"));
      assert.equal(cert.serialNumber.toLowerCase(), serial);
      const privateKey = Buffer.from(state.keys[keyFid]!, "base64");
      const publicFromPrivate = createPublicKey(
        createPrivateKey({ key: privateKey, format: "der", type: "pkcs8" }),
      ).export({
        type: "spki",
        format: "der",
      });
      assert.deepEqual(publicFromPrivate, cert.publicKey.export({ type: "spki", format: "der" }));
    }
    assert.ok(pinMatches(state.pins["0018"]!, "9876"));
    assert.ok(!pinMatches(state.pins["0018"]!, "1234"));
    assert.ok(pinMatches(state.pins["001B"]!, "PASS2024"));
    assert.deepEqual([state.pins["0018"]!.triesLeft, state.pins["001B"]!.triesLeft], [3, 5]);
    // The PIN itself is never stored.
    assert.doesNotMatch(readFileSync(added.cardState, "utf8"), /9876|PASS2024/);
  });

  test("sim create: a SIM of the issuing carrier whose card manager opens with that carrier's keys", async () => {
    interface SimJson {
      simState: string;
      iccid: string;
      eid: string;
      carrier: string;
      brand: string;
      attestationSerial: string;
    }
    const mno = json<SimJson>(cli(["sim", "create", "--data", data, "--carrier", "sakura", "--json"]));
    // A light MVNO's SIM is its host MNO's: the ICCID's issuer number names the host.
    const light = json<SimJson>(cli(["sim", "create", "--data", data, "--carrier", "hibari", "--json"]));
    assert.deepEqual(
      [mno.carrier, mno.brand, light.carrier, light.brand],
      ["sakura", "sakura", "sakura", "hibari"],
    );
    for (const sim of [mno, light]) {
      assert.ok(isValidIccid(sim.iccid) && iccidIssuerNumber(sim.iccid) === "90", sim.iccid);
      assert.ok(isValidEid(sim.eid), sim.eid);
      assert.equal(statSync(sim.simState).mode & 0o777, 0o600);
    }
    assert.notEqual(mno.iccid, light.iccid);
    // The attestation certificate names the SIM's EID and chains to the exported SIM maker root.
    const state = loadUiccState(mno.simState);
    const attestation = new X509Certificate(Buffer.from(state.maker.sdCertificate, "base64"));
    assert.match(attestation.subject, new RegExp(`serialNumber=${mno.eid}`));
    assert.equal(attestation.serialNumber.toLowerCase(), mno.attestationSerial);
    const out = path.join(work, "sim-export");
    assert.equal(cli(["ca", "export", "--data", data, "--out", out]).status, 0);
    const checked = spawnSync(
      "openssl",
      ["verify", "-x509_strict", "-CAfile", path.join(out, "sim-maker-ca.pem")],
      {
        input: attestation.toString(),
        encoding: "utf8",
      },
    );
    assert.equal(checked.status, 0, checked.stderr);
    // The carrier's keys, derived from its master key, open the card manager; another carrier's do not.
    const card = new InProcessTransport(openUicc(mno.simState));
    await CardManagerSession.open(card, cardManagerKeys(data, "sakura", mno.iccid));
    await assert.rejects(CardManagerSession.open(card, cardManagerKeys(data, "kaede", mno.iccid)));
    const unknown = cli(["sim", "create", "--data", data, "--carrier", "nope"]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown carrier "nope": choose sakura, kaede, tsubame, hibari/);
  });

  test("suspend, resume and revoke change the status as the policies allow, with clear refusals", () => {
    const added = json<CitizenJson>(cli(["citizen", "add", "--data", data, ...citizen, "--json"]));
    const step = (command: string, serial: string, extra: string[] = []) =>
      cli([command, serial, "--data", data, "--json", ...extra]);
    const moved = (run: Run) => {
      const { from, to } = json<{ from: string; to: string }>(run);
      return `${from}>${to}`;
    };
    assert.equal(moved(step("suspend", added.authSerial, ["--note", "lost card"])), "issued>suspended");
    // A card certificate's hold is final (JPKI-FACTS §3).
    const resume = step("resume", added.authSerial);
    assert.equal(resume.status, 1);
    assert.match(resume.stderr, /hold is final/);
    assert.equal(moved(step("revoke", added.authSerial, ["--reason", "keyCompromise"])), "suspended>revoked");
    const again = step("revoke", added.authSerial);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /it is revoked/);
    const badReason = step("revoke", added.signSerial, ["--reason", "lost"]);
    assert.equal(badReason.status, 2);
    assert.match(badReason.stderr, /unknown reason lost: choose unspecified, keyCompromise/);
    assert.equal(step("revoke", "ffff").status, 1, "an unknown serial");
    const show = cli(["cert", "show", added.authSerial, "--data", data, "--json"]);
    assert.equal(JSON.parse(show.stdout).status, "revoked");
  });

  test("bad citizen input: one-line error, non-zero exit, nothing written", () => {
    const before = json<unknown[]>(cli(["cert", "list", "--data", data, "--json"])).length;
    const cards = readdirSync(path.join(data, "cards")).length;
    const cases: [string[], RegExp][] = [
      [["--birth", "1985-02-30"], /not a calendar date/],
      [["--birth", "2999-01-01"], /future/],
      [["--birth", "1850-01-01"], /era/i],
      [["--sex", "x"], /sex must be/],
      [["--auth-pin", "12345"], /4 digits/],
      [["--sign-password", "abc123"], /A-Z/],
      [["--address", "x".repeat(201)], /longer than 200/],
    ];
    for (const [override, message] of cases) {
      const args = [...citizen];
      for (let i = 0; i < override.length; i += 2) {
        const at = args.indexOf(override[i]!);
        if (at >= 0) args.splice(at, 2);
        args.push(override[i]!, override[i + 1]!);
      }
      const run = cli(["citizen", "add", "--data", data, ...args]);
      assert.equal(run.status, 1, `${override.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message, override.join(" "));
    }
    assert.equal(json<unknown[]>(cli(["cert", "list", "--data", data, "--json"])).length, before);
    assert.equal(readdirSync(path.join(data, "cards")).length, cards);
  });

  test("cert show: unknown serial is a clear error; cert list filters by kind", () => {
    const missing = cli(["cert", "show", "0123456789abcdef", "--data", data]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no certificate with serial 0123456789abcdef/);
    const cas = json<{ kind: string; status: string }[]>(
      cli(["cert", "list", "--data", data, "--kind", "ca", "--json"]),
    );
    assert.equal(cas.length, 3);
    assert.ok(cas.every((c) => c.kind === "ca" && c.status === "issued"));
  });

  test("audit verify passes on the untouched log and names a modified entry", async () => {
    const ok = json<{ ok: boolean; head: { seq: number } }>(
      cli(["audit", "verify", "--data", data, "--json"]),
    );
    assert.equal(ok.ok, true);
    assert.ok(ok.head.seq > 5);
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(path.join(data, "registry.sqlite"));
    db.prepare("update audit_log set actor = 'mallory' where seq = 3").run();
    db.close();
    const bad = cli(["audit", "verify", "--data", data]);
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, /entry 3: modified/);
  });
});

describe("jpki-mobile on PostgreSQL and on a PKCS#11 token", {
  skip: built ? false : "run `npm run build` first",
}, () => {
  test("ca init --db postgres://… keeps the registry in PostgreSQL; later commands find it", async () => {
    const work = mkdtempSync(path.join(tmpdir(), "jpki-cli-pg-"));
    const schema = `cli_${process.pid}_${Date.now()}`;
    const url = new URL(postgresTestUrl);
    url.searchParams.set("schema", schema);
    try {
      const data = path.join(work, "data");
      const init = cli(["ca", "init", "--data", data, "--db", url.toString()]);
      assert.equal(init.status, 0, init.stderr);
      assert.ok(!existsSync(path.join(data, "registry.sqlite")));
      const added = json<CitizenJson>(cli(["citizen", "add", "--data", data, ...citizen, "--json"]));
      const client = new pg.Client({ connectionString: postgresTestUrl });
      await client.connect();
      try {
        const rows = await client.query(
          `select kind, status from "${schema}".certificates where serial = $1`,
          [added.authSerial],
        );
        assert.deepEqual(rows.rows, [{ kind: "card-auth", status: "issued" }]);
      } finally {
        await client.end();
        await dropPostgresSchema(postgresTestUrl, schema);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("ca init --keystore pkcs11:… keeps the CA keys in the token, none on disk", {
    skip: softHsmMissing() ?? false,
  }, async () => {
    const token = await createSoftHsmToken({ label: "cli" });
    const work = mkdtempSync(path.join(tmpdir(), "jpki-cli-hsm-"));
    try {
      const data = path.join(work, "data");
      const env = { SOFTHSM2_CONF: process.env.SOFTHSM2_CONF ?? "", JPKI_HSM_PIN: token.pin };
      const init = cli(["ca", "init", "--data", data, "--keystore", token.uri, "--json"], env);
      assert.equal(init.status, 0, init.stderr);
      assert.ok(!existsSync(path.join(data, "keys")), "no key files with an HSM");
      const config = readFileSync(path.join(data, "config.json"), "utf8");
      assert.match(config, /pkcs11:token=cli/);
      assert.doesNotMatch(config, /pin-value/, "the PIN is never written to disk");
      const added = json<CitizenJson>(cli(["citizen", "add", "--data", data, ...citizen, "--json"], env));
      const show = cli(["cert", "show", added.signSerial, "--data", data, "--pem"], env);
      const out = path.join(work, "export");
      assert.equal(cli(["ca", "export", "--data", data, "--out", out], env).status, 0);
      writeFileSync(path.join(work, "sign.pem"), show.stdout);
      assert.match(
        openssl(["verify", "-CAfile", path.join(out, "sign-ca.pem"), path.join(work, "sign.pem")]).stdout,
        /OK/,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
      await token.cleanup();
    }
  });
});
