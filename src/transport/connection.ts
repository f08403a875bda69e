/**
 * Where the store's sh scripts run: over SSH (ssh.ts), or on this machine (a local target,
 * and the store's own tests). Both run `sh -c SCRIPT pyferry ARGS...` with stdio as asked.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { Readable } from "node:stream";

/** ssh's own exit status when it, not the remote command, failed. */
export const SSH_FAILED = 255;

export interface Finished {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export abstract class ShellConnection {
  /** How messages name the machine. */
  abstract get label(): string;

  /** Whether what is sent crosses a network, where compressing it pays for itself. */
  get overNetwork(): boolean {
    return false;
  }

  /** Start `script` with `args` as $1...; the caller owns its stdio. */
  abstract spawn(
    script: string,
    args: readonly string[],
    stdio: StdioOptions,
    opts?: { detached?: boolean },
  ): Promise<ChildProcess>;

  /** Throw when `stderr` of a session that ended with 255 shows the connection failed. */
  async failIfConnectionLost(_stderr: string): Promise<void> {}

  async close(): Promise<void> {}

  /**
   * Run `script` and collect its output; `input` is sent to its stdin. `onSent` hears of a
   * Buffer input as its stdin takes it.
   */
  async exec(
    script: string,
    args: readonly string[] = [],
    input?: Buffer | string | Readable,
    onSent?: (n: number) => void,
  ): Promise<Finished> {
    const child = await this.spawn(script, args, ["pipe", "pipe", "pipe"]);
    const out: Buffer[] = [];
    let err = "";
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => {
      err += s;
    });
    const stdin = child.stdin as NodeJS.WritableStream;
    // A remote that stops reading (an error there) must not crash us with EPIPE.
    child.stdin?.on("error", () => undefined);
    if (input === undefined) stdin.end();
    else if (typeof input === "string" || (Buffer.isBuffer(input) && !onSent)) stdin.end(input);
    else {
      if (Buffer.isBuffer(input)) input = Readable.from(slices(input, onSent));
      input.on("error", (e) => child.stdin?.destroy(e));
      input.pipe(stdin);
    }
    const code = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    // What the remote did not read is not made any further (files held open).
    if (input instanceof Readable && !input.readableEnded) input.destroy();
    if (code === SSH_FAILED) await this.failIfConnectionLost(err);
    return { code, stdout: Buffer.concat(out), stderr: err };
  }
}

/** `data` in views of at most 256 KiB, each counted as it is taken. */
function* slices(data: Buffer, onSent?: (n: number) => void): Generator<Buffer> {
  for (let at = 0; at < data.length; at += 256 * 1024) {
    const part = data.subarray(at, at + 256 * 1024);
    yield part;
    onSent?.(part.length);
  }
}

/** This machine, through its own sh: a store in a local folder behaves as a remote one. */
export class LocalConnection extends ShellConnection {
  /** `env`: the environment sh runs in, when not this process's own. */
  constructor(private readonly env?: NodeJS.ProcessEnv) {
    super();
  }

  get label(): string {
    return "this machine";
  }

  async spawn(
    script: string,
    args: readonly string[],
    stdio: StdioOptions,
    opts: { detached?: boolean } = {},
  ): Promise<ChildProcess> {
    return spawn("sh", ["-c", script, "pyferry", ...args], {
      stdio,
      detached: opts.detached ?? false,
      ...(this.env ? { env: this.env } : {}),
    });
  }
}
