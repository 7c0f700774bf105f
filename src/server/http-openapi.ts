/**
 * The status server's OpenAPI 3.1 document (DESIGN §6: `/openapi.json`, browsable at `/docs`), and
 * the `/docs` page: plain HTML rendered here from the same document, with no script and nothing
 * fetched from elsewhere.
 */

const ERROR_SCHEMA = { $ref: "#/components/schemas/Error" };
/** Either way of presenting a verifier's token. */
const BEARER = [{ verifierToken: [] }, { verifierTokenInQuery: [] }];

function errorResponse(description: string) {
  return { description, content: { "application/json": { schema: ERROR_SCHEMA } } };
}

const OCSP_RESPONSE = {
  description:
    "An OCSPResponse (RFC 6960 §4.2.1). Every outcome is an OCSP answer with HTTP 200, as OCSP clients " +
    "expect: successful, or malformedRequest, unauthorized (no or unknown token, a CA the verifier is " +
    "not registered for, a certificate of another issuer), internalError, tryLater.",
  content: { "application/ocsp-response": { schema: { type: "string", format: "binary" } } },
};

const CACHE_HEADERS = {
  "Cache-Control": {
    description:
      "public, no-transform, must-revalidate, max-age up to the answer's nextUpdate (RFC 5019 §6.2); no-store for answers with a nonce and errors",
    schema: { type: "string" },
  },
  ETag: { description: "A strong validator of the answer's bytes", schema: { type: "string" } },
  "Last-Modified": { description: "producedAt of the answer", schema: { type: "string" } },
  Expires: { description: "When the answer stops being fresh for HTTP caches", schema: { type: "string" } },
};

const CRL_PARAMETERS = [
  {
    name: "ca",
    in: "path",
    required: true,
    description: "auth: the user-authentication CA; sign: the signing CA",
    schema: { type: "string", enum: ["auth", "sign"] },
  },
  {
    name: "shard",
    in: "path",
    required: true,
    description: "The shard written in the certificate's CRL distribution point",
    schema: { type: "integer", minimum: 0 },
  },
];

function crlOperation(kind: "full" | "delta") {
  return {
    get: {
      summary:
        kind === "full" ? "A complete CRL of one shard" : "The delta CRL of one shard (RFC 5280 §5.2.4)",
      description:
        "Served as published (DER, RFC 5280 §5). Registered verifiers only; each download counts as one lookup.",
      security: BEARER,
      parameters: CRL_PARAMETERS,
      responses: {
        "200": {
          description: "The CRL",
          headers: CACHE_HEADERS,
          content: { "application/pkix-crl": { schema: { type: "string", format: "binary" } } },
        },
        "304": { description: "Not modified (If-None-Match matched the ETag)" },
        "401": errorResponse("No token, or not a registered verifier's"),
        "403": errorResponse("The verifier is not registered for this CA"),
        "404": errorResponse("No such shard, or not published yet"),
      },
    },
  };
}

const jsonResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { type: "object" } } },
});

const pathParameter = (name: string, description: string) => ({
  name,
  in: "path",
  required: true,
  description,
  schema: { type: "string" },
});

/** The OpenAPI 3.1 document of the status server. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "jpki-mobile services",
      version: "1",
      description:
        "Revocation status of the JPKI sandbox's certificates for registered verifiers: an OCSP " +
        "responder (RFC 6960, RFC 5019 profile, RFC 8954 nonce) and sharded CRLs. Tokens come from " +
        "`jpki-mobile verifier add`. J-LIS's RA (online applications) and the carriers' OTA relays " +
        "under /api.",
    },
    paths: {
      "/ocsp": {
        post: {
          summary: "Ask the status of certificates (OCSP over HTTP POST, RFC 6960 Appendix A.1)",
          description:
            "One request may name up to 64 certificates of one CA. Answers to a request with a nonce, " +
            "or about several certificates, are signed for the request; one certificate without a " +
            "nonce is answered pre-signed. POST answers are not cacheable.",
          security: BEARER,
          requestBody: {
            required: true,
            description: "A DER OCSPRequest of at most 64 KiB",
            content: { "application/ocsp-request": { schema: { type: "string", format: "binary" } } },
          },
          responses: {
            "200": OCSP_RESPONSE,
            "413": errorResponse("The body is larger than 64 KiB (not read)"),
            "415": errorResponse("The body is not application/ocsp-request"),
          },
        },
      },
      "/ocsp/{request}": {
        get: {
          summary: "Ask the status of certificates (OCSP over HTTP GET, RFC 6960 Appendix A.1, RFC 5019 §5)",
          description:
            "The DER OCSPRequest in base64 (or base64url), URL-encoded, as the last path segments. " +
            "Answers without a nonce carry HTTP caching headers (RFC 5019 §6) and vary by Authorization.",
          security: BEARER,
          parameters: [
            {
              name: "request",
              in: "path",
              required: true,
              description: "URL-encoded base64 of the DER OCSPRequest (its '/' may be left unencoded)",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": { ...OCSP_RESPONSE, headers: CACHE_HEADERS },
            "304": { description: "Not modified (If-None-Match matched the ETag)" },
          },
        },
      },
      "/crl/{ca}/{shard}.crl": crlOperation("full"),
      "/crl/{ca}/{shard}-delta.crl": crlOperation("delta"),
      "/api/ra/nonces": {
        post: {
          summary: "A nonce for an online application (single use, 10 minutes)",
          responses: {
            "201": jsonResponse("{ nonce (base64), expiresAt, keyGeneration (on-card | injected) }"),
          },
        },
      },
      "/api/ra/sims/{iccid}/key": {
        post: {
          summary: "J-LIS generates the user-authentication key pair on the SIM, over its carrier's relay",
          description:
            "Body `{ nonce }` (base64). Answers once the phone has relayed J-LIS's secured commands: " +
            "`{ publicKey, attestation }` (base64 SPKI and the SIM's KeyAttestation over the nonce).",
          parameters: [pathParameter("iccid", "the SIM's ICCID")],
          responses: {
            "200": jsonResponse("{ publicKey, attestation }"),
            "404": errorResponse("Unknown SIM"),
          },
        },
      },
      "/api/ra/applications": {
        post: {
          summary: "Submit an online application: CMS SignedData made by the My Number card",
          requestBody: {
            required: true,
            description: "DER ContentInfo of at most 64 KiB (docs/application-format.md)",
            content: { "application/cms": { schema: { type: "string", format: "binary" } } },
          },
          responses: {
            "201": jsonResponse("{ applicationId, status, certificateSerial, failureReason }"),
            "400": errorResponse("Malformed, forged, or not this JPKI's card"),
            "403": errorResponse("Refused: certificate held or revoked, SIM inactive, ..."),
            "409": errorResponse("A replayed application (its nonce was used)"),
            "413": errorResponse("Larger than 64 KiB"),
            "415": errorResponse("Not application/cms"),
          },
        },
      },
      "/api/ra/applications/{number}": {
        get: {
          summary: "An application's status and history (no personal data)",
          parameters: [pathParameter("number", "AP-XXXX-XXXX-XXXX")],
          responses: {
            "200": jsonResponse("{ applicationId, channel, status, history }"),
            "404": errorResponse("None"),
          },
        },
      },
      "/api/ra/applications/{number}/delivery": {
        post: {
          summary: "J-LIS writes the issued certificate to the SIM, over its carrier's relay (idempotent)",
          parameters: [pathParameter("number", "AP-XXXX-XXXX-XXXX")],
          responses: { "200": jsonResponse("the application"), "409": errorResponse("Not deliverable") },
        },
      },
      "/api/ra/carrier-events": {
        post: {
          summary:
            "A carrier's signed event about one of its SIMs (port-out, SIM swap, deactivation, eSIM deleted)",
          description:
            "Body `{ event, signature }`: base64 of the event's canonical JSON and the carrier's " +
            "ECDSA P-256 signature over it (docs/carriers.md). Applied once per carrier and event id: " +
            "the SIM's smartphone certificates are revoked (cessationOfOperation).",
          responses: {
            "201": jsonResponse("{ applied: true, simStatus, revoked: [serial] }"),
            "200": jsonResponse("{ applied: false, ... }: the event was applied before"),
            "400": errorResponse("Malformed event"),
            "403": errorResponse("Not signed by an enrolled carrier that speaks for the SIM"),
            "404": errorResponse("Unknown SIM"),
          },
        },
      },
      "/api/ra/links": {
        post: {
          summary: "A registered verifier: the current certificate of the holder of a superseded one",
          description:
            "Body `{ serial }` (hex). Answers only when the citizen's application for the current " +
            "certificate carried linkConsent; any other case is the same 404. Audited.",
          responses: {
            "200": jsonResponse("{ superseded, current, certificate (base64 DER) }"),
            "401": errorResponse("No token, or not a verifier of user-authentication certificates"),
            "404": errorResponse("No link"),
          },
        },
      },
      "/api/support/compatibility": {
        get: {
          summary:
            "Which carriers and SIM kinds carry the JPKI applet, who delivers over the air, how to apply",
          responses: {
            "200": jsonResponse(
              "{ entries: [{ carrier, displayName, kind, simKind, jpkiApplet, otaBy, channels, note }] }",
            ),
          },
        },
      },
      "/api/mno/sims/{iccid}": {
        get: {
          summary: "The SIM status API: the carrier that issued the SIM, the contract's brand, its state",
          parameters: [pathParameter("iccid", "the SIM's ICCID")],
          responses: {
            "200": jsonResponse("{ iccid, issuer, brand, state, active }"),
            "404": errorResponse("In no carrier's inventory"),
          },
        },
      },
      "/api/mno/scripts": {
        post: {
          summary: "J-LIS submits a script of secured APDUs for a SIM to its carrier's OTA gateway",
          description:
            "Body `{ iccid, id?, commands: [base64 APDU] }`; the same id again is the same script. " +
            "Answers at once; the phone runs it when it next pulls.",
          responses: {
            "202": jsonResponse("{ id, iccid, state: queued, commands }"),
            "409": errorResponse("The id was used for other commands"),
          },
        },
      },
      "/api/mno/scripts/{id}": {
        get: {
          summary:
            "A script's state (queued, fetched, executed, expired) and the SIM's responses (proof of receipt)",
          parameters: [pathParameter("id", "the script's id")],
          responses: {
            "200": jsonResponse("{ id, iccid, state, commands, responses?: [base64] }"),
            "404": errorResponse("Unknown"),
          },
        },
      },
      "/api/mno/relay/{iccid}": {
        get: {
          summary: "The phone pulls the scripts waiting for its SIM (long polling: ?wait=seconds, up to 30)",
          parameters: [pathParameter("iccid", "the SIM's ICCID")],
          responses: { "200": jsonResponse("{ scripts: [{ id, commands: [base64 APDU] }] }") },
        },
      },
      "/api/mno/relay/{iccid}/{id}": {
        post: {
          summary:
            "The phone posts the SIM's responses to script id, in order, up to the first refusal: body { responses } (base64)",
          parameters: [pathParameter("iccid", "the SIM's ICCID"), pathParameter("id", "the script's id")],
          responses: { "204": { description: "Taken" }, "409": errorResponse("Not waiting for responses") },
        },
      },
      "/healthz": {
        get: {
          summary: "Whether the database answers and the OCSP signers work",
          responses: {
            "200": {
              description: "Healthy",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Health" } } },
            },
            "503": {
              description: "Degraded",
              content: { "application/json": { schema: { $ref: "#/components/schemas/Health" } } },
            },
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics (text format 0.0.4)",
          responses: {
            "200": { description: "Metrics", content: { "text/plain": { schema: { type: "string" } } } },
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: {
            "200": {
              description: "OpenAPI 3.1",
              content: { "application/json": { schema: { type: "object" } } },
            },
          },
        },
      },
      "/docs": {
        get: {
          summary: "This document as an HTML page",
          responses: {
            "200": { description: "HTML", content: { "text/html": { schema: { type: "string" } } } },
          },
        },
      },
    },
    components: {
      securitySchemes: {
        verifierToken: {
          type: "http",
          scheme: "bearer",
          description:
            "A registered verifier's token (`jpki-mobile verifier add`), as `Authorization: Bearer <token>`",
        },
        verifierTokenInQuery: {
          type: "apiKey",
          in: "query",
          name: "access_token",
          description:
            "The same token in the query (RFC 6750 §2.3), for OCSP clients that cannot add a header; answers are then Cache-Control: private",
        },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["error", "reason"],
          properties: {
            error: { type: "string", description: "A short code, e.g. not-found, unauthorized" },
            reason: { type: "string", description: "What went wrong, for a person" },
          },
        },
        Health: {
          type: "object",
          required: ["status", "database", "signers"],
          properties: {
            status: { type: "string", enum: ["ok", "degraded"] },
            database: {
              type: "object",
              properties: {
                reachable: { type: "boolean" },
                milliseconds: { type: "number" },
                error: { type: "string" },
              },
            },
            signers: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  issuer: { type: "string", enum: ["auth", "sign"] },
                  loaded: { type: "boolean" },
                  responderCertificateValidUntil: { type: "string", format: "date-time" },
                  lastFailure: { type: "object" },
                },
              },
            },
            refresher: { type: "object" },
          },
        },
      },
    },
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Operation {
  summary?: string;
  description?: string;
  security?: unknown[];
  parameters?: { name: string; in: string; description?: string }[];
  requestBody?: { description?: string; content?: Record<string, unknown> };
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
}

/** The /docs page: every path and method of the document, with parameters and responses. */
export function docsHtml(document: Record<string, unknown>): string {
  const info = document.info as { title: string; description: string };
  const paths = document.paths as Record<string, Record<string, Operation>>;
  const sections = Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => {
      const rows = (items: [string, string][]) =>
        items
          .map(([a, b]) => `<tr><td><code>${escapeHtml(a)}</code></td><td>${escapeHtml(b)}</td></tr>`)
          .join("");
      const parameters = op.parameters?.length
        ? `<h4>Parameters</h4><table>${rows(op.parameters.map((p) => [`${p.name} (${p.in})`, p.description ?? ""]))}</table>`
        : "";
      const body = op.requestBody
        ? `<h4>Body</h4><p>${escapeHtml(Object.keys(op.requestBody.content ?? {}).join(", "))}: ${escapeHtml(op.requestBody.description ?? "")}</p>`
        : "";
      const responses = `<h4>Responses</h4><table>${rows(
        Object.entries(op.responses ?? {}).map(([code, r]) => [
          code,
          `${r.description ?? ""}${r.content ? ` (${Object.keys(r.content).join(", ")})` : ""}`,
        ]),
      )}</table>`;
      return [
        `<section><h3><span class="method">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code></h3>`,
        `<p><strong>${escapeHtml(op.summary ?? "")}</strong></p>`,
        op.description ? `<p>${escapeHtml(op.description)}</p>` : "",
        op.security?.length
          ? "<p>Needs a verifier token: <code>Authorization: Bearer &lt;token&gt;</code>, or <code>?access_token=&lt;token&gt;</code>.</p>"
          : "",
        parameters,
        body,
        responses,
        "</section>",
      ].join("\n");
    }),
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(info.title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
section { border-top: 1px solid #ccc; padding-top: .5rem; }
.method { background: #234; color: #fff; padding: 0 .4rem; border-radius: .2rem; font-size: .9em; }
table { border-collapse: collapse; } td { border: 1px solid #ddd; padding: .2rem .5rem; vertical-align: top; }
</style>
</head>
<body>
<h1>${escapeHtml(info.title)}</h1>
<p>${escapeHtml(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
${sections.join("\n")}
</body>
</html>
`;
}
