/**
 * `pyferry cache prune`: everything the cache holds, not only the installer's part. Wheels built
 * from sdists, environments of run/pack and unpacked bundles of exec go when they were last
 * used before the cutoff (their markers are touched on use). An environment or bundle is
 * unpublished under the lock its builders take, by renaming its marker aside, and its last use
 * is read again then, so no process ever starts on a half-removed tree, nor has one removed
 * that it has just started on.
 */
import { existsSync, readFileSync } from "node:fs";
import { readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { acquireLock } from "../bundle/lock.js";
import { COMPLETE_MARKER, partialAbandoned, RETIRING_MARKER } from "../bundle/unpack.js";
import { pruneCache, removeTree, retireTree } from "../install/cache.js";
import { usedSince } from "../util/cache-users.js";
import { cacheDir } from "../util/dirs.js";
import { deadScratch } from "../util/scratch.js";
import { treeBytes } from "../util/tree-bytes.js";
import { ENV_MARKER, ENV_RETIRING } from "./run-cache.js";

export interface Removed {
  kind: "wheel" | "unpacked" | "partial" | "built" | "env" | "bundle" | "record";
  path: string;
  bytes: number;
}

async function list(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith("."));
}

async function mtime(path: string): Promise<number | undefined> {
  return (await stat(path).catch(() => undefined))?.mtimeMs;
}

/** A dead build's scratch goes once untouched this long (a shared cache's other machines). */
const SCRATCH_AGE_MS = 10 * 60_000;

/** A published tree's marker, and its name while a prune decides whether the tree goes. */
interface Markers {
  marker: string;
  aside: string;
}
const ENV_MARKERS: Markers = { marker: ENV_MARKER, aside: ENV_RETIRING };
const BUNDLE_MARKERS: Markers = { marker: COMPLETE_MARKER, aside: RETIRING_MARKER };

/** Locks, and a lock moved aside a moment by a waiter breaking it (see breakLock): not trees. */
const isLock = (name: string) => /\.lock(?:\.stale\.\d+\.[0-9a-f]+)?$/.test(name);

/**
 * Remove the environment or unpacked bundle `dir` unless it was used since `cutoff` or by a
 * live process. Not while its lock is held by another process (a builder or unpacker): after
 * a short wait it is left for next time.
 */
async function retire(
  dir: string,
  markers: Markers,
  root: string,
  cutoff: number,
): Promise<boolean> {
  const lock = await acquireLock(`${dir}.lock`, { timeoutMs: 2_000 }).catch(() => undefined);
  if (!lock) return false;
  try {
    return await retireLocked(dir, markers, root, cutoff);
  } finally {
    await lock.release();
  }
}

/**
 * retire's part under the lock. The marker is renamed aside first, so that no process can
 * claim the tree after its last use is read (see claimEnv and ensureUnpacked); the processes
 * are asked again after that, since one may have registered and claimed it after this prune
 * started. A marker found aside was left there by a prune stopped while deciding.
 */
async function retireLocked(
  dir: string,
  markers: Markers,
  root: string,
  cutoff: number,
): Promise<boolean> {
  const marker = join(dir, markers.marker);
  const aside = join(dir, markers.aside);
  await rename(marker, aside).catch(() => undefined);
  const used = await mtime(aside);
  // With neither marker, it was never published whole: no one can have claimed it.
  if (used === undefined) return !existsSync(marker) && retireTree(dir, markers.marker);
  const since = usedSince(root);
  const inUse = used > cutoff || (since !== undefined && used >= since - 1000);
  if (!inUse && (await retireTree(dir, markers.marker))) return true;
  await rename(aside, marker).catch(() => undefined);
  return false;
}

export async function pruneEverything(olderThanDays: number, dryRun = false): Promise<Removed[]> {
  const root = cacheDir();
  const cutoff = Date.now() - olderThanDays * 86_400_000;
  // What running processes use stays, however old (a second's margin for clock rounding).
  const since = usedSince(root, dryRun);
  const keepSince = since === undefined ? Number.POSITIVE_INFINITY : since - 1000;
  const old = (used: number | undefined) =>
    used === undefined || (used <= cutoff && used < keepSince);
  const installer = await pruneCache({ olderThanDays, dryRun, root, keepSince });
  const removed: Removed[] = [...installer.removed];

  for (const sha of await list(join(root, "built"))) {
    for (const name of await list(join(root, "built", sha))) {
      const path = join(root, "built", sha, name);
      const st = await stat(path).catch(() => undefined);
      if (!st || !old(st.mtimeMs)) continue;
      removed.push({ kind: "built", path, bytes: st.size });
      if (!dryRun) await unlink(path).catch(() => undefined);
    }
  }

  // Builds killed outright leave their scratch (and a bundled Python's staging) behind.
  for (const path of await deadScratch(join(root, "envs"), undefined, SCRATCH_AGE_MS)) {
    removed.push({ kind: "partial", path, bytes: await treeBytes(path) });
    if (!dryRun) await removeTree(path);
  }
  for (const key of await list(join(root, "envs"))) {
    if (isLock(key)) continue;
    const dir = join(root, "envs", key);
    if (!old(await mtime(join(dir, ENV_MARKER)))) continue;
    const bytes = await treeBytes(dir);
    if (dryRun || (await retire(dir, ENV_MARKERS, root, cutoff)))
      removed.push({ kind: "env", path: dir, bytes });
  }

  for (const sha of await list(join(root, "bundles"))) {
    if (isLock(sha)) continue;
    const dir = join(root, "bundles", sha);
    // An unpacker's tree: its own until it dies (then the next unpacker or this removes it).
    if (sha.includes(".partial.")) {
      if (!partialAbandoned(sha)) continue;
      const bytes = await treeBytes(dir);
      removed.push({ kind: "partial", path: dir, bytes });
      if (!dryRun) await removeTree(dir);
      continue;
    }
    if (!old(await mtime(join(dir, COMPLETE_MARKER)))) continue;
    const bytes = await treeBytes(dir);
    if (dryRun || (await retire(dir, BUNDLE_MARKERS, root, cutoff)))
      removed.push({ kind: "bundle", path: dir, bytes });
  }

  // Run records whose environment is gone only cost a rebuild check: drop them.
  for (const name of await list(join(root, "runs"))) {
    const path = join(root, "runs", name);
    let envDir: string | undefined;
    try {
      envDir = (JSON.parse(readFileSync(path, "utf8")) as { envDir?: string }).envDir;
    } catch {
      envDir = undefined;
    }
    if (envDir && existsSync(join(envDir, ENV_MARKER))) continue;
    removed.push({ kind: "record", path, bytes: 0 });
    if (!dryRun) await rm(path, { force: true });
  }
  return removed;
}
