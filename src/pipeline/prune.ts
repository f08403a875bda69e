/**
 * `pyferry cache prune`: everything the cache holds, not only the installer's part. Wheels built
 * from sdists, environments of run/pack and unpacked bundles of exec go when they were last
 * used before the cutoff (their markers are touched on use). An environment or bundle is
 * unpublished by one rename before it is removed, and a bundle only under its unpacking lock,
 * its last use read again once its marker is aside, so no process ever starts on a
 * half-removed tree, nor has one removed that it has just started on.
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
import { ENV_MARKER } from "./run-cache.js";

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

/**
 * Remove the unpacked bundle `dir` (its lock held) unless it was used since `cutoff` or by a
 * live process. The marker is renamed aside first, so that no exec can claim the tree after
 * its last use is read (see ensureUnpacked); the processes are asked again after that, since
 * an exec may have registered and claimed it after this prune started.
 */
async function retireBundle(dir: string, root: string, cutoff: number): Promise<boolean> {
  const marker = join(dir, COMPLETE_MARKER);
  const aside = join(dir, RETIRING_MARKER);
  try {
    await rename(marker, aside);
  } catch {
    return false;
  }
  const used = await mtime(aside);
  const since = usedSince(root);
  const inUse =
    used === undefined || used > cutoff || (since !== undefined && used >= since - 1000);
  if (!inUse && (await retireTree(dir))) return true;
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
    const dir = join(root, "envs", key);
    if (!old(await mtime(join(dir, ENV_MARKER)))) continue;
    const bytes = await treeBytes(dir);
    if (dryRun || (await retireTree(dir))) removed.push({ kind: "env", path: dir, bytes });
  }

  for (const sha of await list(join(root, "bundles"))) {
    if (sha.endsWith(".lock")) continue;
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
    if (dryRun) {
      removed.push({ kind: "bundle", path: dir, bytes });
      continue;
    }
    // Not while another process unpacks it; a short wait, then leave it for next time.
    const lock = await acquireLock(`${dir}.lock`, { timeoutMs: 2_000 }).catch(() => undefined);
    if (!lock) continue;
    try {
      if (await retireBundle(dir, root, cutoff)) removed.push({ kind: "bundle", path: dir, bytes });
    } finally {
      await lock.release();
    }
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
