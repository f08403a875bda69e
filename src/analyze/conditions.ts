/**
 * Turning an `if` test into what it implies about the running interpreter, as PEP 508
 * markers. Each test yields the marker implied when it is true (`t`) and when it is false
 * (`f`); a part we cannot read contributes nothing, so the result is always a necessary
 * condition, never a guess: `if sys.platform == "win32" and fancy:` still implies Windows.
 */
import { type Marker, markerAnd, markerNot, markerOr } from "../python/marker.js";
import { stringValue, Tok, type Tokens } from "./tokenizer.js";

export interface Cond {
  t?: Marker;
  f?: Marker;
  /** The branch taken when the test is true only runs under a type checker. */
  tcTrue: boolean;
  /** The branch taken when the test is false only runs under a type checker. */
  tcFalse: boolean;
}

const UNKNOWN: Cond = { tcTrue: false, tcFalse: false };

type Operand =
  | { kind: "var"; name: string }
  | { kind: "str"; value: string }
  | { kind: "strs"; values: string[] }
  | { kind: "int"; value: number }
  | { kind: "tuple"; values: number[] }
  /** sys.version_info as a whole, sliced to two items, or its major part. */
  | { kind: "vinfo" | "vinfo2" | "vmajor" }
  | { kind: "cond"; cond: Cond }
  | { kind: "other" };

const VAR_PATHS: Record<string, string> = {
  "sys.platform": "sys_platform",
  "os.name": "os_name",
  "platform.system()": "platform_system",
  "platform.machine()": "platform_machine",
  "platform.python_implementation()": "platform_python_implementation",
  "platform.release()": "platform_release",
  "sys.implementation.name": "implementation_name",
};

const PLATFORMS = [
  "win32",
  "cygwin",
  "darwin",
  "linux",
  "aix",
  "emscripten",
  "wasi",
  "ios",
  "android",
];

function cmp(name: string, op: "==" | "!=" | "<" | "<=" | ">" | ">=", value: string): Marker {
  return { kind: "compare", left: { kind: "var", name }, op, right: { kind: "str", value } };
}

function known(m: Marker | undefined): Cond {
  return m ? { t: m, f: markerNot(m), tcTrue: false, tcFalse: false } : UNKNOWN;
}

const FLIP: Record<string, string> = {
  "<": ">",
  ">": "<",
  "<=": ">=",
  ">=": "<=",
  "==": "==",
  "!=": "!=",
};

class CondParser {
  constructor(
    readonly tk: Tokens,
    public i: number,
    readonly end: number,
    /** Local aliases of typing.TYPE_CHECKING. */
    readonly tcNames: ReadonlySet<string>,
  ) {}

  at(s: string): boolean {
    return this.i < this.end && this.tk.is(this.i, s);
  }

  parse(): Cond {
    const c = this.or();
    return this.i === this.end ? c : UNKNOWN;
  }

  or(): Cond {
    let left = this.and();
    while (this.at("or")) {
      this.i++;
      const right = this.and();
      left = {
        t: left.t && right.t ? markerOr(left.t, right.t) : undefined,
        f: markerAnd(left.f, right.f),
        tcTrue: left.tcTrue && right.tcTrue,
        tcFalse: left.tcFalse || right.tcFalse,
      };
    }
    return left;
  }

  and(): Cond {
    let left = this.not();
    while (this.at("and")) {
      this.i++;
      const right = this.not();
      left = {
        t: markerAnd(left.t, right.t),
        f: left.f && right.f ? markerOr(left.f, right.f) : undefined,
        tcTrue: left.tcTrue || right.tcTrue,
        tcFalse: left.tcFalse && right.tcFalse,
      };
    }
    return left;
  }

  not(): Cond {
    if (this.at("not")) {
      this.i++;
      const c = this.not();
      return { t: c.f, f: c.t, tcTrue: c.tcFalse, tcFalse: c.tcTrue };
    }
    return this.comparison();
  }

  comparison(): Cond {
    const left = this.operand();
    const op = this.compareOp();
    if (!op) {
      if (left.kind === "cond") return left.cond;
      return UNKNOWN;
    }
    const right = this.operand();
    if (this.compareOp()) {
      // Chained comparisons are rare in platform checks; read nothing from them.
      while (this.i < this.end && !this.at("and") && !this.at("or")) this.i++;
      return UNKNOWN;
    }
    return known(compare(left, op, right));
  }

  compareOp(): string | undefined {
    if (this.i >= this.end) return undefined;
    for (const op of ["==", "!=", "<", "<=", ">", ">="]) {
      if (this.tk.is(this.i, op)) {
        this.i++;
        return op;
      }
    }
    if (this.at("in")) {
      this.i++;
      return "in";
    }
    if (this.at("not") && this.i + 1 < this.end && this.tk.is(this.i + 1, "in")) {
      this.i += 2;
      return "not in";
    }
    if (this.at("is")) {
      this.i++;
      if (this.at("not")) {
        this.i++;
        return "is not";
      }
      return "is";
    }
    return undefined;
  }

  /** One operand: a dotted path with calls/subscripts, a literal, a tuple, or a parenthesized test. */
  operand(): Operand {
    const tk = this.tk;
    if (this.i >= this.end) return { kind: "other" };
    const k = tk.kind[this.i];
    if (k === Tok.String) {
      let s = "";
      while (this.i < this.end && tk.kind[this.i] === Tok.String) {
        const v = stringValue(tk, this.i++);
        if (v === undefined) return { kind: "other" };
        s += v;
      }
      return { kind: "str", value: s };
    }
    if (k === Tok.Number) {
      const v = Number(tk.text(this.i++).replace(/_/g, ""));
      return Number.isInteger(v) ? { kind: "int", value: v } : { kind: "other" };
    }
    if (tk.is(this.i, "(") || tk.is(this.i, "[")) return this.group();
    if (k !== Tok.Name) {
      this.skipPrimary();
      return { kind: "other" };
    }
    return this.path();
  }

  /** A parenthesized test, or a tuple/list literal of ints or strings. */
  group(): Operand {
    const tk = this.tk;
    const close = tk.is(this.i, "(") ? ")" : "]";
    const save = this.i;
    this.i++;
    const ints: number[] = [];
    const strs: string[] = [];
    let ok = true;
    while (this.i < this.end && !tk.is(this.i, close)) {
      if (tk.kind[this.i] === Tok.Number) {
        const v = Number(tk.text(this.i));
        if (!Number.isInteger(v)) ok = false;
        ints.push(v);
        this.i++;
      } else if (tk.kind[this.i] === Tok.String) {
        const v = stringValue(tk, this.i);
        if (v === undefined) ok = false;
        else strs.push(v);
        this.i++;
      } else {
        ok = false;
        break;
      }
      if (tk.is(this.i, ",")) this.i++;
      else if (!tk.is(this.i, close)) {
        ok = false;
        break;
      }
    }
    if (ok && this.i < this.end && ints.length > 0 !== strs.length > 0) {
      this.i++;
      return ints.length ? { kind: "tuple", values: ints } : { kind: "strs", values: strs };
    }
    if (close === ")") {
      // A parenthesized test.
      this.i = save + 1;
      const depthEnd = this.matching(save);
      const inner = new CondParser(tk, this.i, depthEnd, this.tcNames);
      const cond = inner.parse();
      this.i = depthEnd + 1;
      return { kind: "cond", cond };
    }
    this.i = this.matching(save) + 1;
    return { kind: "other" };
  }

  matching(open: number): number {
    let depth = 0;
    for (let j = open; j < this.end; j++) {
      const t = this.tk;
      if (t.is(j, "(") || t.is(j, "[") || t.is(j, "{")) depth++;
      else if (t.is(j, ")") || t.is(j, "]") || t.is(j, "}")) {
        depth--;
        if (depth === 0) return j;
      }
    }
    return this.end;
  }

  skipPrimary(): void {
    const tk = this.tk;
    while (this.i < this.end) {
      if (tk.is(this.i, "(") || tk.is(this.i, "[")) this.i = this.matching(this.i) + 1;
      else if (
        tk.kind[this.i] === Tok.Name &&
        ["and", "or", "not", "in", "is"].some((w) => tk.is(this.i, w))
      )
        return;
      else if (tk.kind[this.i] === Tok.Op && !tk.is(this.i, ".")) return;
      else this.i++;
    }
  }

  /** A dotted path like `sys.version_info[:2]` or `platform.system()` or `sys.platform.startswith("win")`. */
  path(): Operand {
    const tk = this.tk;
    let text = tk.text(this.i++);
    for (;;) {
      if (this.at(".") && this.i + 1 < this.end && tk.kind[this.i + 1] === Tok.Name) {
        text += `.${tk.text(this.i + 1)}`;
        this.i += 2;
      } else if (this.at("(")) {
        const close = this.matching(this.i);
        if (close === this.i + 1) {
          text += "()";
          this.i = close + 1;
        } else if (
          /\.startswith$/.test(text) &&
          close === this.i + 2 &&
          tk.kind[this.i + 1] === Tok.String
        ) {
          const arg = stringValue(tk, this.i + 1);
          this.i = close + 1;
          return startsWith(text.slice(0, -".startswith".length), arg);
        } else {
          this.i = close + 1;
          return { kind: "other" };
        }
      } else if (this.at("[")) {
        const close = this.matching(this.i);
        const inner = Array.from({ length: close - this.i - 1 }, (_, k) =>
          tk.text(this.i + 1 + k),
        ).join("");
        text += `[${inner}]`;
        this.i = close + 1;
      } else break;
    }
    // `if False:` is the pre-TYPE_CHECKING idiom: code that only type checkers read.
    if (/(^|\.)TYPE_CHECKING$/.test(text) || this.tcNames.has(text) || text === "False")
      return { kind: "cond", cond: { tcTrue: true, tcFalse: false } };
    const py2 = /^(six\.)?PY2$/.test(text);
    if (py2 || /^(six\.)?PY3$/.test(text)) {
      return { kind: "cond", cond: known(cmp("python_version", py2 ? "<" : ">=", "3")) };
    }
    const v = VAR_PATHS[text];
    if (v) return { kind: "var", name: v };
    if (text === "sys.version_info") return { kind: "vinfo" };
    if (text === "sys.version_info[:2]" || text === "sys.version_info[0:2]")
      return { kind: "vinfo2" };
    if (text === "sys.version_info[0]" || text === "sys.version_info.major")
      return { kind: "vmajor" };
    return { kind: "other" };
  }
}

function startsWith(path: string, prefix: string | undefined): Operand {
  if (path !== "sys.platform" || prefix === undefined || prefix === "") return { kind: "other" };
  const hits = PLATFORMS.filter((p) => p.startsWith(prefix));
  if (hits.length !== 1 || prefix.length < 3) return { kind: "other" };
  return { kind: "cond", cond: known(cmp("sys_platform", "==", hits[0] as string)) };
}

function compare(a: Operand, op: string, b: Operand): Marker | undefined {
  if ((b.kind === "var" || b.kind.startsWith("v")) && a.kind !== "var" && !a.kind.startsWith("v")) {
    if (op === "in" || op === "not in" || op === "is" || op === "is not") return undefined;
    return compare(b, FLIP[op] as string, a);
  }
  if (op === "is") op = "==";
  if (op === "is not") op = "!=";
  if (a.kind === "var") {
    if (b.kind === "str" && (op === "==" || op === "!=")) return cmp(a.name, op, b.value);
    if (b.kind === "strs" && b.values.length > 0 && (op === "in" || op === "not in")) {
      const parts = b.values.map((v) => cmp(a.name, op === "in" ? "==" : "!=", v));
      return op === "in" ? markerOr(...parts) : markerAnd(...parts);
    }
    return undefined;
  }
  if (a.kind === "vinfo" && b.kind === "tuple") return versionInfoCompare(op, b.values);
  if (a.kind === "vinfo2" && b.kind === "tuple" && b.values.length === 2) {
    const v = b.values.join(".");
    if (["==", "!=", "<", "<=", ">", ">="].includes(op))
      return cmp("python_version", op as "==", v);
    return undefined;
  }
  if (a.kind === "vmajor" && b.kind === "int") {
    const n = b.value;
    const ge = (m: number) => cmp("python_version", ">=", String(m));
    const lt = (m: number) => cmp("python_version", "<", String(m));
    switch (op) {
      case "==":
        return markerAnd(ge(n), lt(n + 1));
      case "!=":
        return markerOr(lt(n), ge(n + 1));
      case ">=":
        return ge(n);
      case ">":
        return ge(n + 1);
      case "<":
        return lt(n);
      case "<=":
        return lt(n + 1);
    }
  }
  return undefined;
}

/**
 * `sys.version_info` is a 5-tuple, so against a shorter tuple `>` behaves as `>=` and `<=`
 * as `<` (a longer tuple with an equal prefix compares greater); `==` never holds.
 */
function versionInfoCompare(op: string, t: number[]): Marker | undefined {
  if (t.length === 0 || t.length > 3) return undefined;
  const name = t.length === 3 ? "python_full_version" : "python_version";
  const v = t.join(".");
  if (op === ">=" || op === ">") return cmp(name, ">=", v);
  if (op === "<" || op === "<=") return cmp(name, "<", v);
  return undefined;
}

/** Read the test of an `if`/`elif` header: tokens [start, end) before the colon. */
export function parseCondition(
  tk: Tokens,
  start: number,
  end: number,
  tcNames: ReadonlySet<string>,
): Cond {
  return new CondParser(tk, start, end, tcNames).parse();
}
