/**
 * A worker thread of copy-pool.ts: copies the files of one message with synchronous calls and
 * answers with the indexes of those that replaced a file already there, or with the error.
 * Nothing else is imported: a thread starts in milliseconds.
 */
import { chmodSync, constants, copyFileSync, unlinkSync } from "node:fs";
import { parentPort } from "node:worker_threads";

/** Each file: its source, its destination and the mode it gets. */
export interface CopyJob {
  id: number;
  files: [string, string, number][];
}

export type CopyReply =
  | { id: number; replaced: number[] }
  | { id: number; error: { message: string; code?: string; stack?: string } };

const port = parentPort;
if (!port) throw new Error("copy-worker.js runs only as a worker thread.");
port.on("message", (job: CopyJob) => {
  const replaced: number[] = [];
  let reply: CopyReply;
  try {
    job.files.forEach(([src, dest, mode], i) => {
      try {
        copyFileSync(src, dest, constants.COPYFILE_EXCL);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        // Never write into a file already there: it may be a hardlink into the cache.
        unlinkSync(dest);
        copyFileSync(src, dest, constants.COPYFILE_EXCL);
        replaced.push(i);
      }
      chmodSync(dest, mode);
    });
    reply = { id: job.id, replaced };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    reply = {
      id: job.id,
      error: {
        message: e.message,
        ...(e.code ? { code: e.code } : {}),
        ...(e.stack ? { stack: e.stack } : {}),
      },
    };
  }
  port.postMessage(reply);
});
