/** What of a private key could show in recorded bytes, for tests that search transcripts for secrets. */
import type { KeyObject } from "node:crypto";

/** The whole PKCS#8 DER and each secret JWK field (d, p, q, dp, dq, qi: RSA; d: EC). */
export function secretParts(key: KeyObject): Buffer[] {
  const jwk = key.export({ format: "jwk" });
  return [
    key.export({ type: "pkcs8", format: "der" }),
    ...(["d", "p", "q", "dp", "dq", "qi"] as const).flatMap((f) =>
      jwk[f] ? [Buffer.from(jwk[f] as string, "base64url")] : [],
    ),
  ];
}
