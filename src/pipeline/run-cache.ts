/**
 * The fast path of `pyferry run`: a small record per script of every input the last build
 * depended on (size and mtime of each file, including files that were absent) and the
 * environment it produced. When nothing changed, running costs a few stats and a spawn —
 * this module imports nothing heavy on purpose.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, utimesSync } from "node:fs";
import { join, resolve } from "node:path";
import { pyenvRoot, versionFiles } from "../python/pyenv-shim.js";
import { writeFileAtomic } from "../util/atomic.js";
import { useCache } from "../util/cache-users.js";
import { cacheDir } from "../util/dirs.js";

const RECORD_VERSION = 1;

/** Written last into a finished environment: its presence means the build completed. */
export const ENV_MARKER = "pyferry-env.json";
/** The marker while `cache prune` decides, under the environment's lock, to remove it. */
export const ENV_RETIRING = "pyferry-env.retiring";

export interface InputStamp {
  path: string;
  /** -1 when the file did not exist (creating it must invalidate the record). */
  size: number;
  mtimeMs: number;
}

export interface RunRecord {
  version: number;
  key: string;
  inputs: InputStamp[];
  /** The environment's interpreter, and the folder whose marker proves the env is complete. */
  python: string;
  envDir: string;
  /** The app's files (relative to `root`): the script, its local modules and data files. */
  app?: { root: string; files: string[] };
  /** What the environment was built for: when an edit leaves these alone, it is reused. */
  basis?: string;
}

/**
 * What decides the interpreter a request means besides files: PATH, PYENV_VERSION and the
 * folder (pyenv's .python-version), unless the request is a path. Part of a run's key, so that
 * another active Python is another record.
 */
export function interpreterContext(pythonRequest: string | undefined): string {
  if (pythonRequest?.includes("/")) return "";
  return [process.env.PATH ?? "", process.env.PYENV_VERSION ?? "", process.cwd()].join("\0");
}

/** Files that choose pyenv's active version, here and now. */
export function interpreterFiles(): string[] {
  return versionFiles(pyenvRoot(), process.env, process.cwd());
}

/** One record per script and interpreter request. */
export function runKey(script: string, pythonRequest: string | undefined, tool: string): string {
  return createHash("sha256")
    .update(`${resolve(script)}\0${pythonRequest ?? ""}\0${tool}`)
    .digest("hex")
    .slice(0, 32);
}

function recordPath(key: string): string {
  useCache();
  return join(cacheDir(), "runs", `${key}.json`);
}

export function stamp(path: string): InputStamp {
  try {
    const st = statSync(path);
    return { path, size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return { path, size: -1, mtimeMs: 0 };
  }
}

/** The record for `key` as it was saved, fresh or not. */
export function readRecord(key: string): RunRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(recordPath(key), "utf8")) as RunRecord;
    return rec.version === RECORD_VERSION && rec.key === key ? rec : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Claim the environment `envDir` for use now: touch its marker, which must still be there.
 * `cache prune` renames the marker aside before it judges the environment's last use, so a
 * claim either shows in that judgement or fails here; on failure, get the environment through
 * cachedEnv, which waits for the prune's lock. No lock here: this is every warm run's path.
 */
export function claimEnv(envDir: string): boolean {
  const marker = join(envDir, ENV_MARKER);
  const now = new Date();
  try {
    utimesSync(marker, now, now);
    return true;
  } catch (err) {
    // Another user's cache keeps no date of ours; only a missing marker matters.
    return (err as NodeJS.ErrnoException).code !== "ENOENT" && existsSync(marker);
  }
}

/**
 * The record for `key` if every input is exactly as it was and its environment is still
 * there, that environment claimed (claimEnv).
 */
export function freshRecord(key: string): RunRecord | undefined {
  const rec = readRecord(key);
  if (!rec) return undefined;
  for (const i of rec.inputs) {
    const now = stamp(i.path);
    if (now.size !== i.size || now.mtimeMs !== i.mtimeMs) return undefined;
  }
  if (!claimEnv(rec.envDir) || !existsSync(rec.python)) return undefined;
  return rec;
}

export async function saveRecord(rec: Omit<RunRecord, "version">): Promise<void> {
  await writeFileAtomic(
    recordPath(rec.key),
    `${JSON.stringify({ version: RECORD_VERSION, ...rec })}\n`,
  );
}
