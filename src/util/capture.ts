import { spawn } from "node:child_process";

export interface Captured {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a program without a shell, collecting its output, killed after `timeoutMs` when given:
 * with what it started too, as its own process group, when `group` is set (a wrapper script
 * that does not exec, or a command ssh's configuration runs, would outlive the program alone).
 * Not spawn's own `timeout` option: its timer outlives a spawn that fails (EACCES) by a minute.
 */
export function capture(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; group?: boolean } = {},
): Promise<Captured> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, {
      stdio: ["ignore", "pipe", "pipe"],
      windowsHide: true,
      ...(opts.group ? { detached: true } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const kill = () => {
      if (opts.group && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
          return;
        } catch {
          // The group is gone already; the child alone, below.
        }
      }
      child.kill("SIGKILL");
    };
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(kill, opts.timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}
