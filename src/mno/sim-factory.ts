/**
 * Making a new SIM, as the SIM maker does for a carrier: an ICCID with the issuing carrier's issuer
 * number, an EID, the carrier's card manager keys, and the J-LIS security domain's P-256 key with its
 * attestation certificate from the SIM maker's CA (issued through the registry like every
 * certificate), the issuer's inventory entry (src/mno/carrier-store.ts), then the SIM state file. No
 * JPKI applet yet: the carrier installs it over the air.
 */

import { createPublicKey, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { isValidIccid, newEid, newIccid } from "../card/uicc/identity.js";
import { writeNewSim } from "../card/uicc/manufacture.js";
import { JpkiError } from "../errors.js";
import { generateP256PrivateKey } from "../pki/algorithms.js";
import { simAttestationCertificateTbs } from "../pki/profiles.js";
import { caValidity } from "../pki/validity.js";
import { issueCertificates } from "../registry/issuance.js";
import { insertSim } from "../registry/registry.js";
import type { Authority } from "../server/authority.js";
import { addSubscription } from "./carrier-store.js";
import { cardManagerKeys, findCarrier, simIssuerOf } from "./carriers.js";

/** How long a SIM's attestation certificate lives: beyond any SIM's service life. */
const ATTESTATION_YEARS = 20;

export interface CreatedSim {
  simId: string;
  simState: string;
  iccid: string;
  eid: string;
  /** The carrier that issued the SIM (and owns its card manager). */
  carrier: string;
  /** The carrier the contract is with: the issuer, or a light MVNO on the issuer's SIMs. */
  brand: string;
  attestationSerial: string;
}

export function simsDir(authority: Authority): string {
  return path.join(authority.dataDir, "sims");
}

/** Makes a SIM for a contract with `carrier`, registers it, and writes its state file (mode 0600). */
export async function createSim(
  authority: Authority,
  options: { carrier: string; now?: Date },
): Promise<CreatedSim> {
  const brand = findCarrier(options.carrier);
  const issuer = simIssuerOf(brand);
  const now = options.now ?? new Date();
  let iccid: string;
  do iccid = newIccid(issuer.issuerNumber);
  while (await authority.registry.getSimByIccid(iccid));
  if (!isValidIccid(iccid)) throw new JpkiError("internal", `made an invalid ICCID ${iccid}`);
  const eid = newEid();
  const privateKey = generateP256PrivateKey();
  const publicKey = createPublicKey(privateKey);
  const subjectSpki = publicKey.export({ type: "spki", format: "der" });
  const validity = caValidity(now, ATTESTATION_YEARS);
  const simId = randomUUID();
  const actor = `sim-maker:${issuer.name}`;
  // The SIM row and the certificate's pending row share one transaction: no SIM without its certificate.
  const [result] = await issueCertificates(
    authority.registry.db,
    authority.signers,
    [
      {
        issuer: "sim-maker",
        kind: "sim-attestation",
        medium: "sim",
        simId,
        ...validity,
        buildTbs: (serial) =>
          simAttestationCertificateTbs({
            serial,
            issuer: authority.issuerKey("sim-maker"),
            subjectSpki,
            validity,
            eid,
          }),
      },
    ],
    {
      actor,
      beforePending: async (trx) => {
        await insertSim(trx, { id: simId, iccid, eid, carrier: issuer.name }, actor);
      },
    },
  );
  if (!result?.ok) {
    const reason = result && !result.ok ? result.reason : "unknown";
    await authority.registry.setSimStatus(simId, "void", `manufacture failed: ${reason}`, actor);
    throw new JpkiError(
      reason.startsWith("signer unavailable") ? "signer-unavailable" : "internal",
      `the SIM's attestation certificate could not be issued (${reason}); SIM ${iccid} is void, try again later`,
    );
  }
  // The SIM enters its issuer's inventory, with a subscription for the brand the contract is with.
  addSubscription(authority.dataDir, issuer, { iccid, eid, brand: brand.name });
  const dir = simsDir(authority);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const simState = path.join(dir, `${iccid}.json`);
  writeNewSim(simState, {
    iccid,
    eid,
    carrier: issuer.name,
    isdKeys: cardManagerKeys(authority.dataDir, issuer.name, iccid),
    sdKey: privateKey,
    sdCertificate: result.der,
    oceRoots: [authority.certificates.simMaker],
  });
  return {
    simId,
    simState,
    iccid,
    eid,
    carrier: issuer.name,
    brand: brand.name,
    attestationSerial: result.serial,
  };
}
