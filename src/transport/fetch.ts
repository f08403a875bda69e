/**
 * Bringing result files back: a tar written by the remote's tar, read here with no trust in
 * it. Only regular files and folders are taken, every path stays inside the destination, and
 * each file appears whole (written beside its place, then renamed).
 */
import { randomBytes } from "node:crypto";
import { closeSync, lstatSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import { ByteReader } from "../bundle/byte-reader.js";
import { padding } from "../bundle/tar.js";
import { type TarMember, tarMembers } from "../bundle/tar-members.js";
import { UserError } from "../util/errors.js";
import { makeDirsSync } from "../util/make-dirs.js";

const MAX_META = 1 << 20;

export interface Fetched {
  files: string[];
  skipped: string[];
}

/** A safe relative path, or undefined: no absolute paths, no "..", nothing empty. */
function safePath(name: string): string | undefined {
  const p = posix.normalize(name.replace(/\/+$/, ""));
  if (p === "." || p === "" || posix.isAbsolute(p) || p === ".." || p.startsWith("../"))
    return undefined;
  return p;
}

/** True when a symlink sits on the way to `rel` inside `dest`: writing there would leave it. */
function throughSymlink(dest: string, rel: string): boolean {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    try {
      if (lstatSync(join(dest, ...parts.slice(0, i))).isSymbolicLink()) return true;
    } catch {
      return false;
    }
  }
  return false;
}

/** Extract `stream` (a tar) into `dest`; `label` names the source in errors. */
export async function extractFetched(
  stream: Readable,
  dest: string,
  label: string,
): Promise<Fetched> {
  const fail = (m: string) =>
    new UserError(`The files fetched from ${label} cannot be used: ${m}.`);
  let received = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of stream) {
      received += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  }
  const reader = new ByteReader(counted(), fail);
  const files: string[] = [];
  const skipped: string[] = [];
  const members = tarMembers(reader, fail, { maxMeta: MAX_META, foreign: true });
  for (;;) {
    let next: IteratorResult<TarMember>;
    try {
      next = await members.next();
    } catch (err) {
      // tar wrote nothing at all (every path missing): an empty result, not a broken one.
      if (received === 0) break;
      throw err;
    }
    if (next.done) break;
    const h = next.value;
    const name = h.path;
    const size = h.size;
    const rel = safePath(name);
    const skip = async () => {
      skipped.push(name);
      for await (const _ of reader.stream(size + padding(size))) {
        // Discarded.
      }
    };
    if (!rel || throughSymlink(dest, rel)) {
      await skip();
      continue;
    }
    const target = join(dest, rel);
    if (h.typeflag === "5") {
      makeDirsSync(target);
      continue;
    }
    if (h.typeflag !== "0" && h.typeflag !== "\0" && h.typeflag !== "7") {
      await skip();
      continue;
    }
    makeDirsSync(join(target, ".."));
    const tmp = `${target}.pyferry-${randomBytes(4).toString("hex")}`;
    const fd = openSync(tmp, "wx", (h.mode & 0o111) !== 0 ? 0o755 : 0o644);
    let whole = false;
    try {
      for await (const chunk of reader.stream(size)) {
        for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at);
      }
      whole = true;
    } finally {
      closeSync(fd);
      if (!whole) rmSync(tmp, { force: true });
    }
    renameSync(tmp, target);
    await reader.read(padding(size));
    files.push(rel);
  }
  return { files, skipped };
}
