/**
 * Jupyter notebooks: the Python in their code cells, with IPython-only syntax blanked out so
 * the rest parses as Python, and the requirements their `%pip install` lines declare.
 */
import { UserError } from "../util/errors.js";

export interface NotebookCode {
  /** Code cells, `index` being the 0-based position among all of the notebook's cells. */
  cells: { index: number; source: string }[];
  pipInstalls: { cell: number; requirements: string[] }[];
  language?: string;
}

type Json = Record<string, unknown>;

const isRecord = (x: unknown): x is Json =>
  typeof x === "object" && x !== null && !Array.isArray(x);

// Cell magics whose body is Python that IPython runs (timed, captured, profiled, debugged).
const PYTHON_BODY_MAGICS = new Set(["time", "timeit", "capture", "prun", "debug"]);

// `x = !ls`, `a, b = %sx ls`: IPython assignment from a shell command or magic.
const MAGIC_ASSIGNMENT = /^[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]/;
// `obj?`, `obj.attr??`, `%magic?`, `a[0]?`: help requested after a name.
const HELP_AFTER = /^%{0,2}[A-Za-z_][\w.]*(\[[^\]]*\])*\?{1,2}$/;
// Escapes that start an IPython line: magic, shell, help, and autocall (`/f x`, `,f x`, `;f x`).
const ESCAPES = new Set(["%", "!", "?", "/", ",", ";"]);

/** Where the Python lexer stands at the start of the next line. */
interface LexState {
  depth: number;
  /** The quote of a string left open at the end of the previous line. */
  quote: string | undefined;
  backslash: boolean;
  /** Last character of code (outside strings and comments) seen on a logical line. */
  lastCode: string;
}

/** Scan from `i` for the end of a string opened by `quote`; -1 when the line ends first. */
function stringEnd(line: string, i: number, quote: string): number {
  for (let k = i; k < line.length; k++) {
    if (line[k] === "\\") k++;
    else if (line.startsWith(quote, k)) return k + quote.length;
  }
  return -1;
}

/**
 * Advance `st` over one line of Python: only brackets, strings, comments and backslash
 * continuations matter, to know whether the next line starts a new logical line.
 */
function lexLine(line: string, st: LexState): void {
  let i = 0;
  st.backslash = false;
  if (st.quote) {
    const end = stringEnd(line, 0, st.quote);
    if (end < 0) {
      // A one-quote string goes on only through a backslash at the end of the line.
      if (st.quote.length === 1 && !line.endsWith("\\")) st.quote = undefined;
      return;
    }
    st.quote = undefined;
    i = end;
  }
  while (i < line.length) {
    const c = line[i] as string;
    if (c === "#") break;
    if (c === '"' || c === "'") {
      const quote = line.startsWith(c.repeat(3), i) ? c.repeat(3) : c;
      const end = stringEnd(line, i + quote.length, quote);
      if (end < 0) {
        if (quote.length === 3 || line.endsWith("\\")) st.quote = quote;
        return;
      }
      st.lastCode = quote;
      i = end;
      continue;
    }
    if ("([{".includes(c)) st.depth++;
    else if (")]}".includes(c)) st.depth = Math.max(0, st.depth - 1);
    if (c === "\\" && i === line.length - 1) st.backslash = true;
    else if (c !== " " && c !== "\t" && c !== "\f") st.lastCode = c;
    i++;
  }
}

function isIPythonLine(trimmed: string): boolean {
  return (
    ESCAPES.has(trimmed[0] ?? "") ||
    MAGIC_ASSIGNMENT.test(trimmed) ||
    HELP_AFTER.test(trimmed.trimEnd())
  );
}

/**
 * Split a shell command into words, removing quotes; the control operators `;`, `|`, `||`,
 * `&` and `&&` are words of their own, except an `&` that is part of a redirection (`2>&1`).
 */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const end = (): void => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string;
    if (c === " " || c === "\t") {
      end();
    } else if (c === '"' || c === "'") {
      const close = command.indexOf(c, i + 1);
      const stop = close < 0 ? command.length : close;
      word = (word ?? "") + command.slice(i + 1, stop);
      i = stop;
    } else if (c === "\\" && i + 1 < command.length) {
      word = (word ?? "") + command[++i];
    } else if (
      c === ";" ||
      c === "|" ||
      (c === "&" && command[i - 1] !== ">" && command[i + 1] !== ">")
    ) {
      end();
      const doubled = c !== ";" && command[i + 1] === c;
      words.push(doubled ? c + c : c);
      if (doubled) i++;
    } else {
      word = (word ?? "") + c;
    }
  }
  end();
  return words;
}

// Options of `pip install` and `conda install` that take the next word as their value.
const OPTIONS_WITH_VALUE = new Set([
  "-r",
  "--requirement",
  "-c",
  "--constraint",
  "-e",
  "--editable",
  "-i",
  "--index-url",
  "--extra-index-url",
  "-f",
  "--find-links",
  "-t",
  "--target",
  "--prefix",
  "--root",
  "--src",
  "--platform",
  "--python-version",
  "--implementation",
  "--abi",
  "--upgrade-strategy",
  "--progress-bar",
  "--log",
  "--proxy",
  "--retries",
  "--timeout",
  "--exists-action",
  "--trusted-host",
  "--cert",
  "--client-cert",
  "--cache-dir",
  "--no-binary",
  "--only-binary",
  "--global-option",
  "-C",
  "--config-settings",
  "--report",
  "--python",
  "--keyring-provider",
  "--root-user-action",
  "--use-feature",
  "--use-deprecated",
  "--group",
  "--channel",
  "-n",
  "--name",
  "-p",
  "--file",
  "--solver",
  "--repodata-fn",
]);
const SHELL_OPERATORS = new Set([";", "&&", "||", "|", "&"]);
// `> file`, `2>> log`: a redirection operator alone, its target in the next word.
const REDIRECT_OPERATOR = /^(?:\d?>>?|&>|<)$/;
// `>file`, `2>&1`: a redirection written as one word.
const REDIRECTION = /^(?:\d?>>?|&>|<)/;
// What starts a shell escape (`!cmd`, `!!cmd`) or a magic (`%pip ...`).
const COMMAND_ESCAPE = /^(?:!!?|%)/;
const PYTHON_COMMAND = /^(?:.*[/\\])?(?:python[\d.]*(?:\.exe)?|\{sys\.executable\})$/;
// A requirement starts with a project name followed by its end, extras, a version, a marker or a URL.
const REQUIREMENT = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:$|[\s[(<>=!~;@,])/;
// A distribution file named on its own, which the name pattern above would also accept.
const ARCHIVE = /^[\w.+-]+\.(?:whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|egg)$/i;
// conda's `name=1.2` means any 1.2.x; `name=1.2=build` means exactly 1.2.
const CONDA_SPEC = /^([A-Za-z0-9][\w.-]*)=([\w.]+)(=\S*)?$/;

/** Which installer a command runs, and the words after its `install`. */
function installCommand(words: string[]): { conda: boolean; args: string[] } | undefined {
  const [w0 = "", w1, w2] = words;
  let conda = false;
  let at: number;
  if (/^(?:.*[/\\])?pip[\d.]*(?:\.exe)?$/.test(w0)) at = 1;
  else if (PYTHON_COMMAND.test(w0) && w1 === "-m" && w2 === "pip") at = 3;
  else if (w0 === "uv" && w1 === "pip") at = 2;
  else if (/^(?:conda|mamba|micromamba)$/.test(w0)) [conda, at] = [true, 1];
  else return undefined;
  return words[at] === "install" ? { conda, args: words.slice(at + 1) } : undefined;
}

function condaToPep508(spec: string): string {
  const bare = spec.replace(/^[^:\s]+::/, "");
  const m = CONDA_SPEC.exec(bare);
  if (!m) return bare;
  return m[3] ? `${m[1]}==${m[2]}` : `${m[1]}==${m[2]}.*`;
}

/** The requirements a shell command (or `%pip`-style magic) installs, skipping options and files. */
function installedRequirements(command: string): string[] {
  const found: string[] = [];
  const segments: string[][] = [[]];
  for (const word of shellWords(command)) {
    if (SHELL_OPERATORS.has(word)) segments.push([]);
    else segments.at(-1)?.push(word);
  }
  for (const words of segments) {
    const install = installCommand(words);
    if (!install) continue;
    const { args } = install;
    for (let k = 0; k < args.length; k++) {
      const arg = args[k] as string;
      if (OPTIONS_WITH_VALUE.has(arg) || REDIRECT_OPERATOR.test(arg)) {
        k++;
        continue;
      }
      // Flags, redirections and values IPython fills in ($var, {expr}) say nothing we can use.
      if (arg.startsWith("-") || REDIRECTION.test(arg) || /[{}$]/.test(arg)) continue;
      const req = install.conda ? condaToPep508(arg) : arg;
      if (REQUIREMENT.test(req) && !ARCHIVE.test(req)) found.push(req);
    }
  }
  return found;
}

/** A code cell's Python, or undefined for a cell IPython hands whole to a non-Python magic. */
function cellPython(source: string): { code: string; installs: string[] } | undefined {
  const lines = source.split("\n").map((l) => l.replace(/\r$/, ""));
  const first = lines.findIndex((l) => l.trim() !== "");
  const cellMagic = first >= 0 ? /^%%(\S*)/.exec((lines[first] as string).trimStart()) : null;
  if (cellMagic) {
    if (!PYTHON_BODY_MAGICS.has(cellMagic[1] as string)) return undefined;
    lines[first] = "";
  }
  const installs: string[] = [];
  const st: LexState = { depth: 0, quote: undefined, backslash: false, lastCode: "" };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const trimmed = line.trimStart();
    const logicalStart = st.depth === 0 && st.quote === undefined && !st.backslash;
    if (!logicalStart || !isIPythonLine(trimmed)) {
      lexLine(line, st);
      continue;
    }
    // The IPython line goes on while it ends with a backslash.
    let command = trimmed;
    let last = i;
    while (command.endsWith("\\") && last + 1 < lines.length) {
      command = `${command.slice(0, -1)} ${(lines[++last] as string).trim()}`;
    }
    if (COMMAND_ESCAPE.test(command)) {
      installs.push(...installedRequirements(command.replace(COMMAND_ESCAPE, "")));
    }
    // An indented line right after a `:` is a block's first statement: keep the block non-empty.
    const indent = line.slice(0, line.length - trimmed.length);
    for (let k = i; k <= last; k++) lines[k] = "";
    if (indent !== "" && st.lastCode === ":") {
      lines[i] = `${indent}pass`;
      st.lastCode = "s"; // the end of "pass": the block has its statement
    }
    i = last;
  }
  return { code: lines.join("\n"), installs };
}

const sourceText = (s: unknown): string =>
  typeof s === "string"
    ? s
    : Array.isArray(s)
      ? s.filter((part): part is string => typeof part === "string").join("")
      : "";

function kernelLanguage(metadata: unknown): string | undefined {
  if (!isRecord(metadata)) return undefined;
  const { kernelspec, language_info: info } = metadata;
  const fromSpec = isRecord(kernelspec) ? kernelspec.language : undefined;
  const fromInfo = isRecord(info) ? info.name : undefined;
  const language = typeof fromSpec === "string" && fromSpec ? fromSpec : fromInfo;
  return typeof language === "string" && language ? language : undefined;
}

/** The Python code cells of a notebook (nbformat 4, or nbformat 3's worksheets). */
export function readNotebook(text: string, fileName: string): NotebookCode {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UserError(
      `${fileName} is not a valid notebook: its JSON does not parse (${(err as Error).message}).`,
    );
  }
  const cells = !isRecord(doc)
    ? undefined
    : Array.isArray(doc.cells)
      ? doc.cells
      : Array.isArray(doc.worksheets)
        ? doc.worksheets.flatMap((w) => (isRecord(w) && Array.isArray(w.cells) ? w.cells : []))
        : undefined;
  if (!isRecord(doc) || !cells) {
    throw new UserError(`${fileName} is not a Jupyter notebook: it has no list of cells.`);
  }
  const language = kernelLanguage(doc.metadata);
  if (language !== undefined && !/^i?python[\d.]*$/i.test(language)) {
    throw new UserError(`${fileName} is a notebook for ${language}, not Python.`);
  }
  const out: NotebookCode = { cells: [], pipInstalls: [] };
  if (language !== undefined) out.language = language;
  cells.forEach((cell: unknown, index) => {
    if (!isRecord(cell) || cell.cell_type !== "code") return;
    // nbformat 3 keeps a code cell's text in `input`.
    const python = cellPython(sourceText(cell.source ?? cell.input));
    if (!python) return;
    out.cells.push({ index, source: python.code });
    if (python.installs.length > 0)
      out.pipInstalls.push({ cell: index, requirements: python.installs });
  });
  return out;
}
