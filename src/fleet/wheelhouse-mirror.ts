/**
 * Filling a wheelhouse from the package index: requirements resolved with pyferry's resolver
 * for one target (the default interpreter, `--python`, or a `--platform` description), every
 * locked file fetched with its sha256 verified, and the wheels added together. A project with
 * only an sdist is built into a wheel by the target interpreter; with `--platform` there is no
 * interpreter to build with, and such a project is refused.
 */
import type { IndexSettings } from "../index/pip-config.js";
import { type DistFile, fetchDist, fetchMany } from "../install/cache.js";
import { buildWheelFromSdist } from "../install/sdist.js";
import { buildDeps, interpreterFor, lockRequirements } from "../pipeline/build.js";
import { evaluateMarker, parseMarker } from "../python/marker.js";
import type { Requirement } from "../python/requirement.js";
import { tagRanks } from "../python/tags.js";
import { readTarget, targetFromInterpreter, targetTagList } from "../python/target.js";
import { type LockedFile, type LockedPackage, lockedFileUrl } from "../resolve/lock.js";
import { bestWheel } from "../resolve/lock-select.js";
import { UserError } from "../util/errors.js";
import { type AddOutcome, addWheels, type Wheelhouse } from "./wheelhouse.js";

export interface MirrorOptions {
  /** Interpreter to resolve for (version or path); default the active one. */
  python?: string;
  /** A target description file (python/target.ts) to resolve for instead of an interpreter. */
  platform?: string;
  settings: IndexSettings;
  prereleases?: boolean;
  mixedSources?: boolean;
  replace?: boolean;
  onProgress?: (message: string) => void;
}

function asDist(file: LockedFile): DistFile {
  return { url: lockedFileUrl(file, process.cwd()), filename: file.name, sha256: file.sha256 };
}

/** Resolve `requirements` and add every package of the result to `wh`, as wheels. */
export async function mirrorRequirements(
  wh: Wheelhouse,
  requirements: Requirement[],
  opts: MirrorOptions,
): Promise<AddOutcome[]> {
  if (requirements.length === 0) {
    throw new UserError("Nothing to mirror: give requirements or -r FILE.", 2);
  }
  const info = opts.platform ? undefined : await interpreterFor({}, opts.python);
  const target = info ? targetFromInterpreter(info) : await readTarget(opts.platform as string);
  opts.onProgress?.("Resolving");
  const { lock } = await lockRequirements(requirements, info ?? target, opts.settings, {
    ...(opts.prereleases ? { prereleases: true } : {}),
    ...(opts.mixedSources ? { mixedSources: true } : {}),
    ...(info ? { interpreter: info } : {}),
  });
  const ranks = tagRanks(targetTagList(target));
  const wheels: DistFile[] = [];
  const sdists: { p: LockedPackage; file: DistFile }[] = [];
  for (const p of lock.packages) {
    if (p.marker && !evaluateMarker(parseMarker(p.marker), target.markerEnv)) continue;
    const best = bestWheel(p.wheels, ranks);
    if (best) wheels.push(asDist(best));
    else if (p.sdist && info) sdists.push({ p, file: asDist(p.sdist) });
    else if (p.sdist) {
      throw new UserError(
        `${p.name} ${p.version} has only an sdist, which pyferry builds only for a local interpreter; mirror without --platform, or build it there and add the wheel.`,
      );
    } else {
      throw new UserError(`${p.name} ${p.version} has no file for the target in the lock.`);
    }
  }
  opts.onProgress?.("Downloading");
  const paths = await fetchMany(wheels);
  for (const { p, file } of sdists) {
    if (!info) break;
    opts.onProgress?.(`Building ${p.name} ${p.version}`);
    const path = await fetchDist(file);
    const deps = buildDeps(info, { index: opts.settings }, [p.name]);
    const built = await buildWheelFromSdist(
      { path, sha256: file.sha256, filename: file.filename },
      info,
      deps,
    );
    paths.push(built.wheel);
  }
  opts.onProgress?.("Adding");
  return addWheels(wh, paths, { via: "mirror", ...(opts.replace ? { replace: true } : {}) });
}
