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

/** The one sentence an error is reported as, and whether it is a person's to fix. */
export function errorSentence(e: unknown): { sentence: string; expected: boolean } {
  if (e instanceof UserError) return { sentence: e.message, expected: true };
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const message = e instanceof Error ? e.message : String(e);
  // process.cwd() (also inside path.resolve) in a folder removed since the shell entered it.
  if (code === "ENOENT" && (e as NodeJS.ErrnoException).syscall === "uv_cwd")
    return { sentence: "The current folder no longer exists; cd to another one.", expected: true };
  if (code === "ENOSPC") return { sentence: `the disk is full (${message}).`, expected: true };
  if (code === "EACCES" || code === "EPERM")
    return { sentence: `permission denied (${message}).`, expected: true };
  const fs = fileSystemSentence(e);
  if (fs) return { sentence: fs, expected: true };
  return { sentence: message.replace(/\.?$/, "."), expected: false };
}

/**
 * Print an error and return the exit code. A UserError is a sentence for a person; anything
 * else is a bug or an unexpected system failure, shown with its stack only under --debug.
 */
export function reportError(e: unknown, debug: boolean): number {
  const { sentence, expected } = errorSentence(e);
  process.stderr.write(`${err.red("error:")} ${sentence}\n`);
  if (!expected && !debug) process.stderr.write("Run again with --debug for details.\n");
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return e instanceof UserError ? e.exitCode : 1;
}

let jsonWritten = false;

export function writeJson(value: unknown): void {
  jsonWritten = true;
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Whether this process has printed JSON on stdout yet (an error then adds none). */
export function wroteJson(): boolean {
  return jsonWritten;
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
