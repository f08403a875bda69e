/**
 * `--bundle-python`: copy a local CPython into an environment so that the environment runs on a
 * machine with no Python at all (same architecture, a glibc at least as new, and the shared
 * libraries listed in `systemLibraries`).
 *
 * What makes a CPython relocatable:
 *  - Prefix discovery. CPython finds sys.prefix by walking up from its real executable until it
 *    finds the landmark lib/pythonX.Y/os.py (and lib-dynload for exec_prefix), so the copy keeps
 *    the source's layout relative to its prefix and needs no PYTHONHOME. A pyvenv.cfg in bin/ or
 *    the root would turn the copy into a "venv" of some other home: none is written, and nobody
 *    should add one. If discovery failed, CPython would fall back to its compiled-in prefix,
 *    which on the building machine is the original install and would hide the failure: the copy
 *    is therefore run once here and must report its own root and nothing outside it on sys.path.
 *  - libpython. A shared build finds libpythonX.Y.so through the executable's absolute DT_RUNPATH
 *    (pyenv: ~/.pyenv/versions/X/lib). Every bundled ELF file's search path is rewritten in place
 *    so that entries inside the old prefix become $ORIGIN-relative (bin/python: $ORIGIN/../lib,
 *    lib-dynload modules: $ORIGIN/../..); a shorter string always fits. An executable that needs
 *    a shared libpython but has no search path is refused: adding an entry would mean rewriting
 *    the ELF layout, and a launcher setting LD_LIBRARY_PATH would leak into every child process.
 *  - _sysconfigdata. sysconfig.get_paths() derives from sys.prefix at run time, but config vars
 *    such as LIBDIR, INCLUDEPY, LIBPL and LDFLAGS are build-time absolute paths; left alone they
 *    would send extension builds on the target to the build machine's prefix. The copy's module
 *    gets a few lines that substitute its own location for the old prefix when imported.
 *
 * Left out: site-packages contents (an empty site-packages is created), the other scripts in
 * bin/, idlelib and turtledemo, .opt-N.pyc files (only -O/-OO read them); the test suite and test
 * extension modules unless `withTests`; headers, config-X.Y and the development libpython links
 * unless `withInclude` (the static libpythonX.Y.a never: a bundle is for running programs).
 *
 * Distribution Pythons whose site module does not read lib/pythonX.Y/site-packages (Debian and
 * Ubuntu's /usr/bin/python3, which use dist-packages and split the stdlib over several system
 * packages) are refused: a bundle of one would never see the packages installed into it.
 */
import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import {
  appendFile,
  chmod,
  copyFile,
  mkdir,
  readdir,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  utimes,
} from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { InterpreterInfo } from "../python/interpreter.js";
import { type Captured, capture } from "../util/capture.js";
import { compareDotted } from "../util/dotted.js";
import { UserError } from "../util/errors.js";
import { isInside } from "../util/inside.js";
import { makeDirs } from "../util/make-dirs.js";
import { holdScratch } from "../util/scratch.js";
import { isElf, patchRunpath, readElfDynamic } from "./elf.js";

export interface BundledPython {
  root: string;
  /** root/bin/python3, a symlink to pythonX.Y. */
  python: string;
  version: string;
  /** root/lib/pythonX.Y */
  stdlib: string;
  /** root/lib/pythonX.Y/site-packages, empty. */
  sitePackages: string;
  /**
   * Shared libraries the bundle loads from the system it runs on, glibc's own left out: soname ->
   * the bundled files (relative to root) that need it, e.g. "libssl.so.3" -> [".../_ssl....so"].
   */
  systemLibraries: Record<string, string[]>;
  /** The newest GLIBC_x.y symbol version a bundled file needs: the target's glibc must have it. */
  glibc?: string;
  /** Bytes of regular files in the bundle. */
  size: number;
}

export interface BundleOptions {
  /** Headers, config-X.Y (without the static library) and libpythonX.Y.so: for building. */
  withInclude?: boolean;
  /** The stdlib's test suite and test-only extension modules. */
  withTests?: boolean;
}

export { patchRunpath, readRunpath } from "./elf.js";

/** What the source interpreter says about its own installation. */
interface SourceLayout {
  prefix: string;
  stdlib: string;
  dynload: string[];
  sitePackages: string[];
  include: string;
  sysconfigdata: string | null;
}

const SOURCE_PROBE = `
import importlib.util, json, os, site, sys, sysconfig
name = getattr(sysconfig, "_get_sysconfigdata_name", lambda: None)()
spec = importlib.util.find_spec(name) if name else None
print(json.dumps({
    "prefix": sys.prefix,
    "stdlib": os.path.dirname(os.__file__),
    "dynload": [p for p in sys.path if os.path.basename(p) == "lib-dynload"],
    "sitePackages": site.getsitepackages([sys.prefix]),
    "include": sysconfig.get_paths()["include"],
    "sysconfigdata": spec.origin if spec else None,
}))
`;

/** Run in the finished copy: where it thinks it lives and which libpython it mapped. */
const SELF_TEST = `
import json, sys, sysconfig
sysconfig.get_config_vars()
libs = set()
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\\n").split(None, 5)
            if len(fields) == 6 and "/libpython" in fields[5]:
                libs.add(fields[5])
except OSError:
    pass
print(json.dumps({
    "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix],
    "path": sys.path,
    "libpython": sorted(libs),
}))
`;

/** Appended to the copy's _sysconfigdata module; %DEPTH% is its directory's depth below root. */
const SYSCONFIG_RELOCATION = `
# Added by pyferry when this Python was bundled: the copy may live anywhere, so build-time paths
# under the original prefix are rewritten to wherever this file is now.
def _pyferry_relocate():
    import os, re
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, *[os.pardir] * %DEPTH%))
    olds = {build_time_vars.get("prefix"), build_time_vars.get("exec_prefix")}
    olds = sorted((o for o in olds if isinstance(o, str) and o), key=len, reverse=True)
    if not olds:
        return
    pattern = re.compile("(?:%s)(?![\\\\w.-])" % "|".join(re.escape(o) for o in olds))
    for key, value in build_time_vars.items():
        if isinstance(value, str):
            build_time_vars[key] = pattern.sub(lambda m: root, value)


_pyferry_relocate()
del _pyferry_relocate
`;

/** Libraries every glibc system has, part of glibc itself: not worth listing. */
const GLIBC_LIBRARY =
  /^(?:libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libBrokenLocale)\.so\.\d+$|^ld-linux[\w.-]*\.so\.\d+$/;

/** Test-only extension modules of the stdlib (from Modules/_test*.c, xxlimited.c, ...). */
const TEST_EXTENSION = /^(?:_test|_ctypes_test|_xxtestfuzz|xxlimited|xxsubtype)/;

/** The loader's name for the directory of the object being loaded, in either spelling. */
const ORIGIN = /^\$(?:ORIGIN|\{ORIGIN\})(?=\/|$)/;

const TEST_DIRS = new Set(["test", "tests", "idle_test"]);
const NEVER_COPIED_DIRS = new Set(["idlelib", "turtledemo", "site-packages"]);
const COPY_CONCURRENCY = 16;
const RUN_TIMEOUT_MS = 60_000;

function runPython(exe: string, script: string, env: NodeJS.ProcessEnv): Promise<Captured> {
  return capture(exe, ["-I", "-c", script], { env, timeoutMs: RUN_TIMEOUT_MS });
}

async function runJson<T>(exe: string, script: string, env: NodeJS.ProcessEnv): Promise<T> {
  let result: Captured;
  try {
    result = await runPython(exe, script, env);
  } catch (err) {
    throw new UserError(`Could not run ${exe} (${(err as NodeJS.ErrnoException).code ?? err}).`);
  }
  if (result.code !== 0) {
    const detail = result.stderr.trim().split("\n").pop() || `exit status ${result.code}`;
    throw new UserError(`${exe} failed: ${detail}`);
  }
  try {
    return JSON.parse(result.stdout.trim().split("\n").pop() ?? "") as T;
  } catch {
    throw new UserError(`${exe} printed something other than the expected description.`);
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** A file to copy: source, destination, and the source's stat for its size and times. */
interface CopyJob {
  from: string;
  to: string;
  st: Stats;
}

/**
 * Collect the files under `from` (symlinks followed) into `jobs`, creating directories under `to`
 * as it goes. `skip` sees each entry's path relative to the walk's root.
 */
async function walk(
  from: string,
  to: string,
  skip: (rel: string, isDir: boolean) => boolean,
  jobs: CopyJob[],
  rel = "",
): Promise<void> {
  await makeDirs(to);
  for (const name of (await readdir(from)).sort()) {
    const src = join(from, name);
    const relPath = rel ? join(rel, name) : name;
    // A dangling symlink has nothing to copy.
    const st = await stat(src).catch(() => undefined);
    if (!st || skip(relPath, st.isDirectory())) continue;
    if (st.isDirectory()) await walk(src, join(to, name), skip, jobs, relPath);
    else if (st.isFile()) jobs.push({ from: src, to: join(to, name), st });
  }
}

async function copyAll(jobs: CopyJob[]): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < jobs.length && !failure) {
      const job = jobs[next++] as CopyJob;
      try {
        await copyFile(job.from, job.to, constants.COPYFILE_FICLONE);
        // The stdlib's .pyc files record their source's mtime: a new mtime would make them stale.
        await utimes(job.to, job.st.atime, job.st.mtime);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  // Every copy has stopped before the caller removes the folder (else it races them).
  await Promise.all(Array.from({ length: COPY_CONCURRENCY }, worker));
  if (failure) throw failure.error;
}

/** Run `fn` on a file that may be read-only (copyFile keeps the source's mode). */
async function withWritable<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const { mode } = await stat(file);
  if (mode & 0o200) return fn();
  await chmod(file, mode | 0o200);
  try {
    return await fn();
  } finally {
    await chmod(file, mode);
  }
}

/** Paths an absolute search-path entry may be spelled as: as written and symlinks resolved. */
async function spellings(dir: string): Promise<string[]> {
  const real = await realpath(dir).catch(() => dir);
  return real === dir ? [dir] : [dir, real];
}

/** The parts of the source installation, checked to be copyable. */
interface Source {
  /** prefix/bin/pythonX.Y, the real interpreter even when `info` described a venv. */
  exe: string;
  prefix: string;
  stdlib: string;
  dynload: string;
  include: string;
  sysconfigdata: string | null;
  /** The libpython files the executable loads (none for a static build). */
  libraries: string[];
  /** The directories they were found in, as spelled and with symlinks resolved. */
  libDirs: string[];
}

async function inspectSource(info: InterpreterInfo): Promise<Source> {
  if (process.platform !== "linux" || !info.platform.startsWith("linux")) {
    throw new UserError("--bundle-python works on Linux only.");
  }
  if (info.implementation !== "cpython") {
    throw new UserError(`--bundle-python copies CPython only; ${info.executable} is not CPython.`);
  }
  const [major, minor] = info.versionInfo;
  if (major !== 3 || minor < 6) {
    throw new UserError(
      `--bundle-python needs CPython 3.6 or newer; ${info.executable} is ${info.version}.`,
    );
  }
  const exe = join(info.basePrefix, "bin", `python${major}.${minor}`);
  if (!(await isElf(exe))) {
    throw new UserError(
      `${exe} is missing or not an executable binary, so ${info.executable} is not laid out ` +
        "like a standard CPython installation and cannot be bundled.",
    );
  }
  // libpython, if the executable links it, is looked for where the loader looks for it.
  const dyn = await readElfDynamic(exe);
  const names = dyn.needed.filter((n) => /^libpython\d/.test(n));
  const searchPath = dyn.runpath ?? dyn.rpath;
  if (names.length > 0 && searchPath === undefined) {
    throw new UserError(
      `${exe} loads ${names.join(", ")} but has no RUNPATH or RPATH (it relies on the system's ` +
        "library path), so a copy could not find its libpython; bundle a Python built with an " +
        "rpath (pyenv's are) or a statically linked one.",
    );
  }
  const exeDir = dirname(await realpath(exe));
  const searchDirs = (searchPath ?? "")
    .split(":")
    .filter((d) => d !== "")
    .map((d) => d.replace(ORIGIN, exeDir));
  const libraries: string[] = [];
  const libDirs: string[] = [];
  for (const name of names) {
    const dir = await findFirst(searchDirs, (d) => exists(join(d, name)));
    if (dir === undefined) {
      throw new UserError(`Cannot find ${name}, which ${exe} loads, in ${searchPath}.`);
    }
    libraries.push(join(dir, name));
    libDirs.push(...(await spellings(dir)));
  }

  const layout = await runJson<SourceLayout>(exe, SOURCE_PROBE, process.env);
  const { prefix, stdlib } = layout;
  if (!isInside(prefix, stdlib) || !(await exists(join(stdlib, "os.py")))) {
    throw new UserError(
      `${exe}'s standard library (${stdlib}) is not under its prefix ${prefix}, so a copy ` +
        "could not find it; it cannot be bundled.",
    );
  }
  const sitePackages = join(stdlib, "site-packages");
  if (!layout.sitePackages.includes(sitePackages)) {
    throw new UserError(
      `${exe} cannot be bundled: its site module does not use ${sitePackages} (it reads ` +
        `${layout.sitePackages.join(", ") || "nothing"}), as in Debian and Ubuntu's system ` +
        "Python, so packages installed into the bundle would not be found; use a self-contained " +
        "CPython such as one installed by pyenv (--python), or leave the interpreter out " +
        "(--no-bundle-python) for a target that has the same Python.",
    );
  }
  const dynload = layout.dynload.find((d) => isInside(prefix, d));
  if (dynload === undefined) {
    throw new UserError(`${exe} has no lib-dynload directory under its prefix ${prefix}.`);
  }

  return {
    exe,
    prefix,
    stdlib,
    dynload,
    include: layout.include,
    sysconfigdata: layout.sysconfigdata,
    libraries,
    libDirs,
  };
}

async function findFirst<T>(items: T[], test: (item: T) => Promise<boolean>) {
  for (const item of items) if (await test(item)) return item;
  return undefined;
}

/**
 * Create the bundle's directories under `root` and list the files to copy into them, plus the
 * symlinks to make once they are there ([target, link]).
 */
async function planCopy(
  src: Source,
  root: string,
  opts: BundleOptions,
): Promise<{ jobs: CopyJob[]; links: [string, string][] }> {
  const jobs: CopyJob[] = [];
  const links: [string, string][] = [];
  const add = async (from: string, to: string) => jobs.push({ from, to, st: await stat(from) });
  const exeName = basename(src.exe);
  await mkdir(join(root, "bin"));
  await add(src.exe, join(root, "bin", exeName));
  for (const link of ["python3", "python"]) links.push([exeName, join(root, "bin", link)]);

  const libDir = join(root, "lib");
  await mkdir(libDir);
  for (const lib of src.libraries) {
    const name = basename(lib);
    await add(lib, join(libDir, name));
    if (!opts.withInclude) continue;
    // The link-time name and the stable-ABI stub are for building extensions, not running.
    const devName = name.replace(/\.so\..*$/, ".so");
    if (devName !== name) links.push([name, join(libDir, devName)]);
    const stub = join(dirname(lib), "libpython3.so");
    if (name !== "libpython3.so" && (await exists(stub))) {
      await add(stub, join(libDir, "libpython3.so"));
    }
  }

  const stdlibDest = join(root, relative(src.prefix, src.stdlib));
  const dynloadRel = relative(src.stdlib, src.dynload);
  const isTestExtension = (rel: string) => !opts.withTests && TEST_EXTENSION.test(basename(rel));
  await walk(
    src.stdlib,
    stdlibDest,
    (rel, isDir) => {
      const parts = rel.split(sep);
      const name = parts[parts.length - 1] as string;
      if (isDir) {
        if (parts.length === 1 && NEVER_COPIED_DIRS.has(name)) return true;
        if (parts.length === 1 && name.startsWith("config-")) return !opts.withInclude;
        return !opts.withTests && TEST_DIRS.has(name);
      }
      if (/\.opt-\d+\.pyc$/.test(name) || /^libpython.*\.a$/.test(name)) return true;
      return dirname(rel) === dynloadRel && isTestExtension(rel);
    },
    jobs,
  );
  if (!isInside(src.stdlib, src.dynload)) {
    await walk(src.dynload, join(root, relative(src.prefix, src.dynload)), isTestExtension, jobs);
  }
  await mkdir(join(stdlibDest, "site-packages"));
  if (opts.withInclude && isInside(src.prefix, src.include) && (await exists(src.include))) {
    await walk(src.include, join(root, relative(src.prefix, src.include)), () => false, jobs);
  }
  return { jobs, links };
}

/**
 * The new search path for a bundled ELF file in `destDir`: entries inside the old prefix, or
 * naming libpython's directory, become $ORIGIN-relative (the bundle mirrors the prefix's layout);
 * $ORIGIN entries already are; other absolute entries (a system directory) are kept.
 */
async function relocateSearchPath(
  old: string,
  destDir: string,
  src: Source,
  root: string,
): Promise<string> {
  const out: string[] = [];
  const prefix = await realpath(src.prefix);
  for (const entry of old.split(":")) {
    let mapped: string | undefined;
    if (ORIGIN.test(entry)) {
      mapped = entry;
    } else if (isAbsolute(entry)) {
      // The entry may name the prefix through a symlink (configure's --prefix, unresolved).
      const names = await spellings(resolve(entry));
      const inPrefix = names.find((n) => isInside(prefix, n));
      const target = names.some((n) => src.libDirs.includes(n))
        ? join(root, "lib")
        : inPrefix !== undefined
          ? join(root, relative(prefix, inPrefix))
          : undefined;
      const rel = target === undefined ? undefined : relative(destDir, target);
      mapped = rel === undefined ? entry : rel === "" ? "$ORIGIN" : `$ORIGIN/${rel}`;
    }
    // A relative entry is relative to the process's working directory: never meant, dropped.
    if (mapped !== undefined && !out.includes(mapped)) out.push(mapped);
  }
  return out.length > 0 ? out.join(":") : `$ORIGIN/${relative(destDir, join(root, "lib"))}`;
}

/**
 * Rewrite the search path of every copied ELF file, and gather what they need from the system:
 * shared libraries outside the bundle and the newest glibc symbol version.
 */
async function relocateElfFiles(
  jobs: CopyJob[],
  src: Source,
  root: string,
): Promise<Pick<BundledPython, "systemLibraries" | "glibc">> {
  const systemLibraries: Record<string, string[]> = {};
  let glibc: string | undefined;
  const bundled = new Set(src.libraries.map((lib) => basename(lib)));
  for (const job of jobs) {
    const candidate = job.from === src.exe || /\.so(?:\.|$)/.test(basename(job.to));
    if (!candidate || !(await isElf(job.to))) continue;
    const dyn = await readElfDynamic(job.to);
    const rel = relative(root, job.to);
    for (const soname of dyn.needed) {
      if (GLIBC_LIBRARY.test(soname) || bundled.has(soname)) continue;
      systemLibraries[soname] = [...(systemLibraries[soname] ?? []), rel];
    }
    for (const [lib, versions] of Object.entries(dyn.versionNeeds)) {
      if (!GLIBC_LIBRARY.test(lib)) continue;
      for (const v of versions) {
        const m = /^GLIBC_(\d+(?:\.\d+)+)$/.exec(v);
        if (m?.[1] && (glibc === undefined || compareDotted(m[1], glibc) > 0)) glibc = m[1];
      }
    }
    const old = dyn.runpath ?? dyn.rpath;
    if (old === undefined) continue;
    const value = await relocateSearchPath(old, dirname(job.to), src, root);
    await withWritable(job.to, () => patchRunpath(job.to, value));
  }
  return { systemLibraries, glibc };
}

/** Make the copy's _sysconfigdata module report paths under wherever the copy is imported from. */
async function relocateSysconfigdata(src: Source, root: string): Promise<void> {
  if (!src.sysconfigdata || !isInside(src.prefix, src.sysconfigdata)) return;
  const copy = join(root, relative(src.prefix, src.sysconfigdata));
  const depth = relative(root, dirname(copy)).split(sep).length;
  await withWritable(copy, () =>
    appendFile(copy, SYSCONFIG_RELOCATION.replace("%DEPTH%", String(depth))),
  );
  // Its cached bytecode is stale now; the self-test compiles it afresh.
  const stem = basename(copy, ".py");
  const cache = join(dirname(copy), "__pycache__");
  for (const name of await readdir(cache).catch(() => [] as string[])) {
    if (name.startsWith(`${stem}.`)) await unlink(join(cache, name));
  }
}

/**
 * Run the copy with a bare environment and check that it found itself: its prefixes are its root,
 * sys.path stays inside it, and libpython was mapped from it, not from the original install.
 */
async function selfTest(root: string, sharedLib: boolean): Promise<void> {
  const report = await runJson<{ prefixes: string[]; path: string[]; libpython: string[] }>(
    join(root, "bin", "python3"),
    SELF_TEST,
    { PATH: "/usr/bin:/bin" },
  );
  const realRoot = await realpath(root);
  const fail = (what: string) =>
    new UserError(`The copy of Python in ${root} does not run on its own: ${what}.`);
  for (const p of report.prefixes) {
    if ((await realpath(p).catch(() => p)) !== realRoot) throw fail(`it takes ${p} for its prefix`);
  }
  const outside = report.path.find((p) => p !== "" && !isInside(realRoot, p));
  if (outside !== undefined) throw fail(`sys.path contains ${outside}`);
  const foreign = report.libpython.find((lib) => !isInside(realRoot, lib));
  if (foreign !== undefined) throw fail(`it loaded ${foreign}`);
  if (sharedLib && report.libpython.length === 0) throw fail("it loaded no libpython");
}

/**
 * Copy the CPython that `info` describes (for a venv, its base installation) into `destRoot`, which
 * must not exist or be empty, so that `destRoot` runs on its own wherever it is moved. The copy is
 * assembled next to `destRoot`, checked by running it, then renamed into place.
 */
export async function bundlePython(
  info: InterpreterInfo,
  destRoot: string,
  opts: BundleOptions = {},
): Promise<BundledPython> {
  const src = await inspectSource(info);
  const root = resolve(destRoot);
  const entries = await readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw new UserError(`Cannot bundle Python into ${root} (${err.code}).`);
  });
  if (entries.length > 0) {
    throw new UserError(`Cannot bundle Python into ${root}: the directory is not empty.`);
  }
  await makeDirs(dirname(root));
  // Named after its destination's scratch name, so that sweepScratch finds it after a kill -9.
  const staging = `${root}.partial-${randomBytes(4).toString("hex")}`;
  await mkdir(staging);
  const release = holdScratch(staging);
  try {
    const { jobs, links } = await planCopy(src, staging, opts);
    await copyAll(jobs);
    for (const [target, link] of links) await symlink(target, link);
    const needs = await relocateElfFiles(jobs, src, staging);
    await relocateSysconfigdata(src, staging);
    await selfTest(staging, src.libraries.length > 0);
    try {
      await rename(staging, root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(`Could not move the bundled Python into ${root} (${code}).`);
    }
    const stdlib = join(root, relative(src.prefix, src.stdlib));
    return {
      root,
      python: join(root, "bin", "python3"),
      version: info.version,
      stdlib,
      sitePackages: join(stdlib, "site-packages"),
      ...needs,
      size: jobs.reduce((sum, job) => sum + job.st.size, 0),
    };
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  } finally {
    release();
  }
}
