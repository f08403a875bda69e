/**
 * PEP 723 inline script metadata: the `# /// script` comment block at the top of a
 * single-file script, holding TOML with `dependencies` and `requires-python`.
 */
import { parse, stringify, TomlError } from "smol-toml";
import { UserError } from "../util/errors.js";

export interface ScriptMetadata {
  requiresPython?: string;
  dependencies: string[];
  /** The whole parsed block, including keys this tool does not use (e.g. `[tool.uv]`). */
  toml: Record<string, unknown>;
  /** Character offsets of the whole block in the source; `end` is exclusive and includes the
   * closing line's newline. */
  start: number;
  end: number;
  /** 1-based line of the opening `# /// script`. */
  line: number;
}

interface Line {
  text: string;
  start: number;
  /** Offset just past the line's terminator. */
  end: number;
  hasBreak: boolean;
}

interface Block {
  type: string;
  /** Line indexes of the opening and closing lines. */
  open: number;
  close: number;
}

const OPEN = /^# \/\/\/ ([a-zA-Z0-9-]+)$/;
const CLOSE = "# ///";
// PEP 263, as CPython's tokenizer matches it.
const CODING = /^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+/;

/**
 * Lines with \r\n, \r and \n all ending a line: tools read scripts in text mode, where these
 * are all newlines. A leading byte order mark is not part of the first line.
 */
function splitLines(source: string): Line[] {
  const lines: Line[] = [];
  const re = /\r\n|\r|\n/g;
  let start = source.startsWith("\uFEFF") ? 1 : 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    lines.push({ text: source.slice(start, m.index), start, end: re.lastIndex, hasBreak: true });
    start = re.lastIndex;
  }
  if (start < source.length) {
    lines.push({ text: source.slice(start), start, end: source.length, hasBreak: false });
  }
  return lines;
}

const isContent = (text: string): boolean => text === "#" || text.startsWith("# ");

/**
 * The blocks the spec's canonical regex finds, scanning like `re.finditer`:
 * `(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$`.
 * The content run is greedy, so the block ends at the last `# ///` line before the first
 * line that is not a content line; content lines need a newline and there must be at least
 * one, while the closing line may end the file.
 */
function findBlocks(lines: Line[]): Block[] {
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const opening = lines[i] as Line;
    const m = OPEN.exec(opening.text);
    if (!m || !opening.hasBreak) continue;
    let close = -1;
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j] as Line;
      if (j >= i + 2 && line.text === CLOSE) close = j;
      if (!isContent(line.text) || !line.hasBreak) break;
    }
    if (close < 0) continue;
    blocks.push({ type: m[1] as string, open: i, close });
    // Matches do not overlap: scanning resumes after the closing line.
    i = close;
  }
  return blocks;
}

/** The TOML text inside a block: each line minus its `# ` (or lone `#`). */
function blockContent(lines: Line[], block: Block): string {
  return lines
    .slice(block.open + 1, block.close)
    .map((l) => `${l.text.slice(2)}\n`)
    .join("");
}

interface Located {
  lines: Line[];
  block: Block;
  toml: string;
}

function locateScriptBlock(source: string): Located | undefined {
  const lines = splitLines(source);
  const scripts = findBlocks(lines).filter((b) => b.type === "script");
  if (scripts.length > 1) {
    const at = scripts.map((b) => b.open + 1);
    const count = scripts.length === 2 ? "two" : String(scripts.length);
    const list = `${at.slice(0, -1).join(", ")} and ${at.at(-1)}`;
    throw new UserError(
      `The script has ${count} '# /// script' metadata blocks (lines ${list}); keep one.`,
    );
  }
  const block = scripts[0];
  return block && { lines, block, toml: blockContent(lines, block) };
}

function parseToml(found: Located, integersAsBigInt: boolean): Record<string, unknown> {
  try {
    return parse(found.toml, { integersAsBigInt });
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // TOML line n is file line open + 1 + n, counting from 1.
    const fileLine = found.block.open + 1 + err.line;
    const reason = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
    throw new UserError(
      `The script's '# /// script' block is not valid TOML (line ${fileLine}: ${reason}).`,
    );
  }
}

function toMetadata(found: Located): ScriptMetadata {
  const { lines, block } = found;
  const toml = parseToml(found, false);
  const where = `The '# /// script' block at line ${block.open + 1}`;
  const deps = toml.dependencies ?? [];
  if (!Array.isArray(deps) || !deps.every((d) => typeof d === "string")) {
    throw new UserError(`${where} has a 'dependencies' that is not a list of strings.`);
  }
  const requiresPython = toml["requires-python"];
  if (requiresPython !== undefined && typeof requiresPython !== "string") {
    throw new UserError(`${where} has a 'requires-python' that is not a string.`);
  }
  const meta: ScriptMetadata = {
    dependencies: deps,
    toml,
    start: (lines[block.open] as Line).start,
    end: (lines[block.close] as Line).end,
    line: block.open + 1,
  };
  if (requiresPython !== undefined) meta.requiresPython = requiresPython;
  return meta;
}

/** The script's `# /// script` block, or undefined when it has none. */
export function readScriptMetadata(source: string): ScriptMetadata | undefined {
  const found = locateScriptBlock(source);
  return found && toMetadata(found);
}

// A TOML basic string: JSON's escapes are all valid TOML, but TOML also forbids a raw DEL.
const tomlString = (s: string): string => JSON.stringify(s).replaceAll("\x7f", "\\u007f");

function renderBlock(
  requiresPython: string | undefined,
  dependencies: string[],
  rest: Record<string, unknown>,
  nl: string,
): string {
  const toml: string[] = [];
  if (requiresPython !== undefined) toml.push(`requires-python = ${tomlString(requiresPython)}`);
  if (dependencies.length === 0) {
    toml.push("dependencies = []");
  } else {
    toml.push("dependencies = [", ...dependencies.map((d) => `    ${tomlString(d)},`), "]");
  }
  if (Object.keys(rest).length > 0) {
    // Integers were read as bigints, so numbersAsFloat keeps 1.0 a float and 1 an integer.
    const others = stringify(rest, { numbersAsFloat: true }).replace(/\n$/, "");
    // Our keys must come before any [table] header; a blank line sets the tables apart.
    toml.push(...(others.startsWith("[") ? ["", others] : [others]));
  }
  const body = toml
    .join("\n")
    .split("\n")
    .map((l) => (l === "" ? "#" : `# ${l}`));
  return ["# /// script", ...body, CLOSE, ""].join(nl);
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Where a new block goes: after a shebang and a PEP 263 encoding line, which must stay first. */
function insertionLine(lines: Line[]): number {
  const text = (i: number): string | undefined => lines[i]?.text;
  let at = text(0)?.startsWith("#!") ? 1 : 0;
  if (CODING.test(text(0) ?? "")) at = 1;
  // An encoding declaration on line 2 counts only below a comment or blank line 1.
  else if (/^[ \t\f]*(#.*)?$/.test(text(0) ?? "") && CODING.test(text(1) ?? "")) at = 2;
  return at;
}

/**
 * The source with its `# /// script` block set to `update`: an existing block keeps its other
 * keys (and, when `update.requiresPython` is undefined, its `requires-python`); otherwise a new
 * block goes after any shebang and encoding line. The file's newline style is kept.
 */
export function writeScriptMetadata(
  source: string,
  update: { requiresPython?: string; dependencies: string[] },
): string {
  const nl = /\r\n|\r|\n/.exec(source)?.[0] ?? "\n";
  const found = locateScriptBlock(source);
  if (found) {
    const current = toMetadata(found);
    const requiresPython = update.requiresPython ?? current.requiresPython;
    // Rewriting a block that already says this would only drop its comments and layout.
    if (
      requiresPython === current.requiresPython &&
      sameList(update.dependencies, current.dependencies)
    ) {
      return source;
    }
    const rest = Object.fromEntries(
      Object.entries(parseToml(found, true)).filter(
        ([key]) => key !== "dependencies" && key !== "requires-python",
      ),
    );
    const block = renderBlock(requiresPython, update.dependencies, rest, nl);
    return source.slice(0, current.start) + block + source.slice(current.end);
  }
  const lines = splitLines(source);
  const at = insertionLine(lines);
  const before = lines[at - 1];
  const offset = before ? before.end : source.startsWith("\uFEFF") ? 1 : 0;
  const next = lines[at];
  const block =
    (before && !before.hasBreak ? nl : "") +
    renderBlock(update.requiresPython, update.dependencies, {}, nl) +
    (next && next.text.trim() !== "" ? nl : "");
  return source.slice(0, offset) + block + source.slice(offset);
}
