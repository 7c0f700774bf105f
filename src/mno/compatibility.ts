/**
 * The compatibility list support staff and citizens read (DESIGN §2, consumer support): for each
 * carrier and each kind of SIM it sells, whether the JPKI applet can live there, who installs it and
 * carries J-LIS's channel over the air, and where to apply. Data, derived from the carrier registry
 * (carriers.ts), served at `GET /api/support/compatibility` and by `jpki-mobile support compatibility`.
 *
 * Every sandbox SIM is an eUICC-style card with a GlobalPlatform card manager and the J-LIS security
 * domain (src/card/uicc): a physical SIM and an eSIM profile carry the applet alike. An eSIM profile
 * deleted or downloaded again loses the applet; the carrier reports it and the citizen applies again.
 */
import { CARRIERS, type CarrierKind, simIssuerOf } from "./carriers.js";

export type SimKind = "physical" | "esim";

export interface CompatibilityEntry {
  readonly carrier: string;
  readonly displayName: string;
  readonly kind: CarrierKind;
  readonly simKind: SimKind;
  /** Whether the JPKI applet can be stored on this carrier's SIMs of this kind. */
  readonly jpkiApplet: boolean;
  /** The carrier that issued the SIMs: installs the applet and relays J-LIS's channel over the air. */
  readonly otaBy: string;
  /** How a citizen can have the certificate stored on such a SIM. */
  readonly channels: readonly ("online" | "postal" | "counter")[];
  readonly note: string;
}

const SIM_KINDS: readonly SimKind[] = ["physical", "esim"];

export function compatibilityList(): CompatibilityEntry[] {
  return CARRIERS.flatMap((carrier) =>
    SIM_KINDS.map((simKind): CompatibilityEntry => {
      const issuer = simIssuerOf(carrier);
      return {
        carrier: carrier.name,
        displayName: carrier.displayName,
        kind: carrier.kind,
        simKind,
        jpkiApplet: true,
        otaBy: issuer.name,
        channels: ["online", "postal", "counter"],
        note:
          (carrier.kind === "light-mvno"
            ? `SIMs issued by ${issuer.displayName}, which installs the applet and carries the delivery. `
            : "") +
          (simKind === "esim"
            ? "Deleting or downloading the eSIM profile again removes the certificate: apply again."
            : "Moving the SIM to another handset keeps the certificate."),
      };
    }),
  );
}
