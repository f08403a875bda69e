import type { Dirent } from "node:fs";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, posix, relative, resolve, sep } from "node:path";
import { normalizeName } from "./names.js";

export interface InstalledDist {
  name: string;
  /** PEP 503 normalized name. */
  normalized: string;
  version: string;
  /** The site directory the metadata lives in. */
  location: string;
  metadataDir: string;
  /** Installed files relative to `location`, with "/" separators. */
  files: string[];
  topLevel: string[];
  editable: boolean;
  installer?: string;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch {
    return undefined;
  }
}

function lines(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** Name and Version from the header block of a METADATA / PKG-INFO file. */
function nameAndVersion(text: string | undefined): { name?: string; version?: string } {
  const found: { name?: string; version?: string } = {};
  for (const line of (text ?? "").split(/\r?\n/)) {
    if (line === "") break;
    const m = /^(Name|Version):\s*(.*?)\s*$/i.exec(line);
    if (!m) continue;
    const key = m[1]?.toLowerCase() === "name" ? "name" : "version";
    found[key] ??= m[2];
  }
  return found;
}

/** The first field of a RECORD row; RECORD is CSV, so paths holding commas come quoted. */
function recordPath(row: string): string {
  if (!row.startsWith('"')) {
    const comma = row.indexOf(",");
    return comma === -1 ? row : row.slice(0, comma);
  }
  let out = "";
  for (let i = 1; i < row.length; i++) {
    const ch = row[i];
    if (ch === '"') {
      if (row[i + 1] !== '"') break;
      i++;
    }
    out += ch;
  }
  return out;
}

function isEditable(directUrl: string | undefined): boolean {
  if (directUrl === undefined) return false;
  try {
    const parsed = JSON.parse(directUrl) as { dir_info?: { editable?: unknown } };
    return parsed.dir_info?.editable === true;
  } catch {
    return false;
  }
}

async function readDist(location: string, entry: string): Promise<InstalledDist | undefined> {
  const metadataDir = join(location, entry);
  const isDistInfo = entry.endsWith(".dist-info");
  const isDir = (await stat(metadataDir)).isDirectory();
  if (isDistInfo && !isDir) return undefined;
  const at = (file: string) => join(metadataDir, file);
  // An .egg-info file (not a directory) is the PKG-INFO itself and lists no files.
  const header = await readText(isDir ? at(isDistInfo ? "METADATA" : "PKG-INFO") : metadataDir);
  const stem = entry.slice(0, entry.lastIndexOf("."));
  const [stemName, stemVersion] = stem.split("-");
  const { name = stemName, version = stemVersion ?? "" } = nameAndVersion(header);
  if (!name) return undefined;
  let files: string[] = [];
  if (isDir && isDistInfo) {
    files = lines(await readText(at("RECORD"))).map((row) => posix.normalize(recordPath(row)));
  } else if (isDir) {
    // installed-files.txt is relative to the .egg-info directory itself.
    files = lines(await readText(at("installed-files.txt"))).map((file) =>
      relative(location, resolve(metadataDir, file)).split(sep).join("/"),
    );
  }
  const installer = isDir ? (await readText(at("INSTALLER")))?.trim() : undefined;
  return {
    name,
    normalized: normalizeName(name),
    version,
    location,
    metadataDir,
    files,
    topLevel: isDir ? lines(await readText(at("top_level.txt"))) : [],
    editable: isDir && isDistInfo && isEditable(await readText(at("direct_url.json"))),
    installer: installer || undefined,
  };
}

/**
 * Every distribution with metadata (`*.dist-info`, `*.egg-info` directory or file) in the given
 * site directories, in directory order. Unreadable entries are skipped.
 */
export async function listInstalled(siteDirs: string[]): Promise<InstalledDist[]> {
  const result: InstalledDist[] = [];
  for (const siteDir of siteDirs) {
    const location = resolve(siteDir);
    let entries: string[];
    try {
      entries = await readdir(location);
    } catch {
      continue;
    }
    const metadata = entries.filter((e) => e.endsWith(".dist-info") || e.endsWith(".egg-info"));
    const dists = await Promise.all(
      metadata.sort().map((e) => readDist(location, e).catch(() => undefined)),
    );
    for (const dist of dists) if (dist) result.push(dist);
  }
  return result;
}

export type ModuleKind = "package" | "module" | "extension" | "namespace";

export interface ModuleFile {
  /** The file Python would load: for a package its `__init__`; for a namespace its first portion. */
  path: string;
  kind: ModuleKind;
  /** Every directory of a namespace package, in sys.path order. */
  portions?: string[];
}

interface Level extends ModuleFile {
  /** The directories searched that held this name (the sys.path entry, for a top-level name). */
  entries: string[];
}

type Listing = Map<string, Dirent> | undefined;

// Extension-module file name after "<name>.": interpreter-tagged, stable-ABI, or bare.
const EXTENSION = /^(?:(cpython-[\w-]+|cp\d+[\w-]*|pypy[\w-]*)\.|(abi3)\.)?(?:so|pyd)$/;

function extensionRank(file: string, name: string): number {
  if (!file.startsWith(`${name}.`)) return -1;
  const m = EXTENSION.exec(file.slice(name.length + 1));
  if (!m) return -1;
  // Python tries the interpreter-tagged suffix first, then abi3, then the bare one.
  return m[1] ? 0 : m[2] ? 1 : 2;
}

class Finder {
  private readonly listings = new Map<string, Promise<Listing>>();

  private list(dir: string): Promise<Listing> {
    let listing = this.listings.get(dir);
    if (!listing) {
      listing = readdir(dir, { withFileTypes: true }).then(
        (ents) => new Map(ents.map((e) => [e.name, e])),
        () => undefined,
      );
      this.listings.set(dir, listing);
    }
    return listing;
  }

  private async isKind(dir: string, entry: Dirent, want: "dir" | "file"): Promise<boolean> {
    if (entry.isSymbolicLink()) {
      const st = await stat(join(dir, entry.name)).catch(() => undefined);
      return want === "dir" ? st?.isDirectory() === true : st?.isFile() === true;
    }
    return want === "dir" ? entry.isDirectory() : entry.isFile();
  }

  /** A module file for `name` directly in `dir`: extension, then source, then bytecode. */
  private async moduleIn(dir: string, name: string): Promise<ModuleFile | undefined> {
    const listing = await this.list(dir);
    if (!listing) return undefined;
    let best: { file: string; rank: number } | undefined;
    for (const [file, entry] of listing) {
      const rank = extensionRank(file, name);
      if (rank < 0 || (best && best.rank <= rank)) continue;
      if (await this.isKind(dir, entry, "file")) best = { file, rank };
    }
    if (best) return { path: join(dir, best.file), kind: "extension" };
    for (const suffix of [".py", ".pyc"]) {
      const entry = listing.get(name + suffix);
      if (entry && (await this.isKind(dir, entry, "file"))) {
        return { path: join(dir, name + suffix), kind: "module" };
      }
    }
    return undefined;
  }

  /** Look `name` up along `dirs` the way importlib's PathFinder and FileFinder do. */
  async find(name: string, dirs: string[]): Promise<Level | undefined> {
    const portions: string[] = [];
    const portionEntries: string[] = [];
    for (const dir of dirs) {
      const listing = await this.list(dir);
      const entry = listing?.get(name);
      const isDir = entry !== undefined && (await this.isKind(dir, entry, "dir"));
      if (isDir) {
        const init = await this.moduleIn(join(dir, name), "__init__");
        if (init) return { path: init.path, kind: "package", entries: [dir] };
      }
      const module = await this.moduleIn(dir, name);
      if (module) return { ...module, entries: [dir] };
      if (isDir) {
        portions.push(join(dir, name));
        portionEntries.push(dir);
      }
    }
    const [first] = portions;
    if (first === undefined) return undefined;
    return { path: first, kind: "namespace", portions, entries: portionEntries };
  }

  /** Each prefix of `parts` that resolves, outermost first; stops at the first that does not. */
  async chain(parts: string[], sysPath: string[]): Promise<Level[]> {
    const levels: Level[] = [];
    let dirs = sysPath.map((p) => resolve(p));
    for (const name of parts) {
      const level = await this.find(name, dirs);
      if (!level) break;
      levels.push(level);
      if (level.kind === "package") dirs = [dirname(level.path)];
      else if (level.kind === "namespace") dirs = level.portions ?? [];
      else break;
    }
    return levels;
  }
}

/**
 * Where `import dotted` would be found along `sysPath`, judged from the file system alone (nothing
 * is imported). Extension suffixes are recognised by shape, since the interpreter is not asked.
 */
export async function findModuleFile(
  dotted: string,
  sysPath: string[],
): Promise<ModuleFile | undefined> {
  const parts = dotted.split(".");
  const levels = await new Finder().chain(parts, sysPath);
  if (levels.length !== parts.length) return undefined;
  const last = levels[levels.length - 1];
  if (!last) return undefined;
  const { entries: _entries, ...found } = last;
  return found;
}

export interface ModuleOwner {
  /** The dotted prefix of the request whose file the distribution owns. */
  module: string;
  dist: InstalledDist;
  file: string;
}

interface OwnerIndex {
  /** Absolute installed file path (site directory resolved through symlinks) to its owner. */
  byFile: Map<string, InstalledDist>;
  realLocation: Map<InstalledDist, string>;
  /** Directory listings, shared by every lookup against the same environment. */
  finder: Finder;
}

const indexes = new WeakMap<readonly InstalledDist[], Promise<OwnerIndex>>();

async function buildIndex(dists: readonly InstalledDist[]): Promise<OwnerIndex> {
  const byFile = new Map<string, InstalledDist>();
  const realLocation = new Map<InstalledDist, string>();
  const realOf = new Map<string, Promise<string>>();
  for (const dist of dists) {
    let real = realOf.get(dist.location);
    if (!real) {
      real = realpath(dist.location).catch(() => resolve(dist.location));
      realOf.set(dist.location, real);
    }
    const base = await real;
    realLocation.set(dist, base);
    for (const file of dist.files) {
      const abs = join(base, file);
      // The first distribution to claim a file wins, as the first site directory does in Python.
      if (!byFile.has(abs)) byFile.set(abs, dist);
    }
  }
  return { byFile, realLocation, finder: new Finder() };
}

function indexFor(dists: readonly InstalledDist[]): Promise<OwnerIndex> {
  let index = indexes.get(dists);
  if (!index) {
    index = buildIndex(dists);
    indexes.set(dists, index);
  }
  return index;
}

/** The path as the index spells it: directories resolved through symlinks, the file name kept. */
async function indexKey(file: string): Promise<string> {
  const dir = dirname(file);
  return join(await realpath(dir).catch(() => dir), basename(file));
}

/** The one distribution owning files under every portion of a namespace package, if unique. */
async function soleOwnerUnder(
  index: OwnerIndex,
  portions: string[],
): Promise<InstalledDist | undefined> {
  const owners = new Set<InstalledDist>();
  for (const portion of portions) {
    const prefix = (await indexKey(portion)) + sep;
    for (const [file, dist] of index.byFile) if (file.startsWith(prefix)) owners.add(dist);
  }
  return owners.size === 1 ? [...owners][0] : undefined;
}

/**
 * The installed distribution that provides `import dotted`: the longest dotted prefix whose file a
 * distribution's RECORD lists wins, so `google.protobuf` and `google.auth` resolve to different
 * distributions; then top_level.txt. Undefined for the standard library and for unowned code.
 * Pass the same `dists` array on every call: the file index and directory listings are built once
 * per array, so they reflect the environment as it was at the first call.
 */
export async function ownerOf(
  dotted: string,
  sysPath: string[],
  dists: InstalledDist[],
): Promise<ModuleOwner | undefined> {
  const parts = dotted.split(".");
  const index = await indexFor(dists);
  const levels = await index.finder.chain(parts, sysPath);
  for (let i = levels.length - 1; i >= 0; i--) {
    const level = levels[i] as Level;
    const module = parts.slice(0, i + 1).join(".");
    const dist =
      level.kind === "namespace"
        ? await soleOwnerUnder(index, level.portions ?? [])
        : index.byFile.get(await indexKey(level.path));
    if (dist) return { module, dist, file: level.path };
  }
  const top = levels[0];
  const topName = parts[0];
  if (!top || topName === undefined) return undefined;
  // No RECORD lists the file: accept a top_level.txt claim from a distribution in the same site
  // directory (or an editable one, whose code lives elsewhere), but only an unambiguous one.
  const entries = new Set(await Promise.all(top.entries.map((e) => realpath(e).catch(() => e))));
  const claims = dists.filter(
    (d) =>
      d.topLevel.includes(topName) &&
      (d.editable || entries.has(index.realLocation.get(d) ?? d.location)),
  );
  const [claim] = claims;
  return claims.length === 1 && claim
    ? { module: topName, dist: claim, file: top.path }
    : undefined;
}
