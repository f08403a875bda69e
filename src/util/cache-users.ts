/**
 * The processes using the cache, so that `cache prune` leaves what they use: a process registers
 * `users/<host>.<pid>.<hex>` on its first use of the cache (removed when it exits or a signal
 * stops it), and prune keeps every entry used since the oldest live one registered (an entry's
 * marker is touched whenever it is used). A build, an `exec` whose program runs for weeks, or a `run` keep their
 * trees, however old the cutoff says they are.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { isMainThread } from "node:worker_threads";
import { cacheDir } from "./dirs.js";
import { makeDirsSync } from "./make-dirs.js";
import { pidAlive } from "./pid.js";
import { atEnd } from "./scratch.js";

/** This process's registration file in each cache it used (undefined: it could not register). */
const registered = new Map<string, string | undefined>();
const OTHER_HOST_MS = 7 * 86_400_000;

/** Removes every registration on the way out; one listener for all the caches used. */
function unregisterAll(): void {
  for (const file of registered.values()) {
    if (file === undefined) continue;
    try {
      unlinkSync(file);
    } catch {
      // Gone already: a prune found this process dead, or the cache was removed.
    }
  }
}

/** Register this process as a user of the cache at `root` (once; best effort). */
export function useCache(root: string = cacheDir()): void {
  // A worker thread's process registered before handing it work, and a terminated thread
  // would never unregister.
  if (!isMainThread || registered.has(root)) return;
  // Signals too: a registration left behind keeps what this process used from every prune.
  if (registered.size === 0) atEnd(unregisterAll);
  const dir = join(root, "users");
  const file = join(dir, `${hostname()}.${process.pid}.${randomBytes(4).toString("hex")}`);
  try {
    makeDirsSync(dir);
    writeFileSync(file, "");
  } catch {
    // A read-only cache has nothing prune could remove either.
    registered.set(root, undefined);
    return;
  }
  registered.set(root, file);
}

/**
 * When the oldest other live user registered (ms), or undefined when there is none. The
 * files of this host's users that died (kill -9) are removed on the way, unless `dryRun`.
 */
export function usedSince(root: string = cacheDir(), dryRun = false): number | undefined {
  const dir = join(root, "users");
  let oldest: number | undefined;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const host = hostname();
  for (const name of names) {
    const m = /^(.*)\.(\d+)\.[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    const file = join(dir, name);
    if (m[1] !== host) {
      // Another machine sharing the cache: its processes cannot be asked, so one counts
      // while its registration is under a week old.
      const at = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
      if (
        at !== undefined &&
        Date.now() - at < OTHER_HOST_MS &&
        (oldest === undefined || at < oldest)
      )
        oldest = at;
      continue;
    }
    if (pid !== process.pid && !pidAlive(pid)) {
      if (dryRun) continue;
      try {
        unlinkSync(file);
      } catch {
        // Removed by another prune.
      }
      continue;
    }
    if (pid === process.pid) continue;
    const at = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
    if (at !== undefined && (oldest === undefined || at < oldest)) oldest = at;
  }
  return oldest;
}
