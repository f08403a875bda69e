/**
 * Running a program as if it were run directly: inherited stdio, the exit code passed
 * through, and signals sent to us forwarded to it. When it dies of a signal we die of the
 * same signal, so shells and schedulers see what really happened.
 */
import { type StdioOptions, spawn } from "node:child_process";
import { constants } from "node:os";
import { UserError } from "../util/errors.js";
import { endBy } from "../util/scratch.js";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export interface ChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ChildExit {
  code: number;
  signal?: NodeJS.Signals;
}

export type ChildOutcome =
  | { code: number }
  | { signal: NodeJS.Signals }
  | { error: NodeJS.ErrnoException };

/**
 * Spawn `command args` (no shell), forwarding the given signals from us to it while it runs;
 * resolves to how it ended, or to the error that kept it from starting.
 */
export function spawnForwarding(
  command: string,
  args: string[],
  opts: ChildOptions & { stdio?: StdioOptions; forward?: readonly NodeJS.Signals[] } = {},
): Promise<ChildOutcome> {
  const signals = opts.forward ?? FORWARDED;
  return new Promise((settle) => {
    const child = spawn(command, args, {
      stdio: opts.stdio ?? "inherit",
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      env: opts.env ?? process.env,
    });
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of signals) process.on(sig, forward);
    const done = (o: ChildOutcome): void => {
      for (const sig of signals) process.off(sig, forward);
      settle(o);
    };
    child.once("error", (error: NodeJS.ErrnoException) => done({ error }));
    child.once("exit", (code, signal) => done(signal ? { signal } : { code: code ?? 1 }));
  });
}

/** Run `command args` (no shell); resolves to its exit code, or the signal that killed it. */
export async function runChild(
  command: string,
  args: string[],
  opts: ChildOptions = {},
): Promise<ChildExit> {
  const o = await spawnForwarding(command, args, opts);
  if ("error" in o) {
    if (o.error.code === "ENOENT") throw new UserError(`${command}: command not found.`, 127);
    if (o.error.code === "EACCES") throw new UserError(`${command}: permission denied.`, 126);
    throw o.error;
  }
  if ("signal" in o) return { code: 128 + (constants.signals[o.signal] ?? 0), signal: o.signal };
  return o;
}

/**
 * Signals pyferry does not end itself by when a child died of one: those whose default action
 * writes a core file (it would be pyferry's own core, not the program's), and SIGUSR1, which
 * starts Node's inspector. The exit status, 128 + the signal's number, still tells which.
 */
const NOT_RERAISED = new Set([
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGILL",
  "SIGQUIT",
  "SIGSEGV",
  "SIGSYS",
  "SIGTRAP",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGUSR1",
]);

/**
 * After a child died of `signal`: re-raise it on ourselves with its default action, so the
 * parent sees the signal rather than a plain exit status, unless NOT_RERAISED; the exit status
 * (128 + its number) either way.
 */
export function endBySignal(signal: NodeJS.Signals): number {
  if (!NOT_RERAISED.has(signal)) endBy(signal);
  return 128 + (constants.signals[signal] ?? 0);
}

/** Exit the way the child did (see endBySignal). */
export function exitLike(exit: ChildExit): void {
  process.exitCode = exit.signal ? endBySignal(exit.signal) : exit.code;
}
