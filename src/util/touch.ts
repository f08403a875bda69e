import { utimes } from "node:fs/promises";

/**
 * Mark a cached entry as used now (its marker's mtime is its last use, which `cache prune`
 * reads); a failure, such as another user's cache, only loses the date.
 */
export async function touch(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
}
