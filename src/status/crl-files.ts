/**
 * Published CRLs as files, in the layout of their URLs (`crl/{sign|auth}/{shard}.crl` and
 * `…/{shard}-delta.crl` under a directory), for any static web server or CDN to serve.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { CaPurpose } from "../pki/names.js";
import type { Authority } from "../server/authority.js";
import { writeFileAtomic } from "../util/fs.js";
import { crlPath } from "./crl.js";
import { type CrlKind, readPublishedCrl } from "./crl-registry.js";

/**
 * Writes the published complete and delta CRL of each of `shards` under `dir`, one at a time (a shard's
 * CRL may be megabytes) and each atomically: a web server reading the directory meanwhile serves the
 * old file or the new one, never a torn one. Files are world-readable (CRLs are public). Returns the
 * paths written.
 */
export async function writeCrlFiles(
  authority: Pick<Authority, "registry">,
  dir: string,
  shards: readonly { issuer: CaPurpose; shard: number }[],
  onProgress?: (done: number, total: number) => void,
): Promise<string[]> {
  const written: string[] = [];
  const total = shards.length * 2;
  let done = 0;
  for (const { issuer, shard } of shards)
    for (const kind of ["full", "delta"] as const satisfies readonly CrlKind[]) {
      const crl = await readPublishedCrl(authority.registry.db, issuer, shard, kind);
      if (crl) {
        const file = path.join(dir, crlPath(issuer, shard, kind));
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileAtomic(file, crl.der, 0o644);
        written.push(file);
      }
      onProgress?.(++done, total);
    }
  return written;
}
