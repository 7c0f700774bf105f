/**
 * The phone's SIM for the commands that play the phone (`apply`, `apply access-code`, `counter`):
 * a SIM state file from `sim create`, reached in process as the phone's OS reaches it, with its
 * carrier's OTA relay and the phone's relay agent running. When the carrier has not installed the
 * JPKI applet yet, it does so over the air first (with its card-manager keys), unless `prepare` is
 * false.
 */
import { InProcessTransport } from "../../card/in-process-transport.js";
import { CardManagerSession } from "../../card/uicc/host.js";
import { isUiccStateFile, loadUiccState, type UiccState } from "../../card/uicc/state.js";
import { openUicc } from "../../card/uicc/uicc.js";
import { JpkiError } from "../../errors.js";
import { cardManagerKeys } from "../../mno/carriers.js";
import { OtaRelay, relayForPhone } from "../../mno/ota-relay.js";
import type { SimRecord } from "../../registry/registry.js";
import type { Authority } from "../../server/authority.js";
import { UsageError } from "../command.js";

export interface PhoneSimHandle {
  readonly state: UiccState;
  /** The registry's record: the issuing carrier, the status. */
  readonly sim: SimRecord;
  readonly transport: InProcessTransport;
  /** The OTA relay of the carrier that issued the SIM. */
  readonly relay: OtaRelay;
  stopRelay(): void;
}

export async function openPhoneSim(
  authority: Authority,
  statePath: string,
  options: { prepare?: boolean } = {},
): Promise<PhoneSimHandle> {
  if (!isUiccStateFile(statePath))
    throw new UsageError(`${statePath} is not a SIM made by \`jpki-mobile sim create\` (a UICC state file)`);
  const state = loadUiccState(statePath);
  const sim = await authority.registry.getSimByIccid(state.iccid);
  if (!sim) throw new JpkiError("not-found", `SIM ${state.iccid} is not in this data directory's registry`);
  const transport = new InProcessTransport(openUicc(statePath));
  const relay = new OtaRelay(state.carrier);
  const stopRelay = relayForPhone(relay, state.iccid, transport);
  if ((options.prepare ?? true) && !state.applet) {
    const manager = await CardManagerSession.open(
      relay.transportFor(state.iccid),
      cardManagerKeys(authority.dataDir, state.carrier, state.iccid),
    );
    await manager.installJpki();
    await transport.reset();
  }
  return { state, sim, transport, relay, stopRelay };
}
