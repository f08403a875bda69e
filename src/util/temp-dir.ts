import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { holdScratch } from "./scratch.js";

const removeAll = (dir: string) => rm(dir, { recursive: true, force: true });

/** A folder to remove with `remove`; until then a signal stopping the process removes it. */
export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

/** A new folder in the system's temporary folder, named from `prefix`. */
export async function makeTempDir(
  prefix: string,
  removeTree: (dir: string) => Promise<void> = removeAll,
): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const release = holdScratch(path);
  return {
    path,
    async remove() {
      try {
        await removeTree(path);
      } finally {
        release();
      }
    },
  };
}

/**
 * Run `fn` in a new temporary folder (see makeTempDir), removed afterwards (by `remove`, for
 * trees that need more than rm): a build's checkout or work tree is never left behind, not
 * even by Ctrl-C.
 */
export async function inTempDir<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
  remove: (dir: string) => Promise<void> = removeAll,
): Promise<T> {
  const dir = await makeTempDir(prefix, remove);
  try {
    return await fn(dir.path);
  } finally {
    await dir.remove();
  }
}
