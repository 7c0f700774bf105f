/**
 * Issuing a My Number card (個人番号カード) to a sandbox resident: the municipality registers the
 * person and the card, J-LIS issues the card's two certificates, and the card's JPKI-AP contents are
 * written to a card state file for the card emulator (DESIGN §4 flow 1).
 */
import { generateKeyPair, type KeyObject, randomInt, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  checkPin,
  type JpkiApState,
  MY_NUMBER_CARD_ATR,
  newPinState,
  STATE_FORMAT,
  saveCardState,
  TOKEN_LABEL,
} from "../card/state.js";
import { JpkiError } from "../errors.js";
import { assertUtf8Text } from "../pki/names.js";
import {
  type BasicAttributes,
  cardAuthenticationCertificateTbs,
  cardSigningCertificateTbs,
  type Sex,
} from "../pki/profiles.js";
import {
  cardExpiryDate,
  citizenCertificateValidity,
  endOfJstDay,
  formatDate,
  jstDateOf,
  parseBirthDate,
} from "../pki/validity.js";
import { issueCertificates } from "../registry/issuance.js";
import { insertCard, insertPerson } from "../registry/registry.js";
import type { Authority } from "../server/authority.js";

const generateRsaKeyPair = promisify(generateKeyPair);

/** Defaults documented in `citizen add --help`: sandbox values, never secrets. */
export const DEFAULT_AUTH_PIN = "1234";
export const DEFAULT_SIGN_PASSWORD = "ABC123";

export interface NewCitizen {
  name: string;
  /** YYYY-MM-DD */
  birth: string;
  /** male | female | unknown, or JPKI's codes 1 | 2 | 3. */
  sex: string;
  /** Address of record (住民票の住所). */
  address: string;
  /** Where the person actually lives (居所), when it differs from the address of record. */
  residence?: string;
  authPin?: string;
  signPassword?: string;
}

export interface IssuedCard {
  citizenId: string;
  cardId: string;
  cardState: string;
  authSerial: string;
  signSerial: string;
  cardExpires: string;
  certificatesExpire: string;
}

const sexCodes: Record<string, Sex> = { male: 1, female: 2, unknown: 3, "1": 1, "2": 2, "3": 3 };

/** Longest name and address accepted (the card's fields; addresses up to 200 characters). */
const MAX_NAME = 100;
const MAX_ADDRESS = 200;

function text(value: string, what: string, max: number): string {
  const trimmed = value.trim();
  if (trimmed === "") throw new JpkiError("bad-input", `${what} must not be empty`);
  if ([...trimmed].length > max) throw new JpkiError("bad-input", `${what} is longer than ${max} characters`);
  assertUtf8Text(trimmed, what);
  return trimmed;
}

/** Checks every input before anything is written, so bad input leaves no trace. */
function validate(citizen: NewCitizen, now: Date) {
  const sex = sexCodes[citizen.sex.toLowerCase()];
  if (!sex)
    throw new JpkiError(
      "bad-input",
      `sex must be male, female or unknown (or 1, 2, 3): ${JSON.stringify(citizen.sex)}`,
    );
  const authPin = citizen.authPin ?? DEFAULT_AUTH_PIN;
  const signPassword = citizen.signPassword ?? DEFAULT_SIGN_PASSWORD;
  checkPin("auth", authPin);
  checkPin("sign", signPassword);
  const person: BasicAttributes = {
    name: text(citizen.name, "name", MAX_NAME),
    sex,
    birthDate: parseBirthDate(citizen.birth, now),
    address: text(citizen.address, "address", MAX_ADDRESS),
  };
  const residence =
    citizen.residence === undefined ? undefined : text(citizen.residence, "residence", MAX_ADDRESS);
  return { person, residence, authPin, signPassword };
}

async function rsaKeyPair(): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return generateRsaKeyPair("rsa", { modulusLength: 2048, publicExponent: 65537 });
}

/** A 12-digit card number, the kind printed on the back of a card (not the 個人番号 itself). */
function cardNumber(): string {
  return `${randomInt(100_000, 1_000_000)}${String(randomInt(0, 1_000_000)).padStart(6, "0")}`;
}

/**
 * Registers the resident, issues the card's signing and user-authentication certificates through the
 * registry (store, sign, store), and writes the card state file (mode 0600).
 */
export async function issueMyNumberCard(
  authority: Authority,
  citizen: NewCitizen,
  now = new Date(),
): Promise<IssuedCard> {
  const { person, residence, authPin, signPassword } = validate(citizen, now);
  const cardExpiry = endOfJstDay(cardExpiryDate(person.birthDate, jstDateOf(now)));
  const validity = citizenCertificateValidity(person.birthDate, now, cardExpiry);
  const [signKeys, authKeys] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);

  // The person, the card and the certificates' pending rows go into one transaction (beforePending):
  // a refused or failed issuance leaves no person or card behind.
  const personId = randomUUID();
  const cardId = randomUUID();
  const cardState = path.join(authority.cardsDir, `${cardId}.json`);
  const actor = "ra:card-issuance";
  const common = { medium: "card" as const, personId, cardId, ...validity };
  const base = { baseUrl: authority.config.baseUrl, validity };
  const spki = (key: KeyObject) => key.export({ type: "spki", format: "der" });
  const [signResult, authResult] = await issueCertificates(
    authority.registry.db,
    authority.signers,
    [
      {
        ...common,
        issuer: "sign",
        kind: "card-sign",
        buildTbs: (serial, shard) =>
          cardSigningCertificateTbs({
            ...base,
            serial,
            shard,
            issuer: authority.issuerKey("sign"),
            subjectSpki: spki(signKeys.publicKey),
            person,
          }),
      },
      {
        ...common,
        issuer: "auth",
        kind: "card-auth",
        buildTbs: (serial, shard) =>
          cardAuthenticationCertificateTbs({
            ...base,
            serial,
            shard,
            issuer: authority.issuerKey("auth"),
            subjectSpki: spki(authKeys.publicKey),
          }),
      },
    ],
    {
      actor,
      async beforePending(trx) {
        await insertPerson(
          trx,
          {
            id: personId,
            name: person.name,
            sex: String(person.sex),
            birthDate: formatDate(person.birthDate),
            address: person.address,
            residence: residence ?? null,
          },
          actor,
        );
        await insertCard(
          trx,
          {
            id: cardId,
            personId,
            cardNumber: cardNumber(),
            issuedAt: now,
            expiresAt: cardExpiry,
            statePath: cardState,
          },
          actor,
        );
      },
    },
  );
  if (!signResult?.ok || !authResult?.ok) {
    // The card never reaches its holder: it is void, and no card state file is written. A certificate
    // left pending (signer unavailable) is finished at the next start and belongs to the void card.
    const failed = [signResult, authResult].find((r) => r && !r.ok);
    const reason = failed && !failed.ok ? failed.reason : "unknown";
    await authority.registry.setCardStatus(cardId, "void", `personalisation failed: ${reason}`, actor);
    throw new JpkiError(
      failed && !failed.ok && failed.reason.startsWith("signer unavailable")
        ? "signer-unavailable"
        : "internal",
      `the card's certificates could not be issued (${reason}); card ${cardId} is void, try again later`,
    );
  }

  const pkcs8 = (key: KeyObject) => key.export({ type: "pkcs8", format: "der" }).toString("base64");
  const state: JpkiApState = {
    format: STATE_FORMAT,
    version: 1,
    product: "my-number-card",
    tokenLabel: TOKEN_LABEL.myNumberCard,
    atr: MY_NUMBER_CARD_ATR,
    cardId,
    personId,
    // EF numbers of the JPKI-AP (JPKI-FACTS §1).
    files: {
      "0001": signResult.der.toString("base64"),
      "0002": authority.certificates.sign.toString("base64"),
      "000A": authResult.der.toString("base64"),
      "000B": authority.certificates.auth.toString("base64"),
    },
    keys: { "0017": pkcs8(authKeys.privateKey), "001A": pkcs8(signKeys.privateKey) },
    pins: { "0018": newPinState("auth", authPin), "001B": newPinState("sign", signPassword) },
  };
  mkdirSync(authority.cardsDir, { recursive: true, mode: 0o700 });
  saveCardState(cardState, state);

  return {
    citizenId: personId,
    cardId,
    cardState,
    authSerial: authResult.serial,
    signSerial: signResult.serial,
    cardExpires: cardExpiry.toISOString(),
    certificatesExpire: validity.notAfter.toISOString(),
  };
}
