/** The cold path of `pyferry run`: analyze, lock and build, then remember what it depended on. */
import { basename, dirname, join, resolve } from "node:path";
import { installable } from "../analyze/spec.js";
import { runAnalysis } from "../cli/analyze.js";
import { loadPipSettings } from "../index/pip-config.js";
import type { InterpreterInfo } from "../python/interpreter.js";
import { parseRequirement } from "../python/requirement.js";
import { targetFromInterpreter } from "../python/target.js";
import { satisfies } from "../python/version.js";
import { compareDotted } from "../util/dotted.js";
import { UserError } from "../util/errors.js";
import type { Progress } from "../util/progress.js";
import { cachedEnv, interpreterFor, lockRequirements } from "./build.js";
import { namedOnly, warnNamed, warnUnsettled } from "./inputs.js";
import {
  claimEnv,
  interpreterFiles,
  type RunRecord,
  readRecord,
  saveRecord,
  stamp,
} from "./run-cache.js";

export interface PrepareOptions {
  /** Build with a relocatable copy of the interpreter (to ship the environment elsewhere). */
  bundlePython?: boolean;
  /** The glibc of the machine it will run on, when older than this one's: caps wheel tags. */
  glibc?: string;
  /** Take string literals naming existing files as data files of the app. */
  guessFiles?: boolean;
  /**
   * Build for this interpreter on another host (probed there) instead of one here: a venv for
   * it, with wheels for its platform; nothing of it has to run here.
   */
  hostPython?: InterpreterInfo;
  /** A status line for the stages that take a while (the caller clears it). */
  status?: Progress;
  /**
   * The program will run on another machine: the files it names are looked for even without
   * guessFiles, to say which stay behind.
   */
  elsewhere?: boolean;
}

/** The older of two glibc versions ("2.28" < "2.36"). */
export function olderGlibc(a: string | undefined, b: string): string {
  return a && compareDotted(a, b) < 0 ? a : b;
}

export async function prepareRun(
  script: string,
  pythonRequest: string | undefined,
  key: string,
  opts: PrepareOptions = {},
): Promise<RunRecord> {
  const settings = loadPipSettings();
  opts.status?.update(`Analyzing ${basename(script)}`);
  const host = opts.hostPython;
  const report = await runAnalysis(
    script,
    {
      index: settings,
      ...(pythonRequest ? { python: pythonRequest } : {}),
      ...(opts.guessFiles || opts.elsewhere ? { guessFiles: true } : {}),
    },
    // The run's own status line (quiet, or lines of their own, with -v).
    opts.status ? { status: opts.status } : {},
  );
  const dataFiles = opts.guessFiles ? report.data_files : [];
  if (report.kind !== "script") {
    throw new UserError(`pyferry run takes a script; ${script} is a ${report.kind}.`, 2);
  }
  const named = opts.guessFiles ? [] : namedOnly(report.data_files, report.local_files);
  if (named.length > 0) warnNamed(basename(script), named, "send");
  warnUnsettled(report, "running without it", () => "pass it in a # /// script block to decide");
  const requiresPython = report.python.requires;
  if (host && requiresPython && !satisfies(host.version, requiresPython)) {
    throw new UserError(
      `Python ${host.version} (${host.executable} there) does not satisfy requires-python ${requiresPython}.`,
    );
  }
  const info =
    host ??
    (await interpreterFor({ ...(requiresPython ? { requiresPython } : {}) }, pythonRequest));
  const requirements = installable(report).map((r) => r.requirement);
  // An edit that changed no import needs no new lock or environment: the last one still fits.
  const basis = JSON.stringify([
    requirements,
    info.realPath,
    info.version,
    opts.bundlePython === true,
    opts.glibc ?? null,
    opts.guessFiles === true,
  ]);
  const before = readRecord(key);
  let env: { dir: string; python: string };
  if (before?.basis === basis && claimEnv(before.envDir)) {
    env = { dir: before.envDir, python: before.python };
  } else {
    const target = opts.glibc
      ? targetFromInterpreter({ ...info, glibc: olderGlibc(info.glibc, opts.glibc) })
      : info;
    opts.status?.update("Resolving");
    const { text, lock } = await lockRequirements(
      requirements.map((r) => parseRequirement(r)),
      target,
      settings,
      { interpreter: info },
    );
    // Compiled once here: with PYTHONDONTWRITEBYTECODE set, every run would recompile otherwise.
    const venvBase = host && {
      base: host.isVirtualenv ? host.realPath : host.sysExecutable,
      real: host.realPath,
      version: host.version,
      pointerBits: host.pointerBits,
    };
    opts.status?.update("Installing");
    env = await cachedEnv(text, lock, info, {
      progress: (done, total) => opts.status?.update("Installing", done, total),
      // Compiled here only by an interpreter that runs here.
      compile: !venvBase,
      ...(opts.bundlePython ? { bundlePython: true } : {}),
      ...(venvBase ? { venvBase } : {}),
    });
  }
  const root = dirname(resolve(script));
  // A module made later beside the script (NAME.py, or a package NAME/) comes first on
  // sys.path: it turns an unresolved or third-party import into a local one.
  const shadowed = new Set(
    [
      ...report.requirements.flatMap((r) => r.imports),
      ...report.unresolved.map((u) => u.import),
      ...report.ambiguous.map((a) => a.import),
      ...report.stdlib,
    ].map((name) => name.split(".")[0] as string),
  );
  const inputs = [
    ...report.local_files.map((f) => stamp(join(root, f))),
    stamp(join(root, "pyproject.toml")),
    stamp(join(root, "requirements.txt")),
    stamp(info.realPath),
    // Unless the interpreter was named by path, pyenv's version files may choose another.
    ...(pythonRequest?.includes("/") ? [] : interpreterFiles().map(stamp)),
    ...[...shadowed].sort().flatMap((n) => [stamp(join(root, `${n}.py`)), stamp(join(root, n))]),
  ];
  const rec: Omit<RunRecord, "version"> = {
    key,
    inputs,
    python: env.python,
    envDir: env.dir,
    app: { root, files: [...new Set([...report.local_files, ...dataFiles])].sort() },
    basis,
  };
  await saveRecord(rec);
  return { version: 1, ...rec };
}
