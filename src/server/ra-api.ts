/**
 * The JSON APIs of J-LIS's RA and of the carriers' OTA relays (DESIGN §6: `/api/...` per role), as
 * the phone app uses them when it runs apart from J-LIS (src/phone/http-jlis.ts):
 *
 *   POST /api/ra/nonces                          a nonce for an online application
 *   POST /api/ra/sims/{iccid}/key                J-LIS generates the key on the SIM (over the relay)
 *   POST /api/ra/applications                    an online application (application/cms)
 *   GET  /api/ra/applications/{number}           its status and history
 *   POST /api/ra/applications/{number}/delivery  J-LIS writes the certificate to the SIM (over the relay)
 *   POST /api/ra/carrier-events                  a carrier's signed event about one of its SIMs
 *   POST /api/ra/links                           a registered verifier: the current certificate of
 *                                                the holder of a superseded one (with consent)
 *   GET  /api/support/compatibility              which carriers and SIM kinds carry the JPKI applet
 *   /api/mno/...                                 every carrier's API (carrier-api.ts)
 *
 * Applications arrive at a desk that examines them in batches (ra.ts `ApplicationDesk`): under load,
 * many share each transaction. Refusals are 4xx with `{ error, reason }`; the citizen's security
 * does not rest on these endpoints (the card's signature, the SIM's attestation and J-LIS's secure
 * channel do), so they take no credentials; the relay only ever carries J-LIS's secured commands.
 */
import type { IncomingMessage } from "node:http";
import { JpkiError } from "../errors.js";
import { simStatus } from "../mno/carrier-store.js";
import { compatibilityList } from "../mno/compatibility.js";
import { remoteCarrier } from "../mno/http-gateway.js";
import { OtaRelay } from "../mno/ota-relay.js";
import { getApplication, parseApplicationNumber } from "../ra/applications.js";
import { receiveCarrierEvent } from "../ra/carrier-events.js";
import { answerOf } from "../ra/jlis-client.js";
import { linkedCertificate } from "../ra/links.js";
import { issueNonce } from "../ra/nonces.js";
import { MAX_ONLINE_APPLICATION_BYTES, OnlineChannel } from "../ra/online.js";
import { deliverCertificate, generateKeyOnSim } from "../ra/provisioning.js";
import { ApplicationDesk } from "../ra/ra.js";
import { authenticateVerifier, verifierMayAsk } from "../registry/verifiers.js";
import type { Authority } from "./authority.js";
import { CarrierApi } from "./carrier-api.js";
import { bearerToken, readBody } from "./http-body.js";
import { type ApiReply, base64Field, errorReply, readJson, refusal, reply } from "./json-api.js";

export class RaApi {
  private readonly relays = new Map<string, OtaRelay>();
  private readonly desk: ApplicationDesk<{ signedData: Buffer }>;
  private readonly carriers: CarrierApi;

  constructor(
    private readonly authority: Authority,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    this.desk = new ApplicationDesk(authority, new OnlineChannel());
    this.carriers = new CarrierApi({
      gatewayOf: (iccid) => this.relayOf(iccid),
      gateways: () => this.relays.values(),
      simStatus: (iccid) => simStatus(authority.dataDir, iccid),
      onError,
    });
  }

  /** The carrier that issued SIM `iccid` (routing by the SIM's issuer, never the brand). */
  private async issuerOf(iccid: string): Promise<string> {
    const sim = await this.authority.registry.getSimByIccid(iccid);
    if (!sim?.carrier) throw new JpkiError("not-found", `SIM ${iccid} is not in any carrier's inventory`);
    return sim.carrier;
  }

  /** The in-process OTA gateway of `carrier`, made on first use. */
  private gatewayOf(carrier: string): OtaRelay {
    let relay = this.relays.get(carrier);
    if (!relay) {
      relay = new OtaRelay(carrier);
      this.relays.set(carrier, relay);
    }
    return relay;
  }

  /** The in-process OTA gateway of the carrier that issued SIM `iccid`. */
  async relayOf(iccid: string): Promise<OtaRelay> {
    return this.gatewayOf(await this.issuerOf(iccid));
  }

  /** How J-LIS reaches SIM `iccid`: its issuer's gateway, in another process or in this one. */
  private async transportTo(iccid: string) {
    const carrier = await this.issuerOf(iccid);
    return (remoteCarrier(this.authority, carrier) ?? this.gatewayOf(carrier)).transportFor(iccid);
  }

  /** Stops the carriers' gateways this API holds (scripts still waiting expire). */
  close(): void {
    for (const relay of this.relays.values()) relay.close();
  }

  /** Answers a request under /api/ (`path` without the query); undefined when the path is not ours. */
  async handle(req: IncomingMessage, path: string, query: URLSearchParams): Promise<ApiReply | undefined> {
    const parts = path.split("/").slice(1); // "", "api", ...
    if (parts[0] !== "api") return undefined;
    const method = req.method ?? "GET";
    try {
      const [, role, resource, id, sub, extra] = parts;
      if (role === "ra" && resource === "nonces" && id === undefined) {
        if (method !== "POST") return refusal(405, "method-not-allowed", "POST /api/ra/nonces");
        const { nonce, expiresAt } = await issueNonce(this.authority.registry.db);
        return reply(201, {
          nonce: nonce.toString("base64"),
          expiresAt: expiresAt.toISOString(),
          // Where this J-LIS makes the key: the application must say the same.
          keyGeneration: this.authority.policies.keyGeneration,
        });
      }
      if (role === "ra" && resource === "sims" && id && sub === "key" && extra === undefined) {
        if (method !== "POST") return refusal(405, "method-not-allowed", `POST ${path}`);
        const body = await readJson(req);
        const nonce = base64Field(body, "nonce", 64);
        const key = await generateKeyOnSim(this.authority, await this.transportTo(id), { iccid: id, nonce });
        return reply(200, {
          publicKey: key.spki.toString("base64"),
          attestation: key.attestation.toString("base64"),
        });
      }
      if (role === "support" && resource === "compatibility" && id === undefined) {
        if (method !== "GET") return refusal(405, "method-not-allowed", "GET /api/support/compatibility");
        return reply(200, { entries: compatibilityList() });
      }
      if (role === "ra" && resource === "links" && id === undefined) {
        if (method !== "POST") return refusal(405, "method-not-allowed", "POST /api/ra/links");
        const token = bearerToken(req.headers.authorization);
        const verifier = token ? await authenticateVerifier(this.authority.registry.db, token) : undefined;
        if (!verifier || !verifierMayAsk(verifier, "auth"))
          return refusal(
            401,
            "unauthorized",
            "a registered verifier's token is required: Authorization: Bearer <token>",
          );
        const serial = (await readJson(req)) as { serial?: unknown } | null;
        if (typeof serial?.serial !== "string" || !/^[0-9a-fA-F]{1,40}$/.test(serial.serial))
          throw new JpkiError("bad-input", "serial: the certificate's serial number in hex");
        const link = await linkedCertificate(this.authority.registry.db, serial.serial, verifier);
        if (!link)
          return refusal(
            404,
            "not-found",
            "no link: the certificate was not superseded, or its holder did not agree",
          );
        return reply(200, {
          superseded: link.superseded,
          current: link.current,
          certificate: link.certificate.toString("base64"),
        });
      }
      if (role === "ra" && resource === "carrier-events" && id === undefined) {
        if (method !== "POST") return refusal(405, "method-not-allowed", "POST /api/ra/carrier-events");
        const received = await receiveCarrierEvent(this.authority, await readJson(req));
        return reply(received.applied ? 201 : 200, { applied: received.applied, ...received.outcome });
      }
      if (role === "ra" && resource === "applications" && id === undefined) {
        if (method !== "POST") return refusal(405, "method-not-allowed", "POST /api/ra/applications");
        const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        if (type !== "application/cms" && type !== "application/pkcs7-mime")
          return refusal(
            415,
            "unsupported-media-type",
            "an application is CMS SignedData DER: application/cms",
          );
        const signedData = await readBody(req, MAX_ONLINE_APPLICATION_BYTES);
        if (!signedData)
          return refusal(
            413,
            "too-large",
            `an application has at most ${MAX_ONLINE_APPLICATION_BYTES} octets`,
          );
        const { application } = await this.desk.submit({ signedData });
        return reply(201, answerOf(application));
      }
      if (role === "ra" && resource === "applications" && id) {
        const number = parseApplicationNumber(id);
        if (sub === undefined) {
          if (method !== "GET") return refusal(405, "method-not-allowed", `GET ${path}`);
          const application = await getApplication(this.authority.registry.db, number);
          if (!application) return refusal(404, "not-found", `no application ${number}`);
          // What the caller can see without proving who they are: no person, no evidence.
          return reply(200, {
            ...answerOf(application),
            channel: application.channel,
            history: application.history.map(({ status, at, reason }) => ({ status, at, reason })),
          });
        }
        if (sub === "delivery" && extra === undefined) {
          if (method !== "POST") return refusal(405, "method-not-allowed", `POST ${path}`);
          const application = await getApplication(this.authority.registry.db, number);
          if (!application?.iccid) return refusal(404, "not-found", `no application ${number} with a SIM`);
          await deliverCertificate(this.authority, await this.transportTo(application.iccid), number);
          return reply(200, answerOf((await getApplication(this.authority.registry.db, number))!));
        }
      }
      if (role === "mno") return await this.carriers.handle(req, path, query);
      return refusal(404, "not-found", "no such resource; the API is described at /openapi.json and /docs");
    } catch (error) {
      if (!(error instanceof JpkiError) || error.status >= 500) this.onError(error);
      return errorReply(error);
    }
  }
}
