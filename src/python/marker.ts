/**
 * PEP 508 environment markers: parsing, canonical formatting, evaluation, and the boolean
 * algebra (and / or / not) used to combine the conditions under which a dependency applies.
 */
import { UserError } from "../util/errors.js";
import { normalizeName } from "./names.js";
import { isValidSpecifier, isValidVersion, parseVersion, satisfies } from "./version.js";

export type MarkerValue = { kind: "var"; name: string } | { kind: "str"; value: string };
export type MarkerOp = "==" | "!=" | "<" | "<=" | ">" | ">=" | "~=" | "===" | "in" | "not in";
export type Marker =
  | { kind: "compare"; left: MarkerValue; op: MarkerOp; right: MarkerValue }
  | { kind: "and"; items: Marker[] }
  | { kind: "or"; items: Marker[] };

export interface MarkerEnvironment {
  implementation_name: string;
  implementation_version: string;
  os_name: string;
  platform_machine: string;
  platform_python_implementation: string;
  platform_release: string;
  platform_system: string;
  platform_version: string;
  python_full_version: string;
  python_version: string;
  sys_platform: string;
  /** The extra being installed; absent means none (""). */
  extra?: string;
  /** PEP 751 lock-file markers; absent means empty. */
  extras?: string[];
  dependency_groups?: string[];
}

/** Base class of everything this module throws. */
export class MarkerError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "MarkerError";
  }
}

/** The text is not a PEP 508 marker. `position` is the 0-based offset of the problem. */
export class MarkerSyntaxError extends MarkerError {
  constructor(
    readonly marker: string,
    readonly reason: string,
    readonly position: number,
  ) {
    super(`Invalid marker "${marker}": ${reason} ${where(marker, position)}.`);
    this.name = "MarkerSyntaxError";
  }
}

/** "at column 5" or "at the end", for error messages about `text`. */
function where(text: string, position: number): string {
  return position >= text.length ? "at the end" : `at column ${position + 1}`;
}

/** The marker is well formed but has no defined value in the given environment. */
export class MarkerEvaluationError extends MarkerError {
  constructor(message: string) {
    super(message);
    this.name = "MarkerEvaluationError";
  }
}

// Spellings from PEP 345 and early setuptools that pip still accepts.
const LEGACY_VARS: Record<string, string> = {
  "os.name": "os_name",
  "sys.platform": "sys_platform",
  "platform.version": "platform_version",
  "platform.machine": "platform_machine",
  "platform.python_implementation": "platform_python_implementation",
  python_implementation: "platform_python_implementation",
};
/** PEP 508's environment markers: what describes an interpreter and its platform. */
export const ENVIRONMENT_VARIABLES: readonly string[] = [
  "implementation_name",
  "implementation_version",
  "os_name",
  "platform_machine",
  "platform_python_implementation",
  "platform_release",
  "platform_system",
  "platform_version",
  "python_full_version",
  "python_version",
  "sys_platform",
];
const KNOWN_VARS = new Set([...ENVIRONMENT_VARIABLES, "extra", "extras", "dependency_groups"]);
// Only these hold versions; elsewhere "1.0" is just a string (as in pypa/packaging).
const VERSION_VARS = new Set([
  "implementation_version",
  "platform_release",
  "python_full_version",
  "python_version",
]);
// Longest first so that `===` is not read as `==` followed by `=`.
const COMPARE_OPS = ["===", "==", "~=", "!=", "<=", ">=", "<", ">"] as const;

type Token =
  | { type: "(" | ")" | "end"; pos: number }
  | { type: "str"; value: string; pos: number }
  | { type: "op"; op: MarkerOp; pos: number }
  | { type: "word"; word: string; pos: number };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\t") {
      i++;
    } else if (c === "(" || c === ")") {
      tokens.push({ type: c, pos: i });
      i++;
    } else if (c === "'" || c === '"') {
      const close = text.indexOf(c, i + 1);
      if (close < 0) throw new MarkerSyntaxError(text, "the quoted string is never closed", i);
      tokens.push({ type: "str", value: text.slice(i + 1, close), pos: i });
      i = close + 1;
    } else {
      const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i))?.[0];
      const op = COMPARE_OPS.find((o) => text.startsWith(o, i));
      if (word) tokens.push({ type: "word", word, pos: i });
      else if (op) tokens.push({ type: "op", op, pos: i });
      else throw new MarkerSyntaxError(text, `unexpected character "${c}"`, i);
      i += (word ?? op ?? "").length;
    }
  }
  tokens.push({ type: "end", pos: text.length });
  return tokens;
}

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }

  private fail(what: string): never {
    throw new MarkerSyntaxError(this.text, `expected ${what}`, this.peek().pos);
  }

  private isWord(word: string): boolean {
    const tok = this.peek();
    return tok.type === "word" && tok.word === word;
  }

  parseAll(): Marker {
    const m = this.parseOr();
    if (this.peek().type !== "end") this.fail('"and", "or" or the end of the marker');
    return m;
  }

  private parseOr(): Marker {
    const items = [this.parseAnd()];
    while (this.isWord("or")) {
      this.i++;
      items.push(this.parseAnd());
    }
    return items.length === 1 ? (items[0] as Marker) : { kind: "or", items: flatten("or", items) };
  }

  private parseAnd(): Marker {
    const items = [this.parseAtom()];
    while (this.isWord("and")) {
      this.i++;
      items.push(this.parseAtom());
    }
    return items.length === 1
      ? (items[0] as Marker)
      : { kind: "and", items: flatten("and", items) };
  }

  private parseAtom(): Marker {
    if (this.peek().type === "(") {
      this.i++;
      const inner = this.parseOr();
      if (this.peek().type !== ")") this.fail('")"');
      this.i++;
      return inner;
    }
    const left = this.parseValue();
    const op = this.parseOp();
    const right = this.parseValue();
    return { kind: "compare", left, op, right };
  }

  private parseValue(): MarkerValue {
    const tok = this.peek();
    if (tok.type === "str") {
      this.i++;
      return { kind: "str", value: tok.value };
    }
    if (tok.type === "word") {
      const name = LEGACY_VARS[tok.word] ?? tok.word;
      if (!KNOWN_VARS.has(name)) {
        throw new MarkerSyntaxError(this.text, `"${tok.word}" is not a marker variable`, tok.pos);
      }
      this.i++;
      return { kind: "var", name };
    }
    return this.fail("a marker variable or a quoted string");
  }

  private parseOp(): MarkerOp {
    const tok = this.peek();
    if (tok.type === "op") {
      this.i++;
      return tok.op;
    }
    if (this.isWord("in")) {
      this.i++;
      return "in";
    }
    if (this.isWord("not")) {
      this.i++;
      if (!this.isWord("in")) this.fail('"in" after "not"');
      this.i++;
      return "not in";
    }
    return this.fail("a comparison operator (==, !=, <, <=, >, >=, ~=, ===, in, not in)");
  }
}

function flatten(kind: "and" | "or", items: Marker[]): Marker[] {
  return items.flatMap((m) => (m.kind === kind ? m.items : [m]));
}

/** Parse a PEP 508 marker (the part after `;`). Throws MarkerSyntaxError. */
export function parseMarker(text: string): Marker {
  return new Parser(text, tokenize(text)).parseAll();
}

function formatValue(v: MarkerValue): string {
  if (v.kind === "var") return v.name;
  if (!v.value.includes('"')) return `"${v.value}"`;
  if (!v.value.includes("'")) return `'${v.value}'`;
  throw new MarkerError(`The marker string ${v.value} contains both kinds of quote.`);
}

/** Canonical text: double quotes, single spaces, `or` groups parenthesized inside `and`. */
export function formatMarker(m: Marker): string {
  switch (m.kind) {
    case "compare":
      return `${formatValue(m.left)} ${m.op} ${formatValue(m.right)}`;
    case "and":
    case "or": {
      const items = flatten(m.kind, m.items);
      if (items.length === 0) throw new MarkerError(`An empty "${m.kind}" has no marker text.`);
      return items
        .map((item) =>
          m.kind === "and" && item.kind === "or" ? `(${formatMarker(item)})` : formatMarker(item),
        )
        .join(` ${m.kind} `);
    }
  }
}

function lookup(v: MarkerValue, env: MarkerEnvironment): string | string[] {
  if (v.kind === "str") return v.value;
  if (v.name === "extra") return env.extra ?? "";
  if (v.name === "extras" || v.name === "dependency_groups") return env[v.name] ?? [];
  const value = (env as unknown as Record<string, unknown>)[v.name];
  if (typeof value !== "string") {
    throw new MarkerEvaluationError(`The marker environment has no value for "${v.name}".`);
  }
  return value;
}

function compareStrings(l: string, op: MarkerOp, r: string, versioned: boolean): boolean {
  if (op === "in") return r.includes(l);
  if (op === "not in") return !r.includes(l);
  // PEP 508: PEP 440 rules where both sides are versions, Python's string operators otherwise.
  const spec = `${op}${r}`;
  if (versioned && !r.includes(",") && isValidVersion(l) && isValidSpecifier(spec)) {
    return satisfies(l, spec, { prereleases: true });
  }
  switch (op) {
    case "==":
      return l === r;
    case "!=":
      return l !== r;
    case "<":
      return l < r;
    case "<=":
      return l <= r;
    case ">":
      return l > r;
    case ">=":
      return l >= r;
    case "===":
      return l.toLowerCase() === r.toLowerCase();
    case "~=":
      throw new MarkerEvaluationError(
        `"${l} ~= ${r}" is undefined: ~= needs PEP 440 versions on both sides.`,
      );
  }
}

function evaluateCompare(m: Extract<Marker, { kind: "compare" }>, env: MarkerEnvironment): boolean {
  let l = lookup(m.left, env);
  let r = lookup(m.right, env);
  const key = m.left.kind === "var" ? m.left.name : m.right.kind === "var" ? m.right.name : "";
  if (Array.isArray(l) || Array.isArray(r)) {
    if (typeof l !== "string" || !Array.isArray(r) || (m.op !== "in" && m.op !== "not in")) {
      throw new MarkerEvaluationError(
        `"${formatMarker(m)}" is undefined: extras and dependency_groups only work as "<name>" in ${key}.`,
      );
    }
    const hit = r.map(normalizeName).includes(normalizeName(l));
    return m.op === "in" ? hit : !hit;
  }
  // PEP 685: extra names compare in normalized form.
  if (key === "extra") {
    l = normalizeName(l);
    r = normalizeName(r);
  }
  return compareStrings(l, m.op, r, VERSION_VARS.has(key));
}

/**
 * Evaluate under PEP 508. Version variables compare by PEP 440 (pre-releases included) when
 * the left side is a version and `op` + right side is a valid specifier clause; otherwise
 * strings compare as in Python. Throws MarkerEvaluationError for undefined comparisons
 * (`~=` on non-versions, ordering against `extras`) and for a missing variable.
 */
export function evaluateMarker(m: Marker, env: MarkerEnvironment): boolean {
  switch (m.kind) {
    case "compare":
      return evaluateCompare(m, env);
    case "and":
      return m.items.every((item) => evaluateMarker(item, env));
    case "or":
      return m.items.some((item) => evaluateMarker(item, env));
  }
}

/** A string identifying a marker's structure, for spotting duplicates. */
function markerKey(m: Marker): string {
  if (m.kind === "compare") {
    const side = (v: MarkerValue) => (v.kind === "var" ? v.name : JSON.stringify(v.value));
    return `${side(m.left)} ${m.op} ${side(m.right)}`;
  }
  return `${m.kind}(${m.items.map(markerKey).join(",")})`;
}

function combine(kind: "and" | "or", ms: Marker[]): Marker {
  const seen = new Set<string>();
  const items: Marker[] = [];
  for (const m of flatten(kind, ms)) {
    const key = markerKey(m);
    if (!seen.has(key)) {
      seen.add(key);
      items.push(m);
    }
  }
  return items.length === 1 ? (items[0] as Marker) : { kind, items };
}

/** Conjunction. `undefined` means "always true", so it drops out; none at all gives undefined. */
export function markerAnd(...ms: (Marker | undefined)[]): Marker | undefined {
  const present = ms.filter((m): m is Marker => m !== undefined);
  return present.length === 0 ? undefined : combine("and", present);
}

/**
 * Disjunction. `undefined` means "always true", so any undefined makes the whole result
 * undefined. With no arguments at all the answer would be "never", which has no
 * representation, so that throws a RangeError.
 */
export function markerOr(...ms: (Marker | undefined)[]): Marker | undefined {
  if (ms.length === 0) throw new RangeError("markerOr needs at least one marker.");
  if (ms.some((m) => m === undefined)) return undefined;
  return combine("or", ms as Marker[]);
}

const INVERSE: Partial<Record<MarkerOp, MarkerOp>> = {
  "==": "!=",
  "!=": "==",
  "<": ">=",
  ">=": "<",
  ">": "<=",
  "<=": ">",
  in: "not in",
  "not in": "in",
};

function notCompatible(m: Extract<Marker, { kind: "compare" }>): Marker {
  // `v ~= X.Y.Z` means `v >= X.Y.Z and v == X.Y.*`, so its negation is the `or` below.
  const x = m.right.kind === "str" ? m.right.value.trim() : "";
  if (x.includes(",") || !isValidSpecifier(`~=${x}`)) {
    throw new MarkerError(`"not (${formatMarker(m)})" cannot be written as a marker.`);
  }
  const { epoch, release } = parseVersion(x);
  const prefix = `${epoch ? `${epoch}!` : ""}${release.slice(0, -1).join(".")}.*`;
  return {
    kind: "or",
    items: [
      { kind: "compare", left: m.left, op: "<", right: { kind: "str", value: x } },
      { kind: "compare", left: m.left, op: "!=", right: { kind: "str", value: prefix } },
    ],
  };
}

/**
 * Negation by De Morgan and operator inversion (`<` <-> `>=`, `>` <-> `<=`, `==` <-> `!=`,
 * `in` <-> `not in`); `v ~= X` becomes `v < X or v != <X minus last part>.*`.
 *
 * Exact whenever the value on the left of a comparison is a final release (no pre, post,
 * dev or local part; python_version always is) or not a version at all. PEP 440's
 * exclusive ordering makes both `v < X` and `v >= X` false for a pre-release of X itself
 * (python_full_version "3.13.0rc1" against "3.13"), and both `v > X` and `v <= X` false for
 * X's post-releases and local versions. Markers for those complements would either be
 * wrong for non-version values or not exist at all, so the plain inversion is used.
 * `~=` on a non-version throws when evaluated while its negation does not. `===` has no
 * inverse and throws MarkerError, as does `~=` with the variable on the right.
 */
export function markerNot(m: Marker): Marker {
  switch (m.kind) {
    case "and":
      return combine("or", m.items.map(markerNot));
    case "or":
      return combine("and", m.items.map(markerNot));
    case "compare": {
      if (m.op === "~=") return notCompatible(m);
      const op = INVERSE[m.op];
      if (!op) throw new MarkerError(`"not (${formatMarker(m)})" cannot be written as a marker.`);
      return { ...m, op };
    }
  }
}
