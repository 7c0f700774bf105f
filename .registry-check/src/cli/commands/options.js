export const dataOption = { data: { type: "string" } };
export const jsonOption = { json: { type: "boolean" } };
export const DATA_HELP = "  --data DIR      data directory (default: $JPKI_DATA, else ./.jpki)";
export const JSON_HELP = "  --json          print JSON for scripts instead of text";
export function dataDir(values) {
    const value = values.data;
    return typeof value === "string" ? value : (process.env.JPKI_DATA ?? ".jpki");
}
//# sourceMappingURL=options.js.map