import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { JpkiError } from "../errors.js";
import { listCertificates } from "../registry/issuance.js";
import { type Authority, initAuthority } from "../server/authority.js";
import { forEachDialect } from "../testing/dialects.js";
import { issueMyNumberCard } from "./card-issuance.js";

process.env.JPKI_CA_PASSPHRASE ??= "card issuance test";

const hanako = {
  name: "佐藤 花子",
  birth: "2000-02-29",
  sex: "female",
  address: "北海道札幌市中央区北1条西2丁目",
};

forEachDialect((_dialect, open) => {
  async function authorityOn(): Promise<{ authority: Authority; dir: string }> {
    const database = await open({ migrate: false });
    await database.close();
    const dir = mkdtempSync(path.join(tmpdir(), "jpki-ra-"));
    return { authority: await initAuthority({ dataDir: dir, db: database.url }), dir };
  }

  test("a card is registered with its person and both certificates; the 29 February birthday shows in the SAN", async () => {
    const { authority, dir } = await authorityOn();
    try {
      const card = await issueMyNumberCard(authority, hanako, new Date("2026-03-01T00:00:00+09:00"));
      const certificates = await listCertificates(authority.registry.db, { cardId: card.cardId });
      assert.deepEqual(certificates.items.map((c) => [c.kind, c.status, c.personId]).sort(), [
        ["card-auth", "issued", card.citizenId],
        ["card-sign", "issued", card.citizenId],
      ]);
      // Issued 2026-03-01 JST: the 5th birthday after is 2031-02-28 (common year), end of day JST.
      assert.equal(card.certificatesExpire, "2031-02-28T14:59:59.000Z");
      assert.ok(existsSync(card.cardState));
      assert.equal((await authority.registry.getCard(card.cardId))?.statePath, card.cardState);
    } finally {
      await authority.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a signer that refuses voids the card and writes no card state file", async () => {
    const { authority, dir } = await authorityOn();
    try {
      const refusing = { issue: async () => Promise.reject(new JpkiError("integrity", "device fault")) };
      const broken: Authority = { ...authority, signers: { ...authority.signers, auth: refusing as never } };
      await assert.rejects(issueMyNumberCard(broken, hanako), /could not be issued.*device fault.*is void/);
      const cards = await authority.registry.db.selectFrom("cards").select(["id", "status"]).execute();
      assert.deepEqual(
        cards.map((c) => c.status),
        ["void"],
      );
      const statuses = (await listCertificates(authority.registry.db, { cardId: cards[0]!.id })).items.map(
        (c) => c.status,
      );
      assert.deepEqual(statuses.sort(), ["failed", "issued"]);
      assert.equal(existsSync(authority.cardsDir) ? readdirSync(authority.cardsDir).length : 0, 0);
    } finally {
      await authority.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
