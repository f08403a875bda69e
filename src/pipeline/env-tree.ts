/** An environment's listing for the remote store, hashed once per environment build. */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { listTree, type Tree } from "../transport/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { ENV_MARKER } from "./run-cache.js";

/** Listings already read in this process. */
const memo = new Map<string, Tree>();

/**
 * The environment's listing, hashed once per environment and kept in the cache. It is stamped
 * with the marker's inode: a rebuilt environment has a new marker file, while use only
 * touches the old one's times.
 */
export function envTree(envDir: string): Tree {
  const stamp = `${statSync(join(envDir, ENV_MARKER)).ino}`;
  const id = createHash("sha256").update(envDir).digest("hex").slice(0, 32);
  const known = memo.get(`${id}\0${stamp}`);
  if (known) return known;
  const path = join(cacheDir(), "remote", "trees", `${id}.json`);
  let tree: Tree | undefined;
  try {
    const cached = JSON.parse(readFileSync(path, "utf8")) as { stamp: string; tree: Tree };
    if (cached.stamp === stamp) tree = cached.tree;
  } catch {
    // Not listed yet.
  }
  if (!tree) {
    tree = listTree(envDir);
    void writeFileAtomic(path, JSON.stringify({ stamp, tree }));
  }
  memo.set(`${id}\0${stamp}`, tree);
  return tree;
}
