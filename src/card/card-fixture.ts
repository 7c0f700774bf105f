/**
 * Test fixture: a real card state file, issued once per process by a throw-away authority (the same
 * path as `citizen add`), then copied for each test so tests never share a PIN counter.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD, issueMyNumberCard } from "../ra/card-issuance.js";
import { initAuthority } from "../server/authority.js";
import { type JpkiApState, TOKEN_LABEL } from "./state.js";

export const TEST_AUTH_PIN = DEFAULT_AUTH_PIN;
export const TEST_SIGN_PASSWORD = DEFAULT_SIGN_PASSWORD;

let template: Promise<string> | undefined;

async function issueTemplate(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-card-ca-"));
  const saved = process.env["JPKI_CA_PASSPHRASE"];
  process.env["JPKI_CA_PASSPHRASE"] ??= "card fixture";
  try {
    const authority = await initAuthority({ dataDir: dir });
    try {
      const card = await issueMyNumberCard(authority, {
        name: "山田 太郎",
        birth: "1985-04-02",
        sex: "male",
        address: "東京都千代田区",
      });
      return readFileSync(card.cardState, "utf8");
    } finally {
      await authority.close();
    }
  } finally {
    if (saved === undefined) delete process.env["JPKI_CA_PASSPHRASE"];
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CardStateFixture {
  dir: string;
  statePath: string;
  /** The state as written (a copy; the card's file changes under it). */
  state: JpkiApState;
  cleanup(): void;
}

export interface FixtureOptions {
  /** "sim" turns the card's state into a SIM applet's (label, ATR); default "my-number-card". */
  product?: JpkiApState["product"];
  /** Drop the signing key, password and certificates (a SIM without a smartphone signing certificate). */
  withoutSigning?: boolean;
  /** Last changes before the file is written. */
  edit?: (state: JpkiApState) => void;
}

/** A fresh state file in its own temporary directory. */
export async function makeCardStateFile(options: FixtureOptions = {}): Promise<CardStateFixture> {
  template ??= issueTemplate();
  const state = JSON.parse(await template) as JpkiApState;
  if (options.product === "sim") {
    state.product = "sim";
    state.tokenLabel = TOKEN_LABEL.sim;
  }
  if (options.withoutSigning) {
    for (const fid of ["0001", "0002"]) delete state.files[fid];
    delete state.keys["001A"];
    delete state.pins["001B"];
  }
  options.edit?.(state);
  const dir = mkdtempSync(path.join(tmpdir(), "jpki-card-"));
  const statePath = path.join(dir, "card.json");
  writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  return {
    dir,
    statePath,
    state: JSON.parse(JSON.stringify(state)) as JpkiApState,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
