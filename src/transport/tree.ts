/**
 * A local folder as the remote store sees it: every directory, symlink and regular file, each
 * file named by the object that holds its bytes (sha256, plus ".x" when executable). Two trees
 * with the same listing have the same key, wherever they were built.
 */
import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";

export type TreeEntry =
  | { type: "dir"; path: string }
  | { type: "symlink"; path: string; target: string }
  | { type: "file"; path: string; object: string; size: number };

export interface Tree {
  /** sha256 of the listing: the same files, links and modes give the same key. */
  key: string;
  entries: TreeEntry[];
}

/** Where the object for `sha256` lives in the store, relative to objects/. */
export function objectId(sha256: string, executable: boolean): string {
  return `${sha256.slice(0, 2)}/${sha256.slice(2)}${executable ? ".x" : ""}`;
}

const chunk = Buffer.allocUnsafe(1 << 20);

/** sha256 of a file, read synchronously: trees are listed off the event loop's hot path. */
export function hashFile(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** The key of a listing. */
export function treeKey(entries: readonly TreeEntry[]): string {
  const h = createHash("sha256");
  for (const e of entries) {
    const what = e.type === "file" ? e.object : e.type === "symlink" ? `-> ${e.target}` : "/";
    h.update(`${e.type}\0${e.path}\0${what}\n`);
  }
  return h.digest("hex");
}

/**
 * List `root` (paths relative to it, "/"-separated, sorted). `skip` names top-level entries
 * left out. Special files (sockets, devices) are refused: they cannot be shipped.
 */
export function listTree(root: string, skip: ReadonlySet<string> = new Set()): Tree {
  const entries: TreeEntry[] = [];
  const walk = (rel: string) => {
    const names = readdirSync(rel === "" ? root : join(root, rel)).sort();
    for (const name of names) {
      if (rel === "" && skip.has(name)) continue;
      const path = rel === "" ? name : `${rel}/${name}`;
      const abs = join(root, path);
      const st = lstatSync(abs);
      if (st.isDirectory()) {
        entries.push({ type: "dir", path });
        walk(path);
      } else if (st.isSymbolicLink()) {
        entries.push({ type: "symlink", path, target: readlinkSync(abs) });
      } else if (st.isFile()) {
        const object = objectId(hashFile(abs), (st.mode & 0o111) !== 0);
        entries.push({ type: "file", path, object, size: st.size });
      } else {
        throw new UserError(
          `${abs} is neither a file, a folder nor a link, so it cannot be shipped.`,
        );
      }
    }
  };
  walk("");
  return { key: treeKey(entries), entries };
}

/** The objects a tree's files need, each once (empty files need none: they are made there). */
export function treeObjects(tree: Tree): string[] {
  return [
    ...new Set(tree.entries.flatMap((e) => (e.type === "file" && e.size > 0 ? [e.object] : []))),
  ];
}
