/**
 * Whether a file of an unpacked wheel in the cache is still as it was published. Environments
 * may share the cache's files through hardlinks, and root can write to a read-only file: an
 * edit in one environment then changes the cache. Each file is looked at as it is placed (one
 * lstat; not in a tree the same run has just unpacked): present, the size unpacking wrote, and
 * not modified since the tree was published. A changed tree is not used again; the wheel is
 * unpacked anew, so the edit does not spread into new environments.
 */
import { lstatSync } from "node:fs";
import { UserError } from "../util/errors.js";

/** Why the cache's file at `path` is no longer as unpacked, or undefined when it is. */
export function cachedFileChange(
  path: string,
  size: number,
  published: number | undefined,
): string | undefined {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return "is missing";
  if (!st.isFile()) return "is no longer a file";
  if (st.size !== size) return "changed size";
  if (published !== undefined && st.mtimeMs > published) return "was written to";
  return undefined;
}

/** An unpacked wheel of the cache found changed: the build that met it starts again without it. */
export class CachedTreeChanged extends UserError {
  constructor(
    /** The tree's folder in the cache. */
    readonly dir: string,
    /** The wheel's name and version, or the folder when unknown. */
    readonly label: string,
    /** What changed: "<file> <how>". */
    readonly why: string,
  ) {
    super(`The cache's unpacked copy of ${label} changed after it was unpacked (${why}).`);
  }

  /** An edit (rather than damage, such as a file removed). */
  get edited(): boolean {
    return !/ is missing$|^it is gone$/.test(this.why);
  }
}
