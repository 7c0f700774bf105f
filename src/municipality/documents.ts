/**
 * Identity documents a clerk may accept face to face (本人確認書類), and the rule the counter applies,
 * as municipalities do for the JPKI certificates: one photo identity document issued by a public
 * body (list A), or two documents of list B of different kinds. The clerk records the kinds seen,
 * never the documents' numbers: the registry keeps what was checked, not a copy of the papers.
 */
import { JpkiError } from "../errors.js";

/** List A: one is enough. List B: two of different kinds. */
export type DocumentList = "A" | "B";

export interface DocumentKind {
  readonly id: string;
  readonly list: DocumentList;
  /** The English name, then the Japanese one. */
  readonly name: string;
}

export const DOCUMENT_KINDS = [
  { id: "my-number-card", list: "A", name: "My Number card (個人番号カード)" },
  { id: "license", list: "A", name: "driver's license (運転免許証)" },
  { id: "driving-record", list: "A", name: "certificate of driving record (運転経歴証明書)" },
  { id: "passport", list: "A", name: "passport (旅券)" },
  { id: "residence-card", list: "A", name: "residence card (在留カード)" },
  {
    id: "special-permanent-resident",
    list: "A",
    name: "special permanent resident certificate (特別永住者証明書)",
  },
  { id: "disability-handbook", list: "A", name: "disability certificate with photo (身体障害者手帳)" },
  {
    id: "health-insurance",
    list: "B",
    name: "health insurance card or eligibility certificate (健康保険証・資格確認書)",
  },
  { id: "pension-book", list: "B", name: "pension book (年金手帳)" },
  { id: "pension-certificate", list: "B", name: "pension certificate (年金証書)" },
  { id: "student-id", list: "B", name: "student identity card with photo (学生証)" },
  { id: "employee-id", list: "B", name: "employee identity card with photo (社員証)" },
] as const satisfies readonly DocumentKind[];

export type DocumentKindId = (typeof DOCUMENT_KINDS)[number]["id"];

const BY_ID = new Map<string, DocumentKind>(DOCUMENT_KINDS.map((k) => [k.id, k]));

/** At most this many documents in one list: more is a typing mistake, not a stronger check. */
export const MAX_DOCUMENTS = 8;

/**
 * Reads the documents a clerk typed: kinds separated by commas, in any case, spaces ignored
 * (`license`, `health-insurance, pension-book`). Each kind once; unknown kinds are named with the list
 * of known ones. Returns the kinds in the order given.
 */
export function parseDocumentList(text: string): DocumentKindId[] {
  const items = text
    .normalize("NFKC")
    .split(",")
    .map((item) => item.replace(/\s/g, "").toLowerCase());
  if (items.length === 1 && items[0] === "")
    throw new JpkiError("bad-input", "no identity document given: name the documents the clerk saw");
  if (items.length > MAX_DOCUMENTS)
    throw new JpkiError("bad-input", `at most ${MAX_DOCUMENTS} documents are recorded for one check`);
  const seen = new Set<string>();
  for (const item of items) {
    if (item === "") throw new JpkiError("bad-input", "an empty item in the document list: check the commas");
    if (!BY_ID.has(item))
      throw new JpkiError(
        "bad-input",
        `unknown identity document ${JSON.stringify(item)}: one of ${DOCUMENT_KINDS.map((k) => k.id).join(", ")}`,
      );
    if (seen.has(item)) throw new JpkiError("bad-input", `${item} is named twice: each document counts once`);
    seen.add(item);
  }
  return items as DocumentKindId[];
}

/** The list written back as parseDocumentList reads it. */
export const formatDocumentList = (kinds: readonly DocumentKindId[]): string => kinds.join(",");

export type DocumentAssessment =
  | { readonly sufficient: true; readonly rule: "one-photo-id" | "two-documents" }
  | { readonly sufficient: false; readonly reason: string };

/** Whether the documents seen identify the person: one of list A, or two different ones of list B. */
export function assessDocuments(kinds: readonly DocumentKindId[]): DocumentAssessment {
  const distinct = [...new Set(kinds)].map((id) => BY_ID.get(id)!);
  if (distinct.some((k) => k.list === "A")) return { sufficient: true, rule: "one-photo-id" };
  if (distinct.filter((k) => k.list === "B").length >= 2) return { sufficient: true, rule: "two-documents" };
  return {
    sufficient: false,
    reason:
      distinct.length === 0
        ? "no identity document was seen"
        : `${distinct.map((k) => k.name).join(" and ")} alone ${distinct.length === 1 ? "does" : "do"} not identify the person: ` +
          "see one photo identity document (My Number card, driver's license, passport, residence card, ...) or two of health insurance card, pension book, pension certificate, student or employee identity card",
  };
}
