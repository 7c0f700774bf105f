import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Name } from "@peculiar/asn1-x509";
import fc from "fast-check";
import { parseName, renderName } from "./certificate.js";
import { DerError } from "./der.js";
import { AUTH_CA_NAME, encodeName, endEntityName, JPKI_SERVICE_DIRECTORY_NAME, ocspResponderName, SIGNING_CA_NAME, SIM_MAKER_CA_NAME, simAttestationName, } from "./names.js";
/** A Name as @peculiar/asn1-x509 reads it: [type OID, string type, text] per RDN (single-valued). */
function peculiarName(der) {
    return Array.from(AsnConvert.parse(der, Name), (rdn) => {
        assert.equal(rdn.length, 1, "one attribute per RDN");
        const { type, value } = rdn[0];
        const kind = value.printableString !== undefined ? "printable" : value.utf8String !== undefined ? "utf8" : "other";
        return [type, kind, value.toString()];
    });
}
/** Unicode text: any code point (astral plane included), mixed with combining marks and JIS-area CJK. */
const unicodeText = fc.string({
    unit: fc.oneof(fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), fc.constantFrom("\u0301", "\u3099", "\u309a", "\u20dd", "\ufe0f", "\u200d"), fc.constantFrom("𠮷", "髙", "﨑", "邊", "齋", "🇯🇵", "👨‍👩‍👧", "ｶﾞ")),
    minLength: 1,
    maxLength: 64,
});
describe("names (RFC 5280 §4.1.2.4, JPKI-FACTS §2)", () => {
    test("signing CA subject, exactly as JPKI-FACTS plus OU=TEST", () => {
        assert.deepEqual(peculiarName(SIGNING_CA_NAME), [
            ["2.5.4.6", "printable", "JP"],
            ["2.5.4.10", "utf8", "JPKI"],
            ["2.5.4.11", "utf8", "JPKI for digital signature"],
            ["2.5.4.11", "utf8", "Japan Agency for Local Authority Information Systems"],
            ["2.5.4.11", "utf8", "TEST"],
        ]);
        assert.equal(renderName(SIGNING_CA_NAME), "C=JP, O=JPKI, OU=JPKI for digital signature, OU=Japan Agency for Local Authority Information Systems, OU=TEST");
    });
    test("user-authentication CA subject", () => {
        assert.equal(renderName(AUTH_CA_NAME), "C=JP, O=JPKI, OU=JPKI for user authentication, OU=Japan Agency for Local Authority Information Systems, OU=TEST");
    });
    test("the DirName C=JP, O=公的個人認証サービス, byte for byte", () => {
        assert.equal(JPKI_SERVICE_DIRECTORY_NAME.toString("hex"), "3036" +
            "310b3009060355040613024a50" + // SET { SEQ { countryName, PrintableString "JP" } }
            "3127302506035504 0a0c1e".replaceAll(" ", "") + // SET { SEQ { organizationName, UTF8String (30 bytes) } }
            "e585ace79a84e5808be4babae8aa8de8a8bce382b5e383bce38393e382b9");
    });
    test("OCSP responder, SIM maker and end-entity names", () => {
        assert.match(renderName(ocspResponderName("auth")), /OU=JPKI for user authentication, .*OU=TEST, CN=OCSP Responder$/);
        assert.match(renderName(SIM_MAKER_CA_NAME), /\(TEST\)/);
        assert.equal(renderName(endEntityName("ABC123")), "C=JP, CN=ABC123");
        const eid = "89049032000000000000000000012345";
        assert.deepEqual(peculiarName(simAttestationName(eid)).at(-1), ["2.5.4.5", "printable", eid]);
        assert.throws(() => simAttestationName("1234"), DerError);
    });
    test("refuses what the types cannot carry", () => {
        assert.throws(() => encodeName([["C", "JPN"]]), DerError);
        assert.throws(() => encodeName([["O", ""]]), DerError);
        assert.throws(() => encodeName([["O", "a\ud800b"]]), DerError);
        assert.throws(() => encodeName([["O", "\udc00"]]), DerError);
        assert.throws(() => encodeName([["serialNumber", "漢字"]]), DerError);
    });
    test("property: any Unicode survives our encoding and @peculiar's parsing, and our own reader", () => {
        fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom("O", "OU", "CN", "L", "ST"), unicodeText), {
            minLength: 1,
            maxLength: 6,
        }), (attributes) => {
            const der = encodeName([["C", "JP"], ...attributes]);
            const parsed = peculiarName(der);
            assert.deepEqual(parsed.slice(1).map(([, kind, text]) => [kind, text]), attributes.map(([, text]) => ["utf8", text]));
            assert.deepEqual(parseName(der)
                .slice(1)
                .map((rdn) => rdn[0].value), attributes.map(([, text]) => text));
            assert.equal(Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, Name))).toString("hex"), der.toString("hex"));
        }), { numRuns: 300 });
    });
});
//# sourceMappingURL=names.test.js.map