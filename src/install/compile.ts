/**
 * Byte-compiling an environment's Python files with its own interpreter, once for all files.
 * The .pyc files are hash-based and unchecked (PEP 552): they stay valid when the environment
 * is packed and unpacked elsewhere, where timestamps change, and cost no source read at import
 * (Python 3.6, which predates them, gets timestamp-based ones).
 */
import { spawn } from "node:child_process";
import type { Dirent } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { UserError } from "../util/errors.js";
import { isUnder } from "../util/inside.js";
import type { EnvLayout } from "./env.js";
import { mapLimit } from "./pool.js";
import { formatRecord, parseRecord, sha256Record } from "./record.js";

/**
 * Reads NUL-separated source paths on stdin and writes, for each in order, "o<pyc path>" or
 * "f" (the file does not compile: Python 2 test files and templates are common) and a NUL.
 * Forked workers, not spawned ones: functions defined under -c cannot be sent to a spawn.
 * The file name inside each .pyc is relative to the environment (argv[1]), so the same source
 * gives the same bytes in every environment, which the remote store then sends once; the
 * import system puts the real path back when it loads the file.
 */
const DRIVER = `
import multiprocessing, os, py_compile, sys, warnings
warnings.filterwarnings("ignore")
# Python 3.6 has no hash-based .pyc files: timestamp-based ones there.
MODE = getattr(py_compile, "PycInvalidationMode", None)
KW = {"invalidation_mode": MODE.UNCHECKED_HASH} if MODE else {}
ROOT = sys.argv[1]

def build(src):
    try:
        rel = os.path.relpath(src, ROOT)
        return "o" + py_compile.compile(src, dfile=rel, doraise=True, **KW)
    except Exception:
        return "f"

paths = [p for p in sys.stdin.buffer.read().decode("utf-8", "surrogateescape").split("\\0") if p]
try:
    from concurrent.futures import ProcessPoolExecutor
    try:
        pool = ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork"))
    except TypeError:
        # Python 3.6 takes no mp_context; fork is its default on Linux anyway.
        pool = ProcessPoolExecutor()
    results = pool.map(build, paths, chunksize=64)
except (ImportError, OSError, ValueError, NotImplementedError):
    results = map(build, paths)
out = sys.stdout.buffer
for r in results:
    out.write(r.encode("utf-8", "surrogateescape") + b"\\0")
out.flush()
`;

export interface CompileResult {
  /** Source -> .pyc written for it. */
  compiled: Map<string, string>;
  /** Sources that do not compile (left as they are, as pip does). */
  failed: string[];
}

async function pyFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory() && e.name !== "__pycache__") out.push(...(await pyFilesUnder(path)));
    else if (e.isFile() && e.name.endsWith(".py")) out.push(path);
  }
  return out;
}

function run(python: string, root: string, input: Buffer): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(python, ["-I", "-c", DRIVER, root], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) =>
      reject(new UserError(`Could not run ${python} to compile bytecode (${e.message}).`)),
    );
    child.on("close", (code) => {
      if (code === 0) resolvePromise(Buffer.concat(out));
      else {
        const lines = Buffer.concat(err).toString("utf8").trim().split("\n");
        reject(
          new UserError(`Compiling bytecode with ${python} failed: ${lines[lines.length - 1]}`),
        );
      }
    });
    child.stdin.end(input);
  });
}

/** Add RECORD rows for the new .pyc files to every distribution whose sources they are. */
async function recordBytecode(layout: EnvLayout, compiled: Map<string, string>): Promise<void> {
  for (const site of new Set([layout.purelib, layout.platlib])) {
    const distInfos = (await readdir(site).catch(() => [])).filter((e) => e.endsWith(".dist-info"));
    await mapLimit(distInfos, 8, async (d) => {
      const recordFile = join(site, d, "RECORD");
      let rows: ReturnType<typeof parseRecord>;
      try {
        rows = parseRecord(await readFile(recordFile, "utf8"));
      } catch {
        return;
      }
      const paths = new Set(rows.map((r) => r.path));
      const added = [];
      for (const row of rows) {
        const pyc = compiled.get(resolve(site, row.path));
        if (!pyc) continue;
        const path = relative(site, pyc).split(sep).join("/");
        if (paths.has(path)) continue;
        const data = await readFile(pyc);
        added.push({ path, hash: sha256Record(data), size: `${data.length}` });
      }
      if (added.length === 0) return;
      const all = [...rows, ...added].sort((a, b) =>
        a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
      );
      await writeFileAtomic(recordFile, formatRecord(all));
    });
  }
}

/**
 * Compile `files` (default: every .py file in site-packages) with the environment's
 * interpreter, in parallel, and list the .pyc files in their distributions' RECORDs.
 */
export async function compileBytecode(layout: EnvLayout, files?: string[]): Promise<CompileResult> {
  const sites = [...new Set([layout.purelib, layout.platlib])];
  let sources: string[];
  if (files) {
    // As pip does: only files in the library directories, not scripts or data.
    sources = files.filter((f) => f.endsWith(".py") && sites.some((s) => isUnder(s, f)));
  } else {
    sources = (await Promise.all(sites.map(pyFilesUnder))).flat();
  }
  const result: CompileResult = { compiled: new Map(), failed: [] };
  if (sources.length === 0) return result;
  const output = await run(layout.python, layout.root, Buffer.from(`${sources.join("\0")}\0`));
  const answers = output.toString("utf8").split("\0").slice(0, -1);
  if (answers.length !== sources.length) {
    throw new UserError(
      `Compiling bytecode with ${layout.python} answered for ${answers.length} of ${sources.length} files.`,
    );
  }
  sources.forEach((src, i) => {
    const a = answers[i] as string;
    if (a.startsWith("o")) result.compiled.set(resolve(src), a.slice(1));
    else result.failed.push(src);
  });
  await recordBytecode(layout, result.compiled);
  return result;
}
