import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename, type WheelName } from "../python/tags.js";
import { compareVersions, parseVersion } from "../python/version.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { type HttpOptions, redactUrl } from "./http.js";
import type { IndexSettings } from "./pip-config.js";
import {
  findLinksFiles,
  type IndexFile,
  IndexTooLarge,
  IndexUnavailable,
  listProjects,
  projectFiles,
} from "./simple.js";
import { wheelFileNames } from "./wheel-files.js";

export interface ModuleProvider {
  /** PEP 503 normalized project name. */
  project: string;
  /** The wheel the module names were read from. */
  wheel: string;
  /**
   * Set on top-level tests/docs/examples-like names of a project that also provides a real
   * module: such folders are often shipped by mistake and are weak evidence.
   */
  incidental?: true;
}

export interface TopLevelMap {
  /** Dotted import name (a top-level module, or a package inside a namespace) -> providers. */
  modules: Map<string, ModuleProvider[]>;
  /** The sources that were read, highest priority first. */
  indexes: string[];
  /** One sentence per source (or group of projects) that could not be read. */
  warnings: string[];
}

export interface LoadOptions {
  /** Called after each project; `total` grows as the sources' project lists arrive. */
  onProgress?: (done: number, total: number) => void;
  /** Ignore the cache and read every chosen wheel again. */
  refresh?: boolean;
  /** Projects read at once, over all sources; default 16. */
  concurrency?: number;
  /** Wait for response headers per request; default 10 s. */
  timeoutMs?: number;
}

/** Above this many projects an index is not enumerated (real PyPI has over 600,000). */
export const MAX_PROJECTS = 20_000;
const INCIDENTAL = new Set(["tests", "test", "testing", "docs", "examples", "benchmarks"]);
const CACHE_VERSION = 2;

interface CacheEntry {
  wheel: string;
  sha256?: string;
  modules: string[];
  incidental?: string[];
}

interface SourceCache {
  version: number;
  source: string;
  projects: Record<string, CacheEntry>;
}

const IDENTIFIER = /^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*$/u;

/** The module a file defines (`x.py`, `x.so`, `x.abi3.so`, `x.cpython-311-...so`, `x.pyd`). */
function moduleStem(file: string): string | undefined {
  const m = /^([^.]+)(?:\.py|(?:\.[^.]+)?\.(?:so|pyd))$/.exec(file);
  return m && IDENTIFIER.test(m[1] as string) ? m[1] : undefined;
}

interface Dir {
  files: string[];
  dirs: Map<string, Dir>;
  hasPy: boolean;
}

function newDir(): Dir {
  return { files: [], dirs: new Map(), hasPy: false };
}

function isPackageDir(name: string, dir: Dir): boolean {
  return name !== "__pycache__" && IDENTIFIER.test(name) && dir.hasPy;
}

/**
 * Well-known namespaces that older projects declare the pkgutil/pkg_resources way, with an
 * `__init__.py` of their own: the name alone belongs to no single project, so look inside.
 */
const SHARED_NAMESPACES = new Set([
  "backports",
  "jaraco",
  "zope",
  "sphinxcontrib",
  "google",
  "azure",
  "ruamel",
  "plone",
  "collective",
  "flufl",
  "paste",
  "repoze",
  "zc",
  "nvidia",
]);

/** Record a regular package, or a namespace package's contents as dotted names. */
function collect(dotted: string, dir: Dir, out: string[]): void {
  const shared = !dotted.includes(".") && SHARED_NAMESPACES.has(dotted) && dir.dirs.size > 0;
  if (!shared && dir.files.some((f) => moduleStem(f) === "__init__")) {
    out.push(dotted);
    return;
  }
  for (const f of dir.files) {
    const stem = moduleStem(f);
    if (stem && stem !== "__main__" && stem !== "__init__") out.push(`${dotted}.${stem}`);
  }
  for (const [name, sub] of dir.dirs) {
    if (isPackageDir(name, sub)) collect(`${dotted}.${name}`, sub, out);
  }
}

/**
 * Import names a wheel provides, from its file names: top-level modules and packages, and the
 * packages inside namespace folders (which have no `__init__`) as dotted names.
 */
export function moduleNamesFromFiles(fileNames: string[]): {
  modules: string[];
  incidental: string[];
} {
  const root = newDir();
  for (const name of fileNames) {
    if (name.endsWith("/")) continue;
    let parts = name.split("/");
    const top = parts[0] as string;
    if (top.endsWith(".dist-info")) continue;
    if (top.endsWith(".data")) {
      // Only these two .data folders are installed into site-packages.
      if (parts[1] !== "purelib" && parts[1] !== "platlib") continue;
      parts = parts.slice(2);
    }
    let dir = root;
    const isPy = name.endsWith(".py");
    for (const part of parts.slice(0, -1)) {
      let sub = dir.dirs.get(part);
      if (!sub) {
        sub = newDir();
        dir.dirs.set(part, sub);
      }
      if (isPy) sub.hasPy = true;
      dir = sub;
    }
    const file = parts[parts.length - 1];
    if (file) dir.files.push(file);
  }
  const found: string[] = [];
  for (const f of root.files) {
    const stem = moduleStem(f);
    if (stem && stem !== "__init__" && stem !== "__main__") found.push(stem);
  }
  for (const [name, dir] of root.dirs) {
    if (isPackageDir(name, dir)) collect(name, dir, found);
  }
  const modules = [...new Set(found)].sort();
  const isIncidental = (m: string) => INCIDENTAL.has(m.split(".")[0] as string);
  const hasReal = modules.some((m) => !isIncidental(m));
  return { modules, incidental: hasReal ? modules.filter(isIncidental) : [] };
}

/** The parsed file name, or undefined for files that are not validly named wheels. */
function wheelName(filename: string): WheelName | undefined {
  try {
    return parseWheelFilename(filename);
  } catch {
    return undefined;
  }
}

/** Rank of a wheel among same-version wheels: lower is preferred. */
function tagRank(w: WheelName): number {
  if (w.tags.some((t) => t.interpreter === "py3" && t.abi === "none" && t.platform === "any")) {
    return 0;
  }
  if (w.tags.some((t) => t.platform === "any")) return 1;
  // Linux wheels are the likeliest target; Windows/macOS ones sometimes carry extra modules.
  if (w.tags.some((t) => t.platform.includes("linux"))) return 2;
  return 3;
}

/** The one wheel read for a project: newest release (pre-releases only if nothing else). */
export function chooseWheel(files: IndexFile[], project: string): IndexFile | undefined {
  const candidates: { file: IndexFile; name: WheelName; pre: boolean }[] = [];
  for (const file of files) {
    if (file.yanked !== false) continue;
    const name = wheelName(file.filename);
    if (!name || name.normalized !== project) continue;
    candidates.push({ file, name, pre: parseVersion(name.version).isPrerelease });
  }
  const finals = candidates.filter((c) => !c.pre);
  const pool = finals.length > 0 ? finals : candidates;
  pool.sort(
    (a, b) =>
      compareVersions(b.name.version, a.name.version) ||
      tagRank(a.name) - tagRank(b.name) ||
      (a.file.filename < b.file.filename ? -1 : a.file.filename > b.file.filename ? 1 : 0),
  );
  return pool[0]?.file;
}

/** Runs at most `n` tasks at a time; a finishing task hands its slot straight to the next. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active < n) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

function cachePath(source: string): string {
  const key = createHash("sha256").update(source).digest("hex");
  return join(cacheDir(), "index-map", `${key}.json`);
}

async function readCache(source: string): Promise<Record<string, CacheEntry>> {
  try {
    const data = JSON.parse(await readFile(cachePath(source), "utf8")) as Partial<SourceCache>;
    // A cache from another format version, or damaged entries, are simply read again.
    if (data.version === CACHE_VERSION && typeof data.projects === "object" && data.projects) {
      return Object.fromEntries(
        Object.entries(data.projects).filter(
          ([, e]) => typeof e?.wheel === "string" && Array.isArray(e.modules),
        ),
      );
    }
  } catch {
    // Missing or unreadable: start empty.
  }
  return {};
}

/** Whether pip would refuse the source as insecure (plain HTTP to a host not trusted). */
function isInsecure(location: string, trustedHosts: string[]): boolean {
  if (!/^http:/i.test(location)) return false;
  const url = new URL(location);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost" || host === "::1" || /^127\./.test(host)) return false;
  return !trustedHosts.some((t) => t === url.hostname || t === url.host);
}

interface SourceResult {
  source: string;
  /** Absent when the source could not be listed. */
  projects?: Map<string, CacheEntry>;
  warnings: string[];
}

interface Source {
  location: string;
  kind: "index" | "find-links";
}

interface Context {
  settings: IndexSettings;
  opts: LoadOptions;
  http: HttpOptions;
  run: <T>(task: () => Promise<T>) => Promise<T>;
  progress: { done: number; total: number };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wheels from a find-links listing, grouped by normalized project name. */
function groupByProject(files: IndexFile[]): Map<string, IndexFile[]> {
  const groups = new Map<string, IndexFile[]>();
  for (const f of files) {
    const name = wheelName(f.filename);
    if (!name) continue;
    const list = groups.get(name.normalized) ?? [];
    list.push(f);
    groups.set(name.normalized, list);
  }
  return groups;
}

async function loadSource(source: Source, ctx: Context): Promise<SourceResult> {
  const shown = redactUrl(source.location);
  const warnings: string[] = [];
  if (isInsecure(source.location, ctx.settings.trustedHosts)) {
    warnings.push(
      `Skipped ${shown}: pip ignores plain-HTTP sources unless their host is a trusted-host.`,
    );
    return { source: shown, warnings };
  }
  // Per project: a function returning its files (index pages are fetched lazily, in the pool).
  let projects: Map<string, () => Promise<IndexFile[]>>;
  try {
    if (source.kind === "index") {
      const names = await ctx.run(() =>
        listProjects(source.location, { ...ctx.http, maxProjects: MAX_PROJECTS }),
      );
      projects = new Map(
        names.map((n) => [
          normalizeName(n),
          async () => (await projectFiles(source.location, n, ctx.http)) ?? [],
        ]),
      );
    } else {
      const groups = groupByProject(await ctx.run(() => findLinksFiles(source.location, ctx.http)));
      projects = new Map([...groups].map(([n, files]) => [n, async () => files]));
    }
  } catch (err) {
    if (err instanceof IndexTooLarge) {
      warnings.push(
        `Skipped ${shown}: it lists more than ${MAX_PROJECTS} projects, too many to read one wheel of each.`,
      );
    } else if (err instanceof IndexUnavailable) {
      warnings.push(err.message);
    } else {
      warnings.push(`Skipped ${shown}: ${errorText(err)}`);
    }
    return { source: shown, warnings };
  }

  const cached = await readCache(source.location);
  const result = new Map<string, CacheEntry>();
  // Entries of projects that failed this time are kept for the next run, not shown now.
  const kept: Record<string, CacheEntry> = {};
  const failures: string[] = [];
  let changed = false;
  ctx.progress.total += projects.size;
  await Promise.all(
    [...projects].map(([project, files]) =>
      ctx.run(async () => {
        try {
          const wheel = chooseWheel(await files(), project);
          if (!wheel) return;
          const sha256 = wheel.hashes.sha256;
          const prior = cached[project];
          const same = prior?.wheel === wheel.filename && prior.sha256 === sha256;
          if (prior && same && !ctx.opts.refresh) {
            result.set(project, prior);
            return;
          }
          const names = moduleNamesFromFiles(await wheelFileNames(wheel.url, ctx.http));
          const entry: CacheEntry = { wheel: wheel.filename, modules: names.modules };
          if (sha256) entry.sha256 = sha256;
          if (names.incidental.length > 0) entry.incidental = names.incidental;
          result.set(project, entry);
          changed = true;
        } catch (err) {
          failures.push(errorText(err));
          const prior = cached[project];
          if (prior) kept[project] = prior;
        } finally {
          ctx.progress.done++;
          ctx.opts.onProgress?.(ctx.progress.done, ctx.progress.total);
        }
      }),
    ),
  );
  // A wheel that cannot be read costs that project only: it is reported and the load goes on.
  failures.sort();
  warnings.push(...failures.slice(0, 3));
  const more = failures.length - 3;
  if (more > 0) {
    warnings.push(`${more} more project${more === 1 ? "" : "s"} on ${shown} could not be read.`);
  }
  const stored = { ...kept, ...Object.fromEntries(result) };
  if (changed || Object.keys(stored).length !== Object.keys(cached).length) {
    const file: SourceCache = { version: CACHE_VERSION, source: shown, projects: stored };
    const path = cachePath(source.location);
    try {
      await writeFileAtomic(path, `${JSON.stringify(file)}\n`);
    } catch (err) {
      // The map itself is complete; only the next run loses time.
      warnings.push(`Could not save the index cache ${path} (${errorText(err)}).`);
    }
  }
  return { source: shown, projects: result, warnings };
}

/**
 * Build the import-name map from every configured source: for each project, the module names
 * in one wheel of its newest version. Unreadable sources become warnings, never failures.
 */
export async function loadTopLevelMap(
  settings: IndexSettings,
  opts: LoadOptions = {},
): Promise<TopLevelMap> {
  const sources: Source[] = [];
  const add = (location: string, kind: Source["kind"]) => {
    if (!sources.some((s) => s.location === location)) sources.push({ location, kind });
  };
  if (!settings.noIndex) {
    for (const url of [settings.indexUrl, ...settings.extraIndexUrls]) add(url, "index");
  }
  for (const location of settings.findLinks) add(location, "find-links");

  const ctx: Context = {
    settings,
    opts,
    http: {
      timeoutMs: opts.timeoutMs,
      readTimeoutMs:
        settings.timeoutSeconds !== undefined ? settings.timeoutSeconds * 1000 : undefined,
    },
    run: limiter(Math.max(1, opts.concurrency ?? 16)),
    progress: { done: 0, total: 0 },
  };
  // Sources load side by side, so a slow or dead one does not delay the others.
  const results = await Promise.all(sources.map((s) => loadSource(s, ctx)));

  // Warnings come in source priority order, whatever order the sources finished in.
  const map: TopLevelMap = {
    modules: new Map(),
    indexes: [],
    warnings: results.flatMap((r) => r.warnings),
  };
  // A project found on several sources counts once, as read from the highest-priority one.
  const seen = new Set<string>();
  for (const r of results) {
    if (!r.projects) continue;
    map.indexes.push(r.source);
    for (const project of [...r.projects.keys()].sort()) {
      if (seen.has(project)) continue;
      seen.add(project);
      const entry = r.projects.get(project) as CacheEntry;
      for (const module of entry.modules) {
        const providers = map.modules.get(module) ?? [];
        const provider: ModuleProvider = { project, wheel: entry.wheel };
        if (entry.incidental?.includes(module)) provider.incidental = true;
        providers.push(provider);
        map.modules.set(module, providers);
      }
    }
  }
  return map;
}

/** The providers of the longest dotted prefix of `dotted` that is in the map. */
export function lookupModule(
  map: TopLevelMap,
  dotted: string,
): { prefix: string; providers: ModuleProvider[] } | undefined {
  const parts = dotted.split(".");
  for (let n = parts.length; n > 0; n--) {
    const prefix = parts.slice(0, n).join(".");
    const providers = map.modules.get(prefix);
    if (providers) return { prefix, providers };
  }
  return undefined;
}
