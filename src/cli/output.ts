/** Terminal output: colour only on a TTY and never with NO_COLOR, errors as one sentence. */
import pc from "picocolors";
import { UserError } from "../util/errors.js";
import { besideStatus } from "../util/progress.js";

export type Colors = ReturnType<typeof pc.createColors>;

export function colorsFor(stream: NodeJS.WriteStream): Colors {
  const env = process.env;
  const enabled =
    stream.isTTY === true &&
    !("NO_COLOR" in env && env.NO_COLOR !== "") &&
    env.TERM !== "dumb" &&
    !process.argv.includes("--no-color");
  return pc.createColors(enabled);
}

export const out = colorsFor(process.stdout);
export const err = colorsFor(process.stderr);

export function warn(message: string): void {
  besideStatus(() => process.stderr.write(`${err.yellow("warning:")} ${message}\n`));
}

/**
 * A file system error that reached the top (a path that is not what the command needs) as a
 * sentence naming the path; undefined for anything else.
 */
export function fileSystemSentence(e: unknown): string | undefined {
  const { code, syscall, path, dest } = (e ?? {}) as NodeJS.ErrnoException & { dest?: string };
  if (typeof path !== "string") return undefined;
  switch (code) {
    case "ENOENT":
      return `${path} does not exist.`;
    case "ENOTDIR":
      return `${path} cannot be reached: part of it is a file, not a folder.`;
    case "EISDIR":
      return `${dest ?? path} is a folder, not a file.`;
    case "EEXIST":
      return syscall === "mkdir"
        ? `${path} exists as a file, where a folder is needed.`
        : `${dest ?? path} already exists.`;
    case "EROFS":
      return `${path} is on a read-only file system.`;
    case "ENAMETOOLONG":
      return `The name ${path} is too long for the file system.`;
    case "ELOOP":
      return `${path} is a loop of symbolic links.`;
    default: {
      // Any other system error on a named file: libuv's description of it ("i/o error").
      const described = /^E[A-Z0-9]+: ([^,]+)/.exec((e as Error).message ?? "")?.[1];
      return code && described ? `${path}: ${described} (${code}).` : undefined;
    }
  }
}

/**
 * Print an error and return the exit code. A UserError is a sentence for a person; anything
 * else is a bug or an unexpected system failure, shown with its stack only under --debug.
 */
export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof UserError) {
    process.stderr.write(`${err.red("error:")} ${e.message}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  }
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code === "ENOSPC") {
    process.stderr.write(`${err.red("error:")} the disk is full (${message}).\n`);
  } else if (code === "EACCES" || code === "EPERM") {
    process.stderr.write(`${err.red("error:")} permission denied (${message}).\n`);
  } else if (fileSystemSentence(e)) {
    process.stderr.write(`${err.red("error:")} ${fileSystemSentence(e)}\n`);
  } else {
    process.stderr.write(`${err.red("error:")} ${message.replace(/\.?$/, ".")}\n`);
    if (!debug) process.stderr.write("Run again with --debug for details.\n");
  }
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return 1;
}

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

let pipeWatched = false;

/**
 * When whoever reads our output goes away (`pyferry --help | head -1`), stop quietly with the
 * status of a program killed by SIGPIPE, as Unix tools do, instead of an unhandled EPIPE.
 */
export function stopQuietlyOnClosedPipe(): void {
  if (pipeWatched) return;
  pipeWatched = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
      process.exit(141);
    });
  }
}
