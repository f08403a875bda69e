/**
 * The actions behind lock, env create, pack, exec and cache (loaded only when they run). What
 * only some of them need (the analyzer, the bundle code) is imported where it is used, so that
 * installing from a lock loads no more than it runs.
 */
import { existsSync, lstatSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { basename, dirname, extname, join, relative, resolve, sep } from "node:path";
import type { ManifestHead } from "../bundle/manifest.js";
import { analyzeOptions, indexSettings } from "../cli/analyze.js";
import type { BuildFlags } from "../cli/build-commands.js";
import { warn, writeJson } from "../cli/output.js";
import { loadPipSettings } from "../index/pip-config.js";
import { cacheInfo } from "../install/cache.js";
import type { LinkMode } from "../install/link-mode.js";
import { launcherScript } from "../install/scripts.js";
import type { InterpreterInfo } from "../python/interpreter.js";
import { normalizeName } from "../python/names.js";
import { tagKey } from "../python/tags.js";
import { readTarget, targetFromInterpreter, targetTagList } from "../python/target.js";
import { majorMinor } from "../python/version.js";
import { type Lock, readLock } from "../resolve/lock.js";
import { type LockChoice, selectPackages } from "../resolve/lock-select.js";
import { UserError } from "../util/errors.js";
import { inputAt, planOutput, sameName, writeOutputFile } from "../util/output-file.js";
import { progress } from "../util/progress.js";
import { readText } from "../util/read-text.js";
import { treeBytes } from "../util/tree-bytes.js";
import { count, mib } from "../util/units.js";
import { VERSION } from "../version.js";
import {
  buildEnv,
  cachedEnv,
  interpreterFor,
  type LockedSets,
  lockRequirements,
  prepareUnpacking,
} from "./build.js";
import type { BuildInput } from "./inputs.js";
import { checkPackName } from "./pack-folder.js";
import { projectScripts } from "./project-scripts.js";

/**
 * Names of the files inputs are given as: one that is missing is a mistyped path, not a
 * project. A requirement with a URL or a marker ("@", ";") is never taken for a path.
 */
const INPUT_FILE = /\.(py|pyw|ipynb|json|txt|in|toml|whl)$/i;

/**
 * Whether an input that exists as a path could as well name a project on an index (`tabulate`
 * beside a folder of that name): a project folder of its own (pyproject.toml, setup.py) is
 * clearly meant as the folder.
 */
function alsoAProjectName(input: string): boolean {
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(input) || INPUT_FILE.test(input)) {
    return false;
  }
  return !["pyproject.toml", "setup.py"].some((f) => existsSync(join(input, f)));
}

/**
 * Merge every input: paths (spec, requirements, script, folder) and requirement strings.
 * `read` lists every file read: each path, a program's local modules, each -r file.
 */
async function gatherInputs(
  inputs: string[],
  flags: BuildFlags,
): Promise<BuildInput & { read: string[] }> {
  const { fromRequirementsTxt, fromStrings, readInput } = await import("./inputs.js");
  const parts: BuildInput[] = [];
  const strings: string[] = [];
  const read: string[] = [...(flags.requirement ?? [])];
  for (const i of inputs) {
    if (existsSync(i)) {
      if (alsoAProjectName(i)) {
        warn(
          `${i} is read as the ${lstatSync(i).isDirectory() ? "folder" : "file"} ./${i}; for the project of that name, write "${i}>=0".`,
        );
      }
      const part = await readInput(i, analyzeOptions(flags));
      parts.push(part);
      const root = part.root ?? dirname(i);
      read.push(i, ...(part.appFiles ?? []).map((f) => join(root, f)));
    } else if (!/[@;]/.test(i) && (i.includes("/") || INPUT_FILE.test(i)))
      throw new UserError(`${i} does not exist.`);
    else strings.push(i);
  }
  for (const r of flags.requirement ?? []) {
    parts.push(fromRequirementsTxt(await readText(r, "the requirements file"), r));
  }
  if (strings.length > 0) parts.push(fromStrings(strings));
  if (parts.length === 0)
    throw new UserError(
      "Nothing to lock: give a spec, a requirements file, a script or requirement strings.",
      2,
    );
  const merged: BuildInput & { read: string[] } = {
    requirements: parts.flatMap((p) => p.requirements),
    source: parts.map((p) => p.source).join(", "),
    read,
  };
  const withPython = parts.find((p) => p.python);
  const requiresPython = parts.find((p) => p.requiresPython)?.requiresPython;
  if (withPython?.python) {
    merged.python = withPython.python;
    merged.pythonSource = withPython.source;
  }
  if (requiresPython) merged.requiresPython = requiresPython;
  return merged;
}

export async function lockCommand(inputs: string[], flags: BuildFlags): Promise<void> {
  if (flags.python && flags.platform) {
    throw new UserError("Give --python or --platform, not both.", 2);
  }
  const sets = await projectSets(inputs, flags);
  const input = await gatherInputs(inputs, flags);
  const output = resolve(flags.output ?? "pylock.toml");
  const plan = await planOutput(output);
  const own = inputAt(output, input.read);
  if (own !== undefined) {
    throw new UserError(
      `-o ${flags.output ?? "pylock.toml"} is ${sameName(output, own)}a file being locked; write the lock elsewhere.`,
      2,
    );
  }
  const bar = progress();
  try {
    bar.update("Resolving");
    // Without --platform the interpreter is here, and can build sdists whose dependencies
    // only a build tells.
    const info = flags.platform ? undefined : await interpreterFor(input, flags.python);
    const target = info ? targetFromInterpreter(info) : await readTarget(flags.platform as string);
    const { text, lock } = await lockRequirements(
      input.requirements,
      target,
      indexSettings(flags),
      {
        ...(sets ? { sets } : {}),
        ...(flags.pre ? { prereleases: true } : {}),
        ...(flags.mixedSources ? { mixedSources: true } : {}),
        ...(info ? { interpreter: info } : {}),
        lockDir: dirname(output),
      },
    );
    await writeOutputFile(output, text, plan);
    bar.done();
    process.stderr.write(
      `Locked ${count(lock.packages.length, "package")} for Python ${target.pythonVersion} into ${flags.output ?? "pylock.toml"}.\n`,
    );
  } finally {
    bar.done();
  }
}

/**
 * The extras and dependency groups of the one project among `inputs` that --extra,
 * --all-extras, --group and --all-groups name, with their requirements; undefined when none
 * of those flags is given.
 */
async function projectSets(
  inputs: string[],
  flags: BuildFlags,
  orLock = false,
): Promise<LockedSets | undefined> {
  if (!flags.extra && !flags.group && !flags.allExtras && !flags.allGroups) return undefined;
  const projects = inputs.filter(
    (i) => basename(i) === "pyproject.toml" || (existsSync(i) && lstatSync(i).isDirectory()),
  );
  if (projects.length !== 1) {
    throw new UserError(
      `--extra and --group name extras and dependency groups of a project${orLock ? " (or of a lock, with --lock)" : ""}: give ${projects.length === 0 ? "its folder" : "one project folder, not several"}.`,
      2,
    );
  }
  const project = projects[0] as string;
  const path = basename(project) === "pyproject.toml" ? project : join(project, "pyproject.toml");
  if (!existsSync(path)) {
    throw new UserError(
      `${project} has no pyproject.toml, so it has no extras or dependency groups.`,
      2,
    );
  }
  const { parsePyproject } = await import("../analyze/declared.js");
  const { extraRequirements, groupRequirements, readDependencySets } = await import(
    "../python/dependency-sets.js"
  );
  const declared = readDependencySets(
    parsePyproject(await readText(path, "the project's pyproject.toml"), path),
    path,
  );
  const extras = flags.allExtras ? [...declared.extras.keys()] : (flags.extra ?? []);
  const groups = flags.allGroups ? [...declared.groups.keys()] : (flags.group ?? []);
  return {
    extras: new Map(extras.map((e) => [normalizeName(e), extraRequirements(declared, e)])),
    groups: new Map(groups.map((g) => [normalizeName(g), groupRequirements(declared, g)])),
  };
}

/** The extras and groups picked from a lock (--all-extras and --all-groups: every one it lists). */
function lockChoice(flags: BuildFlags, lock: Lock): LockChoice | undefined {
  const noDefaultGroups = flags.defaultGroups === false;
  const extras = flags.allExtras ? (lock.extras ?? []) : flags.extra;
  const groups = flags.allGroups ? (lock.dependencyGroups ?? []) : flags.group;
  if (!extras && !groups && !noDefaultGroups) return undefined;
  return {
    ...(extras ? { extras } : {}),
    ...(groups ? { groups } : {}),
    ...(noDefaultGroups ? { noDefaultGroups } : {}),
  };
}

export async function envCreateCommand(
  dir: string,
  inputs: string[],
  flags: BuildFlags,
): Promise<void> {
  if (dir === "") throw new UserError("The environment's folder name is empty.", 2);
  const link = lstatSync(dir, { throwIfNoEntry: false });
  if (link) {
    const what = link.isSymbolicLink() ? " (as a symbolic link)" : "";
    throw new UserError(`${dir} already exists${what}; pick a new folder or remove it first.`);
  }
  const bar = progress();
  try {
    let info: InterpreterInfo;
    let lock: Lock;
    let lockDir: string | undefined;
    let choice: LockChoice | undefined;
    if (flags.lock) {
      if (inputs.length > 0 || flags.requirement)
        throw new UserError("--lock installs exactly the lock; give no other inputs.", 2);
      const lockText = await readText(flags.lock, "the lock file");
      lock = readLock(lockText, flags.lock);
      choice = lockChoice(flags, lock);
      if (!/^1(\.0+)?$/.test(lock.lockVersion)) {
        warn(
          `${flags.lock} has lock-version ${lock.lockVersion}, and this pyferry knows 1.0; it reads what 1.0 defines.`,
        );
      }
      lockDir = dirname(resolve(flags.lock));
      prepareUnpacking(lock);
      info = await interpreterFor(
        {
          ...(lock.requiresPython ? { requiresPython: lock.requiresPython } : {}),
          ...(lock.target ? { python: majorMinor(lock.target.pythonVersion) } : {}),
        },
        flags.python,
      );
    } else {
      if (flags.defaultGroups === false) {
        throw new UserError("--no-default-groups picks from a lock; give --lock.", 2);
      }
      const sets = await projectSets(inputs, flags, true);
      const input = await gatherInputs(inputs, flags);
      info = await interpreterFor(input, flags.python);
      bar.update("Resolving");
      ({ lock } = await lockRequirements(input.requirements, info, indexSettings(flags), {
        ...(flags.mixedSources ? { mixedSources: true } : {}),
        ...(sets ? { sets } : {}),
      }));
      if (sets) choice = { extras: [...sets.extras.keys()], groups: [...sets.groups.keys()] };
    }
    bar.update("Installing");
    const layout = await buildEnv(lock, info, dir, {
      progress: (done, total) => bar.update("Installing", done, total),
      ...(flags.bundlePython ? { bundlePython: true } : {}),
      ...(flags.compile ? { compile: true } : {}),
      ...(flags.linkMode ? { linkMode: flags.linkMode as LinkMode } : {}),
      ...(lockDir ? { lockDir } : {}),
      ...(choice ? { choice } : {}),
      index: indexSettings(flags),
    });
    bar.done();
    process.stderr.write(
      `Created ${dir} with ${count(selectPackages(lock, info, choice).length, "package")} (Python ${info.version}${flags.bundlePython ? ", bundled" : ""}); its interpreter is ${layout.python}.\n`,
    );
  } finally {
    bar.done();
  }
}

/** A bundle: the environment (with its interpreter unless told not to) and the app's files. */
export async function packCommand(path: string, flags: BuildFlags): Promise<void> {
  if (flags.name !== undefined) checkPackName(flags.name);
  const settings = indexSettings(flags);
  const opts = { ...analyzeOptions(flags), index: settings };
  const { readInput, warnNamed } = await import("./inputs.js");
  const input = await readInput(path, opts);
  // "." or "proj/" names the folder itself.
  const name = flags.name ?? basename(resolve(path), extname(path));
  const output = resolve(flags.output ?? `${name}.tar.gz`);
  const outputPlan = await planOutput(output);
  const root = input.root ?? (existsSync(path) && !path.endsWith(".py") ? path : dirname(path));
  if (input.namedFiles) {
    const where = input.root === path ? "in it" : "beside it";
    warnNamed(basename(resolve(path)), input.namedFiles, "pack", where);
  }
  const sources = [path, ...(input.appFiles ?? []).map((f) => join(root, f))];
  const own = inputAt(output, sources);
  if (own !== undefined)
    throw new UserError(
      `-o ${flags.output ?? output} is ${sameName(output, own)}a file being packed; write the bundle elsewhere.`,
      2,
    );
  // Read before any work: a malformed [project.scripts] is said at once.
  const generated = input.project ? projectLaunchers(root, input.importRoots ?? []) : [];
  const bar = progress();
  try {
    const info = await interpreterFor(input, flags.python);
    bar.update("Resolving");
    const { text, lock, target } = await lockRequirements(input.requirements, info, settings);
    bar.update("Building the environment");
    const bundle = flags.bundlePython !== false;
    const env = await cachedEnv(text, lock, info, {
      bundlePython: bundle,
      index: settings,
      progress: (done, total) => bar.update("Building the environment", done, total),
      ...(flags.compile ? { compile: true } : {}),
    });
    bar.update("Packing");
    const { packBundle } = await import("../bundle/pack.js");
    const result = await packBundle({
      envDir: env.dir,
      appFiles: (input.appFiles ?? []).map((f) => ({ source: join(root, f), dest: f })),
      manifest: {
        ...manifestHead(name, info, text, targetTagList(target).map(tagKey), bundle),
        ...(input.importRoots?.length
          ? { app: { root: "app", import_roots: input.importRoots } }
          : {}),
        ...(path.endsWith(".py")
          ? { script: `app/${relative(root, path).split(sep).join("/")}` }
          : {}),
      },
      output,
      outputPlan,
      ...(flags.compile ? { includeBytecode: true } : {}),
      generated,
    });
    bar.done();
    process.stderr.write(
      `Packed ${name}: ${count(selectPackages(lock, info).length, "package")}, ${count(input.appFiles?.length ?? 0, "app file")}, ${mib(result.bytes)} -> ${flags.output ?? `${name}.tar.gz`}\n`,
    );
  } finally {
    bar.done();
  }
}

/**
 * Launchers in env/bin for the scripts of the project at `root`, which is packed into app/ and
 * not installed: they find app/ and its import roots from their own place.
 */
function projectLaunchers(
  root: string,
  importRoots: readonly string[],
): { path: string; data: Buffer; mode: 0o755 }[] {
  const roots = ["../../app", ...importRoots.map((r) => `../../app/${r}`)];
  return projectScripts(root).map((ep) => ({
    path: `env/bin/${ep.name}`,
    data: Buffer.from(launcherScript(ep, roots)),
    mode: 0o755,
  }));
}

export function manifestHead(
  name: string,
  info: InterpreterInfo,
  lock: string,
  tags: string[],
  bundled: boolean,
): ManifestHead {
  return {
    format: 1,
    name,
    created_by: `pyferry ${VERSION}`,
    python: {
      version: info.version,
      implementation: info.implementation,
      abi: info.abiTag ?? "",
      bundled,
    },
    platform: {
      tags: [...new Set(tags.map((t) => t.split("-")[2] as string))],
      machine: info.machine,
    },
    lock,
    app: { root: "app" },
    env: { root: "env", python: "env/bin/python" },
  };
}

export async function execCommand(bundle: string, command: string[]): Promise<void> {
  // execInBundle has already re-raised a signal the command died of; what is left is a status.
  const { execInBundle } = await import("../bundle/exec.js");
  process.exitCode = await execInBundle(bundle, command);
}

export async function cacheInfoCommand(json: boolean): Promise<void> {
  const info = await cacheInfo();
  // The stages above the installer keep their own folders: they count too.
  const stages: Record<string, { count: number; bytes: number }> = {};
  for (const dir of ["built", "envs", "bundles"] as const) {
    const d = join(info.root, dir);
    const names = existsSync(d) ? (await readdir(d)).filter((e) => !e.startsWith(".")) : [];
    // Locks are not bundles, and unfinished unpackings are unfinished writes.
    const partial = names.filter((e) => e.includes(".partial."));
    const entries = names.filter((e) => !e.endsWith(".lock") && !e.includes(".partial."));
    info.partial.count += partial.length;
    stages[dir] = { count: entries.length, bytes: await treeBytes(d) };
  }
  const all = { ...info, ...stages };
  if (json) {
    writeJson(all);
    return;
  }
  const rows: [string, { count: number; bytes?: number }][] = [
    ["downloaded wheels", all.wheels],
    ["unpacked wheels", all.unpacked],
    ["wheels built from sdists", stages.built as { count: number; bytes: number }],
    ["environments (run/pack)", stages.envs as { count: number; bytes: number }],
    ["unpacked bundles (exec)", stages.bundles as { count: number; bytes: number }],
    ["unfinished writes", { count: all.partial.count }],
  ];
  const width = Math.max(...rows.map(([, v]) => String(v.count).length));
  const lines = [`cache: ${info.root}`];
  for (const [label, v] of rows)
    lines.push(
      `  ${label.padEnd(26)} ${String(v.count).padStart(width)}${v.bytes !== undefined ? `  ${mib(v.bytes).padStart(12)}` : ""}`,
    );
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** What `cache prune` says it removed, by kind (singular, plural). */
const KIND_WORDS: Record<string, [string, string]> = {
  wheel: ["downloaded wheel", "downloaded wheels"],
  unpacked: ["unpacked wheel", "unpacked wheels"],
  partial: ["unfinished write", "unfinished writes"],
  built: ["wheel built from an sdist", "wheels built from sdists"],
  env: ["environment", "environments"],
  bundle: ["unpacked bundle", "unpacked bundles"],
  record: ["run record", "run records"],
};

/** cache prune --json's kinds: cache info's keys (run records, which info does not count, as "records"). */
const JSON_KINDS: Record<string, string> = {
  wheel: "wheels",
  env: "envs",
  bundle: "bundles",
  record: "records",
};

export async function cachePruneCommand(
  days: number,
  json: boolean,
  dryRun: boolean,
): Promise<void> {
  const { pruneEverything } = await import("./prune.js");
  const removed = await pruneEverything(days, dryRun);
  const bytes = removed.reduce((sum, r) => sum + r.bytes, 0);
  if (json) {
    // Kinds named as cache info's keys, so the two outputs can be read side by side.
    const named = removed.map((r) => ({ ...r, kind: JSON_KINDS[r.kind] ?? r.kind }));
    writeJson({ dry_run: dryRun, removed: named, bytes });
    return;
  }
  const kinds = new Map<string, number>();
  for (const r of removed) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
  const what = [...kinds].map(([k, n]) => count(n, ...KIND_WORDS[k])).join(", ") || "nothing";
  process.stderr.write(`${dryRun ? "Would remove" : "Removed"} ${what} (${mib(bytes)}).\n`);
}

/** For python_package_create: a spec -> a relocatable environment archive. */
export async function createFromSpec(
  spec: string,
  output: string,
  opts: { mixedSources?: boolean } = {},
): Promise<void> {
  const { readInput } = await import("./inputs.js");
  const settings = loadPipSettings();
  // A script in place of the spec is analyzed as python_package_analyze does: with the index.
  const input = await readInput(spec, { index: settings });
  const outputPlan = await planOutput(output);
  const info = await interpreterFor(input, undefined, "name another version in the spec's python");
  const bar = progress();
  try {
    bar.update("Resolving");
    const { text, lock, target } = await lockRequirements(input.requirements, info, settings, opts);
    bar.update("Building the environment");
    const env = await cachedEnv(text, lock, info, {
      bundlePython: true,
      index: settings,
      progress: (done, total) => bar.update("Building the environment", done, total),
    });
    bar.update("Packing");
    const name = input.name ?? basename(output).replace(/\.tar\.gz$|\.tgz$/, "");
    const { packBundle } = await import("../bundle/pack.js");
    await packBundle({
      envDir: env.dir,
      appFiles: [],
      manifest: manifestHead(name, info, text, targetTagList(target).map(tagKey), true),
      output: resolve(output),
      outputPlan,
    });
  } finally {
    bar.done();
  }
}
