/**
 * A Python dict literal read as data, never evaluated: the cloudpy seed kept its settings as
 * `{"host": "user@box", ...}` and evaluated the file, which let a config file run anything.
 * Accepted: str (quotes, triple quotes, u/r prefixes, escapes, implicit concatenation), int,
 * float, True/False/None, dict, list, tuple, trailing commas, comments. Names, calls,
 * operators, sets, bytes and f-strings are refused with the line where they appear.
 */

import { SIMPLE_ESCAPES } from "../python/escapes.js";
import { UserError } from "../util/errors.js";
import { q } from "./types.js";

export type PyKey = string | number | boolean | null;
export type PyDict = Map<PyKey, PyValue>;
export type PyValue = PyKey | PyValue[] | PyDict;

/** Nesting deeper than this is not a config file; refusing it keeps the stack safe. */
const MAX_DEPTH = 100;

// Python's numeric literals (no complex numbers); digits may be grouped with "_".
const NUMBER =
  /[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?)/y;

/** Parse `text` (the contents of `file`) as one Python dict literal. */
export function parsePythonDict(text: string, file: string): PyDict {
  return new Parser(text.replace(/^\uFEFF/, ""), file).document();
}

class Parser {
  private pos = 0;

  constructor(
    private readonly src: string,
    private readonly file: string,
  ) {}

  document(): PyDict {
    this.skip();
    if (this.pos >= this.src.length) this.fail("the file holds no dict", this.pos);
    const start = this.pos;
    const value = this.value(0);
    this.skip();
    if (this.pos < this.src.length) this.fail(`unexpected ${this.what()} after the value`);
    if (!(value instanceof Map)) this.fail("the file holds a value that is not a dict", start);
    return value;
  }

  private fail(message: string, at = this.pos): never {
    const line = this.src.slice(0, at).split("\n").length;
    throw new UserError(`${this.file} is not a plain Python dict: ${message} at line ${line}.`);
  }

  /** Whitespace, newlines, comments and backslash line continuations. */
  private skip(): void {
    const re = /(?:[ \t\f\r\n]+|#[^\n]*|\\\r?\n)*/y;
    re.lastIndex = this.pos;
    re.exec(this.src);
    this.pos = re.lastIndex;
  }

  /** The thing at the cursor, named for an error message. */
  private what(): string {
    if (this.pos >= this.src.length) return "end of file";
    const word = /[A-Za-z_][A-Za-z0-9_]*/y;
    word.lastIndex = this.pos;
    const m = word.exec(this.src);
    if (m) return `name ${q(m[0])}`;
    return q(this.src[this.pos] as string);
  }

  private expect(ch: string): void {
    this.skip();
    if (this.src[this.pos] !== ch) this.fail(`expected ${q(ch)} but found ${this.what()}`);
    this.pos++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_DEPTH) this.fail("the values nest too deeply");
    this.skip();
    const ch = this.src[this.pos];
    if (ch === "{") return this.dict(depth);
    if (ch === "[") return this.sequence("]", depth).items;
    if (ch === "(") return this.tuple(depth);
    if (ch === '"' || ch === "'") return this.strings();
    if (ch !== undefined && /[0-9.+-]/.test(ch)) return this.number();
    const word = /[A-Za-z_][A-Za-z0-9_]*/y;
    word.lastIndex = this.pos;
    const name = word.exec(this.src)?.[0];
    if (name !== undefined) {
      const next = this.src[this.pos + name.length];
      if (next === '"' || next === "'") return this.strings();
      if (name === "True" || name === "False" || name === "None") {
        this.pos += name.length;
        return name === "None" ? null : name === "True";
      }
    }
    return this.fail(`unexpected ${this.what()}`);
  }

  private dict(depth: number): PyDict {
    const dict: PyDict = new Map();
    const sameNumber = new Map<number, PyKey>();
    this.pos++; // {
    for (;;) {
      this.skip();
      if (this.src[this.pos] === "}") break;
      const keyAt = this.pos;
      if (this.src.startsWith("**", keyAt)) this.fail('unexpected "**"');
      const key = this.value(depth + 1);
      if (key instanceof Map || Array.isArray(key))
        this.fail("a dict key must be a string, number, True, False or None", keyAt);
      this.expect(":");
      const value = this.value(depth + 1);
      // Python's True == 1 and False == 0 as keys: the first key stays, the last value wins.
      let slot = key;
      if (typeof key === "boolean" || typeof key === "number") {
        slot = sameNumber.get(Number(key)) ?? key;
        sameNumber.set(Number(key), slot);
      }
      dict.set(slot, value);
      this.skip();
      if (this.src[this.pos] === ",") this.pos++;
      else if (this.src[this.pos] !== "}")
        this.fail(`expected "," or "}" but found ${this.what()}`);
    }
    this.pos++; // }
    return dict;
  }

  /** The items of a list or tuple up to `close`, and whether a comma came after the last. */
  private sequence(close: string, depth: number): { items: PyValue[]; comma: boolean } {
    const items: PyValue[] = [];
    let comma = false;
    this.pos++; // opening bracket
    for (;;) {
      this.skip();
      if (this.src[this.pos] === close) break;
      items.push(this.value(depth + 1));
      this.skip();
      comma = this.src[this.pos] === ",";
      if (comma) this.pos++;
      else if (this.src[this.pos] !== close)
        this.fail(`expected "," or ${q(close)} but found ${this.what()}`);
    }
    this.pos++;
    return { items, comma };
  }

  /** `()` and `(a, b)` are tuples (read as arrays); `(a)` is just a, as in Python. */
  private tuple(depth: number): PyValue {
    const { items, comma } = this.sequence(")", depth);
    return items.length === 1 && !comma ? (items[0] as PyValue) : items;
  }

  private number(): number {
    const start = this.pos;
    NUMBER.lastIndex = start;
    const m = NUMBER.exec(this.src);
    if (!m) return this.fail(`unexpected ${this.what()}`);
    const end = start + m[0].length;
    const after = this.src[end];
    if (after !== undefined && /[A-Za-z0-9_.]/.test(after))
      this.fail(`${q(m[0] + after)} is not a plain number`, start);
    const literal = m[0].replace(/_/g, "");
    const sign = literal.startsWith("-") ? -1 : 1;
    const body = literal.replace(/^[+-]/, "");
    const float = !/^0[xXoObB]/.test(body) && /[.eE]/.test(body);
    // Python refuses "012": it would be octal in other languages.
    if (/^0+[1-9]/.test(body) && !float) this.fail(`${q(m[0])} has leading zeros`, start);
    const n = Number(body.toLowerCase());
    if (!float && !Number.isSafeInteger(n)) this.fail(`${q(m[0])} is too large`, start);
    this.pos = end;
    return sign * n;
  }

  /** One string literal, or several side by side, which Python joins. */
  private strings(): string {
    let s = this.string();
    for (;;) {
      const save = this.pos;
      this.skip(); // strings side by side may be on separate lines inside brackets
      const ch = this.src[this.pos];
      const prefixed = /^[A-Za-z]{1,2}["']/.test(this.src.slice(this.pos, this.pos + 3));
      if (ch === '"' || ch === "'" || prefixed) {
        s += this.string();
      } else {
        this.pos = save;
        return s;
      }
    }
  }

  private string(): string {
    const start = this.pos;
    const prefix = /[A-Za-z]*/y;
    prefix.lastIndex = start;
    const p = (prefix.exec(this.src)?.[0] ?? "").toLowerCase();
    if (p.includes("f") || p.includes("t")) this.fail("an f-string is not plain data", start);
    if (p.includes("b")) this.fail("a bytes literal is not supported", start);
    if (p !== "" && p !== "u" && p !== "r") this.fail(`unexpected name ${q(p)}`, start);
    const raw = p === "r";
    this.pos += p.length;
    const quote = this.src[this.pos] as string;
    const triple = this.src.startsWith(quote.repeat(3), this.pos);
    const close = triple ? quote.repeat(3) : quote;
    this.pos += close.length;
    let out = "";
    for (;;) {
      if (this.pos >= this.src.length) this.fail("a string is not closed", start);
      if (this.src.startsWith(close, this.pos)) {
        this.pos += close.length;
        return out;
      }
      const ch = this.src[this.pos] as string;
      if (ch === "\n" && !triple)
        this.fail("a string is not closed before the end of the line", start);
      if (ch !== "\\") {
        out += ch;
        this.pos++;
      } else if (raw) {
        // In a raw string a backslash stays, and keeps the next character from closing it.
        out += this.src.slice(this.pos, this.pos + 2);
        this.pos += 2;
      } else {
        out += this.escape();
      }
    }
  }

  /** The escape sequence at the cursor (which is on the backslash). */
  private escape(): string {
    const at = this.pos;
    const c = this.src[at + 1];
    if (c === undefined) this.fail("a string is not closed", at);
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (c === "\n" || c === "\r") {
      // A backslash at the end of a line joins the lines.
      this.pos += c === "\r" && this.src[at + 2] === "\n" ? 3 : 2;
      return "";
    }
    const hex = (len: number): string => {
      const digits = this.src.slice(at + 2, at + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(digits))
        this.fail(`the escape \\${c} needs ${len} hex digits`, at);
      const code = Number.parseInt(digits, 16);
      if (code > 0x10ffff) this.fail(`\\${c}${digits} is not a Unicode character`, at);
      this.pos = at + 2 + len;
      return String.fromCodePoint(code);
    };
    if (c === "x") return hex(2);
    if (c === "u") return hex(4);
    if (c === "U") return hex(8);
    if (c === "N") this.fail("\\N{...} escapes are not supported", at);
    const octal = /[0-7]{1,3}/y;
    octal.lastIndex = at + 1;
    const o = octal.exec(this.src)?.[0];
    if (o !== undefined) {
      this.pos = at + 1 + o.length;
      return String.fromCharCode(Number.parseInt(o, 8));
    }
    // Python keeps an unknown escape as it is, backslash included.
    this.pos += 2;
    return `\\${c}`;
  }
}
