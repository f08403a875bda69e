/** PEP 508 dependency specifiers, and requirements.txt files made of them. */
import { UserError } from "../util/errors.js";
import { formatMarker, type Marker, MarkerSyntaxError, parseMarker } from "./marker.js";
import { normalizeName } from "./names.js";
import { isValidSpecifier } from "./version.js";

export interface Requirement {
  /** As written. */
  name: string;
  /** PEP 503 form of `name`. */
  normalized: string;
  /** As written, duplicates (after normalization) removed. */
  extras: string[];
  /** Clauses joined by "," without spaces, e.g. ">=1.0,<2"; "" when there is none. */
  specifier: string;
  url?: string;
  marker?: Marker;
  /**
   * From a requirements file: the sha256 digests its `--hash` options allow (lower-case hex);
   * [] when the file asks for hashes (--require-hashes) and gives none for this one.
   */
  hashes?: string[];
}

/** The text is not a PEP 508 requirement. `position` is the 0-based offset of the problem. */
export class RequirementSyntaxError extends UserError {
  constructor(
    readonly requirement: string,
    readonly reason: string,
    readonly position: number,
  ) {
    const at = position >= requirement.length ? "at the end" : `at column ${position + 1}`;
    super(`Invalid requirement "${requirement}": ${reason} ${at}.`);
    this.name = "RequirementSyntaxError";
  }
}

const NAME = /[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/y;
const OPERATOR = /===|~=|==|!=|<=|>=|<|>/y;
// A version runs to the next space, comma, semicolon, parenthesis or bracket; whether it is
// valid is then up to isValidSpecifier.
const VERSION = /[^\s,;()[\]]+/y;
const URL = /[^ \t]+/y;
const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

class RequirementParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  private fail(reason: string, at = this.pos): never {
    throw new RequirementSyntaxError(this.text, reason, at);
  }

  private skipSpace(): void {
    while (this.text[this.pos] === " " || this.text[this.pos] === "\t") this.pos++;
  }

  private match(re: RegExp): string | undefined {
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  private atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  parse(): Requirement {
    this.skipSpace();
    const name = this.match(NAME) ?? this.fail("expected a project name");
    this.skipSpace();
    const extras = this.text[this.pos] === "[" ? this.parseExtras() : [];
    this.skipSpace();
    const req: Requirement = {
      name,
      normalized: normalizeName(name),
      extras,
      specifier: "",
    };
    if (this.text[this.pos] === "@") {
      this.pos++;
      this.skipSpace();
      const start = this.pos;
      const url = this.match(URL) ?? this.fail('expected a URL after "@"');
      if (!URL_SCHEME.test(url)) this.fail(`"${url}" is not a URL (it has no scheme)`, start);
      req.url = url;
      // A URL may itself contain ";", so a marker after it must be set off by whitespace.
      this.skipSpace();
    } else {
      req.specifier = this.parseSpecifier();
      this.skipSpace();
    }
    if (this.atEnd()) return req;
    if (this.text[this.pos] !== ";") {
      this.fail(
        req.url || req.specifier
          ? 'expected ";" and a marker, or the end'
          : 'expected a version specifier, "@" and a URL, ";" and a marker, or the end',
      );
    }
    req.marker = this.parseMarkerPart(this.pos + 1);
    return req;
  }

  private parseExtras(): string[] {
    this.pos++;
    const extras: string[] = [];
    this.skipSpace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return extras;
    }
    for (;;) {
      this.skipSpace();
      const extra = this.match(NAME) ?? this.fail("expected an extra name");
      if (!extras.some((e) => normalizeName(e) === normalizeName(extra))) extras.push(extra);
      this.skipSpace();
      const c = this.text[this.pos];
      this.pos++;
      if (c === "]") return extras;
      if (c !== ",") this.fail('expected "," or "]" in the list of extras', this.pos - 1);
    }
  }

  private parseSpecifier(): string {
    const parenthesized = this.text[this.pos] === "(";
    if (parenthesized) {
      this.pos++;
      this.skipSpace();
    }
    const clauses: string[] = [];
    for (;;) {
      const start = this.pos;
      const op = this.match(OPERATOR);
      if (op === undefined) {
        if (clauses.length > 0) this.fail('expected a version specifier after ","');
        break;
      }
      this.skipSpace();
      const version = this.match(VERSION) ?? this.fail(`expected a version after "${op}"`);
      const clause = `${op}${version}`;
      if (!isValidSpecifier(clause)) {
        this.fail(`"${clause}" is not a valid PEP 440 version specifier`, start);
      }
      clauses.push(clause);
      this.skipSpace();
      if (this.text[this.pos] !== ",") break;
      this.pos++;
      this.skipSpace();
    }
    if (parenthesized) {
      if (this.text[this.pos] !== ")") this.fail('expected ")" to close the version specifier');
      this.pos++;
    }
    return clauses.join(",");
  }

  private parseMarkerPart(start: number): Marker {
    try {
      return parseMarker(this.text.slice(start));
    } catch (err) {
      if (!(err instanceof MarkerSyntaxError)) throw err;
      return this.fail(`in the marker, ${err.reason}`, start + err.position);
    }
  }
}

/** Parse one PEP 508 requirement (no comments). Throws RequirementSyntaxError. */
export function parseRequirement(line: string): Requirement {
  return new RequirementParser(line).parse();
}

/** Canonical text, e.g. `requests[socks]>=2.0; python_version >= "3.8"`. */
export function formatRequirement(r: Requirement): string {
  let text = r.name;
  if (r.extras.length > 0) text += `[${r.extras.join(",")}]`;
  text += r.specifier;
  if (r.url !== undefined) text += ` @ ${r.url}`;
  // After a URL the space before ";" is required: the URL would swallow the ";".
  if (r.marker) text += `${r.url !== undefined ? " ;" : ";"} ${formatMarker(r.marker)}`;
  return text;
}

export interface RequirementsTxt {
  requirements: Requirement[];
  /** Lines that are neither requirements nor options; `line` is 1-based. */
  errors: { line: number; text: string; message: string }[];
  /** Files named by `-r`/`--requirement` and `-c`/`--constraint`, not followed. */
  includes: string[];
  /** Other option lines (`-e`, `--index-url`, ...), skipped. */
  options: { line: number; text: string }[];
  /** Options after a requirement other than `--hash` (`--config-settings`, ...). */
  requirementOptions: { line: number; text: string }[];
}

// pip's rule: `#` starts a comment at the start of a line or after whitespace.
const COMMENT = /(^|\s+)#.*$/;
const INCLUDE = /^(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(\S.*)$/;

/** Join `\`-continued lines the way pip does; yields [first line number, text]. */
function logicalLines(text: string): [number, string][] {
  const out: [number, string][] = [];
  let pending: string[] = [];
  let first = 0;
  text.split(/\r?\n/).forEach((line, index) => {
    const comment = /^\s*#/.test(line);
    // A comment line ends a continuation (and stays a comment once joined).
    if (line.endsWith("\\") && !comment) {
      if (pending.length === 0) first = index + 1;
      pending.push(line.slice(0, -1));
      return;
    }
    if (pending.length > 0) {
      out.push([first, `${pending.join("")}${comment ? " " : ""}${line}`]);
      pending = [];
    } else {
      out.push([index + 1, line]);
    }
  });
  if (pending.length > 0) out.push([first, pending.join("")]);
  return out;
}

/**
 * Read a pip requirements file. Comments, blank lines and continuations are handled as pip
 * does; `--hash=sha256:...` after a requirement goes into its `hashes`, other options there
 * into `requirementOptions`; unparsable lines are reported in `errors` rather than thrown.
 */
export function parseRequirementsTxt(text: string): RequirementsTxt {
  const result: RequirementsTxt = {
    requirements: [],
    errors: [],
    includes: [],
    options: [],
    requirementOptions: [],
  };
  for (const [line, raw] of logicalLines(text)) {
    const content = raw.replace(COMMENT, "").trim();
    if (content === "") continue;
    if (content.startsWith("-")) {
      const include = INCLUDE.exec(content);
      if (include) result.includes.push((include[1] as string).trim());
      else result.options.push({ line, text: content });
      continue;
    }
    // As in pip, options start at the first space-separated word beginning with "-".
    const words = content.split(" ");
    const cut = words.findIndex((w) => w.startsWith("-"));
    const requirement = (cut < 0 ? words : words.slice(0, cut)).join(" ").trim();
    const options = cut < 0 ? [] : words.slice(cut).filter(Boolean);
    const hashes: string[] = [];
    for (let i = 0; i < options.length; i++) {
      const o = options[i] as string;
      const value =
        o === "--hash" ? options[++i] : o.startsWith("--hash=") ? o.slice(7) : undefined;
      if (value === undefined) {
        result.requirementOptions.push({ line, text: o });
        continue;
      }
      const m = /^sha256:([0-9a-fA-F]{64})$/.exec(value);
      if (m) hashes.push((m[1] as string).toLowerCase());
      else
        result.errors.push({
          line,
          text: content,
          message: `--hash ${value} is not sha256:<64 hex digits> (pyferry checks sha256 hashes)`,
        });
    }
    try {
      const parsed = parseRequirement(requirement);
      result.requirements.push(hashes.length > 0 ? { ...parsed, hashes } : parsed);
    } catch (err) {
      if (!(err instanceof RequirementSyntaxError)) throw err;
      result.errors.push({ line, text: content, message: err.message });
    }
  }
  return result;
}
