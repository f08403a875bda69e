/** Reading a file the user named, with one sentence for whatever keeps it from being read. */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { UserError } from "./errors.js";

/**
 * Why `err` kept a file or folder from being read, as a clause that reads in parentheses, after
 * "because", or after a colon; any errno gets one ("the system reported an error (EIO, i/o
 * error)" for the rare ones).
 */
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
      return "its path is a loop of symbolic links";
    case "ENAMETOOLONG":
      return "its path is too long for the file system";
    default: {
      // libuv's description where there is one ("EIO: i/o error, scandir ..." gives "i/o error").
      const described = /^E[A-Z0-9]+: ([^,]+)/.exec(e?.message ?? "")?.[1];
      if (!e?.code) return String((e as Error | undefined)?.message ?? err).replace(/\.$/, "");
      return `the system reported an error (${e.code}${described ? `, ${described}` : ""})`;
    }
  }
}

/** The text of `path` (`what` names it in the error: "the lock file"). */
export async function readText(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new UserError(`Cannot read ${what} ${path} (${whyUnreadable(err)}).`);
  }
  return textOnly(text, path, what);
}

/** readText, for callers that cannot wait. */
export function readTextSync(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UserError(`Cannot read ${what} ${path} (${whyUnreadable(err)}).`);
  }
  return textOnly(text, path, what);
}

/** A NUL byte never occurs in text: a binary file given by mistake is said so, not parsed. */
function textOnly(text: string, path: string, what: string): string {
  if (text.includes("\0")) throw new UserError(`${path} cannot be ${what}: it is not a text file.`);
  return text;
}
