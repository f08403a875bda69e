/**
 * What `wheelhouse add` takes: wheel files, and project folders (pyproject.toml or setup.py)
 * built into wheels by their own PEP 517 backend. A folder is built from a copy made as an
 * sdist would carry it (no VCS data, virtualenvs or build output, nor the wheelhouse itself),
 * so that the build writes nothing into the user's tree.
 */
import { existsSync } from "node:fs";
import { cp, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve, sep } from "node:path";
import type { IndexSettings } from "../index/pip-config.js";
import { buildWheelFromTree } from "../install/sdist.js";
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

/** Folders a source distribution would not carry. */
const SKIPPED = new Set([
  ".git",
  ".hg",
  ".svn",
  ".venv",
  "venv",
  ".tox",
  ".nox",
  "__pycache__",
  ".mypy_cache",
  ".pytest_cache",
  ".ruff_cache",
  "node_modules",
  "build",
  "dist",
]);

export function isProjectFolder(dir: string): boolean {
  return existsSync(join(dir, "pyproject.toml")) || existsSync(join(dir, "setup.py"));
}

function isInside(parent: string, path: string): boolean {
  const rel = relative(parent, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

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
  const source = resolve(dir);
  const info = await interpreterFor({}, opts.python);
  const work = await mkdtemp(join(tmpdir(), "pyferry-project-"));
  try {
    const tree = join(work, basename(source) || "project");
    await cp(source, tree, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (path) => {
        const name = basename(path);
        if (path === source) return true;
        if (SKIPPED.has(name) || name.endsWith(".egg-info")) return false;
        return !skip.some((s) => isInside(s, path));
      },
    });
    const wheel = await buildWheelFromTree(
      tree,
      dir,
      buildDeps(info, { index: opts.settings }),
      outDir,
    );
    if (!existsSync(wheel)) {
      throw new UserError(`Building ${dir} failed: its backend did not write ${basename(wheel)}.`);
    }
    return wheel;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
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
