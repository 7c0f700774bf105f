/**
 * Interoperability with OpenSC 0.23 (JPKI-FACTS §1, "What OpenSC's jpki driver needs"): our emulated
 * My Number card and SIM applet, served through vpcd in this process, read by the real opensc-tool,
 * pkcs15-tool and pkcs11-tool through pcscd; signatures checked by OpenSSL with the certificate read
 * from the card.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pcscSkipReason, type VpcdSlot, withVpcdSlot } from "../testing/pcsc.js";
import { runTool, runToolAsync } from "../testing/tools.js";
import type { EmulatedCard } from "./card.js";
import { makeCardStateFile, TEST_AUTH_PIN, TEST_SIGN_PASSWORD } from "./card-fixture.js";
import { InProcessTransport } from "./in-process-transport.js";
import { openMyNumberCard } from "./mynacard.js";
import { waitForReaderState } from "./pcsc-transport.js";
import { loadCardState } from "./state.js";
import { openUicc } from "./uicc/uicc.js";
import { makeSimStateFile, personaliseSim, TEST_SIM_PIN } from "./uicc/uicc-fixture.js";
import { serveCardOverVpcd } from "./vpcd.js";

const PKCS11_MODULE = [
  "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
  "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
].find((path) => existsSync(path));

let skip = await pcscSkipReason();
if (!skip && !PKCS11_MODULE) {
  if (process.env["CI"])
    throw new Error("OpenSC interop tests need opensc-pkcs11.so (apt-get install opensc)");
  skip = "opensc-pkcs11.so not found (apt-get install opensc)";
}

/** A card to serve: its directory (tools run there), its EFs as issued, and how to open it. */
interface ServedCard {
  readonly dir: string;
  readonly statePath: string;
  /** Certificate EFs as written, base64 DER by FID. */
  readonly files: Readonly<Record<string, string>>;
  open(): EmulatedCard;
  cleanup(): void;
}

async function myNumberCard(): Promise<ServedCard> {
  const fixture = await makeCardStateFile();
  return { ...fixture, files: fixture.state.files, open: () => openMyNumberCard(fixture.statePath) };
}

/**
 * A SIM as the phone has it once personalised: the carrier installed the J-LIS domain and the applet,
 * J-LIS generated the key on the SIM and wrote the certificate, the citizen set the PIN.
 */
async function personalisedSim(): Promise<ServedCard> {
  const sim = makeSimStateFile();
  const certificate = await personaliseSim(new InProcessTransport(openUicc(sim.statePath)), sim);
  return {
    ...sim,
    files: { "000A": certificate.toString("base64") },
    open: () => openUicc(sim.statePath),
  };
}

interface Session {
  readonly fixture: ServedCard;
  readonly slot: VpcdSlot;
  /** Runs an OpenSC tool in the fixture's directory against the vpcd reader; asserts exit 0 unless told. */
  tool(program: string, args: string[], expectExit?: number): Promise<string>;
  pkcs11(args: string[], expectExit?: number): Promise<string>;
  /** The PKCS#11 slot id whose token label is `label` (from `pkcs11-tool -L`). */
  slotId(label: string): Promise<string>;
}

/** Serves a fresh card through vpcd for the duration of `body`. */
async function withCard(
  make: () => Promise<ServedCard>,
  body: (session: Session) => Promise<void>,
): Promise<void> {
  const fixture = await make();
  try {
    await withVpcdSlot(async (slot) => {
      const link = serveCardOverVpcd(fixture.open(), { port: slot.port });
      try {
        await link.waitUntilActive();
        // vpcd talks to the card before pcscd's next presence poll reports it to clients.
        assert.ok(
          await waitForReaderState(slot.readerName, "present", 10_000),
          `pcscd never reported the card in ${slot.readerName}`,
        );
        const tool = async (program: string, args: string[], expectExit = 0) => {
          const result = await runToolAsync(program, args, { cwd: fixture.dir });
          assert.equal(
            result.code,
            expectExit,
            `${program} ${args.join(" ")} exited ${result.code}:\n${result.stdout}\n${result.stderr}`,
          );
          return `${result.stdout}\n${result.stderr}`;
        };
        const pkcs11 = (args: string[], expectExit = 0) =>
          tool("pkcs11-tool", ["--module", PKCS11_MODULE ?? "", ...args], expectExit);
        const slotId = async (label: string) => {
          const listing = await pkcs11(["-L"]);
          const match = new RegExp(
            `Slot \\d+ \\((0x[0-9a-f]+)\\): ${slot.readerName}\\s*\\n\\s*token label\\s*: ${label.replace(/[()]/g, "\\$&")}`,
          ).exec(listing);
          assert.ok(match, `no slot with token ${label} in:\n${listing}`);
          return String(Number(match[1]));
        };
        await body({ fixture, slot, tool, pkcs11, slotId });
      } finally {
        await link.close();
      }
    });
  } finally {
    fixture.cleanup();
  }
}

/** Signs `data` with pkcs11-tool and checks the signature with OpenSSL and the card's certificate. */
async function signAndVerify(
  session: Session,
  options: { slotLabel: string; pin: string; keyId: string; certificatePem: string },
): Promise<void> {
  const dir = session.fixture.dir;
  writeFileSync(join(dir, "data"), "JPKI interoperability test\n");
  writeFileSync(join(dir, `cert${options.keyId}.pem`), options.certificatePem);
  const pub = runTool("openssl", ["x509", "-in", `cert${options.keyId}.pem`, "-pubkey", "-noout"], {
    cwd: dir,
  });
  assert.equal(pub.code, 0, pub.stderr);
  writeFileSync(join(dir, `pub${options.keyId}.pem`), pub.stdout);
  const slotId = await session.slotId(options.slotLabel);
  // pkcs11-tool's --id is the PKCS#15 object id: 01 authentication key, 02 signing key.
  await session.pkcs11([
    "--slot",
    slotId,
    "--login",
    "--pin",
    options.pin,
    "--sign",
    "--mechanism",
    "SHA256-RSA-PKCS",
    "--id",
    options.keyId,
    "-i",
    "data",
    "-o",
    `sig${options.keyId}`,
  ]);
  const signature = readFileSync(join(dir, `sig${options.keyId}`));
  assert.equal(signature.length, 256);
  assert.ok(
    signature.some((b) => b !== 0),
    "not OpenSC's all-zero answer to a 61xx response (JPKI-FACTS §1)",
  );
  const verify = runTool(
    "openssl",
    ["dgst", "-sha256", "-verify", `pub${options.keyId}.pem`, "-signature", `sig${options.keyId}`, "data"],
    { cwd: dir },
  );
  assert.equal(verify.code, 0, `${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /Verified OK/);
}

const derOfPem = (pem: string) =>
  Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64").toString("base64");

const triesLeft = (listing: string, pinName: string) =>
  Number(new RegExp(`PIN \\[${pinName}\\][\\s\\S]*?Tries left\\s*:\\s*(\\d+)`).exec(listing)?.[1]);

describe("OpenSC reads our My Number card as a JPKI card", { skip, timeout: 600_000 }, () => {
  test("opensc-tool -n names the jpki driver; pkcs15-tool -D lists certificates, keys and PINs", async () => {
    await withCard(myNumberCard, async (session) => {
      assert.match(await session.tool("opensc-tool", ["-n"]), /^jpki$/m);
      const dump = await session.tool("pkcs15-tool", ["-D"]);
      assert.match(dump, /PKCS#15 Card \[JPKI\]/);
      for (const label of [
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
        "User Authentication Key",
        "Digital Signature Key",
      ])
        assert.ok(dump.includes(`[${label}]`), `${label} missing from:\n${dump}`);
      assert.equal(triesLeft(dump, "User Authentication PIN"), 3);
      assert.equal(triesLeft(dump, "Digital Signature PIN"), 5);
    });
  });

  test("pkcs11-tool -L shows the two JPKI tokens; -O lists the public objects", async () => {
    await withCard(myNumberCard, async (session) => {
      const slots = await session.pkcs11(["-L"]);
      assert.match(slots, /token label\s*: JPKI \(User Authentication PIN\)/);
      assert.match(slots, /token label\s*: JPKI \(Digital Signature PIN\)/);
      const objects = await session.pkcs11([
        "--slot",
        await session.slotId("JPKI (User Authentication PIN)"),
        "-O",
      ]);
      assert.match(
        objects,
        /Certificate Object; type = X\.509 cert\s+label:\s+User Authentication Certificate\n/,
      );
      assert.match(objects, /label:\s+User Authentication Certificate CA/);
      assert.match(objects, /label:\s+Digital Signature Certificate CA/);
      assert.match(objects, /OU=TEST/, "test credentials say so (JPKI-FACTS §2)");
    });
  });

  test("the authentication key signs with the PIN; OpenSSL verifies with the certificate read from the card", async () => {
    await withCard(myNumberCard, async (session) => {
      const pem = await session.tool("pkcs15-tool", ["--read-certificate", "01"]);
      const certificatePem =
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)?.[0] ?? "";
      assert.equal(derOfPem(certificatePem), session.fixture.files["000A"], "EF 000A as issued");
      await signAndVerify(session, {
        slotLabel: "JPKI (User Authentication PIN)",
        pin: TEST_AUTH_PIN,
        keyId: "01",
        certificatePem,
      });
    });
  });

  test("the signing key signs with the signing password (slot 1); its certificate needs the password", async () => {
    await withCard(myNumberCard, async (session) => {
      const pem = await session.tool("pkcs15-tool", [
        "--read-certificate",
        "02",
        "--verify-pin",
        "--auth-id",
        "02",
        "--pin",
        TEST_SIGN_PASSWORD,
      ]);
      const certificatePem =
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)?.[0] ?? "";
      assert.equal(derOfPem(certificatePem), session.fixture.files["0001"], "EF 0001 as issued");
      await signAndVerify(session, {
        slotLabel: "JPKI (Digital Signature PIN)",
        pin: TEST_SIGN_PASSWORD,
        keyId: "02",
        certificatePem,
      });
    });
  });

  test("wrong PINs cost tries that OpenSC reports, and the card keeps the count", async () => {
    await withCard(myNumberCard, async (session) => {
      const authSlot = await session.slotId("JPKI (User Authentication PIN)");
      const signSlot = await session.slotId("JPKI (Digital Signature PIN)");
      const login = (slotId: string, pin: string) =>
        session.pkcs11(["--slot", slotId, "--login", "--pin", pin, "-O"], 1);
      assert.match(await login(authSlot, "9999"), /CKR_PIN_INCORRECT/);
      assert.match(await login(signSlot, "WRONG1"), /CKR_PIN_INCORRECT/);
      assert.match(await login(signSlot, "WRONG2"), /CKR_PIN_INCORRECT/);
      const pins = await session.tool("pkcs15-tool", ["--list-pins"]);
      assert.equal(triesLeft(pins, "User Authentication PIN"), 2);
      assert.equal(triesLeft(pins, "Digital Signature PIN"), 3);
      const state = loadCardState(session.fixture.statePath);
      assert.equal(state.pins["0018"]?.triesLeft, 2);
      assert.equal(state.pins["001B"]?.triesLeft, 3);
      // The right PIN still works (and, on the real card, restores the counter).
      await session.pkcs11(["--slot", authSlot, "--login", "--pin", TEST_AUTH_PIN, "-O"]);
      assert.equal(
        triesLeft(await session.tool("pkcs15-tool", ["--list-pins"]), "User Authentication PIN"),
        3,
      );
    });
  });
});

describe("OpenSC and our personalised SIM (phone-style EF 000A)", { skip, timeout: 600_000 }, () => {
  test("found by SELECT AID behind a SIM ATR; signs; the auth certificate needs the PIN", async () => {
    await withCard(personalisedSim, async (session) => {
      assert.match(await session.tool("opensc-tool", ["-n"]), /^jpki$/m);
      // What a PC/SC user sees (JPKI-FACTS §1): no certificate objects without the PIN.
      const objects = await session.pkcs11([
        "--slot",
        await session.slotId("JPKI (User Authentication PIN)"),
        "-O",
      ]);
      assert.doesNotMatch(objects, /label:\s+User Authentication Certificate\n/);
      await session.tool("pkcs15-tool", ["--read-certificate", "01"], 1);
      const pem = await session.tool("pkcs15-tool", [
        "--read-certificate",
        "01",
        "--verify-pin",
        "--auth-id",
        "01",
        "--pin",
        TEST_SIM_PIN,
      ]);
      const certificatePem =
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)?.[0] ?? "";
      assert.equal(derOfPem(certificatePem), session.fixture.files["000A"]);
      await signAndVerify(session, {
        slotLabel: "JPKI (User Authentication PIN)",
        pin: TEST_SIM_PIN,
        keyId: "01",
        certificatePem,
      });
    });
  });
});
