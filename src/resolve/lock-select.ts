/**
 * Choosing what to install from a PEP 751 lock, in the order the PEP's installer steps give:
 * the lock's requires-python and environments first, then each package's marker (with the
 * extras and dependency groups asked for), its requires-python, and no two entries of one name.
 * Differential tests hold this to packaging's reference implementation (Pylock.select).
 */
import {
  evaluateMarker,
  type Marker,
  type MarkerEnvironment,
  parseMarker,
} from "../python/marker.js";
import { normalizeName } from "../python/names.js";
import { bestTagRank, parseWheelFilename } from "../python/tags.js";
import { satisfies } from "../python/version.js";
import { UserError } from "../util/errors.js";
import type { Lock, LockedFile, LockedPackage, LockedSource } from "./lock.js";

/** What a user picks from a lock besides the environment: extras and dependency groups. */
export interface LockChoice {
  extras?: string[];
  /** Groups on top of the lock's default-groups (all of them with noDefaultGroups). */
  groups?: string[];
  noDefaultGroups?: boolean;
}

/** The interpreter installed for, as selection needs it (an InterpreterInfo fits). */
export interface SelectFor {
  markerEnv: MarkerEnvironment;
  realPath: string;
  version: string;
}

function describe(t: SelectFor): string {
  return `${t.realPath} (Python ${t.version} on ${t.markerEnv.sys_platform} ${t.markerEnv.platform_machine})`;
}

/** Whether the marker uses the variable `name`. */
function mentions(m: Marker, name: string): boolean {
  if (m.kind !== "compare") return m.items.some((item) => mentions(item, name));
  return [m.left, m.right].some((v) => v.kind === "var" && v.name === name);
}

function offered(kind: string, asked: string[], listed: string[] | undefined): string[] {
  const have = new Set((listed ?? []).map(normalizeName));
  for (const name of asked) {
    if (have.has(normalizeName(name))) continue;
    const what = have.size > 0 ? `it offers ${[...have].sort().join(", ")}` : `it lists none`;
    throw new UserError(`The lock has no ${kind} "${name}" (${what}).`, 2);
  }
  return asked.map(normalizeName);
}

/** The lock's packages to install for `target`, in lock order; UserError where PEP 751 errs. */
export function selectPackages(
  lock: Lock,
  target: SelectFor,
  choice: LockChoice = {},
): LockedPackage[] {
  const extras = offered("extra", choice.extras ?? [], lock.extras);
  const asked = offered("dependency group", choice.groups ?? [], lock.dependencyGroups);
  const groups = [
    ...new Set([...(choice.noDefaultGroups ? [] : (lock.defaultGroups ?? [])), ...asked]),
  ];
  const python = target.markerEnv.python_full_version;
  const label = describe(target);
  if (lock.requiresPython !== undefined && !satisfies(python, lock.requiresPython)) {
    throw new UserError(
      `The lock requires Python ${lock.requiresPython}, and ${label} is not that; pick another interpreter with --python.`,
    );
  }
  const envs = lock.environments;
  if (envs.length > 0 && !envs.some((m) => evaluateMarker(parseMarker(m), target.markerEnv))) {
    throw new UserError(
      `The lock is for ${envs.map((m) => `"${m}"`).join(" or ")}, and ${label} is not; lock again for it (pyferry lock --python ${target.realPath}).`,
    );
  }
  const env: MarkerEnvironment = { ...target.markerEnv, extras, dependency_groups: groups };
  const chosen = new Map<string, LockedPackage>();
  for (const p of lock.packages) {
    const marker = p.marker === undefined ? undefined : parseMarker(p.marker);
    if (marker && mentions(marker, "extra")) {
      throw new UserError(
        `The lock's ${packageLabel(p)} has the marker "${p.marker}", and "extra" means nothing in a lock (PEP 751 writes 'name' in extras).`,
      );
    }
    if (marker && !evaluateMarker(marker, env)) continue;
    if (p.requiresPython !== undefined && !satisfies(python, p.requiresPython)) {
      throw new UserError(
        `The lock's ${packageLabel(p)} requires Python ${p.requiresPython}, and ${label} is not that.`,
      );
    }
    if (chosen.has(p.name)) {
      throw new UserError(
        `The lock has two entries of ${p.name} whose markers both hold for ${label}; it is ambiguous.`,
      );
    }
    chosen.set(p.name, p);
  }
  return [...chosen.values()];
}

/** A direct reference with no file: a folder or a checkout, built where it is installed. */
export type Built = Exclude<LockedSource, { kind: "archive" }>;

/** Whether `p` is built from a folder or a checkout rather than installed from a file. */
export function builtHere(p: LockedPackage): p is LockedPackage & { source: Built } {
  return p.source !== undefined && p.source.kind !== "archive";
}

/** A locked package as messages name it: with its version, when the lock gives one. */
export function packageLabel(p: LockedPackage): string {
  return p.version ? `${p.name} ${p.version}` : p.name;
}

/** The wheel whose best tag ranks first in `ranks` (most preferred first); first on a tie. */
export function bestWheel(
  wheels: LockedFile[],
  ranks: Map<string, number>,
): LockedFile | undefined {
  let best: { file: LockedFile; rank: number } | undefined;
  for (const w of wheels) {
    const rank = bestTagRank(parseWheelFilename(w.name), ranks);
    if (rank !== undefined && (!best || rank < best.rank)) best = { file: w, rank };
  }
  return best?.file;
}

/**
 * The file a package locked by index files (or as an archive) installs from: its best wheel for
 * `ranks` (the interpreter's tags), else its sdist; an archive's own file.
 */
export function installFile(p: LockedPackage, ranks: Map<string, number>): LockedFile {
  if (p.source?.kind === "archive") return p.source.file;
  const file = bestWheel(p.wheels, ranks) ?? p.sdist;
  if (!file) {
    throw new UserError(
      `The lock has no wheel for ${packageLabel(p)} that fits this interpreter's platform, and no sdist.`,
    );
  }
  return file;
}
