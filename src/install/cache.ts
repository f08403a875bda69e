/**
 * The global, content-addressed cache under cacheDir(): downloaded wheels in
 * `wheels/<sha256>/<filename>` and their unpacked trees in `unpacked/<sha256>/`.
 *
 * Entries are written under a dot-named temporary sibling that carries the writer's pid and are
 * published with one rename, so a reader sees a complete entry or none, also across processes
 * and after a crash. A published entry is never changed again; its last use is its marker's
 * mtime (the wheel file itself, or the unpacked tree's `.pyferry-unpacked.json`).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from "node:fs";
import {
  chmod,
  type FileHandle,
  lstat,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import { HttpFailure, httpGet, redactUrl } from "../index/http.js";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename, type WheelName } from "../python/tags.js";
import { compareVersions } from "../python/version.js";
import { useCache } from "../util/cache-users.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { makeDirs } from "../util/make-dirs.js";
import { hostTag, pidAlive } from "../util/pid.js";
import { atEnd, removeNow } from "../util/scratch.js";
import { touch } from "../util/touch.js";
import { treeBytes } from "../util/tree-bytes.js";
import { mapLimit } from "./pool.js";
import {
  extractWheel,
  parentDirs,
  UNPACKED_MARKER,
  type UnpackedFile,
  type WheelContents,
} from "./wheel-archive.js";

export { UNPACKED_MARKER, type UnpackedFile };

/** A wheel unpacked in the cache: its tree at `dir`, files named exactly as in the zip. */
export interface UnpackedWheel extends WheelContents {
  dir: string;
  sha256: string;
  /** The file system's time when the tree was published (absent in trees of older pyferry). */
  published?: number;
  /**
   * Unpacked by this very call (never stored in the marker): its files were just written and
   * checked against RECORD, so placing them needs no look for later changes.
   */
  fresh?: boolean;
}

/** A file to fetch: where it is and the sha256 (hex) it must have. */
export interface DistFile {
  url: string;
  filename: string;
  sha256: string;
  /** Its size in bytes, when known: a file of another size is refused before it is hashed. */
  size?: number;
}

const MARKER_FORMAT = 1;

/** Where the cache keeps things. */
function pathsOf(root: string): { root: string; wheels: string; unpacked: string } {
  return { root, wheels: join(root, "wheels"), unpacked: join(root, "unpacked") };
}

/** Where the cache keeps things, for a process about to use them (registered: cache-users.ts). */
export function cachePaths(root: string = cacheDir()): ReturnType<typeof pathsOf> {
  useCache(root);
  return pathsOf(root);
}

function checkSha256(sha256: string, what: string): string {
  const hex = sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new UserError(`${what} has a malformed sha256 "${sha256}".`);
  return hex;
}

function tempSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString("hex")}`;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errCode(err) === "ENOENT") return false;
    throw err;
  }
}

/** Bytes from a file:// or http(s) URL, as chunks. */
async function* sourceChunks(url: string, filename: string): AsyncGenerator<Uint8Array> {
  if (url.startsWith("file:")) {
    const path = fileURLToPath(url);
    try {
      yield* createReadStream(path);
    } catch (err) {
      throw new UserError(`Could not read ${filename} at ${path} (${errCode(err) ?? err}).`);
    }
    return;
  }
  if (!/^https?:/i.test(url)) {
    throw new UserError(
      `${filename} is at ${redactUrl(url)}, which is neither file: nor http(s):.`,
    );
  }
  try {
    const res = await httpGet(url, { "Accept-Encoding": "identity" });
    if (res.status !== 200) {
      await res.discard();
      throw new HttpFailure(`the server answered HTTP ${res.status}`, res.status);
    }
    yield* res.chunks();
  } catch (err) {
    if (!(err instanceof HttpFailure)) throw err;
    throw new UserError(`Could not download ${filename} from ${redactUrl(url)}: ${err.reason}.`);
  }
}

/** Create `file` (read-only) in `dir`, making `dir` first; again if a prune removed it between. */
async function createIn(dir: string, file: string): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    await makeDirs(dir);
    try {
      return await open(file, "wx", 0o444);
    } catch (err) {
      if (errCode(err) !== "ENOENT" || attempt > 0) throw err;
    }
  }
}

/**
 * The verified file: a local file: URL where it is, else `wheels/<sha256>/<filename>`,
 * downloaded if not there yet, hashed on the way, published by rename. A hash mismatch is a
 * UserError naming the file and both hashes, and leaves nothing behind.
 */
export async function fetchDist(file: DistFile): Promise<string> {
  const sha256 = checkSha256(file.sha256, file.filename);
  if (file.filename !== basename(file.filename) || file.filename.startsWith(".")) {
    throw new UserError(`"${file.filename}" is not a plain file name.`);
  }
  const dir = join(cachePaths().wheels, sha256);
  const final = join(dir, file.filename);
  if (await exists(final)) {
    await touch(final);
    return final;
  }
  if (file.url.startsWith("file:")) {
    // A local file needs no copy: check its hash where it is (one read instead of a read
    // and a write of the whole wheel; the unpacked tree is what gets cached).
    await checkLocalSize(file);
    const hash = createHash("sha256");
    for await (const chunk of sourceChunks(file.url, file.filename)) hash.update(chunk);
    const actual = hash.digest("hex");
    if (actual !== sha256) {
      throw new UserError(
        `${file.filename} at ${fileURLToPath(file.url)} has sha256 ${actual}, but ${sha256} was expected.`,
      );
    }
    return fileURLToPath(file.url);
  }
  const tmp = join(dir, `.${file.filename}.${tempSuffix()}.part`);
  try {
    const hash = createHash("sha256");
    const handle = await createIn(dir, tmp);
    let bytes = 0;
    try {
      for await (const chunk of sourceChunks(file.url, file.filename)) {
        hash.update(chunk);
        bytes += chunk.length;
        await handle.write(chunk);
      }
    } finally {
      await handle.close();
    }
    checkSize(file, bytes, `from ${redactUrl(file.url)}`);
    const actual = hash.digest("hex");
    if (actual !== sha256) {
      throw new UserError(
        `${file.filename} from ${redactUrl(file.url)} has sha256 ${actual}, but ${sha256} was expected.`,
      );
    }
    // Replacing a copy another process published meanwhile is harmless: the bytes are the same.
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { force: true });
    await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return final;
}

/** Refuse `file` when it is known to be `file.size` bytes and the copy at `where` has `actual`. */
function checkSize(file: DistFile, actual: number, where: string): void {
  if (file.size !== undefined && actual !== file.size) {
    throw new UserError(
      `${file.filename} ${where} is ${actual} bytes, but ${file.size} were expected.`,
    );
  }
}

/** checkSize for a local file (a file: URL), by its size on disk; a missing file is left to its reader. */
export async function checkLocalSize(file: DistFile): Promise<void> {
  const path = fileURLToPath(file.url);
  const st = await stat(path).catch(() => undefined);
  if (st) checkSize(file, st.size, `at ${path}`);
}

/** fetchDist for many files, `concurrency` at a time; paths in the order given. */
export function fetchMany(files: readonly DistFile[], concurrency = 16): Promise<string[]> {
  return mapLimit(files, concurrency, (f) => fetchDist(f));
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  if (!isMainThread) {
    // An unpacking thread may block: one buffer, read in place, instead of a pool round trip
    // and a new buffer for every 64 KiB.
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
    return hash.digest("hex");
  }
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Wheels up to this size are read into memory once, then hashed and unpacked from there:
 * reading each entry from the file, and the whole file again for its hash, cost about a tenth
 * of a cold install's unpacking time.
 */
const WHOLE_WHEEL_BYTES = 128 * 1024 * 1024;

/** The wheel's bytes when it is small enough to hold; undefined else, or if it is unreadable. */
function readWhole(path: string): Buffer | undefined {
  try {
    return statSync(path).size <= WHOLE_WHEEL_BYTES ? readFileSync(path) : undefined;
  } catch {
    // Read again below, where a failure is reported in the words of its step.
    return undefined;
  }
}

/** Make every directory under `root` writable again, so that a read-only tree can go. */
async function unfreeze(root: string): Promise<void> {
  await chmod(root, 0o755).catch(() => undefined);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await unfreeze(join(root, e.name));
}

/** Remove a tree that may hold read-only directories. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    if (errCode(err) !== "EACCES" && errCode(err) !== "EPERM") throw err;
    await unfreeze(path);
    await rm(path, { recursive: true, force: true });
  }
}

function isUnpackedRecord(v: unknown, sha256: string): v is Omit<UnpackedWheel, "dir"> {
  const o = v as Partial<UnpackedWheel & { format: number }> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    o.format === MARKER_FORMAT &&
    o.sha256 === sha256 &&
    typeof o.distInfo === "string" &&
    Array.isArray(o.files)
  );
}

/**
 * The published tree for `sha256`, or undefined if there is none. A tree without a readable
 * marker (left by an incompatible pyferry) is moved out of the way so it can be redone.
 */
async function readUnpacked(root: string, sha256: string): Promise<UnpackedWheel | undefined> {
  const dir = join(root, sha256);
  const marker = join(dir, UNPACKED_MARKER);
  let text: string;
  try {
    text = await readFile(marker, "utf8");
  } catch (err) {
    if (errCode(err) !== "ENOENT" || !(await exists(dir))) return undefined;
    // Published between the two looks (a published tree always has its marker), or old.
    text = await readFile(marker, "utf8").catch(() => "");
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (!isUnpackedRecord(data, sha256)) {
    const trash = join(root, `.trash-${tempSuffix()}`);
    try {
      await rename(dir, trash);
    } catch (err) {
      // Another process moved it first.
      if (errCode(err) !== "ENOENT") throw err;
      return undefined;
    }
    await removeTree(trash);
    return undefined;
  }
  const { format: _format, ...rest } = data as Omit<UnpackedWheel, "dir"> & { format: number };
  if (rest.published === undefined) {
    // Older trees lack the time; the marker's birth is the same moment, where it is kept.
    const born = (await stat(marker)).birthtimeMs;
    if (born > 0) rest.published = born;
  }
  await touch(marker);
  return { ...rest, dir };
}

/**
 * The wheel at `path` (whose sha256 the caller states and this checks) unpacked into
 * `unpacked/<sha256>/`: its files as the zip names them, read-only, executable where the zip
 * says so, each checked against RECORD, plus `.pyferry-unpacked.json`. An unusable wheel is a
 * UserError naming it and the problem, with nothing left in the cache.
 */
export async function unpackWheel(
  path: string,
  sha256: string,
  verified = false,
): Promise<UnpackedWheel> {
  const filename = basename(path);
  const sha = checkSha256(sha256, filename);
  parseWheelFilename(filename);
  const root = cachePaths().unpacked;
  const published = await readUnpacked(root, sha);
  if (published) return sameWheel(published, filename);
  const bytes = readWhole(path);
  // fetchDist verified its copies before publishing them, and local files it has just hashed
  // where they are (`verified`); any other file is checked here.
  if (!verified && resolve(path) !== join(cachePaths().wheels, sha, filename)) {
    const actual = bytes
      ? createHash("sha256").update(bytes).digest("hex")
      : await fileSha256(path).catch((err: unknown) => {
          throw new UserError(`Could not read the wheel ${path} (${errCode(err) ?? err}).`);
        });
    if (actual !== sha) {
      throw new UserError(`${filename} at ${path} has sha256 ${actual}, but ${sha} was expected.`);
    }
  }
  await makeDirs(root);
  const tmp = join(root, `.tmp-${sha.slice(0, 16)}-${hostTag()}.${tempSuffix()}`);
  try {
    const contents = await extractWheel(path, filename, tmp, bytes);
    // The marker is made after every file, so its mtime, by the file system's own clock (also
    // on a shared cache), is when the tree was published: a later mtime means an edit.
    const marker = await open(join(tmp, UNPACKED_MARKER), "wx", 0o444);
    let published: number;
    try {
      published = (await marker.stat()).mtimeMs;
      const record = { format: MARKER_FORMAT, sha256: sha, published, ...contents };
      await marker.writeFile(`${JSON.stringify(record)}\n`);
    } finally {
      await marker.close();
    }
    // Read-only directories too: nothing can be added to or removed from a published tree.
    const dirs = parentDirs(contents.files.map((f) => f.path)).reverse();
    for (const d of [...dirs.map((d) => join(tmp, d)), tmp]) await chmod(d, 0o555);
    try {
      await rename(tmp, join(root, sha));
    } catch (err) {
      const code = errCode(err);
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      // Another process published it first; its copy is as good as ours.
      await removeTree(tmp);
      const theirs = await readUnpacked(root, sha);
      if (theirs) return theirs;
      throw err;
    }
    return { ...contents, sha256: sha, published, dir: join(root, sha), fresh: true };
  } catch (err) {
    await removeTree(tmp);
    throw err;
  }
}

/**
 * Take a published tree out of the cache: unpublished by one rename beside it (so that no
 * reader finds it half-removed), then removed. False when it was gone already. With
 * `unlessHolds`, a tree found holding that file once aside goes back instead, and false is
 * returned: someone who broke a prune's lock as stale put its marker back meanwhile, and may
 * be using it (when a new tree has taken its place by then, that one is what its path leads
 * to, and this one goes).
 */
export async function retireTree(dir: string, unlessHolds?: string): Promise<boolean> {
  const trash = join(dirname(dir), `.trash-${tempSuffix()}`);
  try {
    await rename(dir, trash);
  } catch {
    return false;
  }
  if (unlessHolds !== undefined && existsSync(join(trash, unlessHolds))) {
    await rename(trash, dir).catch(() => removeTree(trash));
    return false;
  }
  await removeTree(trash);
  return true;
}

/**
 * "six 1.17.0's wheel six-1.17.0-py2.py3-none-any.whl" when `tree` was unpacked from another
 * wheel than `filename`, else undefined: trees are found by hash alone, and a hash copied from
 * another file must not install that other file.
 */
export function otherWheel(tree: UnpackedWheel, filename: string): string | undefined {
  const want = parseWheelFilename(filename);
  const have = parseWheelFilename(tree.filename);
  const tags = (w: WheelName) =>
    w.tags
      .map((t) => `${t.interpreter}-${t.abi}-${t.platform}`)
      .sort()
      .join(" ");
  const same =
    normalizeName(tree.name) === want.normalized &&
    compareVersions(tree.version, want.version) === 0 &&
    have.build === want.build &&
    tags(have) === tags(want);
  return same ? undefined : `${tree.name} ${tree.version}'s wheel ${tree.filename}`;
}

/** `tree`, found by the hash given for the wheel `filename`; refused when it is another wheel's. */
export function sameWheel(tree: UnpackedWheel, filename: string): UnpackedWheel {
  const other = otherWheel(tree, filename);
  if (other) {
    throw new UserError(
      `The sha256 given for ${filename}, ${tree.sha256}, is that of ${other}; that hash is wrong.`,
    );
  }
  return tree;
}

/** unpackWheel's staging trees: the wheel's sha256 prefix, then the writer's host and pid. */
const STAGING = /^\.tmp-[0-9a-f]{16}-(.+)\.(\d+)-[0-9a-f]{12}$/;

/** Names in `root` of staging trees of this host whose writer's pid passes `pick`. */
function stagingOf(root: string, pick: (pid: number) => boolean): string[] {
  const names = (() => {
    try {
      return readdirSync(root);
    } catch {
      return [];
    }
  })();
  return names.filter((name) => {
    const m = STAGING.exec(name);
    return m?.[1] === hostTag() && pick(Number(m[2]));
  });
}

/** This process's staging trees in `root`, gone: a signal stops it while its threads unpack. */
function removeOwnStaging(root: string): void {
  // A thread may start another wheel while the first ones go.
  for (let round = 0; round < 10; round++) {
    const mine = stagingOf(root, (pid) => pid === process.pid);
    if (mine.length === 0) return;
    for (const name of mine) removeNow(join(root, name));
  }
}

const staged = new Set<string>();

/**
 * Before unpacking into the cache at `root` (on the main thread, which signals reach): remove
 * what unpackings of this host's gone processes left there, and have this process's own
 * removed should it be stopped. Another host's leftovers wait for `cache prune`.
 */
export async function prepareStaging(root: string): Promise<void> {
  if (!staged.has(root)) {
    staged.add(root);
    atEnd(() => removeOwnStaging(root));
  }
  const dead = stagingOf(root, (pid) => pid !== process.pid && !pidAlive(pid));
  await Promise.all(dead.map((name) => removeTree(join(root, name)).catch(() => undefined)));
}

/** Read an unpacked tree already in the cache, without unpacking anything. */
export function findUnpacked(sha256: string): Promise<UnpackedWheel | undefined> {
  return readUnpacked(cachePaths().unpacked, checkSha256(sha256, "The wheel"));
}

export interface CacheInfo {
  root: string;
  wheels: { count: number; bytes: number };
  unpacked: { count: number; bytes: number };
  /** Temporary entries of running or crashed writers. */
  partial: { count: number };
}

/** Kinds of names in the cache: published entries, and temporaries named with their writer's pid. */
function tempPid(name: string): number | undefined {
  const m = /^\.(?:tmp-[0-9a-f]+-|trash-|.+\.)(\d+)-[0-9a-f]+(?:\.part)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if (errCode(err) === "ENOENT") return [];
    throw err;
  }
}

interface Entry {
  kind: "wheel" | "unpacked" | "partial";
  path: string;
  bytes: number;
  /** Last use (published entries) or last change (temporaries), in ms since the epoch. */
  time: number;
  pid?: number;
}

async function unpackedBytes(dir: string): Promise<number> {
  try {
    const data = JSON.parse(await readFile(join(dir, UNPACKED_MARKER), "utf8")) as {
      files: { size: number }[];
    };
    return data.files.reduce((sum, f) => sum + f.size, 0);
  } catch {
    return 0;
  }
}

async function cacheEntries(root: string): Promise<Entry[]> {
  // Only looked at: a query (cache info) writes nothing, not even its registration.
  const paths = pathsOf(root);
  const entries: Entry[] = [];
  const partial = async (path: string, name: string) => {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    // A half-unpacked tree weighs what it holds, not its folder's own entry.
    const bytes = st.isDirectory() ? await treeBytes(path) : st.size;
    entries.push({ kind: "partial", path, bytes, time: st.mtimeMs, pid: tempPid(name) });
  };
  for (const name of await listDir(paths.unpacked)) {
    const path = join(paths.unpacked, name);
    if (name.startsWith(".")) {
      await partial(path, name);
      continue;
    }
    const st = await stat(join(path, UNPACKED_MARKER)).catch(() => undefined);
    if (!st) continue;
    entries.push({ kind: "unpacked", path, bytes: await unpackedBytes(path), time: st.mtimeMs });
  }
  for (const sha of await listDir(paths.wheels)) {
    for (const name of await listDir(join(paths.wheels, sha))) {
      const path = join(paths.wheels, sha, name);
      if (name.startsWith(".")) {
        await partial(path, name);
        continue;
      }
      const st = await stat(path).catch(() => undefined);
      if (st) entries.push({ kind: "wheel", path, bytes: st.size, time: st.mtimeMs });
    }
  }
  return entries;
}

/** Sizes and counts of what the cache holds. */
export async function cacheInfo(root: string = cacheDir()): Promise<CacheInfo> {
  const info: CacheInfo = {
    root,
    wheels: { count: 0, bytes: 0 },
    unpacked: { count: 0, bytes: 0 },
    partial: { count: 0 },
  };
  for (const e of await cacheEntries(root)) {
    if (e.kind === "partial") info.partial.count++;
    else {
      info[e.kind === "wheel" ? "wheels" : "unpacked"].count++;
      info[e.kind === "wheel" ? "wheels" : "unpacked"].bytes += e.bytes;
    }
  }
  return info;
}

export interface PruneOptions {
  /** Remove wheels and unpacked trees not used for this many days (0: all of them). */
  olderThanDays: number;
  /** Report what would go without removing anything. */
  dryRun?: boolean;
  root?: string;
  /** Keep what was used at or after this time (ms): a running process uses it. */
  keepSince?: number;
}

export interface PruneResult {
  removed: { kind: "wheel" | "unpacked" | "partial"; path: string; bytes: number }[];
  bytes: number;
}

/** A temporary entry may go once its writer is gone (or a day has passed, whatever it says). */
const STALE_PARTIAL_MS = 60_000;
const ABANDONED_PARTIAL_MS = 24 * 3600_000;

/**
 * Remove unpacked trees and wheels last used more than `olderThanDays` days ago, and the
 * leftovers of writers that died. Temporaries of live writers are never touched.
 */
export async function pruneCache(opts: PruneOptions): Promise<PruneResult> {
  const root = opts.root ?? cacheDir();
  const now = Date.now();
  const cutoff = now - opts.olderThanDays * 86_400_000;
  const result: PruneResult = { removed: [], bytes: 0 };
  for (const e of await cacheEntries(root)) {
    const stale =
      e.kind === "partial"
        ? (now - e.time > STALE_PARTIAL_MS && (e.pid === undefined || !pidAlive(e.pid))) ||
          now - e.time > ABANDONED_PARTIAL_MS
        : e.time <= cutoff && e.time < (opts.keepSince ?? Number.POSITIVE_INFINITY);
    if (!stale) continue;
    result.removed.push({ kind: e.kind, path: e.path, bytes: e.bytes });
    result.bytes += e.bytes;
    if (opts.dryRun) continue;
    if (e.kind === "unpacked") {
      // Unpublish with one rename first, so no reader finds a half-removed tree.
      const trash = join(cachePaths(root).unpacked, `.trash-${tempSuffix()}`);
      try {
        await rename(e.path, trash);
      } catch (err) {
        if (errCode(err) === "ENOENT") continue;
        throw err;
      }
      await removeTree(trash);
    } else {
      await removeTree(e.path);
      if (e.path.startsWith(cachePaths(root).wheels)) {
        // The wheel's sha256 directory goes when it is empty (fetchDist copes with that race).
        await rmdir(join(e.path, "..")).catch(() => undefined);
      }
    }
  }
  return result;
}
