/** Tar streams for the remote store, written as they are sent: nothing is staged on disk. */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { BLOCK, encodeHeader, padding, RECORD, type TarEntry } from "../bundle/tar.js";
import type { Tree } from "./tree.js";

export interface StreamEntry {
  entry: TarEntry;
  /** For files: where the bytes come from, a file or `data`. */
  source?: string;
  data?: Buffer;
}

/** Bytes gathered before they are handed on: fewer, larger writes into the ssh pipe. */
const BATCH = 1 << 20;

/**
 * A tar archive of `entries`, ended and padded to a whole record as tar expects. Files are
 * read with synchronous calls in slices of at most BATCH: thousands of small files through a
 * read stream each cost far more in buffers and callbacks than the reading itself.
 */
export function tarStream(entries: Iterable<StreamEntry>, onBytes?: (n: number) => void): Readable {
  return Readable.from(tarChunks(entries, onBytes), { objectMode: false });
}

/** A small tar archive, whole in memory. */
export function tarBytes(entries: Iterable<StreamEntry>): Buffer {
  return Buffer.concat([...tarChunks(entries)]);
}
/** The chunks of a tar archive of `entries`, made as they are asked for (see tarStream). */
export function* tarChunks(
  entries: Iterable<StreamEntry>,
  onBytes?: (n: number) => void,
): Generator<Buffer> {
  let written = 0;
  let parts: Buffer[] = [];
  let pending = 0;
  const add = (b: Buffer) => {
    parts.push(b);
    pending += b.length;
  };
  const flush = (): Buffer => {
    const out = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, pending);
    written += out.length;
    onBytes?.(out.length);
    parts = [];
    pending = 0;
    return out;
  };
  for (const { entry, source, data } of entries) {
    add(encodeHeader(entry));
    if (data) {
      add(data);
      add(Buffer.alloc(padding(entry.size)));
    } else if (entry.type === "file" && entry.size > 0) {
      const fd = openSync(source as string, "r");
      try {
        let left = entry.size;
        while (left > 0) {
          const buf = Buffer.allocUnsafe(Math.min(left, BATCH));
          const n = readSync(fd, buf, 0, buf.length, null);
          if (n === 0) throw new Error(`${source} shrank while it was being sent.`);
          add(n === buf.length ? buf : buf.subarray(0, n));
          left -= n;
          if (pending >= BATCH) yield flush();
        }
      } finally {
        closeSync(fd);
      }
      add(Buffer.alloc(padding(entry.size)));
    }
    if (pending >= BATCH) yield flush();
  }
  const end = 2 * BLOCK;
  add(Buffer.alloc(end + ((RECORD - ((written + pending + end) % RECORD)) % RECORD)));
  yield flush();
}

/**
 * A tree as tar entries under `prefix`: directories and symlinks as themselves, files as
 * hardlinks to their objects (relative to the store root: `objects/ID`, or `fresh/ID` for an
 * object sent earlier in the same stream), empty files as empty files (one object shared by
 * thousands of trees would run out of links).
 */
export function linkEntries(
  tree: Tree,
  prefix: string,
  fresh?: { dir: string; ids: ReadonlySet<string> },
): StreamEntry[] {
  const dir = (path: string): StreamEntry => ({
    entry: { path, type: "dir", mode: 0o755, size: 0, mtime: 0 },
  });
  const out: StreamEntry[] = [dir(prefix)];
  for (const e of tree.entries) {
    const path = `${prefix}/${e.path}`;
    if (e.type === "dir") {
      out.push(dir(path));
    } else if (e.type === "symlink") {
      out.push({
        entry: { path, type: "symlink", mode: 0o777, size: 0, mtime: 0, linkname: e.target },
      });
    } else if (e.size === 0) {
      const mode = e.object.endsWith(".x") ? 0o755 : 0o644;
      out.push({ entry: { path, type: "file", mode, size: 0, mtime: 0 } });
    } else {
      const mode = e.object.endsWith(".x") ? 0o555 : 0o444;
      const linkname = fresh?.ids.has(e.object)
        ? `${fresh.dir}/${e.object}`
        : `objects/${e.object}`;
      out.push({ entry: { path, type: "hardlink", mode, size: 0, mtime: 0, linkname } });
    }
  }
  return out;
}

/** Objects as tar entries named `prefix/ID`, read-only, with their folders. */
export function objectEntries(
  objects: ReadonlyMap<string, { source: string; size: number }>,
  prefix = "",
): StreamEntry[] {
  const under = (p: string) => (prefix ? `${prefix}/${p}` : p);
  const out: StreamEntry[] = prefix
    ? [{ entry: { path: prefix, type: "dir", mode: 0o755, size: 0, mtime: 0 } }]
    : [];
  const dirs = new Set<string>();
  for (const [id, { source, size }] of [...objects].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const dir = id.slice(0, 2);
    if (!dirs.has(dir)) {
      dirs.add(dir);
      out.push({ entry: { path: under(dir), type: "dir", mode: 0o755, size: 0, mtime: 0 } });
    }
    const mode = id.endsWith(".x") ? 0o555 : 0o444;
    // The source's own mtime: a CPython's stdlib .pyc files are checked against the mtime of
    // their .py file, and with any other the host would recompile (and rewrite) them.
    const mtime = Math.floor(statSync(source).mtimeMs / 1000);
    out.push({ entry: { path: under(id), type: "file", mode, size, mtime }, source });
  }
  return out;
}

export interface PlacedTree {
  /** The tree under its prefix: new files in place, the rest as hardlinks. */
  entries: StreamEntry[];
  /** Hardlinks that publish the new files as objects (objects/ID -> their first path). */
  links: StreamEntry[];
  /** `sha256sum -c` lines for the new files, to keep what arrived whole after a cut. */
  sums: string;
  /** Objects of `fresh` the tree does not hold. */
  rest: Map<string, { source: string; size: number }>;
}

/**
 * A tree under `prefix` whose objects in `fresh` arrive as files in place: each is written
 * once, in the tree itself, and published as an object by a hardlink once the whole stream has
 * arrived. Files the store has are hardlinks to objects/ID; empty files are made as they are.
 */
export function placeTree(
  tree: Tree,
  prefix: string,
  fresh: ReadonlyMap<string, { source: string; size: number }>,
): PlacedTree {
  const placed = new Map<string, string>();
  const entries = linkEntries(tree, prefix).map((s) => {
    const { entry } = s;
    if (entry.type !== "hardlink") return s;
    const id = (entry.linkname as string).slice("objects/".length);
    const first = placed.get(id);
    if (first !== undefined) return { entry: { ...entry, linkname: first } };
    const object = fresh.get(id);
    if (!object) return s;
    placed.set(id, entry.path);
    const mtime = Math.floor(statSync(object.source).mtimeMs / 1000);
    return {
      entry: { path: entry.path, type: "file", mode: entry.mode, size: object.size, mtime },
      source: object.source,
    } satisfies StreamEntry;
  });
  const links: StreamEntry[] = [];
  const sums: string[] = [];
  for (const [id, path] of placed) {
    links.push({
      entry: {
        path: `objects/${id}`,
        type: "hardlink",
        mode: 0o444,
        size: 0,
        mtime: 0,
        linkname: path,
      },
    });
    // sha256sum escapes names with a newline or a backslash: those are simply sent again.
    if (!/[\n\\]/.test(path))
      sums.push(`${id.slice(0, 2)}${id.slice(3).replace(/\.x$/, "")}  ${path}\n`);
  }
  const rest = new Map([...fresh].filter(([id]) => !placed.has(id)));
  return { entries, links, sums: sums.join(""), rest };
}
