/**
 * J-LIS's client of a carrier that runs in a process of its own (`jpki-mobile carrier serve`,
 * src/server/carrier-api.ts): the carrier's OTA gateway and its SIM status API over HTTP.
 *
 * A script is submitted under an id J-LIS chooses, so a submission repeated after a network failure
 * is the same script; then J-LIS reads the script's state until the SIM's responses are there (the
 * proof of receipt), with growing pauses, or until the gateway says it expired.
 */
import { randomUUID } from "node:crypto";
import { JpkiError } from "../errors.js";
import type { Authority } from "../server/authority.js";
import { issuerOfIccid, type SimStatusAnswer, simStatus } from "./carrier-store.js";
import type { OtaGateway, ScriptState, ScriptTransport } from "./ota-relay.js";

export interface HttpOtaGatewayOptions {
  /** How long J-LIS waits for a script's responses (default 70 s: the gateway's own wait is 60 s). */
  readonly timeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class HttpOtaGateway implements OtaGateway {
  private readonly base: string;
  private readonly timeoutMs: number;

  constructor(
    readonly carrier: string,
    baseUrl: string,
    options: HttpOtaGatewayOptions = {},
  ) {
    this.base = `${baseUrl.replace(/\/$/, "")}/api/mno`;
    this.timeoutMs = options.timeoutMs ?? 70_000;
  }

  transportFor(iccid: string): ScriptTransport {
    const send = (commands: readonly Uint8Array[]) => this.runScript(iccid, commands);
    return {
      transmit: async (command) => {
        const [response] = await send([command]);
        if (!response) throw new JpkiError("internal", `SIM ${iccid} answered nothing`);
        return response;
      },
      transmitScript: send,
    };
  }

  /** The carrier's SIM status API; undefined when the carrier does not know the SIM. */
  async simStatus(iccid: string): Promise<SimStatusAnswer | undefined> {
    const response = await this.call(`${this.base}/sims/${encodeURIComponent(iccid)}`);
    if (response.status === 404) return undefined;
    return (await this.json(response, "the SIM status")) as SimStatusAnswer;
  }

  private async runScript(iccid: string, commands: readonly Uint8Array[]): Promise<Buffer[]> {
    const id = randomUUID();
    const deadline = Date.now() + this.timeoutMs;
    const body = JSON.stringify({
      iccid,
      id,
      commands: commands.map((c) => Buffer.from(c).toString("base64")),
    });
    // Submitted again after a failure that may have hidden a success: the same id is the same script.
    for (let pause = 50; ; pause = Math.min(pause * 2, 2000)) {
      try {
        const response = await this.call(`${this.base}/scripts`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        await this.json(response, "the script's submission");
        break;
      } catch (error) {
        if (error instanceof JpkiError || Date.now() + pause > deadline) throw error;
        await sleep(pause);
      }
    }
    for (let pause = 5; ; pause = Math.min(pause * 2, 500)) {
      const status = (await this.json(
        await this.call(`${this.base}/scripts/${id}`),
        "the script's state",
      )) as {
        state: ScriptState;
        responses?: string[];
      };
      if (status.state === "executed") return (status.responses ?? []).map((r) => Buffer.from(r, "base64"));
      if (status.state === "expired" || Date.now() + pause > deadline)
        throw new JpkiError(
          "signer-unavailable",
          `the phone with SIM ${iccid} did not run script ${id} from ${this.carrier}; try again later`,
        );
      await sleep(pause);
    }
  }

  private call(url: string, init: RequestInit = {}): Promise<Response> {
    return fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }).catch((cause: unknown) => {
      throw new Error(`carrier ${this.carrier} at ${url} cannot be reached`, { cause });
    });
  }

  /** A 2xx answer's JSON; a refusal becomes the JpkiError it names, anything else a failure. */
  private async json(response: Response, what: string): Promise<unknown> {
    const body = (await response.json().catch(() => ({}))) as { error?: string; reason?: string };
    if (response.ok) return body;
    const reason = `carrier ${this.carrier} refused ${what} (${response.status}): ${body.reason ?? ""}`;
    if (response.status >= 400 && response.status < 500)
      throw new JpkiError(response.status === 404 ? "not-found" : "bad-input", reason);
    throw new Error(reason);
  }
}

const remote = new WeakMap<object, Map<string, HttpOtaGateway>>();

/** Carrier `name` when the data directory's config.json says it runs apart (`carriers.NAME.url`). */
export function remoteCarrier(authority: Authority, name: string): HttpOtaGateway | undefined {
  const url = authority.config.carriers?.[name]?.url;
  if (!url) return undefined;
  let byName = remote.get(authority.config);
  if (!byName) {
    byName = new Map();
    remote.set(authority.config, byName);
  }
  let gateway = byName.get(name);
  if (!gateway) {
    gateway = new HttpOtaGateway(name, url);
    byName.set(name, gateway);
  }
  return gateway;
}

/** The SIM status API of the SIM's issuer: over HTTP when the issuer runs apart, else in this process. */
export async function carrierSimStatus(
  authority: Authority,
  iccid: string,
): Promise<SimStatusAnswer | undefined> {
  const issuer = issuerOfIccid(iccid);
  if (!issuer) return undefined;
  const apart = remoteCarrier(authority, issuer.name);
  return apart ? apart.simStatus(iccid) : simStatus(authority.dataDir, iccid);
}
