/**
 * `rp serve`: the demo relying party (a portal that logs citizens in with the smartphone's
 * user-authentication certificate) over HTTP, registered as a verifier of the data directory's status
 * server. `login`: the JPKI app's login to a relying party, with a SIM state file.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { EmulatedCard } from "../../card/card.js";
import { InProcessTransport } from "../../card/in-process-transport.js";
import { openSimAppletCard } from "../../card/sim-applet-card.js";
import { isUiccStateFile, loadUiccState } from "../../card/uicc/state.js";
import { openUicc } from "../../card/uicc/uicc.js";
import { JpkiError } from "../../errors.js";
import { loginOnlyApp, loginToRelyingParty } from "../../phone/rp-login.js";
import { addVerifier } from "../../registry/verifiers.js";
import { createDemoRelyingParty } from "../../rp/demo-server.js";
import { type Command, printResult, stringOption, UsageError } from "../command.js";
import {
  DATA_HELP,
  dataDir,
  dataOption,
  JSON_HELP,
  jsonOption,
  portOption,
  untilStopSignal,
  withAuthority,
} from "./options.js";

const DEFAULT_RP_PORT = 8090;
const DEFAULT_RP_ID = "demo-rp";

/** A relying party's verifier registration, kept in DIR/relying-parties/<id>.json (mode 0600). */
interface RpCredentials {
  readonly verifierId: string;
  readonly token: string;
}

/** The OCSP URL of a status server given by its base URL or by its /ocsp URL. */
function ocspUrlOf(statusUrl: string): string {
  let url: URL;
  try {
    url = new URL(statusUrl);
  } catch {
    throw new UsageError(`--status-url is not a URL: ${statusUrl}`);
  }
  const base = url.toString().replace(/\/+$/, "");
  return base.endsWith("/ocsp") ? base : `${base}/ocsp`;
}

export const rpServe: Command = {
  name: "rp serve",
  summary: "run the demo relying party (smartphone JPKI login) over HTTP",
  help: `
Usage: jpki-mobile rp serve --status-url URL [--data DIR] [--port N] [--host H] [--id ID]
                            [--origin URL] [--json]

Runs a demo relying party that logs citizens in with the smartphone user-authentication
certificate: POST /login/challenge, POST /login, GET /me, POST /logout (docs/relying-party.md).
It trusts the data directory's user-authentication CA and asks the status server by OCSP. The
first time, it registers itself as a verifier (kind auth) and keeps the token in
DIR/relying-parties/ID.json (mode 0600); later runs reuse it. Runs until Ctrl-C or SIGTERM.

  --status-url URL  the status server (\`jpki-mobile start\`), e.g. http://127.0.0.1:8080
${DATA_HELP}
  --port N          port to listen on (default ${DEFAULT_RP_PORT}; 0 picks a free one)
  --host H          address to listen on (default 127.0.0.1)
  --id ID           the relying party's identity in its challenges (default ${DEFAULT_RP_ID})
  --origin URL      the origin phones use, when it is not http://HOST:PORT (behind a proxy)
${JSON_HELP} (one line: { "url", "rpId", "verifierId", "ocspUrl" })
`,
  options: {
    ...dataOption,
    ...jsonOption,
    "status-url": { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    id: { type: "string" },
    origin: { type: "string" },
  },
  async run(values) {
    const ocspUrl = ocspUrlOf(stringOption(values, "status-url", true));
    const port = portOption(stringOption(values, "port"), DEFAULT_RP_PORT);
    const host = stringOption(values, "host") ?? "127.0.0.1";
    const id = stringOption(values, "id") ?? DEFAULT_RP_ID;
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(id)) throw new UsageError("--id is 1 to 100 of A-Z a-z 0-9 . _ -");
    const origin = stringOption(values, "origin");

    // The registry is read once (trust anchor, registration) and closed: the relying party runs on
    // the SDK alone, as a relying party elsewhere would.
    let credentials: RpCredentials | undefined;
    let trustAnchor: Buffer | undefined;
    await withAuthority(values, "cli:rp", async (authority) => {
      trustAnchor = authority.certificates.auth;
      const file = path.join(authority.dataDir, "relying-parties", `${id}.json`);
      if (existsSync(file)) credentials = JSON.parse(readFileSync(file, "utf8")) as RpCredentials;
      else {
        credentials = await addVerifier(authority.registry.db, {
          name: `relying party ${id}`,
          kind: "auth",
          actor: "cli:rp",
        });
        mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
        chmodSync(file, 0o600);
      }
      return 0;
    });
    if (!credentials?.token || !trustAnchor)
      throw new JpkiError("internal", `the relying party's registration in ${dataDir(values)} is unreadable`);

    const demo = createDemoRelyingParty({
      id,
      ...(origin ? { origin } : {}),
      trustAnchors: [trustAnchor],
      status: { url: ocspUrl, token: credentials.token },
    });
    const url = await demo.listen(port, host);
    // Listening for the stop signals before the URL is printed: whoever reads it may stop us at once.
    const stopped = untilStopSignal();
    const listening = { url, rpId: id, verifierId: credentials.verifierId, ocspUrl };
    if (values.json === true) process.stdout.write(`${JSON.stringify(listening)}\n`);
    else
      process.stdout.write(
        `demo relying party ${id} at ${url} (status: ${ocspUrl}, verifier ${credentials.verifierId}); Ctrl-C stops it\n`,
      );
    await stopped;
    await demo.close();
    return 0;
  },
};

/** A SIM state file from `sim create`, or a bare JPKI-AP state of a SIM product. */
function openSim(statePath: string): { card: EmulatedCard; iccid: string; eid: string; carrier: string } {
  if (!existsSync(statePath)) throw new JpkiError("not-found", `no SIM state file ${statePath}`);
  if (isUiccStateFile(statePath)) {
    const state = loadUiccState(statePath);
    return { card: openUicc(statePath), iccid: state.iccid, eid: state.eid, carrier: state.carrier };
  }
  return { card: openSimAppletCard(statePath), iccid: "", eid: "", carrier: "" };
}

export const loginCommand: Command = {
  name: "login",
  summary: "log in to a relying party with the SIM's user-authentication certificate",
  help: `
Usage: jpki-mobile login --rp URL --sim FILE --pin PIN [--json]

Does what the JPKI app does for a login: fetches the relying party's challenge, shows who asks,
verifies the SIM's user-authentication PIN (4 digits; three wrong tries block it until the
municipal counter resets it), has the SIM sign, and sends the answer. Prints the session.
The app refuses a challenge naming another origin than URL's.

  --rp URL     the relying party, e.g. http://127.0.0.1:8090 (\`jpki-mobile rp serve\`)
  --sim FILE   the SIM state file (from \`sim create\`, with a delivered certificate)
  --pin PIN    the SIM's user-authentication PIN
${JSON_HELP} { "session", "serial", "subject", "kind", "expiresAt", "rpId", "origin" }
`,
  options: { ...jsonOption, rp: { type: "string" }, sim: { type: "string" }, pin: { type: "string" } },
  async run(values) {
    const rpUrl = stringOption(values, "rp", true);
    const pin = stringOption(values, "pin", true);
    const sim = openSim(stringOption(values, "sim", true));
    const app = loginOnlyApp({
      transport: new InProcessTransport(sim.card),
      iccid: sim.iccid,
      eid: sim.eid,
      carrier: sim.carrier,
    });
    const json = values.json === true;
    const session = await loginToRelyingParty(app, {
      rpUrl,
      pin,
      confirm: (who) => {
        if (!json) process.stderr.write(`Login requested by ${who.rpId} (${who.origin})\n`);
        return true;
      },
    });
    printResult(
      json,
      {
        session: session.session,
        serial: session.serial,
        subject: session.subject,
        kind: session.kind,
        expiresAt: session.expiresAt,
        rpId: session.requester.rpId,
        origin: session.requester.origin,
      },
      (s) =>
        [
          `Logged in to ${s.rpId} (${s.origin}) as certificate ${s.serial} (${s.kind}).`,
          `  session: ${s.session} (until ${s.expiresAt})`,
        ].join("\n"),
    );
    return 0;
  },
};
