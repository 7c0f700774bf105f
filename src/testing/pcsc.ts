/**
 * Test harness for PC/SC tests: pcscd running with vsmartcard's vpcd reader, and one test at a time
 * on the vpcd slots.
 *
 * - The vpcd reader comes from the configuration Debian's vsmartcard-vpcd installs in
 *   /etc/reader.conf.d/ (FRIENDLYNAME "Virtual PCD", CHANNELID 0x8C7B = port 35963). pcscd names its
 *   slots "<FRIENDLYNAME> 00 00" and "... 00 01"; slot n listens on port CHANNELID + n.
 * - pcscd is started with plain `pcscd` (it daemonizes and writes /run/pcscd/pcscd.pid) when no pcscd
 *   answers; it is left running for the next test file, like a system service.
 * - node --test runs test files in parallel processes: `withVpcdSlot` takes a lock directory in the
 *   temporary directory, so tests using the vpcd reader never overlap (OpenSC would otherwise see
 *   another test's card).
 *
 * Missing pieces make the tests skip with a message, except in CI (env CI set), where they fail.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EmulatedCard } from "../card/card.js";
import { waitForReaderState } from "../card/pcsc-transport.js";

export const READER_CONF_DIR = "/etc/reader.conf.d";
const PCSCD_PID_FILE = "/run/pcscd/pcscd.pid";

export interface VpcdSlot {
  /** The PC/SC reader name, e.g. "Virtual PCD 00 00". */
  readonly readerName: string;
  readonly host: string;
  readonly port: number;
}

export interface VpcdConfig {
  readonly file: string;
  readonly friendlyName: string;
  readonly basePort: number;
}

/**
 * Finds the vpcd reader in /etc/reader.conf.d (the stanza whose LIBPATH is libifdvpcd.so) and its
 * port: CHANNELID, else the number after the colon of DEVICENAME (`/dev/null:0x8C7B`).
 */
export function findVpcdConfig(dir = READER_CONF_DIR): VpcdConfig | undefined {
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir).sort()) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const lines = text.split("\n").filter((line) => !line.trimStart().startsWith("#"));
    const field = (key: string) =>
      lines
        .map((line) => new RegExp(`^\\s*${key}\\s+(.+?)\\s*$`).exec(line)?.[1])
        .find((v) => v !== undefined);
    if (!field("LIBPATH")?.includes("libifdvpcd")) continue;
    const channel = field("CHANNELID") ?? field("DEVICENAME")?.split(":")[1];
    const basePort = channel === undefined ? 35963 : Number(channel);
    const friendlyName = (field("FRIENDLYNAME") ?? "Virtual PCD").replace(/^"|"$/g, "");
    if (Number.isInteger(basePort) && basePort > 0) return { file, friendlyName, basePort };
  }
  return undefined;
}

/** Slot n of the vpcd reader (Debian's build has 2 slots: 00 00 and 00 01). */
export function vpcdSlot(config: VpcdConfig, slot = 0): VpcdSlot {
  return {
    readerName: `${config.friendlyName} 00 ${String(slot).padStart(2, "0")}`,
    host: "127.0.0.1",
    port: config.basePort + slot,
  };
}

function onPath(program: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).status === 0;
}

/** Why PC/SC tests cannot run here, or undefined when they can. */
export async function pcscMissing(): Promise<string | undefined> {
  if (!onPath("pcscd")) return "pcscd not found (apt-get install pcscd)";
  if (!findVpcdConfig()) return `no vpcd reader in ${READER_CONF_DIR} (apt-get install vsmartcard-vpcd)`;
  try {
    await import("smartcard");
  } catch (error) {
    return `the smartcard addon does not load (${(error as Error).message}); apt-get install libpcsclite-dev and rebuild`;
  }
  return undefined;
}

/**
 * For a test file: the reason to skip PC/SC tests locally, or undefined to run them. In CI a missing
 * piece throws instead, so the tests fail rather than vanish.
 */
export async function pcscSkipReason(): Promise<string | undefined> {
  const missing = await pcscMissing();
  if (missing && process.env["CI"]) throw new Error(`PC/SC tests need pcscd and vpcd: ${missing}`);
  return missing;
}

/** The pid in /run/pcscd/pcscd.pid when that process is alive. */
export function runningPcscdPid(): number | undefined {
  try {
    // pcscd writes the pid followed by a newline and a NUL byte.
    const pid = Number.parseInt(readFileSync(PCSCD_PID_FILE, "latin1"), 10);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function readerNames(): Promise<string[] | undefined> {
  const { Context } = await import("smartcard");
  try {
    const context = new Context();
    try {
      return context.listReaders().map((r) => r.name);
    } finally {
      context.close();
    }
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Makes sure pcscd runs and lists the vpcd reader; starts `pcscd` when none answers. Returns slot 0.
 */
export async function ensurePcscd(timeoutMs = 10_000): Promise<VpcdSlot> {
  const config = findVpcdConfig();
  if (!config) throw new Error(`no vpcd reader in ${READER_CONF_DIR} (apt-get install vsmartcard-vpcd)`);
  const slot = vpcdSlot(config, 0);
  const deadline = Date.now() + timeoutMs;
  let started = false;
  for (;;) {
    const names = await readerNames();
    if (names?.includes(slot.readerName)) return slot;
    if (names === undefined && !started && runningPcscdPid() === undefined) {
      // `pcscd` forks into the background and returns once its socket is set up.
      const result = spawnSync("pcscd", [], { encoding: "utf8" });
      if (result.status !== 0) throw new Error(`pcscd failed to start: ${result.stderr || result.error}`);
      started = true;
    }
    if (Date.now() > deadline)
      throw new Error(
        names === undefined
          ? `pcscd does not answer after ${timeoutMs} ms`
          : `pcscd lists ${JSON.stringify(names)}, not ${slot.readerName} (${config.file})`,
      );
    await sleep(100);
  }
}

/**
 * Stops the running pcscd (SIGTERM, as at a service restart) and starts a new one; used to prove the
 * card link reconnects. Only call it while holding the vpcd slot lock.
 */
export async function restartPcscd(timeoutMs = 10_000): Promise<VpcdSlot> {
  const pid = runningPcscdPid();
  if (pid !== undefined) {
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + timeoutMs;
    while (runningPcscdPid() === pid) {
      if (Date.now() > deadline) throw new Error(`pcscd ${pid} did not stop within ${timeoutMs} ms`);
      await sleep(50);
    }
  }
  return ensurePcscd(timeoutMs);
}

const LOCK_DIR = join(tmpdir(), "jpki-mobile-vpcd.lock");

function lockOwnerAlive(): boolean {
  try {
    const pid = Number(readFileSync(join(LOCK_DIR, "pid"), "utf8"));
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive but not ours. A missing pid file (owner between mkdir and write, or dead there)
    // counts as dead: the caller waits a grace period before taking over.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` with exclusive use of the vpcd reader across all test processes (a lock directory in
 * the temporary directory; a lock left by a dead process is taken over), with pcscd running.
 */
export async function withVpcdSlot<T>(fn: (slot: VpcdSlot) => Promise<T>, waitMs = 600_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  let staleSince: number | undefined;
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, "pid"), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (!lockOwnerAlive()) {
        // Give a process between mkdir and writing its pid a moment before taking the lock over.
        staleSince ??= Date.now();
        if (Date.now() - staleSince > 500) {
          rmSync(LOCK_DIR, { recursive: true, force: true });
          staleSince = undefined;
        }
      } else staleSince = undefined;
      if (Date.now() > deadline)
        throw new Error(`the vpcd reader stayed locked for ${waitMs} ms (${LOCK_DIR})`);
      await sleep(100);
    }
  }
  const release = () => rmSync(LOCK_DIR, { recursive: true, force: true });
  process.once("exit", release);
  try {
    const slot = await ensurePcscd();
    // The previous user's card may still show in the reader for a moment: start from an empty one.
    await waitForReaderState(slot.readerName, "empty");
    return await fn(slot);
  } finally {
    process.removeListener("exit", release);
    release();
  }
}

/**
 * A stand-in card for transport tests: answers every command with the command itself and 90 00,
 * except INS CA (GET DATA style), answered with Le bytes 00 01 02 ... (Le 00 = 256) and 90 00.
 * It records what the reader did to it.
 */
export class EchoCard implements EmulatedCard {
  readonly commands: Buffer[] = [];
  resets = 0;
  powerOffs = 0;
  constructor(readonly atr: Buffer = Buffer.from("3BE000FF8131FE4514", "hex")) {}
  reset(): void {
    this.resets += 1;
  }
  powerOff(): void {
    this.powerOffs += 1;
  }
  async transmit(command: Uint8Array): Promise<Buffer> {
    const apdu = Buffer.from(command);
    this.commands.push(apdu);
    if (apdu.length === 5 && apdu[1] === 0xca) {
      const le = apdu[4] === 0 ? 256 : (apdu[4] ?? 0);
      return Buffer.concat([
        Buffer.from(Array.from({ length: le }, (_, i) => i & 0xff)),
        Buffer.from([0x90, 0x00]),
      ]);
    }
    return Buffer.concat([apdu, Buffer.from([0x90, 0x00])]);
  }
}
