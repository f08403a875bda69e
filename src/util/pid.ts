import { hostname } from "node:os";

/** True when `pid` names a live process on this machine. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** This host's name as it appears in file names. */
export const hostTag = (): string =>
  hostname()
    .replace(/[^A-Za-z0-9.-]/g, "_")
    .slice(0, 40);
