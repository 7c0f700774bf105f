/** What of a private key could show in recorded bytes, for tests that search transcripts for secrets. */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SessionKeys } from "../card/gp/secure-messaging.js";
import { loadUiccState } from "../card/uicc/state.js";
import { jlisKeyPath } from "../ra/jlis-credentials.js";
import { dataDirPassphrase } from "../server/authority.js";

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

/**
 * The key material a relay of J-LIS's work on a SIM must never carry, named: the SIM's applet key,
 * its security domain's static key, J-LIS's SCP11 key (from the data directory) and the session keys.
 */
export async function provisioningSecrets(
  dataDir: string,
  simStatePath: string,
  sessionKeys: SessionKeys,
): Promise<[string, Buffer][]> {
  const state = loadUiccState(simStatePath);
  const pkcs8 = (base64: string) =>
    createPrivateKey({ key: Buffer.from(base64, "base64"), format: "der", type: "pkcs8" });
  const named = (name: string, key: KeyObject) => secretParts(key).map((b): [string, Buffer] => [name, b]);
  const jlisKey = createPrivateKey({
    key: readFileSync(jlisKeyPath(dataDir)),
    passphrase: await dataDirPassphrase(dataDir),
  });
  return [
    ...named("the SIM's private key", pkcs8(state.applet!.jpki.keys["0017"]!)),
    ...named("the security domain's static key", pkcs8(state.maker.sdKey)),
    ...named("J-LIS's SCP11 key", jlisKey),
    ["S-ENC", sessionKeys.sEnc],
    ["S-MAC", sessionKeys.sMac],
    ["S-RMAC", sessionKeys.sRmac],
    ["S-DEK", sessionKeys.dek!],
  ];
}
