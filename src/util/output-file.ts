/**
 * Files the user names as outputs (`-o`, a script rewritten in place): published whole with a
 * rename, as every output is, but never in place of what the name stands for. A symlink is
 * written through (its target is replaced, the link stays), a device or FIFO (`-o /dev/stdout`)
 * is written to directly, a file that is replaced keeps its permissions, and a folder is
 * refused before any work is done.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, realpathSync, type Stats } from "node:fs";
import { chmod, lstat, readlink, realpath, rename, rm, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { UserError } from "./errors.js";
import { holdScratch, scratchFor, sweepScratch } from "./scratch.js";

/** Where an output named `path` goes. */
export interface OutputPlan {
  /** The file that is replaced (a symlink's final target), or written to when `direct`. */
  file: string;
  /** Not a regular file (a device, a FIFO): written to as it is, with no rename. */
  direct: boolean;
  /** The permissions of the regular file it replaces. */
  mode?: number;
}

/** stat or lstat of `path`, or null when nothing is there (or a file stands where a folder should). */
async function statOrNull(path: string, follow: boolean): Promise<Stats | null> {
  return (follow ? stat(path) : lstat(path)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return null;
    throw err;
  });
}

/** Where a symlink chain that ends nowhere would create its file (at most 40 links, as the kernel). */
async function danglingTarget(path: string): Promise<string> {
  let file = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    if (!(await statOrNull(file, false))?.isSymbolicLink()) return file;
    file = resolve(dirname(file), await readlink(file));
  }
  throw new UserError(`${path} is a loop of symbolic links.`);
}

/**
 * Check that `path` can be written and say how, before the work that makes its content: a
 * folder, a parent that is a file, or a parent that is missing is one sentence now rather than
 * after a long build. A missing parent is never made: it is more often a typo than a wish.
 */
export async function planOutput(path: string): Promise<OutputPlan> {
  const st = await statOrNull(path, true);
  if (st?.isDirectory()) throw new UserError(`${path} is a folder; name a file to write.`, 2);
  // Through the links: /dev/stdout ends in a magic link that names no file, or in a file some
  // other process writes too (a log opened for appending), which a rename would replace.
  if (st && (!st.isFile() || /^\/(proc\/|dev\/fd\/|dev\/std(in|out|err)$)/.test(resolve(path))))
    return { file: resolve(path), direct: true };
  const file = st ? await realpath(path) : await danglingTarget(path);
  // Up to the nearest thing that exists, so that a file in the way is named whatever its depth.
  const parent = dirname(file);
  for (let dir = parent; dirname(dir) !== dir; dir = dirname(dir)) {
    const d = await stat(dir).catch(() => null);
    if (d && !d.isDirectory())
      throw new UserError(`${path} cannot be written: ${dir} is a file, not a folder.`, 2);
    if (d) break;
  }
  if (!(await statOrNull(parent, true)))
    throw new UserError(`${path} cannot be written: the folder ${parent} does not exist.`, 2);
  return st ? { file, direct: false, mode: st.mode & 0o7777 } : { file, direct: false };
}

/** The one of `inputs` that writing `output` would replace (the same file, links followed). */
export function inputAt(output: string, inputs: Iterable<string>): string | undefined {
  const key = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const target = key(output);
  for (const i of inputs) if (key(i) === target) return i;
  return undefined;
}

/** "" when `input` is `output` as written, else "INPUT, " (reached another way: a link). */
export function sameName(output: string, input: string): string {
  return resolve(output) === resolve(input) ? "" : `${input}, `;
}

/**
 * Write the output `path` as planned: `fill` writes the content to the stream it is given and
 * resolves once it has ended it. Readers of a replaced file see the old or the new content,
 * never a part; a failure leaves the old one.
 */
export async function writeOutput(
  path: string,
  fill: (out: NodeJS.WritableStream) => Promise<void>,
  plan?: OutputPlan,
): Promise<void> {
  const p = plan ?? (await planOutput(path));
  if (p.direct) {
    // Appending: a file behind /dev/stdout was opened by the shell, and truncating it again
    // would lose what is already there.
    const out = createWriteStream(p.file, { flags: "a" });
    await Promise.all([fill(out), finished(out)]).catch((err: NodeJS.ErrnoException) => {
      // A write's error names no file: this one is the output's.
      if (err.code && !err.path) err.path = path;
      throw err;
    });
    return;
  }
  await sweepScratch(p.file);
  const tmp = scratchFor(p.file, randomBytes(4).toString("hex"));
  const release = holdScratch(tmp);
  try {
    const out = createWriteStream(tmp, { flags: "wx", mode: p.mode ?? 0o644 });
    await Promise.all([fill(out), finished(out)]);
    // The umask may have taken bits the replaced file had.
    if (p.mode !== undefined) await chmod(tmp, p.mode);
    await rename(tmp, p.file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw namingOutput(err, tmp, path);
  } finally {
    release();
  }
}

/**
 * An error on the file written beside the output, told of the output: the user never named
 * the other file (on /proc, say, no new file can be made: "does not exist" of the hidden name).
 */
function namingOutput(err: unknown, tmp: string, path: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e?.path !== tmp || !e.code) return err;
  const described = /^E[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.code;
  return new UserError(`${path} cannot be written: ${described} (${e.code}).`);
}

/** writeOutput of one buffer or string. */
export function writeOutputFile(
  path: string,
  data: string | Uint8Array,
  plan?: OutputPlan,
): Promise<void> {
  return writeOutput(
    path,
    (out) =>
      new Promise((res, rej) => {
        out.once("error", rej);
        out.end(data, () => res());
      }),
    plan,
  );
}
