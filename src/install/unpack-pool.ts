/**
 * Unpacking many wheels into the cache at once, on worker threads: inflating, hashing and
 * writing thousands of small files is CPU work, so each core takes whole wheels, largest
 * first, and does its I/O with synchronous calls (see wheel-archive.ts).
 */
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { Worker } from "node:worker_threads";
import { UserError } from "../util/errors.js";
import {
  cachePaths,
  findUnpacked,
  prepareStaging,
  sameWheel,
  type UnpackedWheel,
  unpackWheel,
} from "./cache.js";

export interface UnpackJob {
  id: number;
  path: string;
  sha256: string;
  /** The file was hashed by this process just before (fetchDist). */
  verified?: boolean;
}

export type UnpackReply =
  | { id: number; wheel: UnpackedWheel }
  | {
      id: number;
      error: {
        message: string;
        user: boolean;
        exitCode: number;
        stack?: string;
        /** A system error's errno name and path, by which it is told to the user (ENOSPC). */
        code?: string;
        path?: string;
      };
    };

function rebuild(e: Extract<UnpackReply, { error: unknown }>["error"]): Error {
  if (e.user) return new UserError(e.message, e.exitCode);
  const err: NodeJS.ErrnoException = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  if (e.code !== undefined) err.code = e.code;
  if (e.path !== undefined) err.path = e.path;
  return err;
}

/** Wheels adding up to this many bytes are unpacked on the calling thread. */
const IN_THREAD_BYTES = 4 << 20;

/**
 * Threads for `wheels` wheels of `bytes` in all: one per core, as many as there are wheels, and
 * none (0) for one wheel or a few small ones, where starting a thread (each loads and compiles
 * the unpacking code again) costs more than the threads save.
 */
function threadsFor(wheels: number, bytes: number): number {
  const threads = Math.min(availableParallelism(), wheels);
  return threads <= 1 || bytes <= IN_THREAD_BYTES ? 0 : threads;
}

const WORKER_URL = new URL("./unpack-worker.js", import.meta.url);

/** Threads started ahead of need by startUnpackers, waiting for unpackMany to take them. */
const idle: Worker[] = [];

/**
 * Start the threads unpackMany would use for `wheels` wheels of `bytes` now, for a caller that
 * knows unpacking will follow but first has other work (asking the interpreter about itself):
 * each thread loads and compiles its code meanwhile. Idle threads do not keep the process
 * alive, one that fails is left to unpackMany, which starts another, and those it leaves
 * unused end with it.
 */
export function startUnpackers(wheels: number, bytes: number): void {
  for (let i = idle.length; i < threadsFor(wheels, bytes); i++) {
    const worker = new Worker(WORKER_URL);
    worker.unref();
    const drop = () => {
      const at = idle.indexOf(worker);
      if (at >= 0) idle.splice(at, 1);
    };
    worker.once("error", drop);
    worker.once("exit", drop);
    idle.push(worker);
  }
}

/** Threads started ahead that found no work (their wheels were unpacked meanwhile) end. */
function endIdle(): void {
  for (const worker of idle.splice(0)) void worker.terminate();
}

/** A started thread if one waits, else a new one; referenced until it is terminated. */
function takeWorker(): Worker {
  const worker = idle.shift();
  if (!worker) return new Worker(WORKER_URL);
  worker.removeAllListeners("error");
  worker.removeAllListeners("exit");
  worker.ref();
  return worker;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    // The worker reports the unreadable file properly.
    return 0;
  }
}

/**
 * Unpack every wheel (path and the sha256 it must have) into the cache, as unpackWheel does;
 * results keep the input order, and `ready` hears of each wheel (by its index) as soon as its
 * tree is there, so that its install can start. Every wheel is tried; the first failure is
 * thrown at the end, so no worker is still writing into the cache when the caller goes on.
 */
export async function unpackMany(
  wheels: readonly { path: string; sha256: string; verified?: boolean }[],
  ready: (index: number, wheel: UnpackedWheel) => void = () => {},
): Promise<UnpackedWheel[]> {
  try {
    return await unpackAll(wheels, ready);
  } finally {
    endIdle();
  }
}

async function unpackAll(
  wheels: readonly { path: string; sha256: string; verified?: boolean }[],
  ready: (index: number, wheel: UnpackedWheel) => void,
): Promise<UnpackedWheel[]> {
  const known = await Promise.all(wheels.map((w) => findUnpacked(w.sha256)));
  known.forEach((w, i) => {
    if (w) sameWheel(w, basename((wheels[i] as { path: string }).path));
  });
  known.forEach((w, i) => {
    if (w) ready(i, w);
  });
  if (known.some((w) => !w)) await prepareStaging(cachePaths().unpacked);
  const sized = wheels
    .flatMap((w, id) => (known[id] ? [] : [{ job: { id, ...w }, size: sizeOf(w.path) }]))
    .sort((a, b) => b.size - a.size);
  const workers = threadsFor(
    sized.length,
    sized.reduce((n, x) => n + x.size, 0),
  );
  if (workers === 0) {
    for (const { job } of sized) {
      const wheel = await unpackWheel(job.path, job.sha256, job.verified);
      known[job.id] = wheel;
      ready(job.id, wheel);
    }
    return known as UnpackedWheel[];
  }
  const queue = sized.map((x) => x.job);
  const failures: Error[] = [];
  const runWorker = () =>
    new Promise<void>((resolve, reject) => {
      const worker = takeWorker();
      let finished = false;
      const next = () => {
        const job = queue.shift();
        if (job && failures.length === 0) {
          worker.postMessage(job);
          return;
        }
        finished = true;
        void worker.terminate().then(() => resolve());
      };
      worker.on("message", (reply: UnpackReply) => {
        if ("error" in reply) failures.push(rebuild(reply.error));
        else {
          known[reply.id] = reply.wheel;
          ready(reply.id, reply.wheel);
        }
        next();
      });
      worker.on("error", (err) => {
        finished = true;
        reject(err);
      });
      worker.on("exit", (code) => {
        if (!finished) reject(new Error(`A wheel-unpacking thread stopped (exit code ${code}).`));
      });
      next();
    });
  const ended = await Promise.allSettled(Array.from({ length: workers }, runWorker));
  for (const e of ended) if (e.status === "rejected") failures.unshift(e.reason as Error);
  if (failures.length > 0) throw failures[0];
  return known as UnpackedWheel[];
}
