/**
 * A connection opened before the command line is even parsed (`run --on`), so that the SSH
 * handshake overlaps loading the rest of pyferry; the command takes it over when it gets there.
 * One nobody took over is closed when the process exits.
 */
import { SshConnection, type SshTarget } from "./ssh.js";

const waiting = new Map<string, SshConnection>();

function keyOf(target: SshTarget): string {
  return JSON.stringify([target, process.env.PYFERRY_SSH_COMMAND ?? ""]);
}

/** Start connecting to `target` now. */
export function connectEarly(target: SshTarget): void {
  const conn = new SshConnection(target);
  conn.open().catch(() => undefined);
  waiting.set(keyOf(target), conn);
  if (waiting.size === 1)
    process.once("exit", () => {
      for (const c of waiting.values()) c.closeSync();
    });
}

/** The connection started early for `target`, if any; the caller closes it. */
export function takeEarly(target: SshTarget): SshConnection | undefined {
  const k = keyOf(target);
  const conn = waiting.get(k);
  waiting.delete(k);
  return conn;
}
