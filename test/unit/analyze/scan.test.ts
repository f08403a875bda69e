import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ImportRecord, scanSource } from "../../../src/analyze/scan.js";
import { formatMarker } from "../../../src/python/marker.js";

function scan(src: string) {
  const r = scanSource(src);
  assert.equal(r.error, undefined, `unexpected error: ${JSON.stringify(r.error)}`);
  return r;
}

function mods(src: string): string[] {
  return scan(src).imports.map((i) => ".".repeat(i.level) + i.module);
}

function one(src: string, module: string): ImportRecord {
  const hit = scan(src).imports.find((i) => i.module === module);
  assert.ok(hit, `no import of ${module}`);
  return hit;
}

function markerOf(src: string, module: string): string | undefined {
  const m = one(src, module).marker;
  return m ? formatMarker(m) : undefined;
}

describe("import forms", () => {
  test("plain, dotted, aliased and multiple imports", () => {
    assert.deepEqual(mods("import a\nimport b.c as d, e\n"), ["a", "b.c", "e"]);
  });
  test("from imports, parenthesized names, star", () => {
    const r = scan("from x.y import (a,\n  b as c,\n)\nfrom z import *\n").imports;
    assert.deepEqual(
      r.map((i) => [i.module, i.names]),
      [
        ["x.y", ["a", "b"]],
        ["z", ["*"]],
      ],
    );
  });
  test("relative imports keep their level", () => {
    const r = scan("from . import a\nfrom ..pkg.mod import b\nfrom ... import c\n").imports;
    assert.deepEqual(
      r.map((i) => [i.level, i.module]),
      [
        [1, ""],
        [2, "pkg.mod"],
        [3, ""],
      ],
    );
  });
  test("dynamic imports with literal names only", () => {
    const src = [
      'importlib.import_module("plugins.one")',
      "m = __import__('two')",
      'import_module("thr" "ee", package=None)',
      "importlib.import_module(name)",
      'importlib.import_module(f"x{y}")',
      'obj.import_module("not_this")',
      'importlib.import_module("a" + b)',
      "import importlib as il, os",
      'il.import_module("four")',
      'os.import_module("not_this_either")',
    ].join("\n");
    assert.deepEqual(mods(src), ["plugins.one", "two", "three", "importlib", "os", "four"]);
  });
  test("imports inside functions, classes, with, if, try, one-line bodies", () => {
    const src = `
def f():
    import inner
class C:
    import in_class
    def m(self):
        from deep import x
with open("f") as fh: import in_with
if True: import one_line_if
`;
    const r = scan(src).imports;
    const by = Object.fromEntries(r.map((i) => [i.module, i]));
    assert.equal(by.inner?.scope, "function");
    assert.deepEqual(by.inner?.scopes, ["f"]);
    assert.equal(by.in_class?.scope, "class");
    assert.deepEqual(by.deep?.scopes, ["C", "m"]);
    assert.equal(by.in_with?.scope, "module");
    assert.equal(by.one_line_if?.scope, "module");
  });
  test("strings, comments and f-strings never yield imports", () => {
    assert.deepEqual(
      mods('s = "import x"\n# import y\nt = f"{a!r:>{w}} import z"\nu = """\nimport q\n"""\n'),
      [],
    );
  });
  test("PEP 701 nested same-quote f-strings tokenize", () => {
    const r = scan('x = f"{d["k"]} {f"{1}"}"\nimport after\n');
    assert.deepEqual(
      r.imports.map((i) => i.module),
      ["after"],
    );
    assert.equal(r.floor?.version, "3.12");
  });
  test("lazy imports (PEP 810)", () => {
    const r = scan("lazy import json\nlazy from a import b\n");
    assert.deepEqual(
      r.imports.map((i) => i.module),
      ["json", "a"],
    );
    assert.equal(r.floor?.version, "3.15");
  });
  test("soft keywords used as names are not statements", () => {
    assert.deepEqual(mods("match = 1\ntype = 2\ncase(3)\nimport z\n"), ["z"]);
  });
});

describe("context", () => {
  test("try/except ImportError makes an import optional", () => {
    const src = "try:\n    import ujson as json\nexcept ImportError:\n    import json\n";
    assert.equal(one(src, "ujson").optional, true);
    assert.equal(one(src, "json").optional, false);
    assert.equal(one(src, "json").fallback, true);
    assert.equal(one(src, "json").fallbackFor, one(src, "ujson").tryId);
  });
  test("handlers catching Exception, bare except and tuples count; others do not", () => {
    assert.equal(one("try:\n import a\nexcept Exception:\n pass\n", "a").optional, true);
    assert.equal(one("try:\n import a\nexcept:\n pass\n", "a").optional, true);
    assert.equal(
      one("try:\n import a\nexcept (ValueError, ModuleNotFoundError) as e:\n pass\n", "a").optional,
      true,
    );
    assert.equal(one("try:\n import a\nexcept ValueError:\n pass\n", "a").optional, false);
    assert.equal(one("try:\n import a\nfinally:\n pass\n", "a").optional, false);
  });
  test("a handler that re-raises or exits makes the import required", () => {
    assert.equal(
      one("try:\n import a\nexcept ImportError:\n raise SystemExit('need a')\n", "a").optional,
      false,
    );
    assert.equal(
      one("try:\n import a\nexcept ImportError:\n print('x'); sys.exit(1)\n", "a").optional,
      false,
    );
  });
  test("try/else and with suppress(ImportError)", () => {
    assert.equal(
      one("try:\n pass\nexcept ImportError:\n pass\nelse:\n import a\n", "a").optional,
      false,
    );
    assert.equal(one("with contextlib.suppress(ImportError):\n import a\n", "a").optional, true);
  });
  test("TYPE_CHECKING blocks are not runtime needs; their else branch is", () => {
    const src =
      "if TYPE_CHECKING:\n import a\nelse:\n import b\nif typing.TYPE_CHECKING: import c\nif not TYPE_CHECKING:\n import d\n";
    assert.equal(one(src, "a").typeChecking, true);
    assert.equal(one(src, "b").typeChecking, false);
    assert.equal(one(src, "c").typeChecking, true);
    assert.equal(one(src, "d").typeChecking, false);
  });
  test("platform guards become markers", () => {
    assert.equal(
      markerOf('if sys.platform == "win32":\n import w\n', "w"),
      'sys_platform == "win32"',
    );
    assert.equal(
      markerOf('if sys.platform.startswith("linux"):\n import l\n', "l"),
      'sys_platform == "linux"',
    );
    assert.equal(
      markerOf('if os.name == "nt":\n pass\nelse:\n import p\n', "p"),
      'os_name != "nt"',
    );
    assert.equal(
      markerOf('if platform.system() == "Darwin":\n import m\n', "m"),
      'platform_system == "Darwin"',
    );
    assert.equal(
      markerOf('if sys.platform in ("win32", "cygwin"):\n import w\n', "w"),
      'sys_platform == "win32" or sys_platform == "cygwin"',
    );
  });
  test("version guards become markers, with tuple comparison semantics", () => {
    assert.equal(
      markerOf("if sys.version_info >= (3, 11):\n import a\n", "a"),
      'python_version >= "3.11"',
    );
    assert.equal(
      markerOf("if sys.version_info < (3, 11):\n import a\n", "a"),
      'python_version < "3.11"',
    );
    // version_info is longer than (3, 10), so `>` behaves as `>=`.
    assert.equal(
      markerOf("if sys.version_info > (3, 10):\n import a\n", "a"),
      'python_version >= "3.10"',
    );
    assert.equal(
      markerOf("if sys.version_info[:2] > (3, 10):\n import a\n", "a"),
      'python_version > "3.10"',
    );
    assert.equal(
      markerOf("if sys.version_info[0] == 2:\n import a\n", "a"),
      'python_version >= "2" and python_version < "3"',
    );
    assert.equal(
      markerOf("if sys.version_info >= (3, 8, 1):\n import a\n", "a"),
      'python_full_version >= "3.8.1"',
    );
    assert.equal(markerOf("if PY2:\n import a\n", "a"), 'python_version < "3"');
  });
  test("elif/else chains negate earlier branches; unknown parts add nothing", () => {
    const src = `
if sys.version_info >= (3, 11):
    import tomllib
elif sys.platform == "win32":
    import w
else:
    import tomli
if sys.platform == "win32" and fancy:
    import both
if sys.platform == "win32" or fancy:
    import either
`;
    assert.equal(markerOf(src, "tomllib"), 'python_version >= "3.11"');
    assert.equal(markerOf(src, "w"), 'python_version < "3.11" and sys_platform == "win32"');
    assert.equal(markerOf(src, "tomli"), 'python_version < "3.11" and sys_platform != "win32"');
    assert.equal(markerOf(src, "both"), 'sys_platform == "win32"');
    assert.equal(markerOf(src, "either"), undefined);
  });
  test("nested guards combine", () => {
    const src =
      'if sys.platform == "linux":\n    if sys.version_info < (3, 9):\n        import x\n';
    assert.equal(markerOf(src, "x"), 'sys_platform == "linux" and python_version < "3.9"');
  });
});

describe("syntax floor", () => {
  const floor = (src: string) => scan(src).floor?.version;
  test("each feature raises the floor", () => {
    assert.equal(floor("x = 1\n"), undefined);
    assert.equal(floor("if (n := 10) > 5: pass\n"), "3.8");
    assert.equal(floor("def f(a, /, b): pass\n"), "3.8");
    assert.equal(floor("@buttons[0].on\ndef f(): pass\n"), "3.9");
    assert.equal(floor("match x:\n    case 1:\n        pass\n"), "3.10");
    assert.equal(floor("try:\n    pass\nexcept* ValueError:\n    pass\n"), "3.11");
    assert.equal(floor("def f[T](x: T) -> T: return x\n"), "3.12");
    assert.equal(floor("type Alias = list[int]\n"), "3.12");
    assert.equal(floor("class A[T = int]: pass\n"), "3.13");
    assert.equal(floor("try:\n    pass\nexcept ValueError, TypeError:\n    pass\n"), "3.14");
    assert.equal(floor('x = t"hi {name}"\n'), "3.14");
  });
  test("the floor names the feature and line", () => {
    const f = scan("import a\n\nmatch x:\n    case _:\n        pass\n").floor;
    assert.deepEqual(f, { version: "3.10", feature: "match statement", line: 3 });
  });
});

describe("files that do not parse are reported", () => {
  const error = (src: string) => scanSource(src).error?.message ?? "";
  test("Python 2", () => {
    assert.match(error('print "hello"\n'), /Python 2 print/);
    assert.match(error("exec code in ns\n"), /Python 2 exec/);
    assert.match(error("x = 0777\n"), /leading zeros/);
    assert.match(error("x = 10L\n"), /Python 2/);
    assert.match(error("x = `y`\n"), /backquotes/);
    assert.match(error("if a <> b: pass\n"), /Python 2/);
    assert.match(error("raise E, 'msg'\n"), /Python 2 'raise E, V'/);
    assert.match(error("s = ur'x'\n"), /Python 2/);
  });
  test("merge conflict markers", () => {
    assert.match(
      error("import a\n<<<<<<< HEAD\nimport b\n=======\nimport c\n>>>>>>> branch\n"),
      /merge conflict marker/,
    );
  });
  test("lexical errors", () => {
    assert.match(error("x = 'abc\n"), /unterminated string/);
    assert.match(error('x = """abc\n'), /unterminated triple-quoted/);
    assert.match(error("x = (1,\n"), /never closed/);
    // Where Python says: the line of the bracket left open, not the end of the file.
    assert.equal(scanSource("import numpy\nfoo(\n\nbar = [1,\n").error?.line, 4);
    assert.equal(scanSource("import numpy\ndef f(:\n  pass\n").error?.line, 2);
    assert.match(error("x = (1]\n"), /does not match/);
    assert.match(error("if x:\n    a\n  b\n"), /unindent/);
    assert.match(error("x = 1\n    y = 2\n"), /unexpected indent/);
    assert.match(error("if x:\nimport y\n"), /expected an indented block/);
    assert.match(error("x = a $ b\n"), /invalid character/);
    assert.match(error("x = 1 +\n"), /ends with/);
  });
});

test("string literals are collected with their lines", () => {
  const r = scan('open("data/input.csv")\nx = b"bytes"\ny = "a\\tb"\n');
  assert.deepEqual(r.strings, [
    { value: "data/input.csv", line: 1 },
    { value: "a\tb", line: 3 },
  ]);
});
