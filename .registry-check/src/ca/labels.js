/** Key labels, shared by every key store: they name files and PKCS#11 objects (CKA_LABEL). */
import { JpkiError } from "../errors.js";
const labelPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/**
 * Refuses labels that could escape the key directory or confuse a token: ASCII letters, digits,
 * ".", "_" and "-", 1 to 64 characters, not starting with a punctuation mark.
 */
export function checkLabel(label) {
    if (!labelPattern.test(label))
        throw new JpkiError("bad-input", `invalid key label ${JSON.stringify(label)}: use 1-64 characters from A-Z a-z 0-9 . _ - ` +
            "starting with a letter or digit");
}
//# sourceMappingURL=labels.js.map