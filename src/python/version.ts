/**
 * PEP 440 versions and version specifiers, on top of @renovatebot/pep440.
 *
 * Parsing, normalization and ordering come from the library. Specifier *matching* is done
 * here, clause by clause, because the library's matcher departs from PEP 440 (and from
 * pypa/packaging, which pip uses) in cases that matter when choosing wheels: `<V`/`>V`
 * wrongly reject every version sharing V's release numbers (so `3.13.0 > 3.13.0rc1` fails),
 * `==V+local` ignores the local label, `==1.0.*` does not zero-pad (`1` fails to match),
 * and a pre-release named in one clause does not let pre-releases through the others.
 */
import { compare, explain, valid, validRange } from "@renovatebot/pep440";
import { UserError } from "../util/errors.js";

export type SpecifierOp = "~=" | "==" | "!=" | "<=" | ">=" | "<" | ">" | "===";

/** One comma-separated clause of a specifier, e.g. `>=1.0` or `==2.*`. */
export interface SpecifierClause {
  op: SpecifierOp;
  /** The version as written, without the `.*` of a prefix match. */
  version: string;
  /** True for `==X.*` / `!=X.*`. */
  prefix: boolean;
}

/** Thrown when a string that must be a PEP 440 version or specifier is not one. */
export class VersionError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "VersionError";
  }
}

const CLAUSE = /^\s*(===|~=|==|!=|<=|>=|<|>)\s*(\S+)\s*$/;

/** The parts of a version that matching needs. */
export interface ParsedVersion {
  epoch: number;
  release: number[];
  /** Normalized, without the local label: "1!2.0rc1". */
  public: string;
  /** Epoch and release only: "1!2.0". */
  baseVersion: string;
  local?: string;
  /** A pre-release or a development release (PEP 440 counts both). */
  isPrerelease: boolean;
  isPostrelease: boolean;
}

export function isValidVersion(v: string): boolean {
  return valid(v) !== null;
}

function tryParseVersion(v: string): ParsedVersion | undefined {
  const e = valid(v) === null ? null : explain(v);
  if (!e) return undefined;
  return {
    epoch: e.epoch,
    release: e.release,
    public: e.public,
    baseVersion: e.base_version,
    ...(e.local ? { local: e.local } : {}),
    isPrerelease: e.is_prerelease,
    isPostrelease: e.is_postrelease,
  };
}

/** Parse a version; throws VersionError when it is not valid PEP 440. */
export function parseVersion(v: string): ParsedVersion {
  const parsed = tryParseVersion(v);
  if (!parsed) throw new VersionError(`"${v}" is not a valid PEP 440 version.`);
  return parsed;
}

/** The canonical spelling of a version (`1.0-1` -> `1.0.post1`, `V1.0RC1` -> `1.0rc1`). */
export function normalizeVersion(v: string): string {
  // The library's own clean() mangles local labels ("+ubuntu.1" becomes "+ubuntu,1").
  const parsed = parseVersion(v);
  return parsed.local ? `${parsed.public}+${parsed.local}` : parsed.public;
}

/** Negative, zero or positive as `a` sorts before, equal to, or after `b` in PEP 440 order. */
export function compareVersions(a: string, b: string): number {
  parseVersion(a);
  parseVersion(b);
  return Math.sign(compare(a, b));
}

/** "3.11.7" -> "3.11"; a lone major ("3") gets minor 0. */
export function majorMinor(v: string): string {
  const { release } = parseVersion(v);
  return `${release[0]}.${release[1] ?? 0}`;
}

function parseClause(text: string): SpecifierClause | undefined {
  const m = CLAUSE.exec(text);
  if (!m) return undefined;
  const op = m[1] as SpecifierOp;
  const raw = m[2] as string;
  // Arbitrary equality compares strings; anything without whitespace is allowed.
  if (op === "===") return { op, version: raw, prefix: false };
  const prefix = raw.endsWith(".*");
  const version = prefix ? raw.slice(0, -2) : raw;
  const parsed = tryParseVersion(version);
  if (!parsed) return undefined;
  if (prefix) {
    // A prefix match names release numbers only: `==1.0.*`, never `==1.0rc1.*`.
    if (op !== "==" && op !== "!=") return undefined;
    if (parsed.public !== parsed.baseVersion || parsed.local) return undefined;
  }
  if (parsed.local && op !== "==" && op !== "!=") return undefined;
  if (op === "~=" && parsed.release.length < 2) return undefined;
  return { op, version, prefix };
}

function tryParseSpecifier(spec: string): SpecifierClause[] | undefined {
  if (!validRange(spec)) return undefined;
  if (spec.trim() === "") return [];
  const clauses: SpecifierClause[] = [];
  for (const part of spec.split(",")) {
    const clause = parseClause(part);
    if (!clause) return undefined;
    clauses.push(clause);
  }
  return clauses;
}

/** Split a specifier such as `>=1.0, <2` into clauses; throws VersionError when invalid. */
export function parseSpecifier(spec: string): SpecifierClause[] {
  const clauses = tryParseSpecifier(spec);
  if (!clauses) throw new VersionError(`"${spec}" is not a valid PEP 440 version specifier.`);
  return clauses;
}

/** Whether `spec` is a valid (possibly empty) comma-separated PEP 440 specifier. */
export function isValidSpecifier(spec: string): boolean {
  return tryParseSpecifier(spec) !== undefined;
}

function sameBase(a: ParsedVersion, b: ParsedVersion): boolean {
  return compare(a.baseVersion, b.baseVersion) === 0;
}

// `==X.*`: same epoch, and the release numbers, zero-padded to X's length, start with X's.
function prefixMatches(v: ParsedVersion, epoch: number, release: number[]): boolean {
  if (v.epoch !== epoch) return false;
  return release.every((n, i) => (v.release[i] ?? 0) === n);
}

function clauseMatches(raw: string, v: ParsedVersion, c: SpecifierClause): boolean {
  if (c.op === "===") return raw.toLowerCase() === c.version.toLowerCase();
  const s = parseVersion(c.version);
  if (c.prefix) {
    const hit = prefixMatches(v, s.epoch, s.release);
    return c.op === "==" ? hit : !hit;
  }
  // Without a local label in the clause, the candidate's local label is ignored.
  const candidate = s.local ? raw : v.public;
  switch (c.op) {
    case "==":
      return compare(candidate, c.version) === 0;
    case "!=":
      return compare(candidate, c.version) !== 0;
    case "<=":
      return compare(v.public, c.version) <= 0;
    case ">=":
      return compare(v.public, c.version) >= 0;
    case "<":
      // Exclusive ordering: `<3.13` must not admit 3.13's own pre-releases.
      if (compare(raw, c.version) >= 0) return false;
      return s.isPrerelease || !v.isPrerelease || !sameBase(v, s);
    case ">":
      // Exclusive ordering: `>1.0` admits neither 1.0.post1 nor 1.0+local.
      if (compare(raw, c.version) <= 0) return false;
      if (!s.isPostrelease && v.isPostrelease && sameBase(v, s)) return false;
      return !(v.local && sameBase(v, s));
    case "~=":
      return compare(v.public, c.version) >= 0 && prefixMatches(v, s.epoch, s.release.slice(0, -1));
  }
}

/** Whether a clause names a pre-release, which (as in pypa/packaging) lets pre-releases in. */
function admitsPrereleases(c: SpecifierClause): boolean {
  if (c.op === "!=") return false;
  return tryParseVersion(c.version)?.isPrerelease === true;
}

/**
 * Whether `version` satisfies every clause of `specifier`. Pre-releases are accepted when
 * `opts.prereleases` says so, or by default when some clause itself names a pre-release.
 * An invalid version can only satisfy `===` clauses. Throws VersionError for an invalid
 * specifier.
 */
export function satisfies(
  version: string,
  specifier: string,
  opts: { prereleases?: boolean } = {},
): boolean {
  const clauses = parseSpecifier(specifier);
  const v = tryParseVersion(version);
  if (!v) {
    const lower = version.toLowerCase();
    return (
      clauses.length > 0 &&
      clauses.every((c) => c.op === "===" && c.version.toLowerCase() === lower)
    );
  }
  const allowPre = opts.prereleases ?? clauses.some(admitsPrereleases);
  if (v.isPrerelease && !allowPre) return false;
  return clauses.every((c) => clauseMatches(version, v, c));
}
