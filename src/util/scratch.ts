/**
 * Temporary paths made beside a destination (`.NAME.PID.RAND.tmp`, renamed into place when
 * complete): removed when the process exits or is stopped by SIGINT, SIGTERM or SIGHUP before
 * they are, and, when it was killed outright, by the next process that writes there. Other
 * last words (atEnd) are said on the same occasions, and when we end by a signal ourselves.
 */
import { existsSync, rmSync } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pidAlive } from "./pid.js";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const held = new Set<string>();
/** Run once as the process ends, whichever way; never removed. */
const lastWords = new Set<() => void>();
let listening = false;

/** Block this thread for `ms`: a signal handler that must finish before the process ends. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Remove `p` now, from a handler that must finish before the process ends. Copying threads and
 * file system requests already queued may still add to the tree while it goes (ENOTEMPTY).
 * Nothing new is started while this thread, which starts them, is here, so they run out: the
 * whole removal is tried again until it holds.
 */
export function removeNow(p: string): void {
  for (let tries = 1; ; tries++) {
    try {
      rmSync(p, { recursive: true, force: true });
      pause(20);
      if (!existsSync(p)) break;
    } catch {
      // Tried again below.
    }
    // Past that, left for the next writer there, which removes what gone processes left.
    if (tries === 20) break;
    pause(50);
  }
}

function removeHeld(): void {
  for (const p of held) removeNow(p);
  held.clear();
}

function onEnd(): void {
  removeHeld();
  for (const say of lastWords) say();
  lastWords.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removeHeld();
  // Alone, stop as the signal would have; others listening decide for themselves.
  if (process.listenerCount(signal) === 1) endBy(signal);
}

/**
 * End this process by `signal`'s default action (no `exit` event then), after what an exit
 * would have cleaned up.
 */
export function endBy(signal: NodeJS.Signals): void {
  unlisten();
  process.removeAllListeners(signal);
  onEnd();
  process.kill(process.pid, signal);
}

function listen(): void {
  if (listening) return;
  // First in line: a handler registered with process.once is gone by the time later listeners
  // run, and onSignal, counting the listeners then, would think itself alone and end the
  // process under that handler (a deploy's Ctrl-C report).
  for (const s of SIGNALS) process.prependListener(s, onSignal);
  // Another handler may end the process first (process.exit).
  process.on("exit", onEnd);
  listening = true;
}

function unlisten(): void {
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off("exit", onEnd);
  listening = false;
}

/** Remove `path` if a signal stops the process before the returned release is called. */
export function holdScratch(path: string): () => void {
  listen();
  held.add(path);
  return () => {
    held.delete(path);
    if (held.size === 0 && lastWords.size === 0) unlisten();
  };
}

/**
 * Run `fn` (synchronous) when the process ends: on exit, stopped by SIGINT, SIGTERM or SIGHUP,
 * or by endBy. Not in worker threads, which signals never reach and which end without an exit
 * event when terminated.
 */
export function atEnd(fn: () => void): void {
  lastWords.add(fn);
  listen();
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The temporary path for `dest`, in its folder. */
export function scratchFor(dest: string, rand: string): string {
  return join(dirname(dest), `.${basename(dest)}.${process.pid}.${rand}.tmp`);
}

/** A scratch name's pattern; what a writer stages beside its scratch (`...tmp.partial-X`) too. */
const scratchName = (dest: string) =>
  new RegExp(`^\\.${dest}\\.(\\d+)\\.[0-9a-f]+\\.tmp(?:\\..+)?$`);

/**
 * Scratch paths in `dir` whose writers are gone (any destination when `dest` is not given).
 * With `minAgeMs`, only those untouched that long: on a folder other machines share, a pid
 * that is not alive here may be alive there.
 */
export async function deadScratch(dir: string, dest?: string, minAgeMs = 0): Promise<string[]> {
  const pattern = scratchName(dest === undefined ? ".+" : escapeRegExp(dest));
  const names = await readdir(dir).catch(() => [] as string[]);
  const old = async (p: string) =>
    minAgeMs === 0 || Date.now() - ((await stat(p).catch(() => null))?.mtimeMs ?? 0) >= minAgeMs;
  const dead = names
    .filter((name) => {
      const pid = Number(pattern.exec(name)?.[1]);
      return pid && pid !== process.pid && !pidAlive(pid);
    })
    .map((name) => join(dir, name));
  const keep = await Promise.all(dead.map(old));
  return dead.filter((_, i) => keep[i]);
}

/** Remove what processes that are gone left while writing `dest`. */
export async function sweepScratch(dest: string): Promise<void> {
  const dead = await deadScratch(dirname(dest), basename(dest));
  await Promise.all(
    dead.map((p) => rm(p, { recursive: true, force: true }).catch(() => undefined)),
  );
}
