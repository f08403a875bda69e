/**
 * A lock between processes, possibly on several hosts sharing one cache: a file created with
 * O_EXCL holding its owner's host and pid. The owner touches it every few seconds; a waiter
 * breaks it when the owner is a dead process on this host, or when it has not been touched
 * for a while (an owner on another host, or a pid that was reused). Callers must stay correct
 * if two processes ever both believe they hold it (publish by atomic rename); the lock only
 * saves the duplicated work.
 */
import { randomBytes } from "node:crypto";
import { link, open, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../util/errors.js";
import { pidAlive } from "../util/pid.js";

const HEARTBEAT_MS = 5_000;
/** A lock untouched this long is abandoned, whoever's pid is in it. */
const STALE_MS = 60_000;
/** Time enough for an owner to write itself into the lock it has just created. */
const UNWRITTEN_MS = 2_000;

interface Owner {
  host: string;
  pid: number;
  /** Tells this owner's lock from a later one of the same pid. */
  token: string;
}

export interface Lock {
  release(): Promise<void>;
}

export interface LockOptions {
  /** Give up after waiting this long (default 30 minutes: unpacking a big bundle takes time). */
  timeoutMs?: number;
  /** Checked between polls: true means what the lock guards is done, so stop waiting. */
  done?: () => Promise<boolean>;
}

async function tryCreate(path: string): Promise<Lock | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw err;
  }
  const owner: Owner = {
    host: hostname(),
    pid: process.pid,
    token: randomBytes(8).toString("hex"),
  };
  const text = JSON.stringify(owner);
  try {
    await handle.writeFile(text);
  } catch (err) {
    // An ownerless lock (a full disk) would hold every later waiter up.
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
  await handle.close();
  const beat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, HEARTBEAT_MS);
  beat.unref();
  return {
    async release() {
      clearInterval(beat);
      // Only remove the lock if it is still ours (a waiter may have broken it and another taken it).
      if ((await readFile(path, "utf8").catch(() => "")) === text)
        await unlink(path).catch(() => {});
    },
  };
}

/** True when the lock at `path` was left behind by an owner that will never release it. */
async function isStale(path: string): Promise<boolean> {
  let mtimeMs: number;
  let text: string;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
    text = await readFile(path, "utf8");
  } catch {
    // Released meanwhile: not stale, just try again.
    return false;
  }
  if (Date.now() - mtimeMs > STALE_MS) return true;
  let owner: Partial<Owner>;
  try {
    owner = JSON.parse(text) as Partial<Owner>;
  } catch {
    // Its owner may be between creating and writing it; past that, it never will write it.
    return Date.now() - mtimeMs > UNWRITTEN_MS;
  }
  return owner.host === hostname() && typeof owner.pid === "number" && !pidAlive(owner.pid);
}

/**
 * Remove a stale lock. It is renamed aside first and judged again there: if another waiter
 * broke it meanwhile and a new owner took it, what we moved is that live lock, so put it back.
 */
async function breakLock(path: string): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch {
    return;
  }
  if (!(await isStale(aside))) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
}

/**
 * Take the lock at `path`, waiting (polling with backoff) while a live owner holds it.
 * Resolves to undefined, without the lock, when `done` reports the work finished.
 */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<Lock | undefined> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let delay = 10;
  for (;;) {
    const lock = await tryCreate(path);
    if (lock) return lock;
    if (opts.done && (await opts.done())) return undefined;
    if (await isStale(path)) {
      await breakLock(path);
      continue;
    }
    if (Date.now() > deadline)
      throw new UserError(
        `Gave up waiting for ${path}, held by another process; remove it if no pyferry is running.`,
      );
    // Jitter keeps many waiters from polling in lockstep.
    await sleep(delay * (0.5 + Math.random()));
    delay = Math.min(delay * 1.5, 500);
  }
}
