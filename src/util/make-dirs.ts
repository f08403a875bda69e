/**
 * `mkdir -p`, in place of Node's `{ recursive: true }`: where a parent exists but its child
 * cannot be made in it and the system says ENOENT (a folder under /proc, a dangling symlink),
 * Node's walk steps back to the parent, finds it there, and tries the child again, for ever, at
 * full CPU (nodejs/node#27198's kind; bun fixed the same walk). Here a child that still cannot
 * be made once its parent is there is the error.
 */
import { mkdirSync, statSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";

/** The error's code, when it has one. */
const codeOf = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;

/**
 * Make the folder `path` and any missing parents. On EEXIST, stat tells a folder from a file
 * (and its ENOENT names a dangling symlink); ENOENT once the parent is there is final.
 */
export async function makeDirs(path: string, mode?: number): Promise<void> {
  const attempt = async (final: boolean): Promise<boolean> => {
    try {
      await mkdir(path, mode === undefined ? undefined : { mode });
      return true;
    } catch (err) {
      if (codeOf(err) === "EEXIST" && (await stat(path)).isDirectory()) return true;
      if (!final && codeOf(err) === "ENOENT" && dirname(path) !== path) return false;
      throw err;
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
      if (codeOf(err) === "EEXIST" && statSync(path).isDirectory()) return true;
      if (!final && codeOf(err) === "ENOENT" && dirname(path) !== path) return false;
      throw err;
    }
  };
  if (attempt(false)) return;
  makeDirsSync(dirname(path), mode);
  attempt(true);
}
