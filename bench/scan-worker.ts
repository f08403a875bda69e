/**
 * Worker of the speed benchmark's pool: scans each batch of paths it is sent and answers
 * with the counts, which also asks for the next batch. `null` ends it.
 */
import { parentPort } from "node:worker_threads";
import { emptyCounts, type ScanCounts, scanFiles } from "./scan-files.js";

export type WorkerRequest = string[] | null;
export type WorkerReply = ScanCounts;

const port = parentPort;
if (!port) throw new Error("scan-worker.js runs as a worker thread only");
port.on("message", (paths: WorkerRequest) => {
  if (paths === null) {
    port.close();
    return;
  }
  const counts = emptyCounts();
  scanFiles(paths, counts);
  port.postMessage(counts satisfies WorkerReply);
});
