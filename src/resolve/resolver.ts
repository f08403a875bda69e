/**
 * Dependency resolution in the PubGrub style: the solver records facts as incompatibilities
 * (sets of terms that cannot all hold), derives what must follow from them (unit
 * propagation), and on a conflict learns a new incompatibility that explains it and jumps
 * back to the decision that caused it, so that no dead end is explored twice. When nothing
 * works, the chain of learned incompatibilities becomes the explanation shown to the user.
 *
 * Every project has a finite, known list of candidate versions, so a term is a bit set over
 * that list plus one bit for "not selected": intersection, union and complement are plain
 * bit operations. Extras are separate packages `name[extra]` that depend on `name` at the same
 * version, so the extra's dependencies are added only where it was asked for.
 */
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type IndexSettings, loadPipSettings } from "../index/pip-config.js";
import type { IndexFile } from "../index/simple.js";
import { MetadataUnavailable, NeedsBuild } from "../index/wheel-metadata.js";
import { evaluateMarker, type Marker, type MarkerEnvironment } from "../python/marker.js";
import { MetadataError } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { formatRequirement, parseRequirement, type Requirement } from "../python/requirement.js";
import type { Target } from "../python/target.js";
import { satisfies } from "../python/version.js";
import { UserError } from "../util/errors.js";
import {
  allowedVersions,
  type Candidate,
  IndexProvider,
  type IndexProviderOptions,
  joinAnd,
  joinOr,
  type Provider,
  pythonAccepts,
  sourcesFromSettings,
} from "./provider.js";

export interface ResolveRequest {
  requirements: Requirement[];
  /** Limits on versions that add no packages (pip's `-c`). */
  constraints?: Requirement[];
  target: Target;
  /** Allow pre-releases everywhere. */
  prereleases?: boolean;
  /** For the default provider; default: pip's configuration. */
  settings?: IndexSettings;
  /** For the default provider: merge files of a project from every source (pip's way). */
  allowMixedSources?: boolean;
  /**
   * Told about what a user should know of the result: an extra a chosen version lacks, a
   * yanked version taken for an exact pin, and (default provider) skipped or unreachable sources.
   */
  onWarning?: (message: string) => void;
  /** For the default provider: metadata of sdists that must be built to be known. */
  buildMetadata?: IndexProviderOptions["buildMetadata"];
  /** For the default provider: the sha256 hashes requirements allow, by project (--hash). */
  allowedHashes?: IndexProviderOptions["allowedHashes"];
  /**
   * Labelled parts of `requirements` (the project's own, each extra, each group): every
   * package then tells in `via` which parts lead to it.
   */
  origins?: { label: string; requirements: Requirement[] }[];
}

export interface ResolvedPackage {
  /** Normalized. */
  name: string;
  version: string;
  file: IndexFile;
  kind: "wheel" | "sdist";
  sha256: string;
  /** Named by one of the requirements. */
  requested: boolean;
  /** Extras selected for it, normalized and sorted. */
  extras: string[];
  /** Normalized names of the packages it depends on here, sorted. */
  dependencies: string[];
  requiresPython?: string;
  /** The index URL or find-links location the file came from. */
  source: string;
  /** The same as `source` when that is a package index. */
  index?: string;
  /** Bytes, known for local files. */
  size?: number;
  /** The labels of the request's origins whose requirements lead to it, sorted. */
  via?: string[];
}

export interface Resolution {
  target: Target;
  /** The requirements as given, formatted. */
  requirements: string[];
  constraints?: string[];
  /** Sorted by name. */
  packages: ResolvedPackage[];
}

/** No set of versions satisfies the requirements; the message says why. */
export class ResolutionImpossible extends UserError {
  /** Projects whose files on later sources the first-source rule left out (set by resolve). */
  alsoElsewhere: string[] = [];

  constructor(message: string) {
    super(message);
    this.name = "ResolutionImpossible";
  }
}

const ROOT = "(root)";
/** Metadata and index page reads in flight at once. */
const CONCURRENCY = 16;
/** Files hashed at once when the index gave no sha256 (each may be a whole download). */
const HASHING = 4;
/** Older versions whose dependencies are read along with a chosen one, to share incompatibilities. */
const LOOKAHEAD = 4;

/** Bounded concurrency for metadata and page reads. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((go) => this.queue.push(go));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** A package of the solver: a project, a project's extra, or the root. */
interface Pkg {
  key: string;
  /** Normalized project name ("" for the root). */
  project: string;
  extra?: string;
  /** Newest first; bit i of a set stands for cands[i]. */
  cands: Candidate[];
  /** Every version's bit. */
  all: bigint;
  /** The "not selected" bit. */
  none: bigint;
}

interface Term {
  key: string;
  /** Versions (and possibly "not selected") the term allows. */
  mask: bigint;
}

type Cause =
  | { kind: "root" }
  | { kind: "requirement"; dep: string; text: string; yanked: bigint }
  | { kind: "constraint"; text: string }
  | { kind: "dependency"; from: string; dep: string; text: string; yanked: bigint }
  | { kind: "unusable"; reason: string }
  | { kind: "derived"; left: Incompatibility; right: Incompatibility };

interface Incompatibility {
  terms: Term[];
  cause: Cause;
}

interface Assignment {
  key: string;
  mask: bigint;
  decision: boolean;
  level: number;
  cause?: Incompatibility;
}

/** A dependency of one candidate, on a solver package, with the versions it allows. */
interface Dep {
  key: string;
  mask: bigint;
  text: string;
  /** Yanked versions the specifier matches, which only an exact pin takes: for messages. */
  yanked: bigint;
}

type Deps = { deps: Dep[]; names: string[]; requiresPython?: string } | { unusable: string };

interface CandidateInfo {
  requiresDist: Requirement[];
  requiresPython?: string;
  /** Normalized extras it offers: Provides-Extra, and any a Requires-Dist marker names. */
  extras: Set<string>;
}

/** Extras named in a Requires-Dist marker (`extra == "x"`), for metadata older than Provides-Extra. */
function markerExtras(line: string): string[] {
  return [...line.matchAll(/\bextra\s*==\s*["']([^"']+)["']|["']([^"']+)["']\s*==\s*extra\b/g)].map(
    (m) => normalizeName((m[1] ?? m[2]) as string),
  );
}

function bitCount(x: bigint): number {
  let n = 0;
  for (let v = x; v > 0n; v &= v - 1n) n++;
  return n;
}

function lowestBit(x: bigint): number {
  let i = 0;
  while (((x >> BigInt(i)) & 1n) === 0n) i++;
  return i;
}

function bit(i: number): bigint {
  return 1n << BigInt(i);
}

function keyOf(project: string, extra?: string): string {
  return extra ? `${project}[${extra}]` : project;
}

/** The failure of a whole resolution, carrying the incompatibility that proves it. */
class Failure {
  constructor(readonly incompatibility: Incompatibility) {}
}

class Solver {
  private readonly pkgs = new Map<string, Pkg>();
  private readonly loading = new Map<string, Promise<Pkg>>();
  private readonly byKey = new Map<string, Incompatibility[]>();
  private assignments: Assignment[] = [];
  private readonly current = new Map<string, bigint>();
  private readonly decided = new Map<string, number>();
  private level = 0;
  private readonly infos = new Map<string, Promise<CandidateInfo | { unusable: string }>>();
  private readonly depsPending = new Map<string, Promise<Deps>>();
  private readonly depsDone = new Map<string, Deps>();
  private readonly limiter = new Limiter(CONCURRENCY);
  /** Specifier text for a set, per package, so explanations can quote what was written. */
  private readonly setNames = new Map<string, Map<bigint, string>>();
  private readonly direct = new Map<string, Candidate>();
  private readonly rootDeps: Dep[] = [];

  constructor(
    private readonly provider: Provider,
    private readonly target: Target,
    private readonly prereleases: boolean,
  ) {
    const root: Candidate = {
      name: ROOT,
      version: "0",
      file: { filename: "", url: "", hashes: {}, yanked: false },
      kind: "wheel",
      source: "",
      yanked: false,
    };
    this.pkgs.set(ROOT, { key: ROOT, project: "", cands: [root], all: 1n, none: 2n });
  }

  private pkg(key: string): Pkg {
    const p = this.pkgs.get(key);
    if (!p) throw new Error(`internal: package ${key} used before it was loaded`);
    return p;
  }

  private full(key: string): bigint {
    const p = this.pkg(key);
    return p.all | p.none;
  }

  /** Load a project's candidates (once) and make the solver package for it or its extra. */
  async load(project: string, extra?: string): Promise<Pkg> {
    const key = keyOf(project, extra);
    const known = this.pkgs.get(key);
    if (known) return known;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = (async () => {
        const direct = this.direct.get(project);
        // An extra shares its project's list, so the same objects stand for the same versions.
        const cands =
          extra !== undefined
            ? (await this.load(project)).cands
            : direct
              ? [direct]
              : await this.limiter.run(() => this.provider.candidates(project));
        const n = cands.length;
        const p: Pkg = { key, project, cands, all: bit(n) - 1n, none: bit(n) };
        if (extra !== undefined) p.extra = extra;
        this.pkgs.set(key, p);
        return p;
      })();
      this.loading.set(key, pending);
    }
    return pending;
  }

  addDirect(c: Candidate): void {
    this.direct.set(c.name, c);
  }

  /** The set of versions a specifier admits, remembered under `text` for explanations. */
  private specMask(p: Pkg, specifier: string, text: string, constraint = false): bigint {
    let mask = 0n;
    if (constraint) {
      // A constraint only narrows: yanked and pre-releases are the requirements' business.
      p.cands.forEach((c, i) => {
        if (satisfies(c.version, specifier, { prereleases: true })) mask |= bit(i);
      });
    } else {
      const allowed = new Set(
        allowedVersions(p.cands, specifier, this.prereleases ? { prereleases: true } : {}),
      );
      p.cands.forEach((c, i) => {
        if (allowed.has(c)) mask |= bit(i);
      });
    }
    this.rememberName(p.key, mask, text);
    return mask;
  }

  // --- incompatibilities ---------------------------------------------------------------

  /** Merge terms of one package, drop always-true ones; undefined when it can never hold. */
  private makeIncompatibility(terms: Term[], cause: Cause): Incompatibility | undefined {
    const merged = new Map<string, bigint>();
    for (const t of terms) merged.set(t.key, (merged.get(t.key) ?? this.full(t.key)) & t.mask);
    const out: Term[] = [];
    for (const [key, mask] of merged) {
      if (mask === 0n) return undefined;
      if (mask !== this.full(key)) out.push({ key, mask });
    }
    return { terms: out, cause };
  }

  private add(incompat: Incompatibility): void {
    for (const t of incompat.terms) {
      const list = this.byKey.get(t.key) ?? [];
      list.push(incompat);
      this.byKey.set(t.key, list);
    }
  }

  private isFailure(incompat: Incompatibility): boolean {
    const [only] = incompat.terms;
    return (
      incompat.terms.length === 0 ||
      (incompat.terms.length === 1 && only?.key === ROOT && (only.mask & 2n) === 0n)
    );
  }

  private currentMask(key: string): bigint {
    return this.current.get(key) ?? this.full(key);
  }

  /** "satisfied", "contradicted", "inconclusive", or the one term left undecided. */
  private relation(
    incompat: Incompatibility,
  ): "satisfied" | "contradicted" | "inconclusive" | Term {
    let open: Term | undefined;
    for (const t of incompat.terms) {
      const cur = this.currentMask(t.key);
      if ((cur & ~t.mask) === 0n) continue;
      if ((cur & t.mask) === 0n) return "contradicted";
      if (open) return "inconclusive";
      open = t;
    }
    return open ?? "satisfied";
  }

  private assign(a: Assignment): void {
    this.assignments.push(a);
    this.current.set(a.key, this.currentMask(a.key) & a.mask);
  }

  private derive(t: Term, cause: Incompatibility): void {
    this.assign({
      key: t.key,
      mask: ~t.mask & this.full(t.key),
      decision: false,
      level: this.level,
      cause,
    });
  }

  private backtrack(level: number): void {
    this.assignments = this.assignments.filter((a) => a.level <= level);
    this.level = level;
    this.current.clear();
    this.decided.clear();
    for (const a of this.assignments) {
      this.current.set(a.key, this.currentMask(a.key) & a.mask);
      if (a.decision) this.decided.set(a.key, lowestBit(a.mask));
    }
  }

  // --- propagation and conflicts -------------------------------------------------------

  propagate(start: string): void {
    const changed = new Set([start]);
    while (changed.size > 0) {
      const key = changed.values().next().value as string;
      changed.delete(key);
      const list = this.byKey.get(key) ?? [];
      for (let i = list.length - 1; i >= 0; i--) {
        const incompat = list[i] as Incompatibility;
        const r = this.relation(incompat);
        if (r === "satisfied") {
          const learned = this.resolveConflict(incompat);
          const open = this.relation(learned);
          if (typeof open !== "object") throw new Error("internal: learned clause is not unit");
          this.derive(open, learned);
          changed.clear();
          changed.add(open.key);
          break;
        }
        if (typeof r === "object") {
          this.derive(r, incompat);
          changed.add(r.key);
        }
      }
    }
  }

  /** Index of the first assignment after which `t` is satisfied, starting from `initial`. */
  private satisfierIndex(t: Term, before: number, initial?: bigint): number {
    let acc = initial ?? this.full(t.key);
    if ((acc & ~t.mask) === 0n) return -1;
    for (let i = 0; i < before; i++) {
      const a = this.assignments[i] as Assignment;
      if (a.key !== t.key) continue;
      acc &= a.mask;
      if ((acc & ~t.mask) === 0n) return i;
    }
    throw new Error("internal: a term of a satisfied incompatibility is not satisfied");
  }

  private resolveConflict(conflict: Incompatibility): Incompatibility {
    let incompat = conflict;
    for (;;) {
      if (this.isFailure(incompat)) throw new Failure(incompat);
      const end = this.assignments.length;
      const indexes = incompat.terms.map((t) => this.satisfierIndex(t, end));
      let which = 0;
      indexes.forEach((idx, i) => {
        if (idx > (indexes[which] as number)) which = i;
      });
      const satIndex = indexes[which] as number;
      const satisfier = this.assignments[satIndex] as Assignment;
      const term = incompat.terms[which] as Term;
      let previous = -1;
      indexes.forEach((idx, i) => {
        if (i !== which && idx > previous) previous = idx;
      });
      const own = this.satisfierIndex(term, satIndex, satisfier.mask & this.full(term.key));
      if (own > previous) previous = own;
      const previousLevel = Math.max(
        1,
        previous >= 0 ? (this.assignments[previous] as Assignment).level : 1,
      );
      if (satisfier.decision || previousLevel !== satisfier.level) {
        if (incompat !== conflict) this.add(incompat);
        this.backtrack(previousLevel);
        return incompat;
      }
      const cause = satisfier.cause as Incompatibility;
      const theirs = cause.terms.find((t) => t.key === term.key);
      const terms = [
        ...incompat.terms.filter((t) => t.key !== term.key),
        ...cause.terms.filter((t) => t.key !== term.key),
        { key: term.key, mask: term.mask | (theirs?.mask ?? 0n) },
      ];
      const next = this.makeIncompatibility(terms, {
        kind: "derived",
        left: incompat,
        right: cause,
      });
      if (!next) throw new Error("internal: conflict resolution produced an empty term");
      incompat = next;
    }
  }

  // --- decisions -----------------------------------------------------------------------

  /** The undecided package that must be selected and has the fewest versions left. */
  private nextPackage(): string | undefined {
    let best: { key: string; count: number } | undefined;
    for (const [key, mask] of this.current) {
      if (this.decided.has(key) || (mask & this.pkg(key).none) !== 0n) continue;
      const count = bitCount(mask);
      if (!best || count < best.count || (count === best.count && key < best.key)) {
        best = { key, count };
      }
    }
    return best?.key;
  }

  private candidateInfo(c: Candidate): Promise<CandidateInfo | { unusable: string }> {
    const id = `${c.name}\0${c.version}\0${c.file.url}`;
    let pending = this.infos.get(id);
    if (!pending) {
      pending = this.limiter.run(() => this.fetchInfo(c));
      // Prefetched entries may never be awaited; their failure surfaces when they are.
      pending.catch(() => undefined);
      this.infos.set(id, pending);
    }
    return pending;
  }

  private async fetchInfo(c: Candidate): Promise<CandidateInfo | { unusable: string }> {
    let meta: Awaited<ReturnType<Provider["metadata"]>>;
    try {
      meta = await this.provider.metadata(c);
    } catch (err) {
      if (
        err instanceof NeedsBuild ||
        err instanceof MetadataUnavailable ||
        err instanceof MetadataError
      ) {
        return { unusable: err.message.replace(/\.$/, "") };
      }
      throw err;
    }
    if (normalizeName(meta.name) !== c.name) {
      return { unusable: `its metadata names another project, ${meta.name}` };
    }
    const requiresDist: Requirement[] = [];
    for (const line of meta.requiresDist) {
      try {
        requiresDist.push(parseRequirement(line));
      } catch {
        return { unusable: `its metadata has an invalid requirement "${line}"` };
      }
    }
    const extras = new Set([
      ...meta.providesExtra.map(normalizeName),
      ...meta.requiresDist.flatMap(markerExtras),
    ]);
    const requiresPython = meta.requiresPython ?? c.file.requiresPython;
    return requiresPython ? { requiresDist, requiresPython, extras } : { requiresDist, extras };
  }

  /** Prefetch the metadata of the newest version a set allows, which is tried first. */
  private prefetch(p: Pkg, mask: bigint): void {
    const versions = mask & p.all;
    if (versions === 0n || p.key === ROOT) return;
    const c = p.cands[lowestBit(versions)] as Candidate;
    void this.candidateInfo(c);
  }

  private markerEnv(extra?: string): MarkerEnvironment {
    return extra === undefined ? { ...this.target.markerEnv } : { ...this.target.markerEnv, extra };
  }

  private applies(marker: Marker | undefined, extra?: string): boolean {
    return marker === undefined || evaluateMarker(marker, this.markerEnv(extra));
  }

  /** Turn requirements into dependencies on solver packages, one per package key. */
  private async toDeps(reqs: Requirement[]): Promise<Dep[]> {
    const wanted: { key: string; project: string; extra?: string; req: Requirement }[] = [];
    for (const req of reqs) {
      const extras = req.extras.map(normalizeName);
      if (extras.length === 0) wanted.push({ key: req.normalized, project: req.normalized, req });
      for (const extra of extras) {
        wanted.push({ key: keyOf(req.normalized, extra), project: req.normalized, extra, req });
      }
    }
    await Promise.all(wanted.map((w) => this.load(w.project, w.extra)));
    const byKey = new Map<string, Dep>();
    for (const w of wanted) {
      const p = this.pkg(w.key);
      const text = formatRequirement({
        ...w.req,
        marker: undefined,
        url: undefined,
      } as Requirement);
      const mask = this.specMask(p, w.req.specifier, text);
      let yanked = 0n;
      p.cands.forEach((c, i) => {
        if (c.yanked !== false && satisfies(c.version, w.req.specifier, { prereleases: true }))
          yanked |= bit(i);
      });
      const prev = byKey.get(w.key);
      byKey.set(
        w.key,
        prev
          ? {
              key: w.key,
              mask: prev.mask & mask,
              text: `${prev.text}, ${text}`,
              yanked: prev.yanked & yanked,
            }
          : { key: w.key, mask, text, yanked },
      );
    }
    return [...byKey.values()];
  }

  /** A version's dependencies (read once, even when asked for concurrently). */
  private dependencies(p: Pkg, index: number): Promise<Deps> {
    const id = `${p.key}\0${index}`;
    let pending = this.depsPending.get(id);
    if (!pending) {
      pending = this.readDependencies(p, p.cands[index] as Candidate).then((deps) => {
        this.depsDone.set(id, deps);
        return deps;
      });
      this.depsPending.set(id, pending);
    }
    return pending;
  }

  private async readDependencies(p: Pkg, c: Candidate): Promise<Deps> {
    const info = await this.candidateInfo(c);
    if ("unusable" in info) return info;
    if (!pythonAccepts(info.requiresPython, this.target.pythonVersion)) {
      return {
        unusable: `it requires Python ${info.requiresPython} and the target has ${this.target.pythonVersion}`,
      };
    }
    return this.metadataDeps(p, c, info);
  }

  private async metadataDeps(p: Pkg, c: Candidate, info: CandidateInfo): Promise<Deps> {
    const chosen: Requirement[] = [];
    for (const req of info.requiresDist) {
      let keep: boolean;
      try {
        // An extra's own dependencies are those its marker adds beyond the plain package's.
        keep =
          p.extra === undefined
            ? this.applies(req.marker)
            : this.applies(req.marker, p.extra) && !this.applies(req.marker);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        return { unusable: `a marker in its metadata cannot be evaluated: ${err.message}` };
      }
      if (!keep) continue;
      if (
        req.url !== undefined &&
        this.direct.get(req.normalized)?.file.url !== req.url.split("#")[0]
      ) {
        return { unusable: `it depends on a direct URL (${formatRequirement(req)})` };
      }
      chosen.push(req);
    }
    const deps = await this.toDeps(chosen);
    if (p.extra !== undefined) {
      // `name[extra]` at version v is `name` at v plus the extra's dependencies.
      const base = await this.load(p.project);
      const at = base.cands.indexOf(c);
      const same: Dep = {
        key: base.key,
        mask: bit(at),
        text: `${p.project}==${c.version}`,
        yanked: 0n,
      };
      this.rememberName(base.key, same.mask, same.text);
      deps.unshift(same);
    }
    const names = [...new Set(chosen.map((r) => r.normalized))].filter((n) => n !== p.project);
    const result: Deps = { deps, names };
    if (info.requiresPython) result.requiresPython = info.requiresPython;
    return result;
  }

  private rememberName(key: string, mask: bigint, text: string): void {
    const names = this.setNames.get(key) ?? new Map<bigint, string>();
    if (!names.has(mask)) names.set(mask, text);
    this.setNames.set(key, names);
  }

  /**
   * The dependencies of the LOOKAHEAD versions just older than `index`, read alongside it
   * (they are also what is tried next after a conflict). Failures there are not this
   * version's problem, so they only stop the comparison.
   */
  private neighbours(p: Pkg, index: number): Promise<(Deps | undefined)[]> {
    const count = Math.max(0, Math.min(LOOKAHEAD, p.cands.length - index - 1));
    const window = Array.from({ length: count }, (_, i) => index + 1 + i);
    return Promise.all(window.map((i) => this.dependencies(p, i).catch(() => undefined)));
  }

  /** Add `p` at `index` with its dependencies, or rule the version out if unusable. */
  private async choose(p: Pkg, index: number): Promise<void> {
    const version = bit(index);
    const isRoot = p.key === ROOT;
    const [deps, next] = await Promise.all([
      isRoot ? { deps: this.rootDeps, names: [] } : this.dependencies(p, index),
      isRoot ? [] : this.neighbours(p, index),
    ]);
    if ("unusable" in deps) {
      const ruled = this.makeIncompatibility([{ key: p.key, mask: version }], {
        kind: "unusable",
        reason: deps.unusable,
      });
      if (ruled) this.add(ruled);
      return;
    }
    let blocked = false;
    for (const d of deps.deps) {
      // Older versions with the very same dependency share one incompatibility: conflicts then
      // rule out the whole run at once, and explanations read "flask>=3 depends on ...".
      let versions = version;
      for (const [offset, other] of next.entries()) {
        const same =
          other && "deps" in other && other.deps.some((o) => o.key === d.key && o.mask === d.mask);
        if (!same) break;
        versions |= bit(index + 1 + offset);
      }
      const dp = this.pkg(d.key);
      const cause: Cause = isRoot
        ? { kind: "requirement", dep: d.key, text: d.text, yanked: d.yanked }
        : { kind: "dependency", from: p.key, dep: d.key, text: d.text, yanked: d.yanked };
      const incompat = this.makeIncompatibility(
        [
          { key: p.key, mask: versions },
          { key: d.key, mask: dp.none | (dp.all & ~d.mask) },
        ],
        cause,
      );
      if (!incompat) continue;
      this.add(incompat);
      this.prefetch(dp, d.mask & this.currentMask(d.key));
      // A dependency already ruled out makes this version impossible: let propagation say so.
      if (
        incompat.terms.every((t) => t.key === p.key || (this.currentMask(t.key) & ~t.mask) === 0n)
      ) {
        blocked = true;
      }
    }
    if (!blocked) {
      this.level++;
      this.assign({ key: p.key, mask: version, decision: true, level: this.level });
      this.decided.set(p.key, index);
    }
  }

  async solve(requirements: Requirement[], constraints: Requirement[]): Promise<void> {
    this.rootDeps.push(...(await this.toDeps(requirements)));
    for (const c of constraints) {
      const p = await this.load(c.normalized);
      const text = formatRequirement({
        ...c,
        extras: [],
        marker: undefined,
        url: undefined,
      } as Requirement);
      const allowed = this.specMask(p, c.specifier, text, true);
      const rule = this.makeIncompatibility([{ key: p.key, mask: p.all & ~allowed }], {
        kind: "constraint",
        text,
      });
      if (rule && rule.terms.length > 0) this.add(rule);
    }
    const root = this.makeIncompatibility([{ key: ROOT, mask: 2n }], { kind: "root" });
    if (root) this.add(root);
    try {
      this.propagate(ROOT);
      for (;;) {
        const key = this.nextPackage();
        if (key === undefined) break;
        const p = this.pkg(key);
        await this.choose(p, lowestBit(this.currentMask(key) & p.all));
        this.propagate(key);
      }
    } catch (err) {
      if (err instanceof Failure) {
        throw new ResolutionImpossible(new Explainer(this).explain(err.incompatibility));
      }
      throw err;
    }
  }

  /** The chosen version index of each selected package, root excluded. */
  solution(): Map<string, number> {
    const out = new Map(this.decided);
    out.delete(ROOT);
    return out;
  }

  packageOf(key: string): Pkg {
    return this.pkg(key);
  }

  depsOf(key: string, index: number): Deps | undefined {
    return this.depsDone.get(`${key}\0${index}`);
  }

  /** The extras a chosen version offers (read with its dependencies, so already known). */
  async extrasOf(key: string, index: number): Promise<Set<string>> {
    const info = await this.candidateInfo(this.pkg(key).cands[index] as Candidate);
    return "unusable" in info ? new Set() : info.extras;
  }

  // --- for explanations ----------------------------------------------------------------

  /** "flask>=3", "flask==3.1.3", "flask" (any version), "flask 1.0, 1.2 or 2.0". */
  describeSet(key: string, mask: bigint): string {
    const p = this.pkg(key);
    const versions = mask & p.all;
    const named = this.setNames.get(key)?.get(versions);
    // A bare name that happens to select one version is shown as that version.
    if (named !== undefined && (bitCount(versions) > 1 || /[<>=!~]/.test(named))) return named;
    if (versions === p.all) return key;
    const indexes = p.cands.map((_, i) => i).filter((i) => (versions & bit(i)) !== 0n);
    if (indexes.length === 0) return `no version of ${key}`;
    const newest = indexes[0] as number;
    const oldest = indexes.at(-1) as number;
    const v = (i: number) => (p.cands[i] as Candidate).version;
    if (indexes.length === 1) return `${key}==${v(newest)}`;
    if (oldest - newest + 1 === indexes.length) {
      if (newest === 0) return `${key}>=${v(oldest)}`;
      if (oldest === p.cands.length - 1) return `${key}<=${v(newest)}`;
      return `${key}>=${v(oldest)},<=${v(newest)}`;
    }
    return `${key} ${joinOr(indexes.reverse().map(v))}`;
  }

  /** Versions the sources have, for "there is only …" remarks, with whether they are yanked. */
  available(key: string): { version: string; yanked: boolean | string }[] {
    return this.pkg(key).cands.map((c) => ({ version: c.version, yanked: c.yanked }));
  }

  sources(): string {
    return this.provider.describeSources();
  }

  noneBit(key: string): bigint {
    return this.pkg(key).none;
  }
}

/**
 * Turns the derivation of the final incompatibility into sentences, one per derived step:
 * "Because A and B, C." Steps that only apply one requirement to another fact are read as
 * that fact (the requirement is named in the conclusion anyway), which keeps the common
 * cases to one or two sentences.
 */
class Explainer {
  private readonly lines: string[] = [];
  private readonly explained = new Set<Incompatibility>();
  private readonly roots = new Set<string>();

  constructor(private readonly solver: Solver) {}

  explain(failure: Incompatibility): string {
    this.collectRoots(failure, new Set());
    if (failure.cause.kind !== "derived") return this.standalone(failure);
    this.walk(failure, true);
    return this.lines.join("\n");
  }

  private collectRoots(i: Incompatibility, seen: Set<Incompatibility>): void {
    if (seen.has(i)) return;
    seen.add(i);
    if (i.cause.kind === "requirement") this.roots.add(i.cause.text);
    if (i.cause.kind === "derived") {
      this.collectRoots(i.cause.left, seen);
      this.collectRoots(i.cause.right, seen);
    }
  }

  /**
   * What a step says once requirements are taken as read: a step that only applies one
   * requirement to another fact ("you asked for a" and "a requires b") stands for that fact.
   */
  private effective(i: Incompatibility): Incompatibility {
    if (i.cause.kind !== "derived") return i;
    const { left, right } = i.cause;
    const lr = left.cause.kind === "requirement";
    const rr = right.cause.kind === "requirement";
    if (lr === rr) return i;
    return this.effective(lr ? right : left);
  }

  /** Whether `i` needs lines of its own: a derived step not yet explained. */
  private needsLines(i: Incompatibility): boolean {
    return i.cause.kind === "derived" && !this.explained.has(i);
  }

  private walk(i: Incompatibility, last: boolean): void {
    if (i.cause.kind !== "derived") return;
    // Requirements read best last: "Because a depends on b>=2 and you asked for b<2, …".
    const causes = [this.effective(i.cause.left), this.effective(i.cause.right)].sort(
      (a, b) => Number(a.cause.kind === "requirement") - Number(b.cause.kind === "requirement"),
    ) as [Incompatibility, Incompatibility];
    const [first, second] = causes;
    const conclusion = last ? this.conclusion() : this.phrase(i);
    const firstOwn = this.needsLines(first);
    const secondOwn = this.needsLines(second);
    if (firstOwn && secondOwn) {
      this.walk(first, false);
      this.walk(second, false);
      this.lines.push(
        `So, because ${this.phrase(first)} and ${this.phrase(second)}, ${conclusion}.`,
      );
    } else if (firstOwn || secondOwn) {
      const [derived, other] = firstOwn ? [first, second] : [second, first];
      this.walk(derived, false);
      this.lines.push(`And because ${this.phrase(other)}, ${conclusion}.`);
    } else {
      this.lines.push(`Because ${this.phrase(first)} and ${this.phrase(second)}, ${conclusion}.`);
    }
    this.explained.add(i);
  }

  private conclusion(): string {
    const asked = [...this.roots];
    if (asked.length === 0) return "the requirements cannot be met";
    if (asked.length === 1) return `${asked[0]} cannot be installed`;
    return `${joinAnd(asked)} cannot be installed together`;
  }

  /** The whole explanation when a single fact rules everything out. */
  private standalone(i: Incompatibility): string {
    const c = i.cause;
    if (c.kind === "requirement") {
      const missing = this.missing(i, c.dep, c.yanked);
      if (missing) return `You asked for ${c.text}, but ${missing}.`;
    }
    return `${capitalize(this.external(i))}.`;
  }

  /** An incompatibility given directly by the user, the index, or a package's metadata. */
  private external(i: Incompatibility): string {
    const c = i.cause;
    const s = this.solver;
    switch (c.kind) {
      case "root":
        return "the requirements must be installed";
      case "requirement": {
        const missing = this.missing(i, c.dep, c.yanked);
        return `you asked for ${c.text}${missing ? ` (${missing})` : ""}`;
      }
      case "constraint":
        return `a constraint allows only ${c.text}`;
      case "dependency": {
        const from = i.terms.find((t) => t.key === c.from);
        const who = from ? s.describeSet(c.from, from.mask) : c.from;
        const missing = this.missing(i, c.dep, c.yanked);
        return `${who} depends on ${c.text}${missing ? ` (${missing})` : ""}`;
      }
      case "unusable": {
        const [t] = i.terms;
        const what = t ? s.describeSet(t.key, t.mask) : "a package";
        return `${what} cannot be used (${c.reason})`;
      }
      case "derived":
        return this.phrase(i);
    }
  }

  /**
   * For a dependency on versions that do not exist: what the sources have instead, and the
   * yanked versions it matches (`yanked`), which only an exact pin would take.
   */
  private missing(i: Incompatibility, key: string, yanked: bigint): string | undefined {
    // The dependency's term is dropped exactly when no version satisfies it.
    if (i.terms.some((t) => t.key === key)) return undefined;
    const s = this.solver;
    const found = s.available(key);
    if (found.length === 0) return `no usable file of ${key} is on ${s.sources()}`;
    const list = (vs: string[], join: (items: string[]) => string) =>
      vs.length > 5 ? `${vs.slice(0, 5).join(", ")} and ${vs.length - 5} more` : join(vs);
    const usable = found.filter((c) => c.yanked === false).map((c) => c.version);
    const matched = found.filter((_, k) => (yanked & bit(k)) !== 0n);
    const all = found.map((c) => c.version);
    if (matched.length === 0) {
      const none = usable.length === 0 ? ", all of them yanked" : "";
      return `only ${list(all, joinOr)} ${all.length === 1 ? "is" : "are"} available${none}`;
    }
    // PEP 592: a yanked version is taken only when pinned exactly.
    const first = matched[0] as { version: string; yanked: boolean | string };
    const why = typeof first.yanked === "string" ? ` (${first.yanked})` : "";
    const names = list(
      matched.map((c) => c.version),
      joinAnd,
    );
    const are = matched.length === 1 ? "is" : "are";
    const pin = `which only an exact pin such as ${key}==${first.version} takes`;
    if (usable.length === 0) return `${names} ${are} yanked${why}, ${pin}`;
    const available = `only ${list(usable, joinOr)} ${usable.length === 1 ? "is" : "are"} available`;
    return `${available}; ${names} ${are} yanked${why}, ${pin}`;
  }

  private phrase(step: Incompatibility): string {
    const i = this.effective(step);
    if (i.cause.kind !== "derived") return this.external(i);
    const s = this.solver;
    const terms = i.terms.filter((t) => t.key !== ROOT);
    const positive = terms.filter((t) => (t.mask & s.noneBit(t.key)) === 0n);
    const negative = terms.filter((t) => (t.mask & s.noneBit(t.key)) !== 0n);
    const pos = (t: Term) => s.describeSet(t.key, t.mask);
    const neg = (t: Term) => s.describeSet(t.key, ~t.mask);
    if (terms.length === 0) return this.conclusion();
    if (positive.length === 1 && negative.length === 0) {
      const [t] = positive as [Term];
      return bitCount(t.mask) === 1
        ? `${pos(t)} cannot be installed`
        : `no version of ${pos(t)} can be installed`;
    }
    if (positive.length === 0 && negative.length === 1) {
      return `${neg(negative[0] as Term)} is required`;
    }
    if (positive.length === 1 && negative.length === 1) {
      return `${pos(positive[0] as Term)} requires ${neg(negative[0] as Term)}`;
    }
    if (negative.length === 0) {
      return `${joinAnd(positive.map(pos))} cannot be installed together`;
    }
    return `${positive.map(pos).join(" and ")} together require ${joinOr(negative.map(neg))}`;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function fileSize(file: IndexFile): Promise<number | undefined> {
  if (!file.url.startsWith("file:")) return undefined;
  return (await stat(fileURLToPath(file.url)).catch(() => undefined))?.size;
}

function defaultProvider(req: ResolveRequest): Provider {
  const settings = req.settings ?? loadPipSettings();
  return new IndexProvider(req.target, {
    sources: sourcesFromSettings(settings),
    ...(req.allowMixedSources ? { allowMixedSources: true } : {}),
    ...(settings.timeoutSeconds !== undefined
      ? { http: { readTimeoutMs: settings.timeoutSeconds * 1000 } }
      : {}),
    ...(req.onWarning ? { onWarning: req.onWarning } : {}),
    ...(req.buildMetadata ? { buildMetadata: req.buildMetadata } : {}),
    ...(req.allowedHashes ? { allowedHashes: req.allowedHashes } : {}),
  });
}

/**
 * Resolve the requirements for the target: one version of every package needed, each with
 * the file to install and its sha256. Throws ResolutionImpossible when no combination works
 * (or a requested project is on no source), IndexUnavailable when a source cannot be read.
 */
export async function resolve(req: ResolveRequest, provider?: Provider): Promise<Resolution> {
  const source = provider ?? defaultProvider(req);
  try {
    return await resolveWith(req, source);
  } catch (err) {
    if (err instanceof ResolutionImpossible)
      err.alsoElsewhere = (await source.alsoElsewhere?.(err.message)) ?? [];
    throw err;
  }
}

/** The projects the chosen packages of `requirements` lead to, themselves included. */
function reachable(
  solver: Solver,
  chosen: Map<string, number>,
  requirements: Requirement[],
): Set<string> {
  const seen = new Set<string>();
  const todo: string[] = [];
  const visit = (key: string) => {
    if (chosen.has(key) && !seen.has(key)) {
      seen.add(key);
      todo.push(key);
    }
  };
  for (const r of requirements) {
    if (r.extras.length === 0) visit(r.normalized);
    for (const extra of r.extras) visit(keyOf(r.normalized, normalizeName(extra)));
  }
  for (let key = todo.pop(); key !== undefined; key = todo.pop()) {
    const d = solver.depsOf(key, chosen.get(key) as number);
    if (d && "deps" in d) for (const dep of d.deps) visit(dep.key);
  }
  return new Set([...seen].map((key) => solver.packageOf(key).project));
}

async function resolveWith(req: ResolveRequest, source: Provider): Promise<Resolution> {
  const env = req.target.markerEnv;
  const applies = (r: Requirement) => r.marker === undefined || evaluateMarker(r.marker, env);
  const requirements = req.requirements.filter(applies);
  const constraints = (req.constraints ?? []).filter(applies);
  const solver = new Solver(source, req.target, req.prereleases === true);

  const urls = new Map<string, string>();
  for (const r of [...requirements, ...constraints]) {
    if (r.url === undefined) continue;
    const seen = urls.get(r.normalized);
    if (seen !== undefined && seen !== r.url) {
      throw new ResolutionImpossible(`${r.name} is requested from two URLs, ${seen} and ${r.url}.`);
    }
    urls.set(r.normalized, r.url);
  }
  for (const [name, url] of urls) solver.addDirect(await source.directCandidate(name, url));

  // A project no source has is reported plainly, before any solving.
  await Promise.all(
    requirements.map(async (r) => {
      const p = await solver.load(r.normalized);
      if (p.cands.length === 0) {
        const why = source.whyNone?.(r.normalized);
        throw new ResolutionImpossible(
          why
            ? `${r.name} has nothing this target can install on ${source.describeSources()}: ${why}.`
            : `No project named '${r.name}' on ${source.describeSources()}.`,
        );
      }
    }),
  );

  await solver.solve(requirements, constraints);

  const chosen = solver.solution();
  const extras = new Map<string, Set<string>>();
  const deps = new Map<string, Set<string>>();
  for (const [key, index] of chosen) {
    const p = solver.packageOf(key);
    const d = solver.depsOf(key, index);
    const names = deps.get(p.project) ?? new Set<string>();
    if (d && "names" in d) for (const n of d.names) names.add(n);
    deps.set(p.project, names);
    if (p.extra !== undefined) {
      const set = extras.get(p.project) ?? new Set<string>();
      set.add(p.extra);
      extras.set(p.project, set);
    }
  }
  // As pip warns: an extra the chosen version lacks adds nothing, and a yanked version is
  // taken only because a requirement pins it.
  for (const [key, index] of chosen) {
    const p = solver.packageOf(key);
    const c = p.cands[index] as Candidate;
    if (p.extra !== undefined && !(await solver.extrasOf(key, index)).has(p.extra)) {
      req.onWarning?.(`${p.project} ${c.version} has no extra '${p.extra}'; it adds nothing.`);
    }
    if (p.extra === undefined && c.yanked !== false) {
      const why = typeof c.yanked === "string" && c.yanked !== "" ? ` (${c.yanked})` : "";
      req.onWarning?.(
        `${p.project} ${c.version} is yanked${why}; it is used because a requirement pins it exactly.`,
      );
    }
  }
  const via = new Map<string, string[]>();
  for (const o of req.origins ?? []) {
    for (const project of reachable(solver, chosen, o.requirements.filter(applies))) {
      via.set(project, [...(via.get(project) ?? []), o.label]);
    }
  }
  const requested = new Set(requirements.map((r) => r.normalized));
  const hashing = new Limiter(HASHING);
  const packages = await Promise.all(
    [...chosen]
      .filter(([key]) => solver.packageOf(key).extra === undefined)
      .map(async ([key, index]): Promise<ResolvedPackage> => {
        const p = solver.packageOf(key);
        const c = p.cands[index] as Candidate;
        const d = solver.depsOf(key, index);
        const requiresPython = d && "names" in d ? d.requiresPython : undefined;
        const size = await fileSize(c.file);
        return {
          name: p.project,
          version: c.version,
          file: c.file,
          kind: c.kind,
          sha256: await hashing.run(() => source.sha256(c)),
          requested: requested.has(p.project),
          extras: [...(extras.get(p.project) ?? [])].sort(),
          dependencies: [...(deps.get(p.project) ?? [])].sort(),
          ...(requiresPython !== undefined ? { requiresPython } : {}),
          source: c.source,
          ...(c.index !== undefined ? { index: c.index } : {}),
          ...(size !== undefined ? { size } : {}),
          ...(req.origins ? { via: (via.get(p.project) ?? []).sort() } : {}),
        };
      }),
  );
  packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const result: Resolution = {
    target: req.target,
    requirements: req.requirements.map(formatRequirement),
    packages,
  };
  if (req.constraints?.length) result.constraints = req.constraints.map(formatRequirement);
  return result;
}
