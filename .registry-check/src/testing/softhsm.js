/**
 * Test harness: fresh SoftHSM2 tokens in a private temporary directory.
 *
 * SoftHSM reads `$SOFTHSM2_CONF` (and scans its token directory) at C_Initialize, so the first call
 * in a process writes one private softhsm2.conf, points SOFTHSM2_CONF at it, and every token of the
 * process lives in that configuration's token directory. A token created while the module is already
 * initialized becomes visible at the module's next C_Initialize; Pkcs11KeyStore does that by itself
 * when it cannot find its token. Each test process (node --test runs one per file) gets its own
 * directory, so test files run in parallel without sharing tokens.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
const run = promisify(execFile);
const MODULE_CANDIDATES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];
/** Path of the SoftHSM2 PKCS#11 library ($JPKI_SOFTHSM_MODULE, else the usual Debian paths), if any. */
export function softHsmModulePath() {
    const fromEnv = process.env["JPKI_SOFTHSM_MODULE"];
    if (fromEnv)
        return fromEnv;
    return MODULE_CANDIDATES.find((candidate) => existsSync(candidate));
}
/** Why SoftHSM2 tests cannot run here, or undefined when they can. */
export function softHsmMissing() {
    if (!softHsmModulePath())
        return "libsofthsm2.so not found (apt-get install softhsm2)";
    const onPath = (process.env["PATH"] ?? "")
        .split(path.delimiter)
        .some((dir) => dir && existsSync(path.join(dir, "softhsm2-util")));
    return onPath ? undefined : "softhsm2-util not found (apt-get install softhsm2)";
}
let root;
let queue = Promise.resolve();
let counter = 0;
function processRoot() {
    root ??= (async () => {
        const directory = await fs.mkdtemp(path.join(tmpdir(), "jpki-softhsm-"));
        const tokens = path.join(directory, "tokens");
        await fs.mkdir(tokens, { mode: 0o700 });
        const conf = path.join(directory, "softhsm2.conf");
        await fs.writeFile(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
        // Must be in place before the module's C_Initialize: SoftHSM reads it there.
        process.env["SOFTHSM2_CONF"] = conf;
        // Synchronous removal: an "exit" handler cannot wait for asynchronous work.
        process.once("exit", () => rmSync(directory, { recursive: true, force: true }));
        return { directory, tokens };
    })();
    return root;
}
/** Creates and initializes a new token (`softhsm2-util --init-token --free`). */
export function createSoftHsmToken(options = {}) {
    const task = queue.then(async () => {
        const modulePath = softHsmModulePath();
        if (!modulePath)
            throw new Error(softHsmMissing());
        const { tokens } = await processRoot();
        const label = options.label ?? `jpki-test-${process.pid}-${++counter}`;
        const pin = options.pin ?? "1234";
        const soPin = options.soPin ?? "12345678";
        const before = new Set(await fs.readdir(tokens));
        await run("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin], { env: process.env });
        const created = (await fs.readdir(tokens)).filter((name) => !before.has(name));
        if (created.length !== 1)
            throw new Error(`softhsm2-util created ${created.length} token directories`);
        const tokenDirectory = path.join(tokens, created[0]);
        const uri = `pkcs11:token=${encodeURIComponent(label)}` +
            `?module-path=${encodeURI(modulePath)}&pin-value=${encodeURIComponent(pin)}`;
        return {
            uri,
            label,
            pin,
            soPin,
            modulePath,
            tokenDirectory,
            cleanup: () => fs.rm(tokenDirectory, { recursive: true, force: true }),
        };
    });
    queue = task.catch(() => undefined);
    return task;
}
//# sourceMappingURL=softhsm.js.map