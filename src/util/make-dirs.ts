/**
 * `mkdir -p`, in place of Node's `{ recursive: true }`: where a parent exists but its child
 * cannot be made in it and the system says ENOENT (a folder under /proc, a dangling symlink),
 * Node's walk steps back to the parent, finds it there, and tries the child again, for ever, at
 * full CPU (nodejs/node#27198's kind; bun fixed the same walk). Here a child that still cannot
 * be made once its parent is there is the error.
 */
import { mkdirSync, type Stats, statSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Whether an error of mkdir(path) means the folder is there after all (true), or that a parent
 * is missing and may be made first (false, only when `final` is false); else it is thrown. On
 * EEXIST, stat tells a folder from a file, and its ENOENT names a dangling symlink.
 */
function settled(err: unknown, path: string, isDir: () => boolean, final: boolean): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "EEXIST" && isDir()) return true;
  if (!final && code === "ENOENT" && dirname(path) !== path) return false;
  throw err;
}

/** Make the folder `path` and any missing parents. */
export async function makeDirs(path: string, mode?: number): Promise<void> {
  const attempt = async (final: boolean): Promise<boolean> => {
    try {
      await mkdir(path, mode === undefined ? undefined : { mode });
      return true;
    } catch (err) {
      const isDir = (await stat(path).catch((e: unknown) => e)) as Stats | Error;
      return settled(err, path, () => rethrown(isDir).isDirectory(), final);
    }
  };
  if (await attempt(false)) return;
  await makeDirs(dirname(path), mode);
  await attempt(true);
}

/** makeDirs, blocking. */
export function makeDirsSync(path: string, mode?: number): void {
  const attempt = (final: boolean): boolean => {
    try {
      mkdirSync(path, mode === undefined ? undefined : { mode });
      return true;
    } catch (err) {
      return settled(err, path, () => statSync(path).isDirectory(), final);
    }
  };
  if (attempt(false)) return;
  makeDirsSync(dirname(path), mode);
  attempt(true);
}

function rethrown(v: Stats | Error): Stats {
  if (v instanceof Error) throw v;
  return v;
}
