/** Reading a configuration file that may or may not be there. */
import { readFileSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";

/** The file's text, or undefined when it does not exist; any other failure is the user's to fix. */
export function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new UserError(`Cannot read the configuration file ${path} (${whyUnreadable(err)}).`);
  }
}
