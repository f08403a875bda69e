/**
 * Wheels of project folders (pyproject.toml or setup.py) through their own PEP 517 backend,
 * built on a copy made as an sdist would carry the folder (no VCS data, virtualenvs or build
 * output), so that the build writes nothing into the user's tree.
 */
import { existsSync } from "node:fs";
import { cp } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { isInside } from "../util/inside.js";
import { inTempDir } from "../util/temp-dir.js";
import { type BuildDeps, buildWheelFromTree } from "./sdist.js";

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

/**
 * Build the project folder `dir` into a wheel in `outDir`, leaving out `skip` (paths under it)
 * besides the usual; returns the wheel's path.
 */
export async function buildWheelFromFolder(
  dir: string,
  label: string,
  deps: BuildDeps,
  outDir: string,
  skip: readonly string[] = [],
): Promise<string> {
  const source = resolve(dir);
  return inTempDir("pyferry-project-", async (work) => {
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
    return buildWheelFromTree(tree, label, deps, outDir);
  });
}
