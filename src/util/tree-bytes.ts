/** The size of a folder's contents. */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** Bytes of the regular files under `dir` (links not followed); 0 for what cannot be read. */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile()) total += (await stat(p).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
