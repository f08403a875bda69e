/**
 * Where the resolver's candidates come from: one file per version of a project, picked for the
 * target from the configured package sources.
 *
 * Sources are consulted in a fixed priority: index-url, then each extra-index-url, then each
 * find-links location. The first source that has the project (an index with a page for it, a
 * find-links location with any of its files) is the only one used for it, so a same-named
 * project on a lower-priority source can never be slipped in ("dependency confusion");
 * `allowMixedSources` merges them the way pip does. For the same reason a source that cannot
 * answer for a project (unreachable, an HTTP error, a page that does not parse) stops the
 * search for it there, with that failure as the error; only pip's default index when nobody
 * configured it (pypi.org on an offline machine), and every source under `allowMixedSources`,
 * are skipped with a warning instead, as pip does.
 */
import { access } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type HttpOptions, redactUrl } from "../index/http.js";
import { DEFAULT_INDEX_URL, type IndexSettings } from "../index/pip-config.js";
import { findLinksFiles, type IndexFile, IndexUnavailable, projectFiles } from "../index/simple.js";
import {
  distMetadata,
  fileSha256,
  type MetadataOptions,
  NeedsBuild,
} from "../index/wheel-metadata.js";
import type { CoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { bestTagRank, parseSdistFilename, parseWheelFilename, tagRanks } from "../python/tags.js";
import { type Target, targetTagList } from "../python/target.js";
import {
  compareVersions,
  isValidSpecifier,
  normalizeVersion,
  parseSpecifier,
  satisfies,
} from "../python/version.js";
import { UserError } from "../util/errors.js";

/** One version of a project, with the single file chosen for the target. */
export interface Candidate {
  /** Normalized project name. */
  name: string;
  /** Normalized version. */
  version: string;
  file: IndexFile;
  kind: "wheel" | "sdist";
  /** The index URL or find-links location the file came from (the URL for a direct reference). */
  source: string;
  /** The same as `source` when that is a package index (PEP 503). */
  index?: string;
  /** PEP 592: set when every usable file of this version is yanked. */
  yanked: boolean | string;
  /** Set for a candidate given by a direct URL (`name @ url`). */
  direct?: boolean;
}

/** What the resolver asks of a source of candidates; tests inject their own. */
export interface Provider {
  /** Every version of the project usable for the target, newest first; [] when none has it. */
  candidates(name: string): Promise<Candidate[]>;
  /**
   * The candidate's core metadata. Throws NeedsBuild, MetadataUnavailable or MetadataError
   * when this candidate cannot be used (the resolver then tries others); anything else stops
   * the resolution.
   */
  metadata(c: Candidate): Promise<CoreMetadata>;
  /** The candidate for a direct reference `name @ url`; throws UserError when unusable. */
  directCandidate(name: string, url: string): Promise<Candidate>;
  /** The sha256 of the candidate's file, hex. */
  sha256(c: Candidate): Promise<string>;
  /** The sources, for messages: "file:///a/simple, file:///b/simple or /wheels". */
  describeSources(): string;
  /**
   * For a project with no candidates, why, when it is not simply absent: files that exist but
   * none for this target ("its 2 files are for other platforms or Pythons: ...").
   */
  whyNone?(name: string): string | undefined;
  /**
   * Projects `involved` (a failure's message) names that were taken from one source by the
   * first-source rule while later sources also have files of them (asked now): what
   * --mixed-sources would add.
   */
  alsoElsewhere?(involved: string): Promise<string[]>;
}

export interface Source {
  kind: "index" | "find-links";
  /** An index URL, or a find-links URL or absolute path. */
  location: string;
  /** pip's default index, which nobody configured: when it cannot be read it is skipped. */
  implicit?: boolean;
}

/** Sources in priority order: index-url, extra-index-urls, find-links (no indexes with no-index). */
export function sourcesFromSettings(s: IndexSettings): Source[] {
  const indexes = s.noIndex ? [] : [s.indexUrl, ...s.extraIndexUrls];
  const implicit = s.sources["index-url"] === undefined && s.indexUrl === DEFAULT_INDEX_URL;
  return [
    ...indexes.map((location, k) => ({
      kind: "index" as const,
      location,
      ...(k === 0 && implicit ? { implicit } : {}),
    })),
    ...s.findLinks.map((location) => ({ kind: "find-links" as const, location })),
  ];
}

/** "a", "a or b", "a, b or c". */
export function joinOr(items: string[]): string {
  return joinWith(items, "or");
}

/** "a, b and c". */
export function joinAnd(items: string[]): string {
  return joinWith(items, "and");
}

function joinWith(items: string[], word: string): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${word} ${items.at(-1)}`;
}

/** Whether the target's Python satisfies a Requires-Python; an invalid one is ignored, as pip does. */
export function pythonAccepts(requiresPython: string | undefined, pythonVersion: string): boolean {
  if (!requiresPython || !isValidSpecifier(requiresPython)) return true;
  return satisfies(pythonVersion, requiresPython, { prereleases: true });
}

/** Project name and version of a distribution file name, or undefined if it is not one. */
export function distName(
  filename: string,
): { name: string; version: string; kind: "wheel" | "sdist" } | undefined {
  if (filename.toLowerCase().endsWith(".whl")) {
    try {
      const w = parseWheelFilename(filename);
      return { name: w.normalized, version: normalizeVersion(w.version), kind: "wheel" };
    } catch {
      return undefined;
    }
  }
  const s = parseSdistFilename(filename);
  return s
    ? { name: normalizeName(s.name), version: normalizeVersion(s.version), kind: "sdist" }
    : undefined;
}

/** A file found for a project, and where: `fromIndex` when the source is a package index. */
export interface FoundFile {
  file: IndexFile;
  source: string;
  fromIndex?: boolean;
}

interface Scored extends FoundFile {
  kind: "wheel" | "sdist";
  /** Tag rank for a wheel (lower is better). */
  rank: number;
  build: number;
}

function betterFile(a: Scored, b: Scored): number {
  if (a.kind !== b.kind) return a.kind === "wheel" ? -1 : 1;
  if (a.rank !== b.rank) return a.rank - b.rank;
  if (a.build !== b.build) return b.build - a.build;
  // .tar.gz before .zip, then by name, so the choice never depends on page order.
  const gz =
    Number(b.file.filename.endsWith(".tar.gz")) - Number(a.file.filename.endsWith(".tar.gz"));
  if (gz !== 0) return gz;
  return a.file.filename < b.file.filename ? -1 : a.file.filename > b.file.filename ? 1 : 0;
}

/**
 * One candidate per version of `project`, newest first, from files found on its source(s):
 * files of other projects, wheels the target cannot install, and files whose requires-python
 * excludes the target are dropped; per version, the wheel with the best tag rank is chosen,
 * an sdist only when no wheel fits. Yanked files count only when nothing else is left for
 * their version (the candidate is then marked yanked). With `allowed` sha256 hashes (a
 * requirement's --hash), a version's files the index says have one of them are preferred, as
 * pip does: if any has, only they and files of unknown hash are chosen from.
 */
export function chooseCandidates(
  project: string,
  files: FoundFile[],
  target: Target,
  ranks: Map<string, number> = tagRanks(targetTagList(target)),
  allowed?: ReadonlySet<string>,
): Candidate[] {
  const wanted = normalizeName(project);
  const byVersion = new Map<string, Scored[]>();
  for (const { file, source, fromIndex } of files) {
    const dist = distName(file.filename);
    if (!dist || dist.name !== wanted) continue;
    if (!pythonAccepts(file.requiresPython, target.pythonVersion)) continue;
    let rank = 0;
    let build = 0;
    if (dist.kind === "wheel") {
      const wheel = parseWheelFilename(file.filename);
      const best = bestTagRank(wheel, ranks);
      if (best === undefined) continue;
      rank = best;
      build = Number.parseInt(wheel.build ?? "0", 10);
    } else if (!/\.(tar\.gz|zip)$/i.test(file.filename)) {
      // Only these sdist formats are standard (PEP 625) and readable for metadata here.
      continue;
    }
    const list = byVersion.get(dist.version) ?? [];
    list.push({ file, source, kind: dist.kind, rank, build, ...(fromIndex ? { fromIndex } : {}) });
    byVersion.set(dist.version, list);
  }
  const out: Candidate[] = [];
  for (const [version, scored] of byVersion) {
    const live = scored.filter((s) => s.file.yanked === false);
    let pool = live.length > 0 ? live : scored;
    if (allowed && pool.some((s) => allowed.has(s.file.hashes.sha256 ?? ""))) {
      pool = pool.filter((s) => !s.file.hashes.sha256 || allowed.has(s.file.hashes.sha256));
    }
    const best = [...pool].sort(betterFile)[0] as Scored;
    out.push({
      name: wanted,
      version,
      file: best.file,
      kind: best.kind,
      source: best.source,
      ...(best.fromIndex ? { index: best.source } : {}),
      yanked: live.length > 0 ? false : best.file.yanked,
    });
  }
  return out.sort((a, b) => compareVersions(b.version, a.version));
}

/** Whether `specifier` pins exactly `version` (`==V` or `===V`), the only way to get a yanked file. */
export function pinsExactly(specifier: string, version: string): boolean {
  if (!isValidSpecifier(specifier)) return false;
  const clauses = parseSpecifier(specifier);
  if (clauses.length !== 1) return false;
  const [c] = clauses as [{ op: string; version: string; prefix: boolean }];
  if (c.op === "===") return c.version.toLowerCase() === version.toLowerCase();
  return c.op === "==" && !c.prefix && compareVersions(c.version, version) === 0;
}

/**
 * The candidates a specifier admits. Yanked versions only under an exact pin (PEP 592).
 * Pre-releases when `prereleases` is true, when the specifier names one, or (pip's rule) when
 * no final release satisfies the specifier at all.
 */
export function allowedVersions(
  candidates: Candidate[],
  specifier: string,
  opts: { prereleases?: boolean } = {},
): Candidate[] {
  const live = candidates.filter((c) => c.yanked === false || pinsExactly(specifier, c.version));
  const pre = opts.prereleases ? true : undefined;
  const matched = live.filter((c) => satisfies(c.version, specifier, { prereleases: pre }));
  if (matched.length > 0 || pre) return matched;
  return live.filter((c) => satisfies(c.version, specifier, { prereleases: true }));
}

export interface IndexProviderOptions {
  /** In priority order; `sourcesFromSettings(loadPipSettings())` gives pip's. */
  sources: Source[];
  /** Merge every source's files for a project (pip's behaviour) instead of the first only. */
  allowMixedSources?: boolean;
  http?: HttpOptions;
  metadata?: MetadataOptions;
  /** Told once about each source that could not be reached and was skipped. */
  onWarning?: (message: string) => void;
  /**
   * The metadata of an sdist whose PKG-INFO cannot be trusted (PEP 643), from its build
   * backend; without it such an sdist is unusable. A UserError makes the candidate unusable.
   */
  buildMetadata?: (file: IndexFile, sha256: string) => Promise<CoreMetadata>;
  /**
   * pip's hash-checking preference: for a project listed here (normalized name), the files whose
   * index-given sha256 is allowed (or who have none given) are chosen from, when there are any.
   */
  allowedHashes?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Candidates from package indexes and find-links locations, per the rules at the top. */
export class IndexProvider implements Provider {
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, Promise<Candidate[]>>();
  private readonly findLinks = new Map<string, Promise<IndexFile[]>>();
  /** Sources that could not be reached, with the failure; never asked again in this run. */
  private readonly down = new Map<string, IndexUnavailable>();
  /** Projects whose files were all unusable for the target: their file names and source. */
  private readonly unusable = new Map<string, { files: string[]; source: string }>();
  /** Projects taken from one source while later ones were not asked, with its place. */
  private readonly narrowed = new Map<string, { at: number; files: Set<string> }>();
  readonly warnings: string[] = [];

  constructor(
    readonly target: Target,
    private readonly opts: IndexProviderOptions,
  ) {
    this.ranks = tagRanks(targetTagList(target));
  }

  describeSources(): string {
    const up = this.opts.sources.filter((s) => !this.down.has(s.location));
    const down = [...this.down.keys()].map(redactUrl);
    const listed = joinOr(up.map((s) => redactUrl(s.location))) || "no reachable source";
    return down.length > 0 ? `${listed}, with ${joinOr(down)} unreachable` : listed;
  }

  async alsoElsewhere(involved: string): Promise<string[]> {
    // Only projects the failure names: the others' names are not sent to later sources, which
    // may be public while the first is private.
    const named = (p: string) =>
      new RegExp(`(^|[^\\w.-])${p.replace(/[.-]/g, "[-_.]")}([^\\w.-]|$)`, "i");
    const asked = [...this.narrowed].filter(([p]) => named(p).test(involved)).slice(0, 16);
    const has = await Promise.all(
      asked.map(async ([project, { at, files: seen }]) => {
        for (const source of this.opts.sources.slice(at + 1)) {
          if (this.down.has(source.location)) continue;
          const files = await this.filesAt(source, project).catch(() => undefined);
          const other = (f: IndexFile) =>
            distName(f.filename)?.name === project && !seen.has(f.filename);
          if (files?.some(other)) return true;
        }
        return false;
      }),
    );
    return asked.filter((_, i) => has[i]).map(([project]) => project);
  }

  candidates(name: string): Promise<Candidate[]> {
    const key = normalizeName(name);
    let found = this.cache.get(key);
    if (!found) {
      found = this.load(key);
      this.cache.set(key, found);
    }
    return found;
  }

  /** The project's files there; undefined when an index has no page for it. */
  private async filesAt(source: Source, project: string): Promise<IndexFile[] | undefined> {
    const http = this.opts.http ?? {};
    if (source.kind === "index") return projectFiles(source.location, project, http);
    let listing = this.findLinks.get(source.location);
    if (!listing) {
      listing = findLinksFiles(source.location, http);
      this.findLinks.set(source.location, listing);
    }
    return (await listing).filter((f) => distName(f.filename)?.name === project);
  }

  /** A source skipped for a project: said once per source (and failure, for a page). */
  private skip(source: Source, err: IndexUnavailable): void {
    if (!err.page) {
      if (this.down.has(source.location)) return;
      this.down.set(source.location, err);
    }
    const what = source.kind === "index" ? "package index" : "find-links location";
    const where = err.page ? redactUrl(err.url) : redactUrl(source.location);
    const message = `Skipping the ${what} ${where}: ${err.reason}.`;
    if (this.warnings.includes(message)) return;
    this.warnings.push(message);
    this.opts.onWarning?.(message);
  }

  private async load(project: string): Promise<Candidate[]> {
    const found: FoundFile[] = [];
    const mixed = this.opts.allowMixedSources === true;
    const sources = this.opts.sources;
    let failure: IndexUnavailable | undefined;
    // Sources are read in order, not all at once: with the first-source rule a later one is
    // only needed when the earlier ones lack the project.
    for (const [k, source] of sources.entries()) {
      let files: IndexFile[] | undefined;
      try {
        const down = this.down.get(source.location);
        if (down) throw down;
        files = await this.filesAt(source, project);
      } catch (err) {
        if (!(err instanceof IndexUnavailable)) throw err;
        const later = sources.slice(k + 1).filter((s) => !this.down.has(s.location));
        if (mixed || source.implicit || later.length === 0) {
          // The last source, without merging: nothing was found before it, so the error
          // thrown below says it all, and a warning would say it twice.
          if (mixed || source.implicit) this.skip(source, err);
          else if (!err.page) this.down.set(source.location, err);
          if (!source.implicit || err.page) failure ??= err;
          continue;
        }
        if (!err.page) this.down.set(source.location, err);
        // 401/403: the server answered, so waiting will not help (some indexes say 403 for
        // "not here": --mixed-sources is the way past them, as pip's merging is).
        const fix =
          err.status === 401 || err.status === 403
            ? "check the credentials or permissions it wants"
            : "try again when it answers";
        throw new UserError(
          `${err.message.replace(/\.$/, "")}, so ${project} is not looked for on a later source (a project of that name there may be someone else's); ${fix}, or pass --mixed-sources (or set PYFERRY_MIXED_SOURCES=1) to take it from wherever it is found, as pip does.`,
        );
      }
      if (files === undefined) continue;
      const own = files.filter((f) => distName(f.filename)?.name === project);
      const fromIndex = source.kind === "index";
      for (const file of own) found.push({ file, source: source.location, fromIndex });
      // An index's page claims the project even when it lists nothing usable.
      if (!mixed && (own.length > 0 || fromIndex)) {
        if (own.length === 0) this.unusable.set(project, { files: [], source: source.location });
        if (k < sources.length - 1)
          this.narrowed.set(project, { at: k, files: new Set(own.map((f) => f.filename)) });
        break;
      }
    }
    // With a source that could not answer, "no such project" would be a guess: report that.
    if (found.length === 0) {
      const all = [...this.down.values()];
      if (failure) throw failure;
      if (all[0] && all.length === sources.length) throw all[0];
    }
    const cands = chooseCandidates(
      project,
      found,
      this.target,
      this.ranks,
      this.opts.allowedHashes?.get(project),
    );
    if (cands.length === 0 && found.length > 0)
      this.unusable.set(project, {
        files: found.map((f) => f.file.filename),
        source: (found[0] as FoundFile).source,
      });
    return cands;
  }

  whyNone(name: string): string | undefined {
    const found = this.unusable.get(normalizeName(name));
    if (!found) return undefined;
    const { files, source } = found;
    if (files.length === 0) return `its page on ${redactUrl(source)} lists no file pyferry can use`;
    const shown = files.slice(0, 3).join(", ") + (files.length > 3 ? ", ..." : "");
    return `${files.length === 1 ? "its one file is" : `its ${files.length} files are`} for other platforms or Pythons (${shown})`;
  }

  async metadata(c: Candidate): Promise<CoreMetadata> {
    try {
      return await distMetadata(c.file, { ...this.opts.metadata, http: this.opts.http ?? {} });
    } catch (err) {
      const build = this.opts.buildMetadata;
      if (!(err instanceof NeedsBuild) || !build) throw err;
      try {
        return await build(c.file, await this.sha256(c));
      } catch (failure) {
        if (!(failure instanceof UserError)) throw failure;
        // A backend that fails makes this version unusable; the resolver tries the others.
        throw new NeedsBuild(c.file.filename, failure.message.replace(/\.$/, ""));
      }
    }
  }

  sha256(c: Candidate): Promise<string> {
    return fileSha256(c.file, { ...this.opts.metadata, http: this.opts.http ?? {} });
  }

  async directCandidate(name: string, url: string): Promise<Candidate> {
    const project = normalizeName(name);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UserError(`The URL "${url}" given for ${name} is not valid.`);
    }
    const hash = /^#sha256=([0-9a-f]{64})$/i.exec(parsed.hash);
    parsed.hash = "";
    const segment = parsed.pathname.split("/").pop() ?? "";
    const filename = decodeURIComponent(segment);
    const dist = distName(filename);
    if (!dist) {
      throw new UserError(
        `${name} @ ${url} is not a wheel or sdist file; only those can be used by URL.`,
      );
    }
    if (dist.name !== project) {
      throw new UserError(`${name} @ ${url} names a file of another project, ${dist.name}.`);
    }
    if (parsed.protocol === "file:") {
      // Fail here with a plain sentence rather than later as unreadable metadata.
      const path = fileURLToPath(parsed);
      if (
        !(await access(path).then(
          () => true,
          () => false,
        ))
      ) {
        throw new UserError(`${name} @ ${url}: the file ${path} does not exist.`);
      }
    }
    const file: IndexFile = {
      filename,
      url: parsed.href,
      hashes: hash ? { sha256: (hash[1] as string).toLowerCase() } : {},
      yanked: false,
    };
    if (
      dist.kind === "wheel" &&
      bestTagRank(parseWheelFilename(filename), this.ranks) === undefined
    ) {
      throw new UserError(
        `${filename} cannot be installed on the target (Python ${this.target.pythonVersion}, ${this.target.platforms[0] ?? "no platform"}).`,
      );
    }
    return {
      name: project,
      version: dist.version,
      file,
      kind: dist.kind,
      source: parsed.href,
      yanked: false,
      direct: true,
    };
  }
}
