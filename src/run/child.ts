/**
 * Running a program as if it were run directly: inherited stdio, the exit code passed
 * through, and signals sent to us forwarded to it. When it dies of a signal we die of the
 * same signal, so shells and schedulers see what really happened.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { UserError } from "../util/errors.js";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export interface ChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ChildExit {
  code: number;
  signal?: NodeJS.Signals;
}

/** Run `command args` (no shell); resolves to its exit code, or the signal that killed it. */
export function runChild(
  command: string,
  args: string[],
  opts: ChildOptions = {},
): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: "inherit",
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      env: opts.env ?? process.env,
    });
    const forward = (sig: NodeJS.Signals) => () => {
      child.kill(sig);
    };
    const handlers = FORWARDED.map((sig) => [sig, forward(sig)] as const);
    for (const [sig, h] of handlers) process.on(sig, h);
    const cleanup = () => {
      for (const [sig, h] of handlers) process.off(sig, h);
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      cleanup();
      if (err.code === "ENOENT") reject(new UserError(`${command}: command not found.`, 127));
      else if (err.code === "EACCES") reject(new UserError(`${command}: permission denied.`, 126));
      else reject(err);
    });
    child.on("exit", (code, signal) => {
      cleanup();
      resolve(
        signal ? { code: 128 + (constants.signals[signal] ?? 0), signal } : { code: code ?? 1 },
      );
    });
  });
}

/**
 * Exit the way the child did: after a death by signal, re-raise it on ourselves with its
 * default action, so the parent sees the signal rather than a plain exit code.
 */
export function exitLike(exit: ChildExit): void {
  const name = exit.signal;
  if (name && name !== "SIGKILL" && name !== "SIGSTOP") {
    process.removeAllListeners(name);
    process.kill(process.pid, name);
    return;
  }
  process.exitCode = exit.code;
}
