/**
 * The JPKI app's network side: J-LIS's RA and the SIM carrier's relay over HTTP (src/server/ra-api.ts),
 * when the phone runs apart from J-LIS. `httpJlis` is the app's JlisClient; `httpRelayAgent` is the
 * admin agent that pulls the commands J-LIS left at the carrier for this SIM, runs them on the SIM and
 * posts the answers (SCP81/SERAM style: the device opens the session).
 */
import type { CardTransport } from "../card/card.js";
import { type ErrorCode, JpkiError } from "../errors.js";
import { ScriptJournal } from "../mno/ota-relay.js";
import type { ApplicationAnswer, JlisClient } from "./app.js";

const ERROR_CODES: readonly ErrorCode[] = [
  "bad-input",
  "not-found",
  "conflict",
  "forbidden",
  "integrity",
  "signer-unavailable",
  "internal",
];

async function call(url: string, init: RequestInit): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new JpkiError(
      "signer-unavailable",
      `J-LIS cannot be reached at ${url}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const text = await response.text();
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  if (!response.ok) {
    const code = ERROR_CODES.find((c) => c === body?.["error"]) ?? "internal";
    throw new JpkiError(code, String(body?.["reason"] ?? `HTTP ${response.status}`));
  }
  return body;
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** J-LIS at `baseUrl` (e.g. http://127.0.0.1:8080), as the app's JlisClient. */
export function httpJlis(baseUrl: string): JlisClient {
  const api = `${baseUrl.replace(/\/$/, "")}/api/ra`;
  let keyGeneration: "on-card" | "injected" | undefined;
  return {
    async nonce() {
      const body = (await call(`${api}/nonces`, { method: "POST" })) as {
        nonce: string;
        keyGeneration?: "on-card" | "injected";
      };
      keyGeneration = body.keyGeneration;
      return Buffer.from(body.nonce, "base64");
    },
    /** J-LIS's policy, as its last nonce said. */
    async keyGeneration() {
      return keyGeneration ?? "on-card";
    },
    async generateKey(iccid, nonce) {
      const body = (await call(`${api}/sims/${iccid}/key`, json({ nonce: nonce.toString("base64") }))) as {
        publicKey: string;
        attestation: string;
      };
      return {
        spki: Buffer.from(body.publicKey, "base64"),
        attestation: Buffer.from(body.attestation, "base64"),
      };
    },
    async submit(signedData) {
      return (await call(`${api}/applications`, {
        method: "POST",
        headers: { "content-type": "application/cms" },
        body: signedData,
      })) as ApplicationAnswer;
    },
    async deliver(applicationId) {
      return (await call(`${api}/applications/${applicationId}/delivery`, {
        method: "POST",
      })) as ApplicationAnswer;
    },
  };
}

/**
 * Pulls the SIM's scripts from the carrier's OTA gateway at `baseUrl`, runs each once on the SIM and
 * posts the responses, until stopped. Long polling (`wait`, seconds) keeps the delay low without
 * hammering the server; a failed post is tried again at the next pull with the responses kept (the
 * script is not run twice).
 */
export function httpRelayAgent(
  baseUrl: string,
  iccid: string,
  sim: Pick<CardTransport, "transmit">,
  options: { waitSeconds?: number; onError?: (error: unknown) => void } = {},
): { stop(): Promise<void> } {
  const relay = `${baseUrl.replace(/\/$/, "")}/api/mno/relay/${iccid}`;
  const controller = new AbortController();
  const journal = new ScriptJournal();
  let stopped = false;
  let backoff = 500;
  const loop = (async () => {
    while (!stopped) {
      try {
        const response = await fetch(`${relay}?wait=${options.waitSeconds ?? 10}`, {
          signal: controller.signal,
        });
        const { scripts } = (await response.json()) as { scripts: { id: string; commands: string[] }[] };
        for (const { id, commands } of scripts) {
          const responses = await journal.run(sim, {
            id,
            commands: commands.map((c) => Buffer.from(c, "base64")),
          });
          const posted = await fetch(`${relay}/${encodeURIComponent(id)}`, {
            ...json({ responses: responses.map((r) => r.toString("base64")) }),
            signal: controller.signal,
          });
          // 409: the gateway has them already (an earlier post whose answer was lost).
          if (!posted.ok && posted.status !== 409) throw new Error(`the gateway answered ${posted.status}`);
        }
        backoff = 500;
      } catch (error) {
        if (stopped) return;
        options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      controller.abort();
      await loop;
    },
  };
}
