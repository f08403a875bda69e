/**
 * From requirements to a finished environment: pick the interpreter, resolve and lock for
 * it, then build the environment from the lock alone — into a temporary sibling renamed into
 * place, so a crash never leaves a half-built environment where a finished one is expected.
 * The resolver, the sdist builder, the interpreter bundler and the bytecode compiler are
 * imported only when used: installing from a lock (every warm `run`) needs none of them.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync } from "node:fs";
import { mkdir, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { acquireLock } from "../bundle/lock.js";
import { warn } from "../cli/output.js";
import { knowCredentials } from "../index/http.js";
import {
  aboutImplicitDefaultIndex,
  type IndexSettings,
  loadPipSettings,
} from "../index/pip-config.js";
import type { IndexFile } from "../index/simple.js";
import { writeActivateScripts } from "../install/activate.js";
import {
  cachePaths,
  checkLocalSize,
  type DistFile,
  fetchDist,
  fetchMany,
  findUnpacked,
  otherWheel,
  retireTree,
  type UnpackedWheel,
} from "../install/cache.js";
import { createVenv, type EnvLayout, layoutFor, type VenvBase, writeVenv } from "../install/env.js";
import { defaultLinkMode, type LinkMode } from "../install/link-mode.js";
import type { BuildDeps } from "../install/sdist.js";
import { CachedTreeChanged } from "../install/tree-check.js";
import { startUnpackers, unpackMany } from "../install/unpack-pool.js";
import { BatchInstall, installAll } from "../install/wheel-install.js";
import { findInterpreter, type InterpreterInfo, probeInterpreter } from "../python/interpreter.js";
import type { CoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import type { Requirement } from "../python/requirement.js";
import { parseWheelFilename, tagRanks } from "../python/tags.js";
import { type Target, targetFromInterpreter, targetTagList } from "../python/target.js";
import { compareVersions, majorMinor, satisfies } from "../python/version.js";
import {
  BASE_LABEL,
  extraLabel,
  groupLabel,
  type Lock,
  type LockedPackage,
  lockedFileUrl,
  lockToml,
  readLock,
} from "../resolve/lock.js";
import {
  builtHere,
  installFile,
  type LockChoice,
  packageLabel,
  selectPackages,
} from "../resolve/lock-select.js";
import { writeFileAtomic } from "../util/atomic.js";
import { useCache } from "../util/cache-users.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { makeDirs } from "../util/make-dirs.js";
import { whyUnreadable } from "../util/read-text.js";
import { holdScratch, scratchFor, sweepScratch } from "../util/scratch.js";
import { sha256File } from "../util/sha256-file.js";
import { inTempDir } from "../util/temp-dir.js";
import { VERSION } from "../version.js";
import { buildDirect, directUrl } from "./direct-source.js";
import { claimEnv, ENV_MARKER, ENV_RETIRING } from "./run-cache.js";

/** The interpreter to build on: the request, else one matching what the input asks for. */
export async function interpreterFor(
  input: { python?: string; requiresPython?: string; source?: string; pythonSource?: string },
  request?: string,
  /** How the user names another interpreter, for the messages (default: --python). */
  choose?: string,
): Promise<InterpreterInfo> {
  const wanted = request ?? (input.python ? majorMinor(input.python) : undefined);
  const info = await probeInterpreter(await findInterpreter(wanted, process.env, choose));
  // A spec names an exact Python (python=3.11.2); any of its series is used, but not silently.
  if (
    !request &&
    input.python &&
    input.python.split(".").length > 2 &&
    info.version !== input.python
  )
    warn(
      `${input.pythonSource ?? input.source ?? "the input"} asks for Python ${input.python}; using ${info.version} (${info.executable}), of the same series.`,
    );
  if (input.requiresPython && !satisfies(info.version, input.requiresPython)) {
    throw new UserError(
      `Python ${info.version} (${info.executable}) does not satisfy requires-python ${input.requiresPython}; ${choose ?? "pass --python with a matching version"}.`,
    );
  }
  return info;
}

export interface LockResult {
  text: string;
  lock: Lock;
  target: Target;
}

/** A project's extras and dependency groups, locked beside its own requirements. */
export interface LockedSets {
  extras: Map<string, Requirement[]>;
  groups: Map<string, Requirement[]>;
}

/**
 * Resolve for the interpreter's target and return the lock, as text and parsed. With `sets`,
 * their requirements are resolved along, and what only they need is marked with them.
 */
export async function lockRequirements(
  requirements: Requirement[],
  target: Target | InterpreterInfo,
  settings: IndexSettings,
  opts: {
    prereleases?: boolean;
    lockDir?: string;
    mixedSources?: boolean;
    /** The interpreter that builds sdists whose dependencies only a build can tell. */
    interpreter?: InterpreterInfo;
    sets?: LockedSets;
  } = {},
): Promise<LockResult> {
  const sets = opts.sets;
  const origins = sets && [
    { label: BASE_LABEL, requirements },
    ...[...sets.extras].map(([name, reqs]) => ({ label: extraLabel(name), requirements: reqs })),
    ...[...sets.groups].map(([name, reqs]) => ({ label: groupLabel(name), requirements: reqs })),
  ];
  const all = origins ? origins.flatMap((o) => o.requirements) : requirements;
  // The variable reaches the commands without the flag (run, pack, mirror, deploy).
  const mixed = opts.mixedSources === true || process.env.PYFERRY_MIXED_SOURCES === "1";
  const isTarget = "markerEnv" in target && "platforms" in target;
  const t = isTarget ? target : targetFromInterpreter(target as InterpreterInfo);
  const builder = opts.interpreter ?? (isTarget ? undefined : (target as InterpreterInfo));
  const hashed = allowedHashes(all);
  const { ResolutionImpossible, resolve } = await import("../resolve/resolver.js");
  const resolution = await resolve({
    requirements: all,
    ...(origins ? { origins } : {}),
    target: t,
    settings,
    // pip's unconfigured default index being unreachable is expected offline: not worth a warning.
    onWarning: (m) => {
      if (!aboutImplicitDefaultIndex(settings, m)) warn(m);
    },
    ...(opts.prereleases ? { prereleases: true } : {}),
    ...(mixed ? { allowMixedSources: true } : {}),
    ...(builder ? { buildMetadata: sdistMetadataFor(builder, settings) } : {}),
    ...(hashed.size > 0 ? { allowedHashes: hashed } : {}),
  }).catch((err: unknown) => {
    // Under the strict one-source-per-project rule, pip's merging might have found a way.
    if (err instanceof ResolutionImpossible && err.alsoElsewhere.length > 0) {
      const names = err.alsoElsewhere;
      const shown = names.length > 3 ? `${names.slice(0, 3).join(", ")}, ...` : names.join(", ");
      const hint = `later sources have other files of ${shown}, which --mixed-sources (or PYFERRY_MIXED_SOURCES=1) would also take, as pip does`;
      throw new UserError(`${err.message.replace(/\.$/, "")}; ${hint}.`);
    }
    throw err;
  });
  const text = lockToml(resolution, {
    createdBy: `pyferry ${VERSION}`,
    ...(opts.lockDir ? { lockDir: opts.lockDir } : {}),
    ...(sets ? { sets: { extras: [...sets.extras.keys()], groups: [...sets.groups.keys()] } } : {}),
  });
  const lock = readLock(text, "the new lock");
  checkHashes(hashed, lock);
  return { text, lock, target: t };
}

function sourceUrls(s: IndexSettings): string[] {
  return [s.indexUrl, ...s.extraIndexUrls, ...s.findLinks];
}

/**
 * pip's hash-checking mode: once a requirement carries --hash (or the file says
 * --require-hashes), it must be pinned with == (or name its file by URL), and every package of
 * the lock needs a listed hash (checkHashes). The hashes allowed, by project.
 */
function allowedHashes(requirements: Requirement[]): Map<string, Set<string>> {
  const hashed = new Map<string, Set<string>>();
  for (const r of requirements) {
    if (!r.hashes) continue;
    // A URL names its one file; anything else must name one version.
    if (r.url === undefined && !/^===?[^,*]+$/.test(r.specifier))
      throw new UserError(
        `${r.name} has --hash but is not pinned with ==; hash checking needs exact versions.`,
      );
    const set = hashed.get(r.normalized) ?? new Set<string>();
    for (const h of r.hashes) set.add(h);
    hashed.set(r.normalized, set);
  }
  return hashed;
}

/** The lock under hash checking: each package has allowed hashes, and its files one of them. */
function checkHashes(hashed: Map<string, Set<string>>, lock: Lock): void {
  if (hashed.size === 0) return;
  const missing = lock.packages.filter((p) => !hashed.get(p.name)?.size);
  if (missing.length > 0) {
    // A requirement with no hash allowed at all is there only because of --require-hashes.
    const why = [...hashed.values()].some((s) => s.size === 0)
      ? "Hashes are required by --require-hashes"
      : "With --hash on a requirement, every package needs one";
    throw new UserError(
      `${why}, and ${missing.map((p) => `${p.name} ${p.version}`).join(", ")} ${missing.length === 1 ? "has" : "have"} none; list ${missing.length === 1 ? "it" : "them"} with --hash (pip-compile --generate-hashes writes them all).`,
    );
  }
  for (const p of lock.packages) {
    const allowed = hashed.get(p.name) ?? new Set<string>();
    for (const f of [...p.wheels, ...(p.sdist ? [p.sdist] : [])]) {
      if (!allowed.has(f.sha256))
        throw new UserError(
          `${f.name} has sha256 ${f.sha256}, which no --hash of ${p.name} allows; the file is not the one the requirements were written for.`,
        );
    }
  }
}

export interface BuildOptions {
  bundlePython?: boolean;
  compile?: boolean;
  linkMode?: LinkMode;
  /** Where relative `path` entries of the lock are resolved from. */
  lockDir?: string;
  /** The extras and dependency groups to install from the lock. */
  choice?: LockChoice;
  /** Where the build requirements of sdists come from; default: pip's configuration. */
  index?: IndexSettings;
  /**
   * Build for an interpreter on another machine (its probed description is `info`): the
   * venv is written for this base, which need not exist here. No bytecode is compiled here.
   */
  venvBase?: VenvBase;
  /** Hears of each package installed, of how many. */
  progress?: (done: number, total: number) => void;
}

/** The metadata of an sdist as its backend makes it, built with `info` (PEP 643, PEP 517). */
function sdistMetadataFor(
  info: InterpreterInfo,
  settings: IndexSettings,
): (file: IndexFile, sha256: string) => Promise<CoreMetadata> {
  return async (file, sha256) => {
    const path = await fetchDist({ url: file.url, filename: file.filename, sha256 });
    const deps = buildDeps(info, { index: settings }, []);
    const { sdistMetadata } = await import("../install/sdist.js");
    return sdistMetadata({ path, sha256, filename: file.filename }, info, deps);
  };
}

/**
 * Start the wheel-unpacking threads when installing `lock` will unpack more than a little:
 * called before the interpreter is asked about itself, so that the threads get ready meanwhile.
 * Before that answer the wheel each package will use is unknown, so a package counts as
 * needing unpacking when none of its wheels has a tree in the cache, with its smallest wheel.
 */
export function prepareUnpacking(lock: Lock): void {
  const root = cachePaths().unpacked;
  let bytes = 0;
  let wheels = 0;
  for (const p of lock.packages) {
    if (p.wheels.length === 0 || p.wheels.some((w) => existsSync(join(root, w.sha256)))) continue;
    bytes += Math.min(...p.wheels.map((w) => w.size ?? 0));
    wheels++;
  }
  startUnpackers(wheels, bytes);
}

/** Build `dest` (which must not exist) from a lock: nothing is resolved, every hash verified. */
export async function buildEnv(
  lock: Lock,
  info: InterpreterInfo,
  dest: string,
  opts: BuildOptions = {},
): Promise<EnvLayout> {
  const final = resolvePath(dest);
  if (lstatSync(final, { throwIfNoEntry: false })) throw folderTaken(dest);
  if (Number(info.version.split(".")[0]) < 3)
    throw new UserError(
      `pyferry builds environments for Python 3 only, and ${info.realPath} is Python ${info.version}.`,
    );
  // Before anything is made: a lock that does not fit the interpreter is not installed.
  const wanted = selectPackages(lock, info, opts.choice);
  await makeDirs(dirname(final));
  await sweepScratch(final);
  return mendingCache(() => buildOnce(wanted, info, final, opts, dest));
}

/**
 * Run `attempt`, which installs from the cache's unpacked wheels; when it meets one that changed
 * since it was unpacked (an edit through a hardlink, a removed file), that tree leaves the cache
 * and `attempt` runs again (after `undo`), unpacking the wheel anew, with a warning.
 */
async function mendingCache<T>(
  attempt: () => Promise<T>,
  undo: () => Promise<void> = async () => {},
): Promise<T> {
  const retired = new Set<string>();
  for (;;) {
    try {
      return await attempt();
    } catch (thrown) {
      const err = damagedCache(thrown);
      if (!(err instanceof CachedTreeChanged)) throw thrown;
      const again = retired.has(err.dir);
      retired.add(err.dir);
      await retireTree(err.dir);
      const what = err.message.replace(/\.$/, "");
      // The same tree changed again, unpacked anew: something keeps writing into the cache.
      if (again) throw new UserError(`${what}, twice; the environment was not built.`);
      warn(
        `${what}; it is unpacked again.` +
          (err.edited
            ? " An edit in an environment that hardlinks the cache's files reaches the cache and every environment linked to them: rebuild those, or keep environments apart with --link-mode copy."
            : ""),
      );
      await undo();
    }
  }
}

/** `dest` is there already; `during` when it appeared while the environment was being built. */
function folderTaken(dest: string, during = false): UserError {
  const when = during ? " (made while this build ran)" : "";
  return new UserError(`${dest} already exists${when}; pick a new folder or remove it first.`);
}

/** buildEnv's work, from a clean start; CachedTreeChanged when a tree of the cache changed. */
async function buildOnce(
  wanted: LockedPackage[],
  info: InterpreterInfo,
  final: string,
  opts: BuildOptions,
  dest: string,
): Promise<EnvLayout> {
  const tmp = scratchFor(final, randomBytes(4).toString("hex"));
  const release = holdScratch(tmp);
  try {
    await mkdir(tmp).catch((err: NodeJS.ErrnoException) => {
      const why =
        err.code === "ENOENT"
          ? `the folder ${dirname(final)} does not take new entries`
          : whyUnreadable(err);
      throw new UserError(`Cannot create ${final}: ${why} (${err.code}).`);
    });
    // As pip installs dependencies before what needs them, a package the user asked for wins
    // when two wheels ship the same file.
    const rank = wanted.map((p, i) => (p.requested ? wanted.length + i : i));
    let installed = 0;
    const placing = {
      linkMode: opts.linkMode ?? defaultLinkMode(),
      installed: () => opts.progress?.(++installed, wanted.length),
      // Two wheels writing one file, or an asked-for link mode that cannot be used here.
      warn,
    };
    let failure: { error: unknown } | undefined;
    const failed = (error: unknown) => {
      failure ??= { error };
    };
    // Each wheel is installed as soon as it is unpacked (and the environment's folders are
    // there), while the next ones unpack.
    let batch: BatchInstall | undefined;
    const arrived: number[] = [];
    const unpacked: UnpackedWheel[] = [];
    const origins: (string | undefined)[] = [];
    const install = (i: number) => {
      try {
        const p = wanted[i] as LockedPackage;
        batch?.add(unpacked[i] as UnpackedWheel, rank[i] as number, p.requested, origins[i]);
      } catch (err) {
        failed(err);
      }
    };
    const wheels = lockedWheels(wanted, info, opts, [], (i, w, directUrl) => {
      unpacked[i] = w;
      origins[i] = directUrl;
      if (batch) install(i);
      else arrived.push(i);
    }).catch(failed);
    let layout: EnvLayout | undefined;
    let glibc: string | undefined;
    try {
      ({ layout, glibc } = await envFolders(tmp, info, opts));
      batch = new BatchInstall(layout, placing);
      for (const i of arrived) install(i);
    } catch (err) {
      failed(err);
    }
    // Nothing may still be writing into `tmp` when it is removed below.
    await wheels;
    await batch?.finish().catch(failed);
    if (failure) throw failure.error;
    if (!layout) throw new Error("no environment folders were made");
    if (opts.compile && !opts.venvBase) {
      const { compileBytecode } = await import("../install/compile.js");
      await compileBytecode(layout);
    }
    await writeFileAtomic(
      join(tmp, ENV_MARKER),
      `${JSON.stringify(
        {
          created_by: `pyferry ${VERSION}`,
          python: info.version,
          bundled: opts.bundlePython === true,
          // The newest glibc symbol version the bundled interpreter needs, for remote checks.
          ...(glibc ? { glibc } : {}),
          packages: wanted.map((p, i) => `${p.name}==${p.version || unpacked[i]?.version}`),
        },
        null,
        2,
      )}\n`,
    );
    // rename(2) would silently replace an empty folder made meanwhile by someone else.
    if (lstatSync(final, { throwIfNoEntry: false })) throw folderTaken(dest, true);
    await rename(tmp, final).catch((err: NodeJS.ErrnoException) => {
      const code = err.code ?? "";
      if (["ENOTEMPTY", "EEXIST", "ENOTDIR", "EISDIR"].includes(code)) {
        throw folderTaken(dest, true);
      }
      throw err;
    });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    release();
  }
  return layoutFor(final, majorMinor(info.version));
}

/**
 * The interpreter and folders of a new environment at `tmp`, with nothing installed yet; for a
 * bundled interpreter, the newest glibc symbol version it needs.
 */
async function envFolders(
  tmp: string,
  info: InterpreterInfo,
  opts: BuildOptions,
): Promise<{ layout: EnvLayout; glibc?: string }> {
  if (opts.bundlePython) {
    const { bundlePython } = await import("../install/bundled-python.js");
    const { glibc } = await bundlePython(info, tmp);
    // The bundle's own interpreter sits where a venv's would: bin/python.
    if (!existsSync(join(tmp, "bin", "python")))
      await symlink("python3", join(tmp, "bin", "python"));
    // A bundled interpreter is activated like a venv's (its own sys.prefix is the folder).
    await writeActivateScripts(join(tmp, "bin"));
    const layout = layoutFor(tmp, majorMinor(info.version));
    return glibc ? { layout, glibc } : { layout };
  }
  if (opts.venvBase) return { layout: await writeVenv(tmp, opts.venvBase) };
  return { layout: await createVenv(tmp, info) };
}

/** Where to get the file a locked package installs from. */
function lockedFile(p: LockedPackage, ranks: Map<string, number>, lockDir: string): DistFile {
  if (p.source?.kind === "archive" && p.source.subdirectory !== undefined) {
    throw new UserError(
      `The lock's ${p.name} is a project in the subdirectory ${p.source.subdirectory} of an archive, and pyferry builds archives from their top folder only.`,
    );
  }
  const file = installFile(p, ranks);
  return {
    url: lockedFileUrl(file, lockDir),
    filename: file.name,
    sha256: file.sha256,
    ...(file.size !== undefined ? { size: file.size } : {}),
  };
}

/**
 * The locked packages as unpacked wheels, fetched or built (from sdists, folders, checkouts);
 * `ready` hears of each, with the direct_url.json of one locked by direct reference. `building`
 * is the chain of packages whose build environments these are, to stop one needing itself.
 */
async function lockedWheels(
  packages: LockedPackage[],
  info: InterpreterInfo,
  opts: BuildOptions,
  building: string[],
  ready: (index: number, wheel: UnpackedWheel, directUrl?: string) => void = () => {},
): Promise<UnpackedWheel[]> {
  const ranks = tagRanks(targetTagList(targetFromInterpreter(info)));
  const lockDir = opts.lockDir ?? process.cwd();
  // Folders and checkouts have no file: they are built below.
  const files = packages.map((p) => (builtHere(p) ? undefined : lockedFile(p, ranks, lockDir)));
  // A wheel unpacked before needs neither fetching nor hashing again: its tree is keyed by hash.
  const unpacked = await Promise.all(
    files.map((f) => (f?.filename.endsWith(".whl") ? findUnpacked(f.sha256) : undefined)),
  );
  unpacked.forEach((w, k) => {
    const file = files[k] as DistFile;
    const other = w && otherWheel(w, file.filename);
    if (other) {
      throw new UserError(
        `The lock's file for ${packageLabel(packages[k] as LockedPackage)} (${file.filename}) has sha256 ${file.sha256}, that of ${other}; the lock is wrong.`,
      );
    }
  });
  const origins = packages.map((p) => (builtHere(p) ? undefined : directUrl(p, lockDir)));
  unpacked.forEach((w, k) => {
    if (w) ready(k, w, origins[k]);
  });
  // A local wheel is hashed by the thread that unpacks it, so that the threads start at once
  // and the hashing of one overlaps the unpacking of another.
  const local = (f: DistFile) => f.filename.endsWith(".whl") && f.url.startsWith("file:");
  // Their size, known without reading them, is checked here all the same.
  await Promise.all(files.map((f, k) => (f && !unpacked[k] && local(f) ? checkLocalSize(f) : 0)));
  const todo = files.filter((f, k): f is DistFile => f !== undefined && !unpacked[k] && !local(f));
  // A lock names files, not sources: a private index's credentials come from its configuration.
  if (todo.length > 0) knowCredentials(sourceUrls(opts.index ?? loadPipSettings()));
  const fetched = await fetchMany(todo);
  let next = 0;
  const paths = files.map((f, k) =>
    !f || unpacked[k] ? "" : local(f) ? fileURLToPath(f.url) : (fetched[next++] as string),
  );
  const wheels: { path: string; sha256: string; verified: boolean }[] = [];
  const packageOf: number[] = [];
  // One build at a time: a backend may use every core, and builds nest (build requirements).
  const buildAll = async (outDir?: string) => {
    for (const [k, p] of packages.entries()) {
      const file = files[k];
      const path = paths[k] as string;
      if (unpacked[k]) continue;
      packageOf.push(k);
      if (file?.filename.endsWith(".whl")) {
        // fetchMany hashed every file it returned, whether it copied it or read it in place.
        wheels.push({ path, sha256: file.sha256, verified: !local(file) });
        continue;
      }
      const chain = [...building, p.name];
      if (building.includes(p.name)) {
        throw new UserError(
          `Building ${p.name} from source needs ${p.name} itself built first (${chain.join(" -> ")}).`,
        );
      }
      const deps = buildDeps(info, opts, chain);
      let built: { wheel: string; sha256: string };
      if (builtHere(p)) {
        const direct = await buildDirect(p, lockDir, deps, outDir as string);
        built = { wheel: direct.wheel, sha256: await sha256File(direct.wheel) };
        origins[k] = direct.directUrl;
      } else {
        const { filename, sha256 } = file as DistFile;
        const { buildWheelFromSdist } = await import("../install/sdist.js");
        built = await buildWheelFromSdist({ path, sha256, filename }, info, deps);
      }
      checkBuilt(p, built.wheel);
      wheels.push({ path: built.wheel, sha256: built.sha256, verified: false });
    }
    await unpackMany(wheels, (j, w) => {
      const k = packageOf[j] as number;
      unpacked[k] = w;
      ready(k, w, origins[k]);
    });
  };
  // Wheels built from folders and checkouts are kept only until they are unpacked.
  if (packages.some(builtHere)) await inTempDir("pyferry-built-", buildAll);
  else await buildAll();
  return unpacked as UnpackedWheel[];
}

/** What is built from source must be the project and version the lock names. */
function checkBuilt(p: LockedPackage, wheel: string): void {
  const w = parseWheelFilename(basename(wheel));
  const asLocked = p.version === "" || compareVersions(w.version, p.version) === 0;
  if (w.normalized !== p.name || !asLocked) {
    throw new UserError(
      `The lock's ${packageLabel(p)} built ${w.name} ${w.version}, another ${w.normalized === p.name ? "version" : "project"}.`,
    );
  }
}

/** Build environments for sdists: their requirements resolved and installed by pyferry, no pip. */
export function buildDeps(
  info: InterpreterInfo,
  opts: BuildOptions = {},
  building: string[] = [],
): BuildDeps {
  return async (requirements, envDir) => {
    const { lock } = await lockRequirements(requirements, info, opts.index ?? loadPipSettings());
    return mendingCache(
      async () => {
        const unpacked = await lockedWheels(selectPackages(lock, info), info, opts, building);
        const layout = await createVenv(envDir, info);
        await installAll(unpacked, layout);
        return layout;
      },
      () => rm(envDir, { recursive: true, force: true }),
    );
  };
}

/**
 * An install that met a file missing from a tree of the cache (removed after it was looked
 * at): CachedTreeChanged for that tree. Other errors are returned as they are.
 */
function damagedCache(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  const root = `${cachePaths().unpacked}/`;
  if (e?.code !== "ENOENT" || typeof e.path !== "string" || !e.path.startsWith(root)) return err;
  const dir = e.path.slice(0, root.length + 64);
  const lost = e.path.slice(dir.length + 1);
  return new CachedTreeChanged(dir, dir, lost ? `${lost} is missing` : "it is gone");
}

/**
 * What a choice of extras and groups adds to a cached environment's key: nothing for the lock's
 * default selection, so environments built before choices existed keep their keys.
 */
function choiceKey(choice: LockChoice | undefined): string {
  const names = (xs: string[] | undefined) => [...new Set((xs ?? []).map(normalizeName))].sort();
  const extras = names(choice?.extras);
  const groups = names(choice?.groups);
  if (extras.length === 0 && groups.length === 0 && !choice?.noDefaultGroups) return "";
  return `\0${JSON.stringify({ extras, groups, noDefaultGroups: choice?.noDefaultGroups === true })}`;
}

/** An environment for this lock and interpreter from the cache, built once. */
export async function cachedEnv(
  lockText: string,
  lock: Lock,
  info: InterpreterInfo,
  opts: BuildOptions,
): Promise<{ dir: string; python: string }> {
  const key = createHash("sha256")
    .update(
      `${lockText}\0${info.realPath}\0${info.version}\0${opts.bundlePython === true}\0${opts.compile === true}\0${JSON.stringify(opts.venvBase ?? null)}${choiceKey(opts.choice)}`,
    )
    .digest("hex")
    .slice(0, 32);
  useCache();
  const dir = join(cacheDir(), "envs", key);
  for (;;) {
    // Callers in this process asking at once (a deploy plans many hosts) share one build.
    let pending = building.get(dir);
    if (!pending) {
      pending = ensureEnv(dir, () => buildEnv(lock, info, dir, opts));
      building.set(dir, pending);
      pending.catch(() => building.delete(dir));
    }
    await pending;
    // Each caller claims it for itself: a prune may have removed it since this process built it.
    if (claimEnv(dir)) return { dir, python: join(dir, "bin", "python") };
    if (building.get(dir) === pending) building.delete(dir);
  }
}

/**
 * The cached environment `dir` claimed, or else built by `build` under its lock. The lock is
 * the one `cache prune` holds while it has the marker aside: a claim that failed because of it
 * waits here, then claims the environment the prune kept, or builds again what it removed. No
 * environment is published at `dir` while a prune decides, so none it did not judge is removed.
 */
async function ensureEnv(dir: string, build: () => Promise<unknown>): Promise<void> {
  const marker = join(dir, ENV_MARKER);
  for (;;) {
    if (claimEnv(dir)) return;
    await makeDirs(dirname(dir));
    const lock = await acquireLock(`${dir}.lock`, { done: async () => existsSync(marker) });
    // Published, or put back by a prune, meanwhile: claim it like any finished environment.
    if (!lock) continue;
    try {
      // A prune stopped while deciding left the marker aside; the environment is as it was.
      await rename(join(dir, ENV_RETIRING), marker).catch(() => undefined);
      if (claimEnv(dir)) return;
      // A folder without its marker was never published whole: builds publish it along.
      await retireTree(dir);
      try {
        await build();
      } catch (err) {
        // Another process that also thought it held the lock published first: that is success.
        if (!claimEnv(dir)) throw err;
      }
      return;
    } finally {
      await lock.release();
    }
  }
}

/** Environments being built (or checked) by this process, by folder. */
const building = new Map<string, Promise<void>>();
