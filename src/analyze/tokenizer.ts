/**
 * A Python 3 tokenizer (3.0–3.14 grammar, PEP 701 f-strings, PEP 750 t-strings) that
 * keeps tokens in parallel typed arrays: analysis only needs kinds and offsets, and
 * avoiding one object per token is what makes scanning large trees fast.
 *
 * It reports the first lexical error (unterminated string, bad dedent, stray
 * character, Python 2 literals) instead of recovering: such a file does not parse.
 */
import { SIMPLE_ESCAPES } from "../python/escapes.js";

export enum Tok {
  Name = 1,
  Number = 2,
  String = 3,
  /** f-string or t-string, kept opaque: its value is not a constant. */
  FString = 4,
  Op = 5,
  Newline = 6,
  Indent = 7,
  Dedent = 8,
  End = 9,
}

/** Flags on String tokens. */
export enum StrFlag {
  Raw = 1,
  Bytes = 2,
  /** A same-quote string, backslash or comment inside an f-string field (PEP 701, 3.12+). */
  Pep701 = 4,
  /** A t-string (PEP 750, 3.14+). */
  Template = 8,
}

export interface TokenizeError {
  line: number;
  message: string;
}

function resized<T extends Uint8Array | Int32Array>(a: T, n: number): T {
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(a);
  return b;
}

export class Tokens {
  kind: Uint8Array;
  start: Int32Array;
  end: Int32Array;
  line: Int32Array;
  flags: Uint8Array;
  count = 0;

  constructor(
    readonly src: string,
    capacity: number,
  ) {
    this.kind = new Uint8Array(capacity);
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
    this.line = new Int32Array(capacity);
    this.flags = new Uint8Array(capacity);
  }

  push(kind: Tok, start: number, end: number, line: number, flags = 0): void {
    if (this.count === this.kind.length) this.grow();
    const i = this.count++;
    this.kind[i] = kind;
    this.start[i] = start;
    this.end[i] = end;
    this.line[i] = line;
    this.flags[i] = flags;
  }

  text(i: number): string {
    return this.src.slice(this.start[i], this.end[i]);
  }

  /** True when token i is the operator or name `s` (cheap: compares lengths first). */
  is(i: number, s: string): boolean {
    const a = this.start[i];
    if (this.end[i] - a !== s.length) return false;
    for (let k = 0; k < s.length; k++)
      if (this.src.charCodeAt(a + k) !== s.charCodeAt(k)) return false;
    return true;
  }

  private grow(): void {
    const n = this.kind.length * 2;
    this.kind = resized(this.kind, n);
    this.start = resized(this.start, n);
    this.end = resized(this.end, n);
    this.line = resized(this.line, n);
    this.flags = resized(this.flags, n);
  }
}

export interface TokenizeResult {
  tokens: Tokens;
  error?: TokenizeError;
}

// Unicode's ID_Start/ID_Continue already include the Other_ID_* characters Python allows.
const ID_START = /[\p{ID_Start}_]/u;
const ID_CONTINUE = /\p{ID_Continue}/u;

function isIdStart(c: number, src: string, pos: number): boolean {
  if (c < 128) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
  return ID_START.test(String.fromCodePoint(src.codePointAt(pos) ?? c));
}

function isIdContinue(c: number, src: string, pos: number): boolean {
  if (c < 128)
    return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57);
  return ID_CONTINUE.test(String.fromCodePoint(src.codePointAt(pos) ?? c));
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Parse a string prefix (e.g. `rb`, `F`, `Tr`); returns flags or -1 when not a valid prefix. */
function prefixFlags(src: string, a: number, b: number): number {
  let raw = 0;
  let bytes = 0;
  let f = 0;
  let t = 0;
  let u = 0;
  for (let i = a; i < b; i++) {
    switch (src.charCodeAt(i) | 32) {
      case 114: // r
        raw++;
        break;
      case 98: // b
        bytes++;
        break;
      case 102: // f
        f++;
        break;
      case 116: // t
        t++;
        break;
      case 117: // u
        u++;
        break;
      default:
        return -1;
    }
  }
  const n = b - a;
  if (raw > 1 || bytes > 1 || f > 1 || t > 1 || u > 1) return -1;
  if (u && n > 1) return -2; // `ur''` is Python 2 only
  if (bytes + f + t > 1) return -1;
  return (raw ? StrFlag.Raw : 0) | (bytes ? StrFlag.Bytes : 0) | (f ? 16 : 0) | (t ? 32 : 0);
}

const THREE_CHAR_OPS = new Set(["**=", "//=", ">>=", "<<=", "..."]);
const TWO_CHAR_OPS = new Set([
  "**",
  "//",
  ">>",
  "<<",
  "<=",
  ">=",
  "==",
  "!=",
  "->",
  ":=",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "@=",
]);
const ONE_CHAR_OPS = "+-*/%@&|^~<>()[]{},:;.=";

class Lexer {
  pos = 0;
  line = 1;
  depth = 0;
  brackets: number[] = [];
  /** The line each open bracket is on: an unclosed one is reported there, as Python does. */
  bracketLines: number[] = [];
  indents: number[] = [0];
  altIndents: number[] = [0];
  error: TokenizeError | undefined;
  readonly tokens: Tokens;
  readonly n: number;

  constructor(readonly src: string) {
    this.n = src.length;
    this.tokens = new Tokens(src, Math.max(64, src.length >> 2));
  }

  fail(message: string, line = this.line): void {
    if (!this.error) this.error = { line, message };
  }

  run(): TokenizeResult {
    const { src, n, tokens } = this;
    let atLineStart = true;
    let lineHasTokens = false;
    while (this.pos < n && !this.error) {
      if (atLineStart && this.depth === 0) {
        atLineStart = false;
        if (!this.indentation()) continue;
        if (this.error) break;
      }
      const c = src.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 12) {
        this.pos++;
      } else if (c === 35) {
        this.skipComment();
      } else if (c === 10 || c === 13) {
        this.newline(c);
        if (this.depth === 0) {
          if (lineHasTokens) tokens.push(Tok.Newline, this.pos, this.pos, this.line - 1);
          lineHasTokens = false;
          atLineStart = true;
        }
      } else if (c === 92) {
        const d = src.charCodeAt(this.pos + 1);
        if (d === 10 || d === 13) {
          this.pos++;
          this.newline(d);
          if (this.pos >= n) this.fail("unexpected end of file after line continuation");
        } else if (this.pos + 1 >= n) {
          this.fail("unexpected end of file after line continuation");
        } else {
          this.fail("unexpected character after line continuation character");
        }
      } else {
        lineHasTokens = true;
        this.token(c);
      }
    }
    if (!this.error) {
      if (this.depth > 0)
        this.fail(
          `'${String.fromCharCode(this.brackets[this.brackets.length - 1] ?? 40)}' was never closed`,
          this.bracketLines[this.bracketLines.length - 1] ?? this.line,
        );
      if (lineHasTokens) tokens.push(Tok.Newline, n, n, this.line);
      for (let i = this.indents.length - 1; i > 0; i--) tokens.push(Tok.Dedent, n, n, this.line);
      tokens.push(Tok.End, n, n, this.line);
    }
    return this.error ? { tokens, error: this.error } : { tokens };
  }

  newline(c: number): void {
    this.pos += c === 13 && this.src.charCodeAt(this.pos + 1) === 10 ? 2 : 1;
    this.line++;
  }

  skipComment(): void {
    const { src, n } = this;
    while (this.pos < n) {
      const c = src.charCodeAt(this.pos);
      if (c === 10 || c === 13) break;
      this.pos++;
    }
  }

  /** Measure leading whitespace; returns false for blank or comment-only lines. */
  indentation(): boolean {
    const { src, n } = this;
    let col = 0;
    let alt = 0;
    while (this.pos < n) {
      const c = src.charCodeAt(this.pos);
      if (c === 32) {
        col++;
        alt++;
      } else if (c === 9) {
        col = (Math.floor(col / 8) + 1) * 8;
        alt++;
      } else if (c === 12) {
        col = 0;
        alt = 0;
      } else break;
      this.pos++;
    }
    if (this.pos >= n) return false;
    const c = src.charCodeAt(this.pos);
    if (c === 35 || c === 10 || c === 13) return false;
    if (c === 92) {
      // A backslash continuation on an otherwise blank line is a blank line.
      const d = src.charCodeAt(this.pos + 1);
      if (d === 10 || d === 13) return true;
    }
    const top = this.indents[this.indents.length - 1] as number;
    const altTop = this.altIndents[this.altIndents.length - 1] as number;
    if (col > top) {
      if (alt <= altTop) this.fail("inconsistent use of tabs and spaces in indentation");
      this.indents.push(col);
      this.altIndents.push(alt);
      this.tokens.push(Tok.Indent, this.pos, this.pos, this.line);
    } else if (col < top) {
      while (this.indents.length > 1 && col < (this.indents[this.indents.length - 1] as number)) {
        this.indents.pop();
        this.altIndents.pop();
        this.tokens.push(Tok.Dedent, this.pos, this.pos, this.line);
      }
      if (col !== this.indents[this.indents.length - 1]) {
        this.fail("unindent does not match any outer indentation level");
      } else if (alt !== this.altIndents[this.altIndents.length - 1]) {
        this.fail("inconsistent use of tabs and spaces in indentation");
      }
    } else if (alt !== altTop) {
      this.fail("inconsistent use of tabs and spaces in indentation");
    }
    return true;
  }

  token(c: number): void {
    const { src, tokens } = this;
    const start = this.pos;
    if (c === 39 || c === 34) {
      this.string(start, start, 0);
      return;
    }
    if (isIdStart(c, src, start)) {
      let p = start + (c >= 0xd800 && c <= 0xdbff ? 2 : 1);
      while (p < this.n) {
        const d = src.charCodeAt(p);
        if (!isIdContinue(d, src, p)) break;
        p += d >= 0xd800 && d <= 0xdbff ? 2 : 1;
      }
      const q = src.charCodeAt(p);
      if ((q === 39 || q === 34) && p - start <= 2) {
        const flags = prefixFlags(src, start, p);
        if (flags === -2) {
          this.fail("the 'ur' string prefix is Python 2 only");
          return;
        }
        if (flags >= 0) {
          this.string(start, p, flags);
          return;
        }
      }
      this.pos = p;
      tokens.push(Tok.Name, start, p, this.line);
      return;
    }
    if (isDigit(c) || (c === 46 && isDigit(src.charCodeAt(start + 1)))) {
      this.number(start);
      return;
    }
    this.operator(c, start);
  }

  operator(c: number, start: number): void {
    const { src, tokens } = this;
    const three = src.slice(start, start + 3);
    if (THREE_CHAR_OPS.has(three)) {
      this.pos += 3;
      tokens.push(Tok.Op, start, this.pos, this.line);
      return;
    }
    const two = three.slice(0, 2);
    if (TWO_CHAR_OPS.has(two)) {
      this.pos += 2;
      tokens.push(Tok.Op, start, this.pos, this.line);
      return;
    }
    if (two === "<>") {
      this.fail("the '<>' operator is Python 2 only");
      return;
    }
    const ch = String.fromCharCode(c);
    if (!ONE_CHAR_OPS.includes(ch)) {
      if (c === 96) this.fail("backquotes are Python 2 only");
      else if (c === 0) this.fail("source code cannot contain null bytes");
      else this.fail(`invalid character '${String.fromCodePoint(src.codePointAt(start) ?? c)}'`);
      return;
    }
    if (c === 40 || c === 91 || c === 123) {
      this.depth++;
      this.brackets.push(c);
      this.bracketLines.push(this.line);
    } else if (c === 41 || c === 93 || c === 125) {
      const open = this.brackets.pop();
      this.bracketLines.pop();
      const want = c === 41 ? 40 : c - 2;
      if (open === undefined) {
        this.fail(`unmatched '${ch}'`);
        return;
      }
      if (open !== want) {
        this.fail(`closing '${ch}' does not match '${String.fromCharCode(open)}'`);
        return;
      }
      this.depth--;
    }
    this.pos++;
    tokens.push(Tok.Op, start, this.pos, this.line);
  }

  number(start: number): void {
    const { src, n } = this;
    let p = start;
    const c0 = src.charCodeAt(p);
    const c1 = src.charCodeAt(p + 1) | 32;
    const digitsFrom = (q: number, ok: (d: number) => boolean): number => {
      while (q < n) {
        const d = src.charCodeAt(q);
        if (ok(d) || d === 95) q++;
        else break;
      }
      return q;
    };
    if (c0 === 48 && (c1 === 120 || c1 === 111 || c1 === 98)) {
      const ok =
        c1 === 120
          ? (d: number) => isDigit(d) || ((d | 32) >= 97 && (d | 32) <= 102)
          : c1 === 111
            ? (d: number) => d >= 48 && d <= 55
            : (d: number) => d === 48 || d === 49;
      p = digitsFrom(p + 2, ok);
    } else {
      p = digitsFrom(p, isDigit);
      let isFloat = false;
      if (src.charCodeAt(p) === 46) {
        isFloat = true;
        p = digitsFrom(p + 1, isDigit);
      }
      const e = src.charCodeAt(p) | 32;
      if (e === 101) {
        let q = p + 1;
        const s = src.charCodeAt(q);
        if (s === 43 || s === 45) q++;
        if (isDigit(src.charCodeAt(q))) {
          isFloat = true;
          p = digitsFrom(q, isDigit);
        }
      }
      const j = src.charCodeAt(p) | 32;
      if (j === 106) {
        isFloat = true;
        p++;
      }
      if (!isFloat && c0 === 48 && /[1-9]/.test(src.slice(start, p))) {
        this.fail(
          "leading zeros in decimal integer literals are not permitted (a Python 2 octal literal?)",
        );
        return;
      }
    }
    const after = src.charCodeAt(p);
    if ((after | 32) === 108) {
      this.fail("the 'L' suffix on integers is Python 2 only");
      return;
    }
    if (p < n && isIdStart(after, src, p)) {
      // `1if x else y` is legal: a keyword may follow a number directly.
      const m = /^[A-Za-z_]\w*/.exec(src.slice(p, p + 16));
      const word = m ? m[0] : "";
      if (!["if", "else", "and", "or", "in", "is", "not", "for"].includes(word)) {
        this.fail("invalid decimal literal");
        return;
      }
    }
    this.pos = p;
    this.tokens.push(Tok.Number, start, p, this.line);
  }

  /** A string starting at `start` whose quote is at `q`. */
  string(start: number, q: number, flags: number): void {
    const { src } = this;
    const quote = src.charCodeAt(q);
    const triple = src.charCodeAt(q + 1) === quote && src.charCodeAt(q + 2) === quote;
    const line = this.line;
    const isF = (flags & 48) !== 0;
    this.pos = q + (triple ? 3 : 1);
    let extra = 0;
    if (isF) {
      extra = this.fstringBody(quote, triple);
      if (this.error) return;
      const out =
        (flags & (StrFlag.Raw | StrFlag.Bytes)) | extra | (flags & 32 ? StrFlag.Template : 0);
      this.tokens.push(Tok.FString, start, this.pos, line, out);
      return;
    }
    if (!this.plainBody(quote, triple)) return;
    this.tokens.push(Tok.String, start, this.pos, line, flags & (StrFlag.Raw | StrFlag.Bytes));
  }

  /** Scan to just past the closing quote of a plain string. */
  plainBody(quote: number, triple: boolean): boolean {
    const { src, n } = this;
    let p = this.pos;
    const startLine = this.line;
    while (p < n) {
      const c = src.charCodeAt(p);
      if (c === 92) {
        const d = src.charCodeAt(p + 1);
        if (d === 10) this.line++;
        else if (d === 13) {
          this.line++;
          if (src.charCodeAt(p + 2) === 10) p++;
        }
        p += 2;
        continue;
      }
      if (c === quote) {
        if (!triple) {
          this.pos = p + 1;
          return true;
        }
        if (src.charCodeAt(p + 1) === quote && src.charCodeAt(p + 2) === quote) {
          this.pos = p + 3;
          return true;
        }
      } else if (c === 10 || c === 13) {
        if (!triple) {
          this.fail("unterminated string literal", startLine);
          return false;
        }
        this.line++;
        if (c === 13 && src.charCodeAt(p + 1) === 10) p++;
      }
      p++;
    }
    this.fail(
      triple ? "unterminated triple-quoted string literal" : "unterminated string literal",
      startLine,
    );
    return false;
  }

  /**
   * Scan an f-string's literal parts and replacement fields (PEP 701: fields may hold any
   * expression, including strings with the same quote). Returns StrFlag.Pep701 when the
   * body needs 3.12+.
   */
  fstringBody(quote: number, triple: boolean): number {
    const { src, n } = this;
    const startLine = this.line;
    let flags = 0;
    while (this.pos < n) {
      const c = src.charCodeAt(this.pos);
      if (c === 92) {
        const d = src.charCodeAt(this.pos + 1);
        if (d === 123 || d === 125) {
          this.pos++;
          continue;
        }
        if (d === 10 || d === 13) {
          this.pos++;
          this.newline(d);
          continue;
        }
        this.pos += 2;
        continue;
      }
      if (c === quote) {
        if (!triple) {
          this.pos++;
          return flags;
        }
        if (src.charCodeAt(this.pos + 1) === quote && src.charCodeAt(this.pos + 2) === quote) {
          this.pos += 3;
          return flags;
        }
        this.pos++;
      } else if (c === 10 || c === 13) {
        if (!triple) {
          this.fail("unterminated f-string literal", startLine);
          return flags;
        }
        this.newline(c);
      } else if (c === 123) {
        if (src.charCodeAt(this.pos + 1) === 123) {
          this.pos += 2;
        } else {
          flags |= this.field(quote, triple);
          if (this.error) return flags;
        }
      } else if (c === 125) {
        if (src.charCodeAt(this.pos + 1) === 125) this.pos += 2;
        else {
          this.fail("f-string: single '}' is not allowed");
          return flags;
        }
      } else {
        this.pos++;
      }
    }
    this.fail("unterminated f-string literal", startLine);
    return flags;
  }

  /** A replacement field starting at `{`; leaves pos just past its closing `}`. */
  field(quote: number, triple: boolean): number {
    const { src, n } = this;
    let flags = 0;
    let depth = 0;
    this.pos++;
    while (this.pos < n) {
      const c = src.charCodeAt(this.pos);
      if (c === 10 || c === 13) {
        this.newline(c);
        continue;
      }
      if (c === 39 || c === 34) {
        if (c === quote) flags |= StrFlag.Pep701;
        this.nestedString(this.pos, 0);
        if (this.error) return flags;
        continue;
      }
      if (isIdStart(c, src, this.pos)) {
        let p = this.pos + 1;
        while (p < n && isIdContinue(src.charCodeAt(p), src, p)) p++;
        const q = src.charCodeAt(p);
        if ((q === 39 || q === 34) && p - this.pos <= 2) {
          const f = prefixFlags(src, this.pos, p);
          if (f >= 0) {
            if (q === quote) flags |= StrFlag.Pep701;
            this.nestedString(p, f);
            if (this.error) return flags;
            continue;
          }
        }
        this.pos = p;
        continue;
      }
      if (c === 92) flags |= StrFlag.Pep701;
      if (c === 35) {
        flags |= StrFlag.Pep701;
        this.skipComment();
        continue;
      }
      if (c === 40 || c === 91 || c === 123) depth++;
      else if (c === 41 || c === 93) depth--;
      else if (c === 125) {
        if (depth === 0) {
          this.pos++;
          return flags;
        }
        depth--;
      } else if (c === 33 && depth === 0 && src.charCodeAt(this.pos + 1) !== 61) {
        // Conversion: `!r`, `!s`, `!a`.
        this.pos++;
        continue;
      } else if (c === 58 && depth === 0 && src.charCodeAt(this.pos + 1) !== 61) {
        this.pos++;
        flags |= this.formatSpec(quote, triple);
        return flags;
      }
      this.pos++;
    }
    this.fail("unterminated f-string replacement field");
    return flags;
  }

  /** Format spec after `:` in a field: literal text with nested fields, up to `}`. */
  formatSpec(quote: number, triple: boolean): number {
    const { src, n } = this;
    let flags = 0;
    while (this.pos < n) {
      const c = src.charCodeAt(this.pos);
      if (c === 125) {
        this.pos++;
        return flags;
      }
      if (c === 123) {
        flags |= this.field(quote, triple);
        if (this.error) return flags;
        continue;
      }
      if (c === quote && !triple) {
        this.fail("f-string: expecting '}'");
        return flags;
      }
      if (c === 10 || c === 13) {
        if (!triple) {
          this.fail("f-string: expecting '}'");
          return flags;
        }
        this.newline(c);
        continue;
      }
      this.pos++;
    }
    this.fail("unterminated f-string replacement field");
    return flags;
  }

  nestedString(q: number, flags: number): void {
    const quote = this.src.charCodeAt(q);
    const triple = this.src.charCodeAt(q + 1) === quote && this.src.charCodeAt(q + 2) === quote;
    this.pos = q + (triple ? 3 : 1);
    if (flags & 48) this.fstringBody(quote, triple);
    else this.plainBody(quote, triple);
  }
}

export function tokenize(src: string): TokenizeResult {
  return new Lexer(src).run();
}

/** The value of a plain (non-f) string token; undefined for bytes. */
export function stringValue(tokens: Tokens, i: number): string | undefined {
  const flags = tokens.flags[i] as number;
  if (flags & StrFlag.Bytes) return undefined;
  const { src } = tokens;
  let a = tokens.start[i] as number;
  const b = tokens.end[i] as number;
  while (src.charCodeAt(a) !== 39 && src.charCodeAt(a) !== 34) a++;
  const quote = src.charCodeAt(a);
  const triple = src.charCodeAt(a + 1) === quote && src.charCodeAt(a + 2) === quote && b - a >= 6;
  const q = triple ? 3 : 1;
  const body = src.slice(a + q, b - q);
  if (flags & StrFlag.Raw || !body.includes("\\")) return body;
  return body.replace(
    /\\(\r\n|[\n\\'"abfnrtv]|[0-7]{1,3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\})/g,
    (m, e: string) => {
      if (e === "\r\n") return "";
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) return simple;
      const c = e.charCodeAt(0);
      if (c >= 48 && c <= 55) return String.fromCharCode(Number.parseInt(e, 8));
      if (e[0] === "x" || e[0] === "u" || e[0] === "U") {
        return String.fromCodePoint(Number.parseInt(e.slice(1), 16));
      }
      return m;
    },
  );
}
