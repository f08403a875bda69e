/**
 * A file's sha256, remembered by what identifies its content without reading it: device,
 * inode, size, mtime and ctime (which no one can set back; any write moves it). Large bundles
 * and data files are then hashed once, not on every run.
 */
import { createHash } from "node:crypto";
import { type BigIntStats, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic.js";
import { cacheDir } from "./dirs.js";

function memoPath(path: string): string | undefined {
  let st: BigIntStats;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
  const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  return join(
    cacheDir(),
    "sha256",
    `${createHash("sha256").update(id).digest("hex").slice(0, 40)}.txt`,
  );
}

function remembered(memo: string | undefined): string | undefined {
  if (!memo) return undefined;
  try {
    const text = readFileSync(memo, "utf8").trim();
    return /^[0-9a-f]{64}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** sha256 (hex) of the file at `path`, computed by `compute` only when not remembered. */
export async function memoSha256(path: string, compute: () => Promise<string>): Promise<string> {
  const memo = memoPath(path);
  const known = remembered(memo);
  if (known) return known;
  const digest = await compute();
  // The file must not have changed while it was read: only then is the memo true.
  if (memo && memo === memoPath(path))
    await writeFileAtomic(memo, `${digest}\n`).catch(() => undefined);
  return digest;
}

/** The same, for synchronous callers. */
export function memoSha256Sync(path: string, compute: () => string): string {
  const memo = memoPath(path);
  const known = remembered(memo);
  if (known) return known;
  const digest = compute();
  if (memo && memo === memoPath(path))
    void writeFileAtomic(memo, `${digest}\n`).catch(() => undefined);
  return digest;
}
