/**
 * What `wheelhouse add` takes: wheel files, and project folders (pyproject.toml or setup.py)
 * built into wheels by their own PEP 517 backend, from a copy that leaves out the wheelhouse
 * itself besides what an sdist would not carry.
 */
import { rm, stat } from "node:fs/promises";
import type { IndexSettings } from "../index/pip-config.js";
import { buildWheelFromFolder, isProjectFolder } from "../install/project-build.js";
import { buildDeps, interpreterFor } from "../pipeline/build.js";
import { UserError } from "../util/errors.js";
import {
  type AddOutcome,
  type CommitOptions,
  commitWheels,
  type StagedWheel,
  scratchDir,
  stageWheel,
  type Wheelhouse,
} from "./wheelhouse.js";

export interface BuildOptions {
  /** Interpreter to build for: a version or path (default: the active one). */
  python?: string;
  /** Where build requirements come from. */
  settings: IndexSettings;
}

/** Build the project folder `dir` into a wheel in `outDir`; returns the wheel's path. */
export async function buildProject(
  dir: string,
  outDir: string,
  opts: BuildOptions,
  skip: readonly string[] = [],
): Promise<string> {
  const info = await interpreterFor({}, opts.python);
  return buildWheelFromFolder(dir, dir, buildDeps(info, { index: opts.settings }), outDir, skip);
}

/**
 * Add wheel files and project folders (built first) in one commit: if any one fails, nothing
 * is added.
 */
export async function addSources(
  wh: Wheelhouse,
  paths: readonly string[],
  opts: BuildOptions & CommitOptions & { onBuild?: (dir: string) => void },
): Promise<AddOutcome[]> {
  const staged: StagedWheel[] = [];
  const outDirs: string[] = [];
  try {
    for (const p of paths) {
      const st = await stat(p).catch(() => {
        throw new UserError(`${p} does not exist.`);
      });
      if (!st.isDirectory()) {
        staged.push(await stageWheel(wh, p));
        continue;
      }
      if (!isProjectFolder(p)) {
        throw new UserError(`${p} is a folder without pyproject.toml or setup.py, not a project.`);
      }
      opts.onBuild?.(p);
      const out = await scratchDir(wh, "build");
      outDirs.push(out);
      const wheel = await buildProject(p, out, opts, [wh.root]);
      staged.push({ ...(await stageWheel(wh, wheel)), via: "build" });
    }
    return (await commitWheels(wh, staged, opts)).outcomes;
  } finally {
    for (const s of staged) await rm(s.tmp, { force: true });
    for (const d of outDirs) await rm(d, { recursive: true, force: true });
  }
}
