import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, open, readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, delimiter, dirname, join, resolve, sep } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { type Captured, capture } from "../util/capture.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import type { MarkerEnvironment } from "./marker.js";
import { PROBE_MARKER, probeSource } from "./probe.js";
import { pyenvRoot, pyenvShimMisses, resolvePyenvShim } from "./pyenv-shim.js";

export type VersionInfo = [number, number, number, string, number];

export type { MarkerEnvironment };

export interface InterpreterInfo {
  /** Absolute path as found (not resolved through symlinks: a venv's python is a symlink). */
  executable: string;
  realPath: string;
  /** sys.executable: for a wrapper script such as a pyenv shim, the interpreter it ran. */
  sysExecutable: string;
  version: string;
  versionInfo: VersionInfo;
  implementation: string;
  abiTag?: string;
  platform: string;
  machine: string;
  glibc?: string;
  musl?: string;
  pointerBits: number;
  prefix: string;
  basePrefix: string;
  isVirtualenv: boolean;
  paths: Record<string, string>;
  /** sys.path as a plain `python -c` sees it (PYTHONPATH and user site included), minus the cwd. */
  sysPath: string[];
  stdlibModules: string[];
  markerEnv: MarkerEnvironment;
}

interface CacheEntry {
  stamps: Record<string, string>;
  info: InterpreterInfo;
}

const PROBE_TIMEOUT_MS = 60_000;
// Environment variables the probe reads; they change its answer, so they are part of the cache key.
const PROBE_ENV_KEYS = ["PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "HOME"] as const;

/**
 * Run the probe script in `executable` and describe the interpreter. The answer is cached per
 * interpreter file; a cached answer is used only while the site-packages directories it saw keep
 * their mtimes, since installing a `.pth` file can change sys.path.
 */
export async function probeInterpreter(executable: string): Promise<InterpreterInfo> {
  const abs = resolve(executable);
  let realPath: string;
  try {
    realPath = await realpath(abs);
  } catch {
    throw new UserError(`Python interpreter ${abs} does not exist.`);
  }
  if (!(await stat(realPath)).isFile()) {
    throw new UserError(`Python interpreter ${abs} is not a file.`);
  }
  const cacheFile = await cacheFileOf(abs, realPath);
  if (cacheFile) {
    const cached = await readCache(cacheFile);
    if (cached) return cached;
  }
  const info = await runProbe(abs, realPath);
  if (cacheFile) {
    const entry: CacheEntry = { stamps: await stampsFor(info), info };
    try {
      await writeFileAtomic(cacheFile, `${JSON.stringify(entry)}\n`);
    } catch {
      // The cache only saves time; an unwritable cache directory must not stop the run.
    }
  }
  return info;
}

/** Where the probe of this interpreter file is cached; none for a wrapper script. */
async function cacheFileOf(abs: string, realPath: string): Promise<string | undefined> {
  // A wrapper script (pyenv or asdf shim) may run a different interpreter tomorrow: never cache it.
  return (await isScript(realPath)) ? undefined : await cachePath(abs, realPath);
}

/** What choosing among interpreters needs to know of one: much less than a probe finds. */
type Sketch = Pick<
  InterpreterInfo,
  "executable" | "realPath" | "sysExecutable" | "version" | "versionInfo" | "implementation"
>;

const SKETCH_MARKER = "PYFERRY-SKETCH:";
// Python 2.7 and 3 alike, without site (-S): a few milliseconds where a probe takes tens.
const SKETCH_SOURCE = [
  "import sys, json",
  "impl = getattr(getattr(sys, 'implementation', None), 'name', None)",
  "impl = impl or __import__('platform').python_implementation().lower()",
  `sys.stdout.write('\\n${SKETCH_MARKER}' + json.dumps([sys.executable, list(sys.version_info[:5]), impl]) + '\\n')`,
].join("\n");

/**
 * An interpreter's version and implementation, for picking one of many: from its cached probe
 * when there is one, else from a query much cheaper than a probe (a `--python 3.11` on an empty
 * cache asks every interpreter on the machine, and probes only the one it picks).
 */
async function sketchInterpreter(file: string): Promise<Sketch> {
  const abs = resolve(file);
  const realPath = await realpath(abs);
  const cacheFile = await cacheFileOf(abs, realPath);
  const cached = cacheFile ? await readCache(cacheFile) : undefined;
  if (cached) return cached;
  const r = await runProcess(abs, ["-E", "-s", "-S", "-c", SKETCH_SOURCE]);
  const line = r.stdout.split("\n").find((l) => l.startsWith(SKETCH_MARKER));
  const parsed: unknown = line ? JSON.parse(line.slice(SKETCH_MARKER.length)) : undefined;
  if (r.code !== 0 || !Array.isArray(parsed) || parsed.length !== 3)
    throw new UserError(`${abs} is not a working Python interpreter.`);
  const [sysExecutable, vi, implementation] = parsed as [unknown, unknown, unknown];
  if (
    typeof sysExecutable !== "string" ||
    typeof implementation !== "string" ||
    !Array.isArray(vi) ||
    vi.length !== 5
  )
    throw new UserError(`${abs} is not a working Python interpreter.`);
  const versionInfo = vi as VersionInfo;
  return {
    executable: abs,
    realPath,
    sysExecutable,
    version: versionInfo.slice(0, 3).join("."),
    versionInfo,
    implementation,
  };
}

async function isScript(file: string): Promise<boolean> {
  const handle = await open(file, "r").catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head.toString("latin1") === "#!";
  } finally {
    await handle.close();
  }
}

async function cachePath(abs: string, realPath: string): Promise<string> {
  const st = await stat(realPath, { bigint: true });
  // The venv's pyvenv.cfg decides sys.prefix; a recreated venv at the same path gets a new one.
  const cfgs = [join(dirname(abs), "pyvenv.cfg"), join(dirname(dirname(abs)), "pyvenv.cfg")];
  const cfgStamps = await Promise.all(cfgs.map(mtimeStamp));
  const env: Record<string, string | null> = {};
  for (const key of PROBE_ENV_KEYS) env[key] = process.env[key] ?? null;
  if (env.PYTHONPATH) {
    env.PYTHONPATH = env.PYTHONPATH.split(delimiter)
      .map((p) => (p ? resolve(p) : p))
      .join(delimiter);
  }
  // The probe source is part of the key so that a pyferry with a changed probe re-asks.
  const keyText = JSON.stringify([
    probeSource(),
    abs,
    realPath,
    st.size.toString(),
    st.mtimeNs.toString(),
    cfgStamps,
    env,
  ]);
  const key = createHash("sha256").update(keyText).digest("hex");
  return join(cacheDir(), "interpreters", `${key}.json`);
}

async function mtimeStamp(file: string): Promise<string> {
  try {
    return (await stat(file, { bigint: true })).mtimeNs.toString();
  } catch {
    return "missing";
  }
}

async function stampsFor(info: InterpreterInfo): Promise<Record<string, string>> {
  const dirs = new Set<string>();
  for (const key of ["purelib", "platlib"]) {
    const dir = info.paths[key];
    if (dir) dirs.add(dir);
  }
  for (const entry of info.sysPath) {
    const name = basename(entry);
    if (name === "site-packages" || name === "dist-packages") dirs.add(entry);
  }
  const stamps: Record<string, string> = {};
  for (const dir of dirs) stamps[dir] = await mtimeStamp(dir);
  return stamps;
}

async function readCache(file: string): Promise<InterpreterInfo | undefined> {
  let entry: CacheEntry;
  try {
    entry = JSON.parse(await readFile(file, "utf8")) as CacheEntry;
  } catch {
    return undefined;
  }
  if (typeof entry !== "object" || entry === null || typeof entry.stamps !== "object") {
    return undefined;
  }
  for (const [dir, stamp] of Object.entries(entry.stamps)) {
    if ((await mtimeStamp(dir)) !== stamp) return undefined;
  }
  return entry.info;
}

type ProcessResult = Captured;

function runProcess(file: string, args: string[]): Promise<ProcessResult> {
  return capture(file, args, { timeoutMs: PROBE_TIMEOUT_MS });
}

async function runProbe(abs: string, realPath: string): Promise<InterpreterInfo> {
  let result: ProcessResult;
  try {
    result = await runProcess(abs, ["-I", "-c", probeSource()]);
    // Python 2.7 has no -I ("Unknown option: -I", status 2); -E -s is its nearest equivalent.
    if (result.code === 2 && result.stderr.includes("-I")) {
      result = await runProcess(abs, ["-E", "-s", "-c", probeSource()]);
    }
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UserError(`Could not run ${abs} as a Python interpreter (${reason}).`);
  }
  const status = result.signal ? `killed by ${result.signal}` : `exit status ${result.code}`;
  return readProbeOutput(
    result.code === 0 ? result.stdout : "",
    result.stderr,
    status,
    abs,
    realPath,
  );
}

/**
 * The interpreter described by the probe script's output (data/python/probe.py, also run on
 * remote hosts); a UserError naming `abs` when there is no usable description in it.
 */
export function readProbeOutput(
  stdout: string,
  stderr: string,
  status: string,
  abs: string,
  realPath: string,
): InterpreterInfo {
  const line = stdout.split("\n").find((l) => l.startsWith(PROBE_MARKER));
  if (line === undefined) {
    const lines = stderr.trim().split("\n");
    // Without the shell's own "NAME: LINE: " in front ("pyferry: 21: 2.7: not found").
    const detail = (lines[lines.length - 1] || status).replace(/^[\w.-]+: \d+: /, "");
    throw new UserError(`${abs} is not a working Python interpreter: ${detail}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(line.slice(PROBE_MARKER.length));
  } catch {
    throw new UserError(`${abs} printed a malformed interpreter description.`);
  }
  return toInfo(raw, abs, realPath);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function toInfo(raw: unknown, executable: string, realPath: string): InterpreterInfo {
  const o = isObject(raw) ? raw : {};
  const vi = o.versionInfo;
  const ok =
    typeof o.version === "string" &&
    typeof o.sysExecutable === "string" &&
    Array.isArray(vi) &&
    vi.length === 5 &&
    Array.isArray(o.sysPath) &&
    Array.isArray(o.stdlibModules) &&
    isObject(o.paths) &&
    isObject(o.markerEnv);
  if (!ok) throw new UserError(`${executable} printed an incomplete interpreter description.`);
  const optional = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  return {
    executable,
    realPath,
    sysExecutable: o.sysExecutable as string,
    version: o.version as string,
    versionInfo: vi as VersionInfo,
    implementation: String(o.implementation),
    abiTag: optional(o.abiTag),
    platform: String(o.platform),
    machine: String(o.machine),
    glibc: optional(o.glibc),
    musl: optional(o.musl),
    pointerBits: Number(o.pointerBits),
    prefix: String(o.prefix),
    basePrefix: String(o.basePrefix),
    isVirtualenv: o.isVirtualenv === true,
    paths: o.paths as Record<string, string>,
    sysPath: o.sysPath as string[],
    stdlibModules: o.stdlibModules as string[],
    markerEnv: o.markerEnv as MarkerEnvironment,
  };
}

interface VersionRequest {
  implementation?: string;
  label: string;
  parts: number[];
}

const IMPLEMENTATIONS: Record<string, { name: string; label: string }> = {
  cpython: { name: "cpython", label: "CPython" },
  pypy: { name: "pypy", label: "PyPy" },
};

function parseVersionRequest(request: string): VersionRequest | undefined {
  const m = /^(python|cpython|pypy)?-?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/i.exec(request);
  if (!m) return undefined;
  const parts = [m[2], m[3], m[4]].filter((p) => p !== undefined).map(Number);
  const impl = IMPLEMENTATIONS[(m[1] ?? "").toLowerCase()];
  return {
    implementation: impl?.name,
    label: `${impl?.label ?? "Python"} ${parts.join(".")}`,
    parts,
  };
}

function matches(info: Sketch, req: VersionRequest): boolean {
  if (req.implementation && info.implementation !== req.implementation) return false;
  return req.parts.every((part, i) => info.versionInfo[i] === part);
}

const RELEASE_LEVELS = ["alpha", "beta", "candidate", "final"];

function compareVersionInfo(a: VersionInfo, b: VersionInfo): number {
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  }
  const level = RELEASE_LEVELS.indexOf(a[3]) - RELEASE_LEVELS.indexOf(b[3]);
  return level !== 0 ? level : a[4] - b[4];
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

function pathDirs(env: NodeJS.ProcessEnv): string[] {
  return (env.PATH ?? "").split(delimiter).filter((d) => d !== "");
}

/**
 * PATH directories to search for versions. pyenv's shims are left out: each is an uncacheable
 * script that costs a pyenv run, and the versions behind them are searched directly anyway.
 */
function searchedPathDirs(env: NodeJS.ProcessEnv): string[] {
  const shims = join(pyenvRoot(env), "shims");
  return pathDirs(env).filter((dir) => resolve(dir) !== shims);
}

async function which(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of pathDirs(env)) {
    const file = resolve(dir, name);
    if (await isExecutableFile(file)) return file;
  }
  return undefined;
}

async function pyenvInterpreters(env: NodeJS.ProcessEnv): Promise<string[]> {
  const versionsDir = join(pyenvRoot(env), "versions");
  let names: string[];
  try {
    names = (await readdir(versionsDir)).sort();
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const name of names) {
    for (const exe of ["python", "python3"]) {
      const file = join(versionsDir, name, "bin", exe);
      if (await isExecutableFile(file)) {
        found.push(file);
        break;
      }
    }
  }
  return found;
}

interface Probed {
  /** The path to hand out: for a wrapper script, the interpreter it ran, which stays put. */
  executable: string;
  info: Sketch;
}

/** Sketch each candidate, skipping ones that fail; dedupe by the interpreter's real path. */
async function probeCandidates(candidates: string[]): Promise<Probed[]> {
  const unique: string[] = [];
  const seenFiles = new Set<string>();
  for (const file of candidates) {
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined || seenFiles.has(real)) continue;
    seenFiles.add(real);
    unique.push(file);
  }
  const settled = await Promise.allSettled(unique.map((file) => sketchInterpreter(file)));
  const result: Probed[] = [];
  const seen = new Set<string>();
  for (const outcome of settled) {
    if (outcome.status !== "fulfilled") continue;
    const info = outcome.value;
    const wrapped = await isScript(info.realPath);
    const executable = wrapped ? info.sysExecutable : info.executable;
    const real = wrapped ? await realpath(executable).catch(() => executable) : info.realPath;
    if (seen.has(real)) continue;
    seen.add(real);
    result.push({ executable, info });
  }
  return result;
}

/** A shim on PATH is swapped for the interpreter it runs, so the answer can be cached. */
async function stablePath(file: string, env: NodeJS.ProcessEnv): Promise<string> {
  if (!(await isScript(file))) return file;
  return (
    resolvePyenvShim(file, pyenvRoot(env), env) ?? (await probeInterpreter(file)).sysExecutable
  );
}

function venvPython(venv: string): string {
  return process.platform === "win32"
    ? join(venv, "Scripts", "python.exe")
    : join(venv, "bin", "python");
}

/**
 * Find the interpreter the user asked for. `request` is undefined (the active one), a version
 * ("3", "3.11", "3.11.7", "python3.11", "cpython3.11"), a command name on PATH, or a path.
 */
export async function findInterpreter(
  request?: string,
  env: NodeJS.ProcessEnv = process.env,
  /** How the user names another interpreter, for the messages. */
  choose = "pass --python PATH",
): Promise<string> {
  if (request === undefined || request === "") {
    if (env.VIRTUAL_ENV) {
      const python = venvPython(env.VIRTUAL_ENV);
      if (await isExecutableFile(python)) return python;
    }
    const found = (await which("python3", env)) ?? (await which("python", env));
    if (!found) {
      throw new UserError(`No Python interpreter found on PATH; install Python or ${choose}.`);
    }
    return stablePath(found, env);
  }
  if (request.includes("/") || request.includes(sep)) {
    const file = resolve(request);
    if (!(await stat(file).catch(() => undefined))) {
      throw new UserError(`Python interpreter ${file} does not exist.`);
    }
    if (!(await isExecutableFile(file))) {
      throw new UserError(`Python interpreter ${file} is not an executable file.`);
    }
    return file;
  }
  const wanted = parseVersionRequest(request);
  // A command name ("python3", "python3.11") means what the shell would run, when PATH has it;
  // only a bare version ("3.11") or a name PATH lacks searches everything for the best match.
  const onPath = /^[a-z]/i.test(request) ? await which(request, env) : undefined;
  // A pyenv shim of a version that is not selected here runs nothing: look further, as for a
  // name PATH lacks.
  if (onPath && !pyenvShimMisses(onPath, pyenvRoot(env), env)) return stablePath(onPath, env);
  if (!wanted) throw new UserError(`No ${request} found on PATH; ${choose} instead.`);
  const [major, minor] = wanted.parts;
  const names = minor === undefined ? [] : [`python${major}.${minor}`];
  names.push(`python${major}`, "python");
  const candidates: string[] = [];
  for (const dir of searchedPathDirs(env)) {
    for (const name of names) {
      const file = resolve(dir, name);
      if (await isExecutableFile(file)) candidates.push(file);
    }
  }
  candidates.push(...(await pyenvInterpreters(env)));
  let best: Probed | undefined;
  for (const probed of await probeCandidates(candidates)) {
    if (!matches(probed.info, wanted)) continue;
    if (!best || compareVersionInfo(probed.info.versionInfo, best.info.versionInfo) > 0) {
      best = probed;
    }
  }
  if (!best) {
    throw new UserError(
      `No ${wanted.label} interpreter found on PATH or in pyenv; install one or ${choose}.`,
    );
  }
  return best.executable;
}

/** Every distinct interpreter on PATH or in pyenv, highest version first. */
export async function listInterpreters(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ executable: string; version: string }[]> {
  const candidates: string[] = [];
  for (const dir of searchedPathDirs(env)) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => /^python(\d+(\.\d+)?)?$/.test(n)).sort()) {
      const file = join(dir, name);
      if (await isExecutableFile(file)) candidates.push(file);
    }
  }
  candidates.push(...(await pyenvInterpreters(env)));
  const probed = await probeCandidates(candidates);
  probed.sort((a, b) => compareVersionInfo(b.info.versionInfo, a.info.versionInfo));
  return probed.map((p) => ({ executable: p.executable, version: p.info.version }));
}
