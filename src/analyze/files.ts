/** Reading the Python files of a program: size limits, decoding, and which folders to skip. */
import { existsSync } from "node:fs";
import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { decodePythonSource } from "./source.js";

/** Larger .py files are generated data, not code anyone imports for its logic. */
export const MAX_SOURCE_BYTES = 16 * 1024 * 1024;

const SKIP_DIRS = new Set([
  ".git",
  ".hg",
  ".svn",
  "node_modules",
  "site-packages",
  "dist-packages",
  "__pycache__",
  "build",
  "dist",
  ".tox",
  ".nox",
  ".venv",
  "venv",
  ".eggs",
  ".mypy_cache",
  ".pytest_cache",
  ".ruff_cache",
  ".ipynb_checkpoints",
]);

/** Folders never searched for the program's own code: VCS data, virtualenvs, build output. */
export function isSkippedDir(dir: string, name: string): boolean {
  if (SKIP_DIRS.has(name) || name.endsWith(".egg-info") || name.endsWith(".dist-info")) return true;
  return existsSync(join(dir, name, "pyvenv.cfg"));
}

export type ReadResult = { text: string } | { error: string };

/** Read and decode one source file; problems come back as a sentence, never a throw. */
export async function readSource(path: string): Promise<ReadResult> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const { size } = await handle.stat();
    if (size > MAX_SOURCE_BYTES) {
      return {
        error: `the file is ${Math.round(size / 1048576)} MiB, over the ${MAX_SOURCE_BYTES / 1048576} MiB limit for source files`,
      };
    }
    const buf = await handle.readFile();
    if (buf.indexOf(0) >= 0)
      return { error: "the file contains NUL bytes (binary data, not Python source)" };
    return decodePythonSource(buf);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") return { error: "permission denied" };
    if (code === "EISDIR") return { error: "it is a folder, not a file" };
    if (code === "ENOENT") return { error: "no such file" };
    return { error: (err as Error).message };
  } finally {
    await handle?.close();
  }
}

/** Every .py (and .ipynb) file under `root`, sorted, skipping folders that hold no app code. */
export async function listSourceFiles(root: string, withNotebooks = true): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!isSkippedDir(dir, e.name) && !e.name.startsWith(".")) await walk(join(dir, e.name));
      } else if (
        e.isFile() &&
        (e.name.endsWith(".py") || (withNotebooks && e.name.endsWith(".ipynb")))
      ) {
        out.push(join(dir, e.name));
      }
    }
  };
  await walk(root);
  return out.sort();
}
