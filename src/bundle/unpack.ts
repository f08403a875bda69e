/**
 * Unpacking a bundle safely, and once per machine. Only our own tar.gz layout is accepted:
 * manifest.json first, then env/ and app/ entries that are plain files, folders or symlinks.
 * Every file is checked against the manifest's sha256 as it is written, and the tree becomes
 * visible at its destination only by one rename once all of it has been verified.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, createReadStream, fchmodSync, openSync, symlinkSync, writeSync } from "node:fs";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, posix, resolve } from "node:path";
import { createGunzip } from "node:zlib";
import { useCache } from "../util/cache-users.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { memoSha256 } from "../util/hash-memo.js";
import { makeDirs, makeDirsSync } from "../util/make-dirs.js";
import { hostTag, pidAlive } from "../util/pid.js";
import { ByteReader } from "./byte-reader.js";
import { acquireLock } from "./lock.js";
import { isBundlePath, MANIFEST_NAME, type Manifest, parseManifest } from "./manifest.js";
import { padding } from "./tar.js";
import { tarMembers } from "./tar-members.js";

/** Written into an unpacked tree just before it is published: its presence means complete. */
export const COMPLETE_MARKER = ".pyferry-complete";
/** The completion marker while `cache prune` decides, under the bundle's lock, to remove a tree. */
export const RETIRING_MARKER = ".pyferry-retiring";
/** Headers and manifests larger than this are not ours. */
const MAX_META_BYTES = 64 << 20;

/** A reason the archive cannot be used; turned into one UserError naming the archive. */
class Refused extends Error {}

/** True when `target`, a symlink's text at bundle path `path`, leaves the bundle. */
function leavesBundle(path: string, target: string): boolean {
  if (posix.isAbsolute(target)) return true;
  const joined = posix.normalize(posix.join(posix.dirname(path), target));
  return joined === ".." || joined.startsWith("../");
}

/**
 * Whether the link at `path` reaches outside the bundle through other links of the manifest
 * (app/c -> ../env/b/etc with env/b -> /): its target is followed through every link it passes,
 * as the kernel would; a loop or more than 40 links counts as leaving.
 */
function escapesThroughLinks(path: string, target: string, links: Manifest["links"]): boolean {
  let current = posix.join(posix.dirname(path), target);
  for (let hops = 0; hops <= 40; hops++) {
    if (posix.isAbsolute(current) || current === ".." || current.startsWith("../")) return true;
    const parts = current.split("/");
    const at = parts.findIndex((_, i) => Object.hasOwn(links, parts.slice(0, i + 1).join("/")));
    if (at < 0) return false;
    const prefix = parts.slice(0, at + 1).join("/");
    const via = links[prefix] as Manifest["links"][string];
    if (via.external) return true;
    current = posix.join(posix.dirname(prefix), via.target, ...parts.slice(at + 1));
  }
  return true;
}

/** Folders the manifest does not account for (pack writes empty ones too): at most this many. */
const MAX_EXTRA_DIRS = 4096;

/**
 * Extract `archive` into the new folder `dest` (its parent must exist), verifying everything
 * against the manifest; resolves to the manifest. On failure `dest` may hold a partial tree:
 * callers extract into a temporary folder and remove it. Files are written with synchronous
 * calls: bundles hold tens of thousands of small files, and a thread-pool round trip for each
 * open, write, chmod and close made unpacking several times slower than tar.
 */
async function extract(archive: string, dest: string): Promise<Manifest> {
  await mkdir(dest);
  const file = createReadStream(archive);
  const gunzip = createGunzip({ chunkSize: 256 << 10 });
  file.on("error", (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  const reader = new ByteReader(gunzip[Symbol.asyncIterator](), (m) => new Refused(m));
  try {
    let manifest: Manifest | undefined;
    let manifestText = "";
    const seen = new Set<string>();
    const linkPaths = new Set<string>();
    const links: { path: string; target: string }[] = [];
    const made = new Set<string>([dest]);
    const implied = new Set<string>(["env", "app"]);
    let extraDirs = 0;
    const makeDir = (dir: string): void => {
      if (made.has(dir)) return;
      makeDirsSync(dir, 0o755);
      made.add(dir);
    };
    const members = tarMembers(reader, (m) => new Refused(m), { maxMeta: MAX_META_BYTES });
    for await (const h of members) {
      const { size, linkname } = h;
      const rawPath = h.path;
      const isDir = h.typeflag === "5";
      const path = isDir ? rawPath.replace(/\/$/, "") : rawPath;
      const shown = JSON.stringify(rawPath);

      if (manifest === undefined) {
        if (path !== MANIFEST_NAME || (h.typeflag !== "0" && h.typeflag !== "\0"))
          throw new Refused(
            `it does not start with ${MANIFEST_NAME}, so it is not a pyferry bundle`,
          );
        if (size > MAX_META_BYTES) throw new Refused(`its ${MANIFEST_NAME} is too large`);
        manifestText = (await reader.read(size + padding(size))).subarray(0, size).toString("utf8");
        manifest = parseManifest(manifestText, archive);
        for (const p of [...Object.keys(manifest.files), ...Object.keys(manifest.links)]) {
          const parts = p.split("/");
          for (let i = 1; i < parts.length; i++) implied.add(parts.slice(0, i).join("/"));
        }
        continue;
      }
      if (!(isBundlePath(path) || (isDir && (path === "env" || path === "app"))))
        throw new Refused(`the entry ${shown} is not a relative path under env/ or app/`);
      if (seen.has(path)) throw new Refused(`the entry ${shown} appears twice`);
      seen.add(path);
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++)
        if (linkPaths.has(parts.slice(0, i).join("/")))
          throw new Refused(`the entry ${shown} lies inside a symlink`);
      const out = join(dest, ...parts);

      switch (h.typeflag) {
        case "5":
          // Each file or link accounts for its folders; a bundle of nothing but folders would
          // fill the cache's file system with them.
          if (!implied.has(path) && ++extraDirs > MAX_EXTRA_DIRS)
            throw new Refused(
              `it has more than ${MAX_EXTRA_DIRS} folders its manifest does not account for`,
            );
          makeDir(out);
          break;
        case "0":
        case "\0": {
          const want = Object.hasOwn(manifest.files, path) ? manifest.files[path] : undefined;
          if (!want) throw new Refused(`the file ${shown} is not in its manifest`);
          if (want.size !== size)
            throw new Refused(`the size of ${shown} differs from its manifest`);
          makeDir(dirname(out));
          // O_EXCL: never write through anything already there.
          const fd = openSync(out, "wx", want.mode);
          const hash = createHash("sha256");
          try {
            for await (const chunk of reader.stream(size)) {
              hash.update(chunk);
              for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at);
            }
            // The process umask must not change what the manifest says.
            fchmodSync(fd, want.mode);
          } finally {
            closeSync(fd);
          }
          if (hash.digest("hex") !== want.sha256)
            throw new Refused(`the content of ${shown} does not match its manifest's sha256`);
          await reader.read(padding(size));
          break;
        }
        case "2": {
          const want = Object.hasOwn(manifest.links, path) ? manifest.links[path] : undefined;
          if (!want || want.target !== linkname)
            throw new Refused(`the symlink ${shown} is not in its manifest`);
          const outside = leavesBundle(path, linkname);
          if (outside && !(want.external && parts[0] === "env"))
            throw new Refused(`the symlink ${shown} points outside the bundle`);
          if (outside !== want.external)
            throw new Refused(`the symlink ${shown} is recorded wrongly in its manifest`);
          // env/ may link out (to the machine's interpreter); app/ never, not even by a detour.
          if (parts[0] === "app" && escapesThroughLinks(path, linkname, manifest.links))
            throw new Refused(`the symlink ${shown} points outside the bundle through other links`);
          linkPaths.add(path);
          links.push({ path, target: linkname });
          await reader.read(size + padding(size));
          break;
        }
        case "1":
          throw new Refused(`the entry ${shown} is a hard link, which bundles never contain`);
        case "3":
        case "4":
        case "6":
          throw new Refused(`the entry ${shown} is a device or a FIFO`);
        default:
          throw new Refused(
            `the entry ${shown} has the unsupported tar type ${JSON.stringify(h.typeflag)}`,
          );
      }
    }
    if (manifest === undefined) throw new Refused("it is empty");
    await reader.drain();
    // Symlinks last: while files are written no link exists that a path could be routed through.
    for (const { path, target } of links) {
      const out = join(dest, ...path.split("/"));
      makeDir(dirname(out));
      symlinkSync(target, out);
    }
    const missing = [...Object.keys(manifest.files), ...Object.keys(manifest.links)].find(
      (p) => !seen.has(p),
    );
    if (missing !== undefined) throw new Refused(`its manifest lists ${missing}, which it lacks`);
    await writeFile(join(dest, MANIFEST_NAME), manifestText, { mode: 0o644 });
    return manifest;
  } catch (err) {
    throw explain(err, archive);
  } finally {
    file.destroy();
    gunzip.destroy();
  }
}

/** One UserError for anything that went wrong reading `archive`. */
function explain(err: unknown, archive: string): Error {
  if (err instanceof UserError) return err;
  if (err instanceof Refused)
    return new UserError(`The bundle ${archive} cannot be unpacked: ${err.message}.`);
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ENOENT" && e.path === archive)
    return new UserError(`The bundle ${archive} does not exist.`);
  if (e.code === "EISDIR") return new UserError(`${archive} is a folder, not a bundle.`);
  // gzip's first bytes are wrong: not damage to a bundle, but something else altogether.
  if (e.code === "Z_DATA_ERROR" && /incorrect header check/.test(e.message))
    return new UserError(`${archive} is not a pyferry bundle (it is not gzip-compressed).`);
  if (e.code?.startsWith("Z_") || e.code === "ERR_STREAM_PREMATURE_CLOSE")
    return new UserError(`The bundle ${archive} is truncated or corrupt: ${e.message}.`);
  return new UserError(`Cannot unpack the bundle ${archive}: ${e.message}.`);
}

/** A fresh name beside `target`, telling which host and process is writing it. */
function partialName(target: string): string {
  return `${target}.partial.${hostTag()}.${process.pid}.${randomBytes(4).toString("hex")}`;
}

/**
 * For a name partialName made: whether its writer is a process of this host that is gone.
 * Undefined for any other name, or another host's writer (which this host cannot ask).
 */
export function partialAbandoned(name: string): boolean | undefined {
  const m = /\.partial\.(.+)\.(\d+)\.[0-9a-f]+$/.exec(name);
  if (!m || m[1] !== hostTag()) return undefined;
  const pid = Number(m[2]);
  return pid !== process.pid && !pidAlive(pid);
}

/**
 * Refuse, before opening it, an archive that is not a regular file: a FIFO or a device would
 * block the read or never end. One that does not exist is left to the read, which says so.
 */
async function checkArchive(archive: string): Promise<void> {
  const st = await stat(archive).catch(() => undefined);
  if (!st || st.isFile()) return;
  throw new UserError(
    st.isDirectory()
      ? `${archive} is a folder, not a bundle.`
      : `${archive} is not a regular file, so it cannot be a bundle.`,
  );
}

/** True when something, even a dangling symlink, is at `p`. */
const present = async (p: string): Promise<boolean> => (await lstat(p).catch(() => null)) !== null;

/**
 * Unpack `archive` into `dest`, which must not exist. Nothing appears at `dest` unless the
 * whole archive was valid.
 */
export async function unpackBundle(archive: string, dest: string): Promise<Manifest> {
  await checkArchive(archive);
  const target = resolve(dest);
  if (await present(target)) throw new UserError(`Cannot unpack into ${dest}: it already exists.`);
  await makeDirs(dirname(target));
  const tmp = partialName(target);
  try {
    const manifest = await extract(archive, tmp);
    await rename(tmp, target);
    return manifest;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) h.update(chunk);
  } catch (err) {
    throw explain(err, path);
  }
  return h.digest("hex");
}

/** Remove partial trees beside `target` whose writer, a process on this host, has died. */
async function removeAbandoned(target: string): Promise<void> {
  const prefix = `${basename(target)}.partial.`;
  for (const name of await readdir(dirname(target))) {
    if (name.startsWith(prefix) && partialAbandoned(name))
      await rm(join(dirname(target), name), { recursive: true, force: true });
  }
}

export interface Unpacked {
  /** The unpacked bundle: manifest.json, env/ and app/. */
  dir: string;
  manifest: Manifest;
  /** True when this call did the unpacking, false when it reused an earlier one. */
  unpacked: boolean;
}

/**
 * The bundle unpacked into cacheDir()/bundles/<sha256 of the archive>/, unpacking it only if
 * no process has before. Many processes may call this at once: one unpacks, the others wait
 * for it. A tree is used only once its completion marker exists, and it gets there only by
 * an atomic rename of a finished, verified tree, so a process killed mid-way leaves nothing
 * that looks usable (its partial tree is removed by the next unpacker).
 */
export async function ensureUnpacked(archive: string): Promise<Unpacked> {
  await checkArchive(archive);
  // Keyed by what identifies the file's content, so a bundle run many times is read once.
  const digest = await memoSha256(archive, () => sha256File(archive));
  useCache();
  const root = join(cacheDir(), "bundles");
  const dir = join(root, digest);
  const marker = join(dir, COMPLETE_MARKER);
  const complete = (): Promise<boolean> => present(marker);
  // Using a tree is claimed by touching its marker, then seeing it still there: prune renames
  // the marker aside before it judges the tree's last use, so a claim either shows in that
  // judgement or fails here (and this waits for prune's lock). A tree that is still claimable
  // yet damaged may be in use by running tasks: say so rather than replace it under them.
  const reuse = async (): Promise<Unpacked | undefined> => {
    const now = new Date();
    const gone = await utimes(marker, now, now).then(
      () => false,
      // Another user's cache keeps no date of ours; only a missing marker matters.
      (err: NodeJS.ErrnoException) => err.code === "ENOENT",
    );
    if (gone || !(await complete())) return undefined;
    const text = await readFile(join(dir, MANIFEST_NAME), "utf8").catch(
      (err: NodeJS.ErrnoException) => {
        throw new UserError(
          `The unpacked bundle ${dir} is damaged (${err.code}); remove it and run again.`,
        );
      },
    );
    return { dir, manifest: parseManifest(text, dir), unpacked: false };
  };
  for (;;) {
    const reused = (await complete()) ? await reuse() : undefined;
    if (reused) return reused;
    await makeDirs(root);
    const lock = await acquireLock(`${dir}.lock`, { done: complete });
    // Finished by another process: claim it like any finished tree.
    if (!lock) continue;
    try {
      return await unpackLocked(archive, digest, dir, reuse);
    } finally {
      await lock.release();
    }
  }
}

/** ensureUnpacked's part under the bundle's lock: reuse the tree there, or unpack it anew. */
async function unpackLocked(
  archive: string,
  digest: string,
  dir: string,
  reuse: () => Promise<Unpacked | undefined>,
): Promise<Unpacked> {
  const complete = (): Promise<boolean> => present(join(dir, COMPLETE_MARKER));
  // A prune stopped while deciding left the marker aside; the tree is as complete as before.
  await rename(join(dir, RETIRING_MARKER), join(dir, COMPLETE_MARKER)).catch(() => undefined);
  const reused = (await complete()) ? await reuse() : undefined;
  if (reused) return reused;
  await removeAbandoned(dir);
  // A tree without its marker is not ours to trust (it never is published that way).
  if (await present(dir)) {
    const aside = partialName(dir);
    await rename(dir, aside);
    await rm(aside, { recursive: true, force: true });
  }
  const tmp = partialName(dir);
  try {
    const manifest = await extract(archive, tmp);
    await writeFile(join(tmp, COMPLETE_MARKER), `${digest}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Someone who also thought they held the lock published first: theirs is as good.
      const theirs = (await complete()) ? await reuse() : undefined;
      if (!theirs) throw err;
      await rm(tmp, { recursive: true, force: true });
      return theirs;
    }
    return { dir, manifest, unpacked: true };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
