/**
 * A worker thread of unpack-pool.ts: unpacks one wheel into the cache per message and answers
 * with the result, or with the error's message and whether it is meant for the user.
 */
import { parentPort } from "node:worker_threads";
import { UserError } from "../util/errors.js";
import { unpackWheel } from "./cache.js";
import type { UnpackJob, UnpackReply } from "./unpack-pool.js";

const port = parentPort;
if (!port) throw new Error("unpack-worker.js runs only as a worker thread.");
port.on("message", async (job: UnpackJob) => {
  let reply: UnpackReply;
  try {
    reply = { id: job.id, wheel: await unpackWheel(job.path, job.sha256, job.verified) };
  } catch (err) {
    const user = err instanceof UserError;
    const { code, path } = err as NodeJS.ErrnoException;
    reply = {
      id: job.id,
      error: {
        message: err instanceof Error ? err.message : String(err),
        user,
        exitCode: user ? err.exitCode : 1,
        ...(err instanceof Error && err.stack ? { stack: err.stack } : {}),
        ...(typeof code === "string" ? { code } : {}),
        ...(typeof path === "string" ? { path } : {}),
      },
    };
  }
  port.postMessage(reply);
});
