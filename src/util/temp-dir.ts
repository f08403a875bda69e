import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { holdScratch } from "./scratch.js";

const removeAll = (dir: string) => rm(dir, { recursive: true, force: true });

/**
 * Run `fn` in a new folder of the system's temporary folder, named from `prefix`; the folder is
 * removed afterwards (by `remove`, for trees that need more than rm), and also when a signal
 * stops the process first: a build's checkout or work tree is never left behind by Ctrl-C.
 */
export async function inTempDir<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
  remove: (dir: string) => Promise<void> = removeAll,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const release = holdScratch(dir);
  try {
    return await fn(dir);
  } finally {
    await remove(dir);
    release();
  }
}
