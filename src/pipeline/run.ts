/**
 * `pyferry run SCRIPT [ARGS]`: analyze -> lock -> build -> run, each stage cached. The warm
 * path reads one small record, stats the inputs and spawns Python; the heavy modules load
 * only when something changed.
 */
import { join, resolve } from "node:path";
import { exitLike, runChild } from "../run/child.js";
import { VERSION } from "../version.js";
import { freshRecord, interpreterContext, runKey } from "./run-cache.js";

export async function runCommand(
  script: string,
  args: string[],
  pythonRequest?: string,
  verbose = false,
): Promise<void> {
  const key = runKey(script, pythonRequest, `${VERSION}\0${interpreterContext(pythonRequest)}`);
  // Either way the environment comes claimed, so that no prune removes it under the program.
  let rec = freshRecord(key);
  if (!rec) {
    const { prepareRun } = await import("./prepare-run.js");
    const { progress, stageLines } = await import("../util/progress.js");
    const status = verbose ? stageLines() : progress();
    try {
      rec = await prepareRun(script, pythonRequest, key, { status });
    } finally {
      // Cleared before the program writes anything.
      status.done();
    }
  }
  // As if the environment were activated: its console scripts first on PATH.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VIRTUAL_ENV: rec.envDir,
    PATH: `${join(rec.envDir, "bin")}:${process.env.PATH ?? ""}`,
  };
  delete env.PYTHONHOME;
  exitLike(await runChild(rec.python, [resolve(script), ...args], { env }));
}
