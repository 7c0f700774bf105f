/**
 * J-LIS as the phone app reaches it when both run in one process (the command line, the demo, tests):
 * the `JlisClient` of src/phone/app.ts over the RA's functions, with the SIM reached through the
 * carrier's OTA relay of the SIM's issuer. The HTTP front offers the same operations over the network.
 */
import type { OtaGateway } from "../mno/ota-relay.js";
import type { ApplicationAnswer, JlisClient } from "../phone/app.js";
import type { Authority } from "../server/authority.js";
import { type ApplicationRecord, getApplication } from "./applications.js";
import { issueNonce } from "./nonces.js";
import { OnlineChannel } from "./online.js";
import { deliverCertificate, generateKeyOnSim } from "./provisioning.js";
import { submitApplication } from "./ra.js";

export const answerOf = (a: ApplicationRecord): ApplicationAnswer => ({
  applicationId: a.id,
  status: a.status,
  certificateSerial: a.certificateSerial,
  failureReason: a.failureReason,
});

/** J-LIS in process; `relayFor` gives the OTA gateway that reaches a SIM (its issuer's). */
export function inProcessJlis(authority: Authority, relayFor: (iccid: string) => OtaGateway): JlisClient {
  const online = new OnlineChannel();
  return {
    async nonce() {
      return (await issueNonce(authority.registry.db)).nonce;
    },
    async keyGeneration() {
      return authority.policies.keyGeneration;
    },
    generateKey(iccid, nonce) {
      return generateKeyOnSim(authority, relayFor(iccid).transportFor(iccid), { iccid, nonce });
    },
    async submit(signedData) {
      return answerOf((await submitApplication(authority, online, { signedData })).application);
    },
    async deliver(applicationId) {
      const application = await getApplication(authority.registry.db, applicationId);
      const iccid = application?.iccid ?? "";
      await deliverCertificate(authority, relayFor(iccid).transportFor(iccid), applicationId);
      const delivered = await getApplication(authority.registry.db, applicationId);
      return answerOf(delivered!);
    },
  };
}
