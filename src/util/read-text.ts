/** Reading a file the user named, with one sentence for whatever keeps it from being read. */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { UserError } from "./errors.js";

/** Why `err` kept a file from being read, in a few words. */
export function whyUnreadable(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case "ENOENT":
      return "it does not exist";
    case "EISDIR":
      return "it is a folder";
    case "ENOTDIR":
      return "part of its path is a file, not a folder";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ELOOP":
      return "a loop of symbolic links";
    default:
      return e?.code ?? String((e as Error | undefined)?.message ?? err).replace(/\.$/, "");
  }
}

/** The text of `path` (`what` names it in the error: "the lock file"). */
export async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new UserError(`Cannot read ${what} ${path} (${whyUnreadable(err)}).`);
  }
}

/** readText, for callers that cannot wait. */
export function readTextSync(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UserError(`Cannot read ${what} ${path} (${whyUnreadable(err)}).`);
  }
}
