/**
 * PEP 751 lock files (pylock.toml): written from a resolution, read back for installing.
 *
 * A lock pyferry writes is single-use: one target (recorded under [tool.pyferry.target], and
 * as an `environments` marker), one file per package, each with its sha256. Writing is
 * deterministic — the same resolution gives the same bytes — so locks diff cleanly. Reading
 * validates everything an installer relies on, so installing never needs to resolve again.
 */
import { isAbsolute, relative, resolve as resolvePath, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parse, TomlError } from "smol-toml";
import { withoutUserInfo } from "../index/http.js";
import { parseMarker } from "../python/marker.js";
import { normalizeName } from "../python/names.js";
import { type Target, targetFromTable } from "../python/target.js";
import {
  compareVersions,
  isValidSpecifier,
  isValidVersion,
  majorMinor,
} from "../python/version.js";
import { UserError } from "../util/errors.js";
import { isTable, type Table } from "../util/toml-table.js";
import { distName } from "./provider.js";
import type { Resolution, ResolvedPackage } from "./resolver.js";

export interface LockedFile {
  /** The file name. */
  name: string;
  /** Where to get it: a URL, or a path relative to the lock file's folder (as written). */
  url?: string;
  path?: string;
  size?: number;
  /** Lower-case hex. */
  sha256: string;
}

/**
 * A package PEP 751 locks by direct reference rather than by index files: an archive at a URL
 * or path (with its hash), a local project folder, or a commit of a version-control repository.
 */
export type LockedSource =
  | { kind: "archive"; file: LockedFile; subdirectory?: string }
  | { kind: "directory"; path: string; editable: boolean; subdirectory?: string }
  | {
      kind: "vcs";
      type: string;
      /** A URL, or a path relative to the lock file's folder. */
      url?: string;
      path?: string;
      commitId: string;
      requestedRevision?: string;
      subdirectory?: string;
    };

export interface LockedPackage {
  /** Normalized. */
  name: string;
  /** "" for a direct reference whose lock gives no version. */
  version: string;
  /** Set for a direct reference; `wheels` is then empty and `sdist` absent. */
  source?: LockedSource;
  marker?: string;
  requiresPython?: string;
  /** Normalized names; informational only (PEP 751 forbids using it to install). */
  dependencies: string[];
  /** The simple-API index the files came from, when they came from one. */
  index?: string;
  wheels: LockedFile[];
  sdist?: LockedFile;
  /** From [packages.tool.pyferry]; false and [] for locks other tools wrote. */
  requested: boolean;
  extras: string[];
}

export interface Lock {
  lockVersion: string;
  createdBy: string;
  environments: string[];
  requiresPython?: string;
  /** PEP 751's extras and dependency groups a user may pick, and the groups taken by default;
   *  absent when the lock lists none (pyferry's own locks). Extras are normalized. */
  extras?: string[];
  dependencyGroups?: string[];
  defaultGroups?: string[];
  /** What was asked for, from [tool.pyferry]; [] when absent. */
  requirements: string[];
  constraints: string[];
  target?: Target;
  packages: LockedPackage[];
}

export interface LockOptions {
  /** Tool name and version for `created-by`; default "pyferry". */
  createdBy?: string;
  /** The lock file's folder: local files are then recorded by paths relative to it. */
  lockDir?: string;
  /**
   * The project's extras and dependency groups the resolution took in, normalized. A package
   * the project's own requirements do not lead to is then marked with the extras and groups
   * that do (its `via`, as labelled by `extraLabel` and `groupLabel`).
   */
  sets?: { extras: string[]; groups: string[] };
}

/** The origin label and package marker of an extra, and of a dependency group (PEP 751). */
export const extraLabel = (extra: string): string => `'${extra}' in extras`;
export const groupLabel = (group: string): string => `'${group}' in dependency_groups`;
/** The label of the requirements every installation gets. */
export const BASE_LABEL = "";

/** The `environments` marker for a target: its Python minor version, implementation and platform. */
export function targetEnvironment(target: Target): string {
  const env = target.markerEnv;
  return [
    `python_version == '${majorMinor(target.pythonVersion)}'`,
    `implementation_name == '${env.implementation_name}'`,
    `sys_platform == '${env.sys_platform}'`,
    `platform_machine == '${env.platform_machine}'`,
  ].join(" and ");
}

function lockedFile(p: ResolvedPackage, lockDir?: string): LockedFile {
  const f: LockedFile = { name: p.file.filename, sha256: p.sha256.toLowerCase() };
  const rel =
    lockDir !== undefined && p.file.url.startsWith("file:")
      ? relative(resolvePath(lockDir), fileURLToPath(p.file.url))
      : undefined;
  // A file under the lock's folder (a project's own wheels) is recorded relative to it, so the
  // two move together; PEP 751 allows POSIX separators there. One elsewhere (a local index, a
  // shared find-links folder) keeps its absolute URL: a lock copied to another folder still
  // finds it.
  if (rel !== undefined && !isAbsolute(rel) && rel !== ".." && !rel.startsWith(`..${sep}`))
    f.path = rel.split(sep).join("/");
  else f.url = p.file.url;
  if (p.size !== undefined) f.size = p.size;
  return f;
}

/** The target as a lock records it: the fields written, string marker values only. */
function lockedTarget(t: Target): Target {
  const env = t.markerEnv as unknown as Record<string, unknown>;
  const markerEnv = Object.fromEntries(
    Object.keys(env)
      .filter((k) => typeof env[k] === "string")
      .sort()
      .map((k) => [k, env[k]]),
  );
  const out: Target = {
    implementation: t.implementation,
    pythonVersion: t.pythonVersion,
    abiTags: [...t.abiTags],
    platforms: [...t.platforms],
    markerEnv: markerEnv as unknown as Target["markerEnv"],
  };
  if (t.interpreter !== undefined) out.interpreter = t.interpreter;
  return out;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The lock a resolution gives, as `readLock` would return it after `lockToml`. */
export function lockFromResolution(res: Resolution, opts: LockOptions = {}): Lock {
  const sets = opts.sets
    ? {
        extras: [...opts.sets.extras].sort(),
        dependencyGroups: [...opts.sets.groups].sort(),
        defaultGroups: [],
      }
    : {};
  return {
    lockVersion: "1.0",
    createdBy: opts.createdBy ?? "pyferry",
    environments: [targetEnvironment(res.target)],
    requiresPython: `==${majorMinor(res.target.pythonVersion)}.*`,
    requirements: [...res.requirements],
    constraints: [...(res.constraints ?? [])],
    target: lockedTarget(res.target),
    ...sets,
    packages: [...res.packages].sort(byName).map((p) => {
      const file = lockedFile(p, opts.lockDir);
      const locked: LockedPackage = {
        name: p.name,
        version: p.version,
        dependencies: [...p.dependencies].sort(),
        wheels: p.kind === "wheel" ? [file] : [],
        requested: p.requested,
        extras: [...p.extras].sort(),
      };
      if (opts.sets && p.via && p.via.length > 0 && !p.via.includes(BASE_LABEL)) {
        locked.marker = p.via.join(" or ");
      }
      if (p.requiresPython !== undefined) locked.requiresPython = p.requiresPython;
      if (p.index !== undefined) locked.index = p.index;
      if (p.kind === "sdist") locked.sdist = file;
      return locked;
    }),
  };
}

// --- writing ---------------------------------------------------------------------------

/** A TOML basic string. */
function str(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) as number;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Bare keys where TOML allows them, quoted otherwise. */
function key(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : str(k);
}

function strArray(values: string[]): string {
  return `[${values.map(str).join(", ")}]`;
}

/** A long list, one item a line, as PEP 751's example writes `wheels`. */
function lines(name: string, items: string[]): string[] {
  if (items.length === 0) return [`${name} = []`];
  return [`${name} = [`, ...items.map((i) => `  ${i},`), "]"];
}

function fileTable(f: LockedFile): string {
  // Credentials never go into a file people commit; installing finds them where pip does.
  const parts = [`name = ${str(f.name)}`];
  if (f.url !== undefined) parts.push(`url = ${str(withoutUserInfo(f.url))}`);
  if (f.path !== undefined) parts.push(`path = ${str(f.path)}`);
  if (f.size !== undefined) parts.push(`size = ${f.size}`);
  parts.push(`hashes = { sha256 = ${str(f.sha256)} }`);
  return `{ ${parts.join(", ")} }`;
}

function targetLines(t: Target): string[] {
  const out = [
    "",
    "[tool.pyferry.target]",
    `implementation = ${str(t.implementation)}`,
    `python-version = ${str(t.pythonVersion)}`,
    `abi-tags = ${strArray(t.abiTags)}`,
    ...lines("platforms", t.platforms.map(str)),
  ];
  if (t.interpreter !== undefined) out.push(`interpreter = ${str(t.interpreter)}`);
  out.push("", "[tool.pyferry.target.marker-env]");
  const env = t.markerEnv as unknown as Record<string, unknown>;
  for (const k of Object.keys(env).sort()) {
    const v = env[k];
    if (typeof v === "string") out.push(`${key(k)} = ${str(v)}`);
  }
  return out;
}

/** A lock as pylock.toml text; stable key order, no timestamps. */
export function formatLock(lock: Lock): string {
  const out = [
    `lock-version = ${str(lock.lockVersion)}`,
    `environments = ${strArray(lock.environments)}`,
  ];
  if (lock.requiresPython !== undefined) out.push(`requires-python = ${str(lock.requiresPython)}`);
  out.push(
    `extras = ${strArray(lock.extras ?? [])}`,
    `dependency-groups = ${strArray(lock.dependencyGroups ?? [])}`,
    `default-groups = ${strArray(lock.defaultGroups ?? [])}`,
    `created-by = ${str(lock.createdBy)}`,
  );
  // A program with no third-party needs still gets a lock; TOML needs an inline empty array.
  if (lock.packages.length === 0) out.push("packages = []");
  for (const p of lock.packages) {
    out.push("", "[[packages]]", `name = ${str(p.name)}`, `version = ${str(p.version)}`);
    if (p.marker !== undefined) out.push(`marker = ${str(p.marker)}`);
    if (p.requiresPython !== undefined) out.push(`requires-python = ${str(p.requiresPython)}`);
    if (p.dependencies.length > 0) {
      out.push(
        ...lines(
          "dependencies",
          p.dependencies.map((d) => `{ name = ${str(d)} }`),
        ),
      );
    }
    if (p.index !== undefined) out.push(`index = ${str(withoutUserInfo(p.index))}`);
    if (p.wheels.length > 0) out.push(...lines("wheels", p.wheels.map(fileTable)));
    if (p.sdist !== undefined) out.push(`sdist = ${fileTable(p.sdist)}`);
    out.push(
      "",
      "[packages.tool.pyferry]",
      `requested = ${p.requested}`,
      `extras = ${strArray(p.extras)}`,
    );
  }
  out.push(
    "",
    "[tool.pyferry]",
    `requirements = ${strArray(lock.requirements)}`,
    `constraints = ${strArray(lock.constraints)}`,
  );
  if (lock.target) out.push(...targetLines(lock.target));
  return `${out.join("\n")}\n`;
}

/** pylock.toml text for a resolution: the same resolution always gives the same bytes. */
export function lockToml(res: Resolution, opts: LockOptions = {}): string {
  return formatLock(lockFromResolution(res, opts));
}

/** A locked file's URL: as written, or a file URL for its path taken from the lock's folder. */
export function lockedFileUrl(f: LockedFile, lockDir: string): string {
  if (f.url !== undefined) return f.url;
  return pathToFileURL(resolvePath(lockDir, f.path ?? "")).href;
}

// --- reading ---------------------------------------------------------------------------

/** A file's name from its path, else from its URL's path, percent-decoded (as packaging does). */
function fileName(path: string | undefined, url: string | undefined): string {
  if (path !== undefined) return path.split(/[/\\]/).pop() ?? "";
  const raw =
    (url ?? "")
      .replace(/[?#].*$/, "")
      .split("/")
      .pop() ?? "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** PEP 508's name, which extras share: names go into messages and records, never paths. */
const PROJECT_NAME = /^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$/;

class LockReader {
  constructor(private readonly fileName: string) {}

  fail(what: string): never {
    throw new UserError(`The lock file ${this.fileName} is invalid: ${what}.`);
  }

  string(t: Table, k: string, where: string, required: true): string;
  string(t: Table, k: string, where: string, required?: false): string | undefined;
  string(t: Table, k: string, where: string, required = false): string | undefined {
    const v = t[k];
    if (v === undefined) return required ? this.fail(`${where} has no ${k}`) : undefined;
    if (typeof v !== "string") return this.fail(`${k} of ${where} is not a string`);
    return v;
  }

  strings(t: Table, k: string, where: string): string[] {
    const v = t[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      return this.fail(`${k} of ${where} is not a list of strings`);
    }
    return v as string[];
  }

  file(v: unknown, where: string): LockedFile {
    if (!isTable(v)) return this.fail(`a file of ${where} is not a table`);
    const url = this.string(v, "url", where);
    const path = this.string(v, "path", where);
    if (url === undefined && path === undefined)
      this.fail(`a file of ${where} has neither url nor path`);
    const name = this.string(v, "name", where) ?? fileName(path, url);
    const label = `${name} of ${where}`;
    const hashes = v.hashes;
    const sha256 = isTable(hashes) ? hashes.sha256 : undefined;
    if (sha256 === undefined) this.fail(`${label} has no sha256 hash`);
    if (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      this.fail(`${label} has a sha256 hash that is not 64 hexadecimal digits`);
    }
    const f: LockedFile = { name, sha256: sha256.toLowerCase() };
    if (url !== undefined) f.url = url;
    if (path !== undefined) f.path = path;
    if (v.size !== undefined) {
      if (typeof v.size !== "number" || !Number.isInteger(v.size) || v.size < 0) {
        this.fail(`the size of ${label} is not a whole number`);
      }
      f.size = v.size;
    }
    return f;
  }

  target(v: unknown): Target {
    return targetFromTable(v, "[tool.pyferry.target]", (reason) => this.fail(reason));
  }

  pkg(v: unknown, index: number): LockedPackage {
    if (!isTable(v)) return this.fail(`packages entry ${index + 1} is not a table`);
    const rawName = this.string(v, "name", `packages entry ${index + 1}`, true);
    if (!PROJECT_NAME.test(rawName))
      this.fail(
        `packages entry ${index + 1} has the invalid project name ${JSON.stringify(rawName)}`,
      );
    const name = normalizeName(rawName);
    const where = `package ${name}`;
    const wheelsRaw = v.wheels ?? [];
    if (!Array.isArray(wheelsRaw)) this.fail(`wheels of ${where} is not a list`);
    const wheels = wheelsRaw.map((w) => this.file(w, where));
    const sdist = v.sdist === undefined ? undefined : this.file(v.sdist, where);
    const direct = ["vcs", "directory", "archive"].filter((k) => v[k] !== undefined);
    if (direct.length > 0 && (wheels.length > 0 || sdist))
      this.fail(
        `${where} has ${direct[0]} besides its wheels or sdist; PEP 751 allows one or the other`,
      );
    if (direct.length > 1) this.fail(`${where} has both ${direct[0]} and ${direct[1]}`);
    const source = direct.length === 1 ? this.source(v, direct[0] as string, where) : undefined;
    if (wheels.length === 0 && !sdist && !source)
      this.fail(`${where} has neither a wheel nor an sdist`);
    const files = [...wheels, ...(sdist ? [sdist] : [])];
    if (source?.kind === "archive") files.push(source.file);
    const first = files[0];
    const version =
      this.string(v, "version", where) ??
      distName(first?.name ?? "")?.version ??
      (source ? "" : undefined);
    if (version === undefined) this.fail(`${where} has no version`);
    if (version !== "" && !isValidVersion(version))
      this.fail(`${where} has the invalid version ${JSON.stringify(version)}`);
    // Each file must be this package's: installing another project's wheel under this name
    // would record one thing and install another.
    for (const f of files) {
      const d = distName(f.name);
      if (d && (d.name !== name || (version !== "" && compareVersions(d.version, version) !== 0)))
        this.fail(`${f.name} is not a file of ${name}${version ? ` ${version}` : ""}`);
    }
    const deps = v.dependencies ?? [];
    if (!Array.isArray(deps) || deps.some((d) => !isTable(d) || typeof d.name !== "string")) {
      this.fail(`dependencies of ${where} is not a list of tables with a name`);
    }
    const tool = isTable(v.tool) && isTable(v.tool.pyferry) ? v.tool.pyferry : {};
    const p: LockedPackage = {
      name,
      version,
      dependencies: (deps as Table[]).map((d) => normalizeName(d.name as string)),
      wheels,
      requested: tool.requested === true,
      extras: this.strings(tool, "extras", `[packages.tool.pyferry] of ${where}`),
    };
    const marker = this.string(v, "marker", where);
    if (marker !== undefined) {
      try {
        parseMarker(marker);
      } catch {
        this.fail(`the marker of ${where} is not a valid marker`);
      }
      p.marker = marker;
    }
    const requiresPython = this.string(v, "requires-python", where);
    if (requiresPython !== undefined) {
      if (!isValidSpecifier(requiresPython)) this.fail(`requires-python of ${where} is not valid`);
      p.requiresPython = requiresPython;
    }
    const indexUrl = this.string(v, "index", where);
    if (indexUrl !== undefined) p.index = indexUrl;
    if (sdist) p.sdist = sdist;
    if (source) p.source = source;
    return p;
  }

  source(v: Table, kind: string, where: string): LockedSource {
    const t = v[kind];
    const at = `the ${kind} of ${where}`;
    if (!isTable(t)) return this.fail(`${at} is not a table`);
    const subdirectory = this.string(t, "subdirectory", at);
    const sub = subdirectory === undefined ? {} : { subdirectory };
    // A subdirectory is inside what it belongs to: never absolute, never up and out.
    if (subdirectory?.startsWith("/") || subdirectory?.split(/[/\\]/).includes(".."))
      this.fail(`the subdirectory of ${at} leaves it`);
    if (kind === "archive") return { kind, file: this.file(t, where), ...sub };
    if (kind === "directory") {
      const editable = t.editable ?? false;
      if (typeof editable !== "boolean") this.fail(`editable of ${at} is not true or false`);
      return { kind, path: this.string(t, "path", at, true), editable, ...sub };
    }
    const url = this.string(t, "url", at);
    const path = this.string(t, "path", at);
    if (url === undefined && path === undefined) this.fail(`${at} has neither url nor path`);
    const revision = this.string(t, "requested-revision", at);
    return {
      kind: "vcs",
      type: this.string(t, "type", at, true),
      ...(url !== undefined ? { url } : {}),
      ...(path !== undefined ? { path } : {}),
      commitId: this.string(t, "commit-id", at, true),
      ...(revision !== undefined ? { requestedRevision: revision } : {}),
      ...sub,
    };
  }

  read(text: string): Lock {
    let doc: Table;
    try {
      doc = parse(text) as Table;
    } catch (err) {
      if (!(err instanceof TomlError)) throw err;
      const what = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
      throw new UserError(
        `The lock file ${this.fileName} is not valid TOML: ${what} at line ${err.line}, column ${err.column}.`,
      );
    }
    const version = this.string(doc, "lock-version", "it", true);
    const major = /^(\d+)(\.\d+)?$/.exec(version)?.[1];
    if (major !== "1") {
      this.fail(`its lock-version is "${version}" and this pyferry reads only 1.x`);
    }
    const environments = this.strings(doc, "environments", "it");
    for (const env of environments) {
      try {
        parseMarker(env);
      } catch {
        this.fail(`the environment marker "${env}" is not a valid marker`);
      }
    }
    if (!Array.isArray(doc.packages)) this.fail("it has no [[packages]] list");
    const packages = doc.packages.map((p, i) => this.pkg(p, i));
    const unconditional = new Set<string>();
    for (const p of packages) {
      if (p.marker !== undefined) continue;
      if (unconditional.has(p.name)) this.fail(`package ${p.name} is listed twice without markers`);
      unconditional.add(p.name);
    }
    const tool = isTable(doc.tool) && isTable(doc.tool.pyferry) ? doc.tool.pyferry : {};
    const extras = this.strings(doc, "extras", "it");
    for (const e of extras) {
      if (!PROJECT_NAME.test(e)) this.fail(`its extra ${JSON.stringify(e)} is not a valid name`);
    }
    const picks = {
      extras: extras.map(normalizeName),
      dependencyGroups: this.strings(doc, "dependency-groups", "it"),
      defaultGroups: this.strings(doc, "default-groups", "it"),
    };
    const lock: Lock = {
      lockVersion: version,
      createdBy: this.string(doc, "created-by", "it", true),
      environments,
      requirements: this.strings(tool, "requirements", "[tool.pyferry]"),
      constraints: this.strings(tool, "constraints", "[tool.pyferry]"),
      packages,
    };
    const requiresPython = this.string(doc, "requires-python", "it");
    if (requiresPython !== undefined) {
      if (!isValidSpecifier(requiresPython)) this.fail("its requires-python is not valid");
      lock.requiresPython = requiresPython;
    }
    for (const [k, v] of Object.entries(picks)) {
      if (v.length > 0) lock[k as keyof typeof picks] = v;
    }
    if (tool.target !== undefined) lock.target = this.target(tool.target);
    return lock;
  }
}

/**
 * Read and validate a pylock.toml. `fileName` names it in messages; lockedFileUrl turns a
 * relative `path` into a URL. Throws UserError, one sentence, for
 * malformed input: bad TOML (with line), an unsupported lock-version major, a file without a
 * sha256, a package without any wheel or sdist.
 */
export function readLock(text: string, fileName: string): Lock {
  return new LockReader(fileName).read(text);
}
