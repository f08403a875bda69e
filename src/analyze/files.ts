/** Reading the Python files of a program: size limits, decoding, and which folders to skip. */
import { existsSync } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
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
  const read = await readRegularFile(path, MAX_SOURCE_BYTES);
  if ("error" in read) return read;
  if (read.bytes.indexOf(0) >= 0)
    return { error: "the file contains NUL bytes (binary data, not Python source)" };
  return decodePythonSource(read.bytes);
}

/** Notebooks carry their outputs (images, tables), so they may be far larger than code. */
export const MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024;

const tooLarge = (limit: number, size?: number) =>
  `the file is ${size === undefined ? "" : `${Math.round(size / 1048576)} MiB, `}over the ${limit / 1048576} MiB limit for source files`;

/**
 * The bytes of a regular file (links followed) of at most `limit` bytes. Devices, pipes and
 * sockets are refused before opening: a FIFO would block the open, /dev/zero never ends.
 */
export async function readRegularFile(
  path: string,
  limit: number,
): Promise<{ bytes: Buffer } | { error: string }> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    const st = await stat(path);
    if (st.isDirectory()) return { error: "it is a folder, not a file" };
    if (!st.isFile()) return { error: "it is not a regular file (a device, pipe or socket)" };
    if (st.size > limit) return { error: tooLarge(limit, st.size) };
    handle = await open(path, "r");
    // The path may have been swapped since the stat: check what was opened.
    if (!(await handle.stat()).isFile())
      return { error: "it is not a regular file (a device, pipe or socket)" };
    return await readCapped(handle, limit);
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

/** Read to the end, but never more than `limit` bytes: a file may grow, or its size lie. */
async function readCapped(
  handle: Awaited<ReturnType<typeof open>>,
  limit: number,
): Promise<{ bytes: Buffer } | { error: string }> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buf = Buffer.alloc(Math.min(1 << 20, limit + 1 - total));
    const { bytesRead } = await handle.read(buf, 0, buf.length, null);
    if (bytesRead === 0) return { bytes: Buffer.concat(chunks, total) };
    chunks.push(buf.subarray(0, bytesRead));
    total += bytesRead;
    if (total > limit) return { error: tooLarge(limit) };
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
