/** The shape every `jpki-mobile` command shares, and argument parsing with helpful errors. */
import { parseArgs } from "node:util";
import { JpkiError } from "../errors.js";
/** A mistake in the command line itself (unknown option, missing value): exit status 2. */
export class UsageError extends JpkiError {
    name = "UsageError";
    constructor(message) {
        super("bad-input", message);
    }
}
export function parseCommandArgs(command, args) {
    try {
        const { values, positionals } = parseArgs({
            args,
            options: { ...command.options, help: { type: "boolean", short: "h" } },
            allowPositionals: true,
            strict: true,
        });
        const wanted = command.positionals ?? { min: 0, max: 0, names: "" };
        if (!values.help && (positionals.length < wanted.min || positionals.length > wanted.max)) {
            throw new UsageError(wanted.max === 0
                ? `unexpected argument ${positionals[0]}`
                : `expected ${wanted.names}${positionals.length > wanted.max ? `, got extra ${positionals[wanted.max]}` : ""}`);
        }
        return { values: values, positionals };
    }
    catch (error) {
        if (error instanceof UsageError)
            throw error;
        if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))
            throw new UsageError(error.message);
        throw error;
    }
}
export function stringOption(values, name, required = false) {
    const value = values[name];
    if (typeof value === "string")
        return value;
    if (required)
        throw new UsageError(`--${name} is required`);
    return undefined;
}
/** Prints `data` as JSON (for scripts) or as the human text `render` makes. */
export function printResult(json, data, render) {
    process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${render(data)}\n`);
}
/** A one-line progress display on stderr when it is a terminal; silent otherwise (scripts, CI logs). */
export function progress(label) {
    const tty = process.stderr.isTTY;
    return {
        update(done, total) {
            if (tty)
                process.stderr.write(`\r${label}: ${done}/${total} (${Math.floor((done / total) * 100)}%)`);
        },
        end() {
            if (tty)
                process.stderr.write("\n");
        },
    };
}
//# sourceMappingURL=command.js.map