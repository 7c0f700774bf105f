/**
 * The document list a clerk types and the identity rule (本人確認書類): one photo identity document,
 * or two others of different kinds. Properties: the list reads back from its written form in any case
 * and spacing, malformed lists are refused with a JpkiError, and more documents never make a
 * sufficient set insufficient.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { JpkiError } from "../errors.js";
import {
  assessDocuments,
  DOCUMENT_KINDS,
  type DocumentKindId,
  formatDocumentList,
  MAX_DOCUMENTS,
  parseDocumentList,
} from "./documents.js";

const ids = DOCUMENT_KINDS.map((k) => k.id) as DocumentKindId[];
const kinds = fc.uniqueArray(fc.constantFrom(...ids), { minLength: 1, maxLength: MAX_DOCUMENTS });

test("the rule: one of list A, or two different ones of list B", () => {
  assert.deepEqual(assessDocuments(["license"]), { sufficient: true, rule: "one-photo-id" });
  assert.deepEqual(assessDocuments(["my-number-card"]), { sufficient: true, rule: "one-photo-id" });
  assert.deepEqual(assessDocuments(["health-insurance", "pension-book"]), {
    sufficient: true,
    rule: "two-documents",
  });
  assert.equal(assessDocuments(["health-insurance"]).sufficient, false);
  assert.equal(assessDocuments(["student-id", "student-id"]).sufficient, false, "one document seen twice");
  assert.equal(assessDocuments([]).sufficient, false);
  assert.deepEqual(parseDocumentList(" License , PASSPORT"), ["license", "passport"]);
  assert.throws(() => parseDocumentList("license,"), /empty item/);
  assert.throws(
    () => parseDocumentList("licence"),
    /unknown identity document "licence": one of my-number-card, license/,
  );
  assert.throws(() => parseDocumentList("license,License"), /named twice/);
  assert.throws(() => parseDocumentList(""), /no identity document/);
});

test("property: a list reads back from its written form, in any case and spacing", () => {
  fc.assert(
    fc.property(
      kinds,
      fc.array(fc.constantFrom(" ", "\t", "　"), { maxLength: 3 }),
      fc.boolean(),
      (list, pad, upper) => {
        const space = pad.join("");
        const text = list.map((k) => `${space}${upper ? k.toUpperCase() : k}${space}`).join(",");
        assert.deepEqual(parseDocumentList(text), list);
        assert.deepEqual(parseDocumentList(formatDocumentList(list)), list);
      },
    ),
  );
});

test("property: any text is either a list of known, distinct kinds or refused with a JpkiError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.array(fc.constantFrom(...ids, "", "x", "license ")).map((a) => a.join(",")),
      ),
      (text) => {
        try {
          const list = parseDocumentList(text);
          assert.ok(list.length >= 1 && list.length <= MAX_DOCUMENTS);
          assert.equal(new Set(list).size, list.length);
          for (const k of list) assert.ok(ids.includes(k));
        } catch (error) {
          assert.ok(error instanceof JpkiError && error.code === "bad-input", String(error));
        }
      },
    ),
  );
});

test("property: more documents never make a sufficient set insufficient", () => {
  fc.assert(
    fc.property(kinds, kinds, (some, more) => {
      if (assessDocuments(some).sufficient)
        assert.ok(assessDocuments([...new Set([...some, ...more])]).sufficient);
    }),
  );
});
