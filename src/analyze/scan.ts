/**
 * Extract what a Python module imports, with the context of each import (scope,
 * try/except ImportError, TYPE_CHECKING, platform/version guards), the syntax-derived
 * Python floor, and its plain string literals — from tokens, never by running it.
 *
 * Statements are recognised from the token stream (a Python 3 `import` keyword can only
 * start an import statement), and block structure from INDENT/DEDENT. Lexical errors and
 * the Python 2 constructs that reach the token level are reported as parse errors.
 */
import { type Marker, markerAnd } from "../python/marker.js";
import { type Cond, parseCondition } from "./conditions.js";
import { StrFlag, stringValue, Tok, type Tokens, tokenize } from "./tokenizer.js";

export interface ImportRecord {
  /** Dotted module name, without the leading dots of a relative import. */
  module: string;
  /** Number of leading dots (0 for absolute imports). */
  level: number;
  /** Names of a `from` import (`*` for a star import). */
  names?: string[];
  kind: "import" | "from" | "dynamic";
  line: number;
  /** Enclosing class and function names, outermost first. */
  scopes: string[];
  /** The innermost enclosing def or class, or module. */
  scope: "module" | "class" | "function";
  /** Inside `try` whose handler swallows ImportError, or `with suppress(ImportError)`. */
  optional: boolean;
  /** Inside the handler of such a try: the fallback for an optional import. */
  fallback: boolean;
  /** The innermost try statement whose body holds this import (numbered per file). */
  tryId?: number;
  /** For a fallback: the try statement whose failure it answers. */
  fallbackFor?: number;
  /** Only seen by type checkers (`if TYPE_CHECKING:`). */
  typeChecking: boolean;
  /** Platform/version guards around it, as a PEP 508 marker. */
  marker?: Marker;
  /** `import_module(name, "pkg")`: the literal package a relative name resolves against. */
  package?: string;
}

export interface SyntaxFloor {
  version: string;
  feature: string;
  line: number;
}

export interface ScanResult {
  imports: ImportRecord[];
  error?: { line: number; message: string };
  /** The newest syntax the module uses (the lowest Python that can parse it). */
  floor?: SyntaxFloor;
  strings: { value: string; line: number }[];
  /** Every function defined, by qualified name: "fit", "Model.fit", "outer.fit". */
  functions: string[];
}

const KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(
    " ",
  ),
);
const SOFT_KEYWORDS = new Set(["match", "case", "type", "lazy"]);
const IMPORT_ERRORS = new Set(["ImportError", "ModuleNotFoundError", "Exception", "BaseException"]);
const STATEMENT_START_OPS = new Set(["(", "[", "{", "-", "+", "~", "*", "@", "..."]);
const DANGLING_OPS = new Set(
  "= + - / // % @ ** << >> & | ^ ~ < > <= >= == != . -> := += -= *= /= //= %= @= **= <<= >>= &= |= ^=".split(
    " ",
  ),
);

type BlockKind =
  | "module"
  | "def"
  | "class"
  | "if"
  | "elif"
  | "else"
  | "try"
  | "except"
  | "finally"
  | "with"
  | "for"
  | "while"
  | "match"
  | "case";

interface TryGroup {
  id: number;
  /** Handlers that catch ImportError, and whether each re-raises or exits. */
  handlers: { exits: boolean }[];
}

interface Block {
  kind: BlockKind;
  parent: Block | undefined;
  name?: string;
  /** Marker implied by the branch (if/elif/else), and whether it is type-checking only. */
  marker?: Marker;
  typeChecking?: boolean;
  /** For if/elif: conditions of this and the earlier branches. */
  ifChain?: Cond[];
  tryGroup?: TryGroup;
  /** For an except block that catches ImportError: its entry in the group. */
  handler?: { exits: boolean };
  suppressesImportError?: boolean;
  /** For else after try/for/while: what it follows. */
  after?: BlockKind;
  /** For except blocks: the try group they belong to. */
  tryGroupRef?: TryGroup;
}

class ParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const FLOOR_ORDER = (v: string) => v.split(".").map(Number) as [number, number];

class Scanner {
  readonly imports: { record: ImportRecord; tryGroups: TryGroup[]; suppressed: boolean }[] = [];
  readonly strings: { value: string; line: number }[] = [];
  floor: SyntaxFloor | undefined;
  stack: Block[];
  /** Most recently closed block at each stack depth, for elif/else/except/finally. */
  lastClosed: (Block | undefined)[] = [];
  pending: Block | undefined;
  pendingLine = 0;
  /** Dynamic imports found by the token pass, in token order, placed into blocks by run(). */
  dynamic: DynamicImport[] = [];
  tryCount = 0;
  readonly functions: string[] = [];
  /**
   * Local names of `import_module`, of the `importlib` module (`import importlib as il`) and of
   * `TYPE_CHECKING` (`from typing import X as Y`).
   */
  readonly importModuleNames: Set<string>;
  readonly importlibNames: Set<string>;
  readonly typeCheckingNames: Set<string>;
  private classLike: Set<string> | undefined;

  constructor(readonly tk: Tokens) {
    this.stack = [{ kind: "module", parent: undefined }];
    this.importModuleNames = new Set(["import_module", ...aliasesOf(tk, "import_module")]);
    this.importlibNames = new Set(["importlib", ...aliasesOf(tk, "importlib")]);
    this.typeCheckingNames = aliasesOf(tk, "TYPE_CHECKING");
  }

  fail(i: number, message: string): never {
    throw new ParseError(this.tk.line[i] ?? 0, message);
  }

  need(version: string, feature: string, i: number): void {
    const [a, b] = FLOOR_ORDER(version);
    if (this.floor) {
      const [c, d] = FLOOR_ORDER(this.floor.version);
      if (a < c || (a === c && b <= d)) return;
    }
    this.floor = { version, feature, line: this.tk.line[i] ?? 0 };
  }

  get top(): Block {
    return this.stack[this.stack.length - 1] as Block;
  }

  isKw(i: number): boolean {
    return this.tk.kind[i] === Tok.Name && KEYWORDS.has(this.tk.text(i));
  }

  /** A pass over every token for checks that do not need statement structure. */
  tokenPass(): void {
    const tk = this.tk;
    const n = tk.count;
    let prevAtom = false;
    for (let i = 0; i < n; i++) {
      const k = tk.kind[i] as Tok;
      if (k === Tok.Newline || k === Tok.Indent || k === Tok.Dedent) {
        prevAtom = false;
        continue;
      }
      const isName = k === Tok.Name;
      const word = isName ? tk.text(i) : "";
      const kw = isName && KEYWORDS.has(word);
      const atomStart =
        (isName && !kw) || k === Tok.Number || k === Tok.String || k === Tok.FString;
      if (prevAtom && atomStart) {
        const p = i - 1;
        const pk = tk.kind[p];
        const bothStrings =
          (pk === Tok.String || pk === Tok.FString) && (k === Tok.String || k === Tok.FString);
        const prevWord = pk === Tok.Name ? tk.text(p) : "";
        const softStart = SOFT_KEYWORDS.has(prevWord) && this.startsStatement(p);
        if (!bothStrings && !softStart) {
          if ((prevWord === "print" || prevWord === "exec") && this.startsStatement(p)) {
            this.fail(i, `Python 2 ${prevWord} statement (this file is not Python 3)`);
          }
          this.fail(i, "invalid syntax: two expressions with no operator between them");
        }
      }
      if (k === Tok.String) {
        const v = stringValue(tk, i);
        if (v !== undefined) this.strings.push({ value: v, line: tk.line[i] as number });
      } else if (k === Tok.FString) {
        const f = tk.flags[i] as number;
        if (f & StrFlag.Template) this.need("3.14", "template string literal (t-string)", i);
        else if (f & StrFlag.Pep701)
          this.need("3.12", "f-string with nested quotes, comments or backslashes", i);
        else if (/\{[^{}]*=\s*[!:}]/.test(tk.text(i))) {
          this.need("3.8", "f-string self-documenting '=' specifier", i);
        }
      } else if (k === Tok.Op) {
        if (tk.is(i, ":=")) this.need("3.8", "assignment expression (:=)", i);
        else if (tk.is(i, "[") && tk.is(i + 1, "*") && i > 0) {
          const pk = tk.kind[i - 1];
          if (pk === Tok.Name ? !this.isKw(i - 1) : tk.is(i - 1, "]") || tk.is(i - 1, ")")) {
            this.need("3.11", "star expression in a subscript", i);
          }
        }
      } else if (isName && !(i > 0 && tk.is(i - 1, "."))) {
        this.dynamicImport(i, word);
      }
      prevAtom = atomStart || tk.is(i, ")") || tk.is(i, "]") || tk.is(i, "}");
    }
  }

  startsStatement(i: number): boolean {
    if (i === 0) return true;
    const pk = this.tk.kind[i - 1];
    return (
      pk === Tok.Newline ||
      pk === Tok.Indent ||
      pk === Tok.Dedent ||
      this.tk.is(i - 1, ";") ||
      this.tk.is(i - 1, ":")
    );
  }

  /**
   * `__import__("x")`, `importlib.import_module("x")`, `import_module("x")` (or an alias of
   * it) with a literal, and import_module's literal package for a relative name.
   */
  dynamicImport(i: number, word: string): void {
    const tk = this.tk;
    let call = -1;
    if (word === "__import__" || this.importModuleNames.has(word)) call = i + 1;
    else if (this.importlibNames.has(word) && tk.is(i + 1, ".") && tk.is(i + 2, "import_module"))
      call = i + 3;
    if (call < 0 || !tk.is(call, "(")) return;
    const name = this.literal(call + 1);
    if (!name || !(tk.is(name.next, ")") || tk.is(name.next, ","))) return;
    const m = /^(\.*)(.*)$/.exec(name.value) as RegExpExecArray;
    const found: DynamicImport = {
      index: i,
      module: m[2] as string,
      level: (m[1] as string).length,
    };
    if (word !== "__import__" && tk.is(name.next, ",")) {
      // import_module(name, package): the second argument, positional or by keyword.
      let p = name.next + 1;
      if (tk.is(p, "package") && tk.is(p + 1, "=")) p += 2;
      const pkg = this.literal(p);
      if (pkg && tk.is(pkg.next, ")")) found.package = pkg.value;
    }
    this.dynamic.push(found);
  }

  /** A string literal (implicitly concatenated parts included) at `j`, and the token after it. */
  literal(j: number): { value: string; next: number } | undefined {
    const tk = this.tk;
    if (tk.kind[j] !== Tok.String) return undefined;
    let value = "";
    while (tk.kind[j] === Tok.String) {
      const v = stringValue(tk, j);
      if (v === undefined) return undefined;
      value += v;
      j++;
    }
    return tk.kind[j] === Tok.FString ? undefined : { value, next: j };
  }

  run(): void {
    this.tokenPass();
    const tk = this.tk;
    const dyn = this.dynamic;
    let d = 0;
    let i = 0;
    const n = tk.count;
    while (i < n) {
      const k = tk.kind[i];
      if (k === Tok.End) break;
      if (k === Tok.Indent) {
        if (!this.pending) this.fail(i, "unexpected indent");
        this.stack.push(this.pending);
        this.pending = undefined;
        i++;
        continue;
      }
      if (this.pending) {
        this.fail(
          i,
          `expected an indented block after '${this.pending.kind}' on line ${this.pendingLine}`,
        );
      }
      if (k === Tok.Dedent) {
        this.close();
        i++;
        continue;
      }
      if (k === Tok.Newline) {
        i++;
        continue;
      }
      let end = i;
      while (tk.kind[end] !== Tok.Newline && tk.kind[end] !== Tok.End) end++;
      // Dynamic imports found by the token pass belong to the block that holds them.
      const blockBefore = this.top;
      this.statement(i, end);
      const holder = this.pending ?? blockBefore;
      while (d < dyn.length && (dyn[d] as DynamicImport).index < end) {
        const { index, ...x } = dyn[d++] as DynamicImport;
        this.record(holder, { ...x, kind: "dynamic", line: tk.line[index] as number });
      }
      i = end + 1;
    }
    if (this.pending)
      this.fail(
        n - 1,
        `expected an indented block after '${this.pending.kind}' on line ${this.pendingLine}`,
      );
  }

  close(): void {
    if (this.stack.length <= 1) return;
    const b = this.stack.pop() as Block;
    this.lastClosed[this.stack.length] = b;
  }

  /** One logical line [i, end): a compound header (maybe with a one-line body) or simple statements. */
  statement(i: number, end: number): void {
    const tk = this.tk;
    let kwIndex = i;
    let word = tk.kind[i] === Tok.Name ? tk.text(i) : "";
    if (word === "async" && tk.kind[i + 1] === Tok.Name) {
      kwIndex = i + 1;
      word = tk.text(kwIndex);
      if (word !== "def" && word !== "for" && word !== "with")
        this.fail(i, "invalid syntax after 'async'");
    }
    const depth = this.stack.length;
    const continues = word === "elif" || word === "else" || word === "except" || word === "finally";
    const prev = continues ? this.lastClosed[depth] : undefined;
    this.lastClosed[depth] = undefined;

    const header = this.headerKind(word, kwIndex, end);
    if (!header) {
      if (tk.is(i, "@")) {
        this.decorator(i, end);
        return;
      }
      this.simpleStatements(i, end, this.top);
      return;
    }
    const colon = this.headerColon(kwIndex, end);
    if (colon < 0) this.fail(kwIndex, `expected ':' after '${word}'`);
    const block = this.makeBlock(header, kwIndex, colon, prev);
    if (colon === end - 1) {
      this.pending = block;
      this.pendingLine = tk.line[kwIndex] as number;
    } else {
      // A one-line body: `if x: import y`.
      this.stack.push(block);
      this.simpleStatements(colon + 1, end, block);
      this.close();
    }
  }

  headerKind(word: string, i: number, end: number): BlockKind | undefined {
    switch (word) {
      case "if":
      case "elif":
      case "else":
      case "try":
      case "except":
      case "finally":
      case "with":
      case "for":
      case "while":
      case "def":
      case "class":
        return word;
      case "match":
      case "case": {
        // Soft keywords: a statement only when the line is a header ending in ':'.
        const next = this.tk.kind[i + 1];
        if (
          next === Tok.Newline ||
          (this.tk.kind[i + 1] === Tok.Op && !STATEMENT_START_OPS.has(this.tk.text(i + 1)))
        ) {
          return undefined;
        }
        return this.tk.is(end - 1, ":") && this.headerColon(i, end) === end - 1 ? word : undefined;
      }
      default:
        return undefined;
    }
  }

  /** The colon ending a header: the first ':' at bracket depth 0 not taken by a lambda. */
  headerColon(i: number, end: number): number {
    const tk = this.tk;
    let depth = 0;
    let lambdas = 0;
    for (let j = i + 1; j < end; j++) {
      if (tk.kind[j] === Tok.Op) {
        const c = tk.src.charCodeAt(tk.start[j] as number);
        const len = (tk.end[j] as number) - (tk.start[j] as number);
        if (len === 1) {
          if (c === 40 || c === 91 || c === 123) depth++;
          else if (c === 41 || c === 93 || c === 125) depth--;
          else if (c === 58 && depth === 0) {
            if (lambdas > 0) lambdas--;
            else return j;
          }
        }
      } else if (depth === 0 && tk.kind[j] === Tok.Name && tk.is(j, "lambda")) lambdas++;
    }
    return -1;
  }

  makeBlock(kind: BlockKind, kw: number, colon: number, prev: Block | undefined): Block {
    const tk = this.tk;
    const parent = this.top;
    const block: Block = { kind, parent };
    const prevKind = prev?.kind;
    switch (kind) {
      case "def":
      case "class": {
        if (tk.kind[kw + 1] !== Tok.Name) this.fail(kw, `expected a name after '${kind}'`);
        block.name = tk.text(kw + 1);
        if (tk.is(kw + 2, "[")) {
          this.need("3.12", `type parameters on '${kind} ${block.name}'`, kw);
          this.typeParamDefaults(kw + 2, colon);
        }
        if (kind === "def") {
          this.defParams(kw + 2, colon);
          this.functions.push([...scopesOf(parent), block.name].join("."));
        }
        break;
      }
      case "if":
      case "elif": {
        if (kind === "elif" && prevKind !== "if" && prevKind !== "elif")
          this.fail(kw, "'elif' without a matching 'if'");
        const cond = parseCondition(tk, kw + 1, colon, this.typeCheckingNames);
        const chain = kind === "elif" && prev?.ifChain ? prev.ifChain : [];
        block.ifChain = [...chain, cond];
        block.marker = markerAnd(...chain.map((c) => c.f), cond.t);
        block.typeChecking = cond.tcTrue || chain.some((c) => c.tcFalse);
        break;
      }
      case "else":
        if (colon !== kw + 1) this.fail(kw, "expected ':' after 'else'");
        if (prevKind === "if" || prevKind === "elif") {
          const chain = prev?.ifChain ?? [];
          block.marker = markerAnd(...chain.map((c) => c.f));
          block.typeChecking = chain.some((c) => c.tcFalse);
        } else if (prevKind === "try" || prevKind === "except") {
          block.after = "try";
        } else if (prevKind === "for" || prevKind === "while") {
          block.after = prevKind;
        } else {
          this.fail(kw, "'else' without a matching 'if', 'for', 'while' or 'try'");
        }
        break;
      case "try":
        if (colon !== kw + 1) this.fail(kw, "expected ':' after 'try'");
        block.tryGroup = { id: this.tryCount++, handlers: [] };
        break;
      case "except": {
        if (prevKind !== "try" && prevKind !== "except")
          this.fail(kw, "'except' without a matching 'try'");
        const group = prev?.kind === "try" ? prev.tryGroup : prev?.tryGroupRef;
        block.tryGroupRef = group;
        let a = kw + 1;
        if (tk.is(a, "*")) {
          this.need("3.11", "except* (exception groups)", kw);
          a++;
        }
        if (this.catchesImportError(a, colon) && group) {
          block.handler = { exits: false };
          group.handlers.push(block.handler);
        }
        this.exceptCommas(a, colon, kw);
        break;
      }
      case "finally":
        if (colon !== kw + 1) this.fail(kw, "expected ':' after 'finally'");
        if (
          prevKind !== "try" &&
          prevKind !== "except" &&
          !(prevKind === "else" && prev?.after === "try")
        ) {
          this.fail(kw, "'finally' without a matching 'try'");
        }
        break;
      case "with":
        this.withHeader(kw, colon, block);
        break;
      case "match":
        this.need("3.10", "match statement", kw);
        break;
      default:
        break;
    }
    return block;
  }

  catchesImportError(a: number, colon: number): boolean {
    const tk = this.tk;
    if (a === colon) return true;
    for (let j = a; j < colon; j++) {
      if (tk.is(j, "as")) break;
      if (tk.kind[j] === Tok.Name && IMPORT_ERRORS.has(tk.text(j))) return true;
    }
    return false;
  }

  /**
   * `except A, B:` without parentheses is new in 3.14 (PEP 758), but `except E, e:` is the
   * Python 2 spelling of `except E as e`: two items, the second a lowercase name that is no
   * class or imported name of the file.
   */
  exceptCommas(a: number, colon: number, kw: number): void {
    const tk = this.tk;
    const commas: number[] = [];
    let depth = 0;
    for (let j = a; j < colon && !(depth === 0 && tk.is(j, "as")); j++) {
      if (tk.is(j, "(") || tk.is(j, "[") || tk.is(j, "{")) depth++;
      else if (tk.is(j, ")") || tk.is(j, "]") || tk.is(j, "}")) depth--;
      else if (depth === 0 && tk.is(j, ",")) commas.push(j);
    }
    if (commas.length === 0) return;
    const last = (commas[0] as number) + 1;
    if (
      commas.length === 1 &&
      last === colon - 1 &&
      tk.kind[last] === Tok.Name &&
      /^[a-z]/.test(tk.text(last)) &&
      !this.isKw(last) &&
      !this.classLikeNames().has(tk.text(last))
    ) {
      this.fail(kw, "Python 2 'except E, name' clause (this file is not Python 3)");
    }
    this.need("3.14", "except with several exception types and no parentheses", kw);
  }

  /** Names the file binds as a class or by an import: what `except A, name:` may catch. */
  classLikeNames(): Set<string> {
    this.classLike ??= boundNames(this.tk);
    return this.classLike;
  }

  withHeader(kw: number, colon: number, block: Block): void {
    const tk = this.tk;
    let suppress = false;
    for (let j = kw + 1; j < colon; j++) {
      if (tk.kind[j] !== Tok.Name) continue;
      const w = tk.text(j);
      if (w === "suppress") suppress = true;
      else if (suppress && (w === "ImportError" || w === "ModuleNotFoundError"))
        block.suppressesImportError = true;
    }
    if (tk.is(kw + 1, "(")) {
      let depth = 0;
      let close = -1;
      let hasAs = false;
      for (let j = kw + 1; j < colon; j++) {
        if (tk.is(j, "(") || tk.is(j, "[") || tk.is(j, "{")) depth++;
        else if (tk.is(j, ")") || tk.is(j, "]") || tk.is(j, "}")) {
          depth--;
          if (depth === 0) {
            close = j;
            break;
          }
        } else if (depth === 1 && tk.is(j, "as")) hasAs = true;
      }
      if (hasAs && close === colon - 1) this.need("3.9", "parenthesized context managers", kw);
    }
  }

  /** PEP 570 positional-only '/' and PEP 646 `*args: *Ts` in a def's parameter list. */
  defParams(open: number, colon: number): void {
    const tk = this.tk;
    let j = open;
    if (tk.is(j, "[")) {
      let depth = 0;
      for (; j < colon; j++) {
        if (tk.is(j, "[")) depth++;
        else if (tk.is(j, "]") && --depth === 0) break;
      }
      j++;
    }
    if (!tk.is(j, "(")) this.fail(j, "expected '(' after the function name");
    let depth = 0;
    for (let p = j; p < colon; p++) {
      if (tk.is(p, "(") || tk.is(p, "[") || tk.is(p, "{")) depth++;
      else if (tk.is(p, ")") || tk.is(p, "]") || tk.is(p, "}")) {
        if (--depth === 0) return;
      } else if (depth === 1) {
        if (
          tk.is(p, "/") &&
          (tk.is(p - 1, ",") || tk.is(p - 1, "(")) &&
          (tk.is(p + 1, ",") || tk.is(p + 1, ")"))
        ) {
          this.need("3.8", "positional-only parameters", p);
        } else if (tk.is(p, ":") && tk.is(p + 1, "*")) {
          this.need("3.11", "star annotation on *args", p);
        }
      }
    }
  }

  /** PEP 696 type parameter defaults: `[T = int]`. */
  typeParamDefaults(open: number, limit: number): void {
    const tk = this.tk;
    let depth = 0;
    for (let j = open; j < limit; j++) {
      if (tk.is(j, "(") || tk.is(j, "[") || tk.is(j, "{")) depth++;
      else if (tk.is(j, ")") || tk.is(j, "]") || tk.is(j, "}")) {
        if (--depth === 0) return;
      } else if (depth === 1 && tk.is(j, "=")) {
        this.need("3.13", "type parameter defaults", j);
        return;
      }
    }
  }

  decorator(i: number, end: number): void {
    const tk = this.tk;
    // Before 3.9 a decorator was a dotted name, optionally called once.
    let j = i + 1;
    let simple = tk.kind[j] === Tok.Name;
    j++;
    while (simple && tk.is(j, ".") && tk.kind[j + 1] === Tok.Name) j += 2;
    if (simple && tk.is(j, "(")) {
      let depth = 0;
      for (; j < end; j++) {
        if (tk.is(j, "(") || tk.is(j, "[") || tk.is(j, "{")) depth++;
        else if ((tk.is(j, ")") || tk.is(j, "]") || tk.is(j, "}")) && --depth === 0) break;
      }
      j++;
    }
    if (j !== end) simple = false;
    if (!simple) this.need("3.9", "decorator with an arbitrary expression", i);
  }

  /** Simple statements separated by ';' in [i, end), inside `block`. */
  simpleStatements(i: number, end: number, block: Block): void {
    const tk = this.tk;
    let s = i;
    while (s < end) {
      let e = s;
      let depth = 0;
      while (e < end) {
        if (tk.kind[e] === Tok.Op) {
          if (tk.is(e, "(") || tk.is(e, "[") || tk.is(e, "{")) depth++;
          else if (tk.is(e, ")") || tk.is(e, "]") || tk.is(e, "}")) depth--;
          else if (depth === 0 && tk.is(e, ";")) break;
        }
        e++;
      }
      if (e > s) this.simple(s, e, block);
      s = e + 1;
    }
  }

  simple(s: number, e: number, block: Block): void {
    const tk = this.tk;
    const k = tk.kind[s];
    if (k === Tok.Op && !STATEMENT_START_OPS.has(tk.text(s))) {
      const t = tk.text(s);
      if ((t === "<<" || t === "==" || t === ">>") && tk.is(s + 1, t) && tk.is(s + 2, t)) {
        this.fail(s, "merge conflict marker");
      }
      this.fail(s, `invalid syntax: a statement cannot start with '${t}'`);
    }
    if (tk.kind[e - 1] === Tok.Op && DANGLING_OPS.has(tk.text(e - 1))) {
      this.fail(e - 1, `invalid syntax: the line ends with '${tk.text(e - 1)}'`);
    }
    if (tk.is(e - 1, ":")) this.fail(e - 1, "invalid syntax: unexpected ':'");
    if (k !== Tok.Name) return;
    const w = tk.text(s);
    if (w === "lazy" && (tk.is(s + 1, "import") || tk.is(s + 1, "from"))) {
      this.need("3.15", "lazy import", s);
      this.simple(s + 1, e, block);
      return;
    }
    if (w === "import") this.importStatement(s, e, block);
    else if (w === "from") this.fromStatement(s, e, block);
    else if (w === "raise") {
      this.markExit(block);
      let depth = 0;
      for (let j = s + 1; j < e; j++) {
        if (tk.is(j, "(") || tk.is(j, "[") || tk.is(j, "{")) depth++;
        else if (tk.is(j, ")") || tk.is(j, "]") || tk.is(j, "}")) depth--;
        else if (depth === 0 && tk.is(j, ","))
          this.fail(j, "Python 2 'raise E, V' statement (this file is not Python 3)");
      }
    } else if (
      w === "type" &&
      tk.kind[s + 1] === Tok.Name &&
      (tk.is(s + 2, "=") || tk.is(s + 2, "["))
    ) {
      this.need("3.12", "type alias statement", s);
      if (tk.is(s + 2, "[")) this.typeParamDefaults(s + 2, e);
    } else if (w === "lambda" && tk.is(s + 1, "(")) {
      this.fail(s, "Python 2 tuple parameter in lambda");
    } else if (
      (w === "sys" && tk.is(s + 1, ".") && tk.is(s + 2, "exit")) ||
      (w === "os" && tk.is(s + 1, ".") && tk.is(s + 2, "_exit")) ||
      ((w === "exit" || w === "quit") && tk.is(s + 1, "("))
    ) {
      this.markExit(block);
    } else if (KEYWORDS.has(w) && this.headerKind(w, s, e)) {
      this.fail(s, `invalid syntax: '${w}' cannot follow another statement on the same line`);
    }
  }

  markExit(block: Block): void {
    if (block.handler) block.handler.exits = true;
  }

  dotted(j: number, e: number): [string, number] {
    const tk = this.tk;
    if (tk.kind[j] !== Tok.Name || this.isKw(j))
      this.fail(j, "invalid import statement: expected a module name");
    let name = tk.text(j);
    j++;
    while (j < e && tk.is(j, ".")) {
      if (tk.kind[j + 1] !== Tok.Name)
        this.fail(j, "invalid import statement: expected a name after '.'");
      name += `.${tk.text(j + 1)}`;
      j += 2;
    }
    return [name, j];
  }

  importStatement(s: number, e: number, block: Block): void {
    const tk = this.tk;
    let j = s + 1;
    const line = tk.line[s] as number;
    for (;;) {
      const [name, next] = this.dotted(j, e);
      j = next;
      if (tk.is(j, "as")) {
        if (tk.kind[j + 1] !== Tok.Name)
          this.fail(j, "invalid import statement: expected a name after 'as'");
        j += 2;
      }
      this.record(block, { module: name, level: 0, kind: "import", line });
      if (j >= e) return;
      if (!tk.is(j, ",")) this.fail(j, "invalid import statement");
      j++;
    }
  }

  fromStatement(s: number, e: number, block: Block): void {
    const tk = this.tk;
    let j = s + 1;
    let level = 0;
    while (tk.is(j, ".") || tk.is(j, "...")) {
      level += tk.is(j, ".") ? 1 : 3;
      j++;
    }
    let module = "";
    if (!tk.is(j, "import")) [module, j] = this.dotted(j, e);
    if (!tk.is(j, "import")) this.fail(j, "invalid import statement: expected 'import'");
    j++;
    const names: string[] = [];
    if (tk.is(j, "*")) {
      names.push("*");
      j++;
    } else {
      const paren = tk.is(j, "(");
      if (paren) j++;
      while (j < e && !tk.is(j, ")")) {
        if (tk.kind[j] !== Tok.Name) this.fail(j, "invalid import statement: expected a name");
        names.push(tk.text(j));
        j++;
        if (tk.is(j, "as")) j += 2;
        if (tk.is(j, ",")) j++;
        else break;
      }
      if (paren) {
        if (!tk.is(j, ")")) this.fail(j, "invalid import statement: expected ')'");
        j++;
      }
      if (names.length === 0) this.fail(j, "invalid import statement: nothing imported");
    }
    if (j !== e) this.fail(j, "invalid import statement");
    this.record(block, { module, level, names, kind: "from", line: tk.line[s] as number });
  }

  record(
    block: Block,
    r: {
      module: string;
      level: number;
      names?: string[];
      kind: ImportRecord["kind"];
      line: number;
    },
  ): void {
    const { tryGroups, suppressed, ...ctx } = contextOf(block);
    this.imports.push({ record: { ...r, ...ctx, optional: false }, tryGroups, suppressed });
  }
}

interface DynamicImport {
  index: number;
  module: string;
  level: number;
  package?: string;
}

/** Local names given to `name` by `... import name as alias`. */
function aliasesOf(tk: Tokens, name: string): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + 2 < tk.count; i++) {
    if (
      tk.kind[i] === Tok.Name &&
      tk.is(i, name) &&
      tk.is(i + 1, "as") &&
      tk.kind[i + 2] === Tok.Name
    )
      out.add(tk.text(i + 2));
  }
  return out;
}

/** Names bound by `class NAME` or by an import statement (`import a as NAME`, `from m import NAME`). */
function boundNames(tk: Tokens): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + 1 < tk.count; i++) {
    if (tk.kind[i] !== Tok.Name) continue;
    if (tk.is(i, "class") && tk.kind[i + 1] === Tok.Name) out.add(tk.text(i + 1));
    else if (tk.is(i, "import")) {
      // The bound names are those not followed by '.' or 'as' (an alias takes their place).
      for (let j = i + 1; j < tk.count && tk.kind[j] !== Tok.Newline && !tk.is(j, ";"); j++) {
        const dotted = tk.is(j - 1, ".") || tk.is(j + 1, ".");
        if (tk.kind[j] === Tok.Name && !dotted && !tk.is(j + 1, "as") && !tk.is(j, "as"))
          out.add(tk.text(j));
      }
    }
  }
  return out;
}

/** Enclosing class and function names of a block, outermost first. */
function scopesOf(block: Block | undefined): string[] {
  const scopes: string[] = [];
  for (let b = block; b; b = b.parent) {
    if (b.kind === "def" || b.kind === "class") scopes.unshift(b.name ?? "");
  }
  return scopes;
}

/** The context of an import, from its innermost block outwards. Try groups are returned, not
 * judged: whether a try makes an import optional depends on handlers that come after it. */
function contextOf(block: Block) {
  const scopes = scopesOf(block);
  let scope: ImportRecord["scope"] | undefined;
  const markers: (Marker | undefined)[] = [];
  let typeChecking = false;
  const tryGroups: TryGroup[] = [];
  let fallback = false;
  let suppressed = false;
  let tryId: number | undefined;
  let fallbackFor: number | undefined;
  for (let b: Block | undefined = block; b; b = b.parent) {
    if (b.kind === "def" || b.kind === "class") scope ??= b.kind === "def" ? "function" : "class";
    if (b.marker) markers.push(b.marker);
    if (b.typeChecking) typeChecking = true;
    if (b.tryGroup) {
      tryGroups.push(b.tryGroup);
      tryId ??= b.tryGroup.id;
    }
    if (b.handler) {
      fallback = true;
      fallbackFor ??= b.tryGroupRef?.id;
    }
    if (b.suppressesImportError) suppressed = true;
  }
  const marker = markerAnd(...markers.reverse());
  return {
    scopes,
    scope: scope ?? ("module" as ImportRecord["scope"]),
    fallback,
    typeChecking,
    ...(marker ? { marker } : {}),
    ...(tryId !== undefined ? { tryId } : {}),
    ...(fallbackFor !== undefined ? { fallbackFor } : {}),
    tryGroups,
    suppressed,
  };
}

export function scanSource(src: string): ScanResult {
  const { tokens, error } = tokenize(src);
  if (error) return { imports: [], strings: [], functions: [], error };
  const s = new Scanner(tokens);
  try {
    s.run();
  } catch (err) {
    if (err instanceof ParseError)
      return {
        imports: [],
        strings: [],
        functions: [],
        error: { line: err.line, message: err.message },
      };
    throw err;
  }
  const imports = s.imports.map(({ record, tryGroups, suppressed }) => {
    record.optional = suppressed || tryGroups.some((g) => g.handlers.some((h) => !h.exits));
    return record;
  });
  return {
    imports,
    strings: s.strings,
    functions: s.functions,
    ...(s.floor ? { floor: s.floor } : {}),
  };
}
