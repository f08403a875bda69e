/** An environment's listing for the remote store, hashed once per environment build. */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { listTree, type Tree } from "../transport/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { ENV_MARKER } from "./run-cache.js";

/** The environment's listing, hashed once per environment and kept in the cache. */
export function envTree(envDir: string): Tree {
  const marker = statSync(join(envDir, ENV_MARKER));
  const id = createHash("sha256").update(envDir).digest("hex").slice(0, 32);
  const path = join(cacheDir(), "remote", "trees", `${id}.json`);
  try {
    const cached = JSON.parse(readFileSync(path, "utf8")) as { stamp: number; tree: Tree };
    if (cached.stamp === marker.mtimeMs) return cached.tree;
  } catch {
    // Not listed yet.
  }
  const tree = listTree(envDir);
  void writeFileAtomic(path, JSON.stringify({ stamp: marker.mtimeMs, tree }));
  return tree;
}
