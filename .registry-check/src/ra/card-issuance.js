/**
 * Issuing a My Number card (個人番号カード) to a sandbox resident: the municipality registers the
 * person and the card, J-LIS issues the card's two certificates, and the card's JPKI-AP contents are
 * written to a card state file for the card emulator (DESIGN §4 flow 1).
 */
import { generateKeyPair, randomInt } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { checkPin, MY_NUMBER_CARD_ATR, newPinState, STATE_FORMAT, saveCardState, TOKEN_LABEL, } from "../card/state.js";
import { JpkiError } from "../errors.js";
import { assertUtf8Text } from "../pki/names.js";
import { cardAuthenticationCertificateTbs, cardSigningCertificateTbs, } from "../pki/profiles.js";
import { cardExpiryDate, citizenCertificateValidity, endOfJstDay, formatDate, jstDateOf, parseBirthDate, } from "../pki/validity.js";
import { issueCertificates } from "../registry/issuance.js";
const generateRsaKeyPair = promisify(generateKeyPair);
/** Defaults documented in `citizen add --help`: sandbox values, never secrets. */
export const DEFAULT_AUTH_PIN = "1234";
export const DEFAULT_SIGN_PASSWORD = "ABC123";
const sexCodes = { male: 1, female: 2, unknown: 3, "1": 1, "2": 2, "3": 3 };
/** Longest name and address accepted (the card's fields; addresses up to 200 characters). */
const MAX_NAME = 100;
const MAX_ADDRESS = 200;
function text(value, what, max) {
    const trimmed = value.trim();
    if (trimmed === "")
        throw new JpkiError("bad-input", `${what} must not be empty`);
    if ([...trimmed].length > max)
        throw new JpkiError("bad-input", `${what} is longer than ${max} characters`);
    assertUtf8Text(trimmed, what);
    return trimmed;
}
/** Checks every input before anything is written, so bad input leaves no trace. */
function validate(citizen, now) {
    const sex = sexCodes[citizen.sex.toLowerCase()];
    if (!sex)
        throw new JpkiError("bad-input", `sex must be male, female or unknown (or 1, 2, 3): ${JSON.stringify(citizen.sex)}`);
    const authPin = citizen.authPin ?? DEFAULT_AUTH_PIN;
    const signPassword = citizen.signPassword ?? DEFAULT_SIGN_PASSWORD;
    checkPin("auth", authPin);
    checkPin("sign", signPassword);
    const person = {
        name: text(citizen.name, "name", MAX_NAME),
        sex,
        birthDate: parseBirthDate(citizen.birth, now),
        address: text(citizen.address, "address", MAX_ADDRESS),
    };
    const residence = citizen.residence === undefined ? undefined : text(citizen.residence, "residence", MAX_ADDRESS);
    return { person, residence, authPin, signPassword };
}
async function rsaKeyPair() {
    return generateRsaKeyPair("rsa", { modulusLength: 2048, publicExponent: 65537 });
}
/** A 12-digit card number, the kind printed on the back of a card (not the 個人番号 itself). */
function cardNumber() {
    return `${randomInt(100_000, 1_000_000)}${String(randomInt(0, 1_000_000)).padStart(6, "0")}`;
}
/**
 * Registers the resident, issues the card's signing and user-authentication certificates through the
 * registry (store, sign, store), and writes the card state file (mode 0600).
 */
export async function issueMyNumberCard(authority, citizen, now = new Date()) {
    const { person, residence, authPin, signPassword } = validate(citizen, now);
    const cardExpiry = endOfJstDay(cardExpiryDate(person.birthDate, jstDateOf(now)));
    const validity = citizenCertificateValidity(person.birthDate, now, cardExpiry);
    const [signKeys, authKeys] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
    const registry = authority.registry;
    const personRecord = await registry.addPerson({
        name: person.name,
        sex: String(person.sex),
        birthDate: formatDate(person.birthDate),
        address: person.address,
        residence: residence ?? null,
    });
    const card = await registry.addCard({
        personId: personRecord.id,
        cardNumber: cardNumber(),
        issuedAt: now,
        expiresAt: cardExpiry,
    });
    const common = { medium: "card", personId: personRecord.id, cardId: card.id, ...validity };
    const base = { baseUrl: authority.config.baseUrl, validity };
    const spki = (key) => key.export({ type: "spki", format: "der" });
    const [signResult, authResult] = await issueCertificates(registry.db, authority.signers, [
        {
            ...common,
            issuer: "sign",
            kind: "card-sign",
            buildTbs: (serial, shard) => cardSigningCertificateTbs({
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
            buildTbs: (serial, shard) => cardAuthenticationCertificateTbs({
                ...base,
                serial,
                shard,
                issuer: authority.issuerKey("auth"),
                subjectSpki: spki(authKeys.publicKey),
            }),
        },
    ]);
    if (!signResult?.ok || !authResult?.ok) {
        const failed = [signResult, authResult].find((r) => r && !r.ok);
        throw new JpkiError("internal", `the card's certificates could not be issued: ${failed && !failed.ok ? failed.reason : "unknown"}`);
    }
    const pkcs8 = (key) => key.export({ type: "pkcs8", format: "der" }).toString("base64");
    const state = {
        format: STATE_FORMAT,
        version: 1,
        product: "my-number-card",
        tokenLabel: TOKEN_LABEL.myNumberCard,
        atr: MY_NUMBER_CARD_ATR,
        cardId: card.id,
        personId: personRecord.id,
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
    const cardState = path.join(authority.cardsDir, `${card.id}.json`);
    saveCardState(cardState, state);
    await registry.setCardStatePath(card.id, cardState);
    return {
        citizenId: personRecord.id,
        cardId: card.id,
        cardState,
        authSerial: authResult.serial,
        signSerial: signResult.serial,
        cardExpires: cardExpiry.toISOString(),
        certificatesExpire: validity.notAfter.toISOString(),
    };
}
//# sourceMappingURL=card-issuance.js.map