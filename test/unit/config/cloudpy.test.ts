import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { loadCloudpyConfig, type PyValue, parsePythonDict } from "../../../src/config/index.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-cloudpy-");
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Dicts as plain objects (keys as Python's json module writes them), for comparing. */
function plain(v: PyValue): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function parseError(text: string): string {
  try {
    parsePythonDict(text, "/x/cloudpy.conf");
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, /^\/x\/cloudpy\.conf is not a plain Python dict: .* at line \d+\.$/);
    return e.message;
  }
  return assert.fail(`parsed: ${text}`);
}

const VALID: [string, unknown][] = [
  [
    `{"host":"ubuntu@192.168.70.145", "depository":"cloudpy_depo", "host_sep":"/"}`,
    { host: "ubuntu@192.168.70.145", depository: "cloudpy_depo", host_sep: "/" },
  ],
  [
    `# cloudpy settings\n{\n    'host': 'me@box',  # the GPU box\n    "n": 12,\n}\n`,
    { host: "me@box", n: 12 },
  ],
  [
    `{"esc": "a\\n\\t\\\\ \\' \\" \\u00e9 \\x41 \\101 \\U0001F600 \\d", 'single': 'it\\'s'}`,
    { esc: "a\n\t\\ ' \" é A A 😀 \\d", single: "it's" },
  ],
  [`{"t": """line 1\nline "2" ''' """, 'u': '''x'y'''}`, { t: `line 1\nline "2" ''' `, u: "x'y" }],
  [
    `{"raw": r"C:\\dir\\n", "pre": u"x", "joined": "a" 'b'\n  "c"}`,
    { raw: "C:\\dir\\n", pre: "x", joined: "abc" },
  ],
  [
    `{"i": -3, "p": +4, "big": 1_000_000, "hex": 0xFF, "oct": 0o17, "bin": 0b101, "f": 1.5e3, "z": 0, "dot": .5}`,
    { i: -3, p: 4, big: 1000000, hex: 255, oct: 15, bin: 5, f: 1500, z: 0, dot: 0.5 },
  ],
  [
    `{"t": True, "f": False, "n": None, 1: "int key", None: 0, True: 1}`,
    { t: true, f: false, n: null, "1": 1, null: 0 },
  ],
  [
    `{"nested": {"l": [1, [2, 3], ], "tup": (1, 2,), "one": (1,), "paren": (5), "empty": (), "e": {}}}`,
    { nested: { l: [1, [2, 3]], tup: [1, 2], one: [1], paren: 5, empty: [], e: {} } },
  ],
  [`\uFEFF{"cont": "a\\\nb"}\r\n`, { cont: "ab" }],
];

describe("parsePythonDict: plain data", () => {
  for (const [text, want] of VALID) {
    test(text.slice(0, 60), () => {
      assert.deepEqual(plain(parsePythonDict(text, "/x/cloudpy.conf")), want);
    });
  }

  test("agrees with Python's own ast.literal_eval", (t) => {
    const probe = spawnSync("python3", ["-c", "print(1)"], { encoding: "utf8" });
    if (probe.status !== 0) return t.skip("no python3");
    const script = [
      "import ast, json, sys",
      "def conv(v):",
      "    if isinstance(v, dict): return {json.dumps(k) if not isinstance(k, str) else k: conv(x) for k, x in v.items()}",
      "    if isinstance(v, (list, tuple)): return [conv(x) for x in v]",
      "    return v",
      "for text in json.load(sys.stdin):",
      "    print(json.dumps(conv(ast.literal_eval(text.lstrip('\\ufeff')))))",
    ].join("\n");
    const texts = VALID.map(([text]) => text);
    const r = spawnSync("python3", ["-c", script], {
      input: JSON.stringify(texts),
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const theirs = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    texts.forEach((text, i) => {
      assert.deepEqual(plain(parsePythonDict(text, "/x/cloudpy.conf")), theirs[i], text);
    });
  });
});

describe("parsePythonDict: anything that is not plain data", () => {
  const hostile: [string, RegExp][] = [
    [`__import__('os').system('x')`, /unexpected name "__import__" at line 1/],
    [`{"host": __import__('os').system('touch /tmp/pwned')}`, /unexpected name "__import__"/],
    [`{"host": open("/etc/passwd").read()}`, /unexpected name "open"/],
    [`{\n\n"a": 1 + 2}`, /expected "," or "}" but found "\+" at line 3/],
    [`{"a": -x}`, /unexpected "-"/],
    [`{"a": f"{x}"}`, /an f-string is not plain data/],
    [`{"a": b"x"}`, /a bytes literal is not supported/],
    [`{"a": lambda: 1}`, /unexpected name "lambda"/],
    [`{1, 2}`, /expected ":" but found ","/],
    [`{**other}`, /unexpected "\*\*"/],
    [`{"a": 1}; import os`, /unexpected ";" after the value/],
    [`{"a": 1}\nimport os`, /unexpected name "import" after the value at line 2/],
    [`{"a": [x for x in y]}`, /unexpected name "x"/],
    [`{"a": "unterminated}\n`, /a string is not closed before the end of the line at line 1/],
    [`{"a": """never closed}`, /a string is not closed at line 1/],
    [`{"a": "\\x4"}`, /needs 2 hex digits/],
    [`{"a": 012}`, /leading zeros/],
    [`{"a": 1j}`, /"1j" is not a plain number/],
    [`{"a": 99999999999999999999}`, /too large/],
    [`{[1]: 2}`, /a dict key must be a string/],
    [`["a", "b"]`, /holds a value that is not a dict/],
    [`# only a comment\n`, /the file holds no dict/],
    [`{"a": true}`, /unexpected name "true"/],
    [`${"[".repeat(200)}`, /nest too deeply/],
  ];
  for (const [text, pattern] of hostile) {
    test(text.slice(0, 60), () => {
      assert.match(parseError(text), pattern);
    });
  }
});

describe("loadCloudpyConfig", () => {
  function machine() {
    const base = join(root, `m${counter++}`);
    const paths = {
      etc: join(base, "etc", "cloudpy.conf"),
      home: join(base, "home"),
      user: join(base, "home", ".cloudpy.conf"),
      cwd: join(base, "work"),
      local: join(base, "work", "cloudpy.conf"),
    };
    mkdirSync(paths.home, { recursive: true });
    mkdirSync(paths.cwd, { recursive: true });
    return { paths, opts: { cwd: paths.cwd, home: paths.home, etcFile: paths.etc } };
  }

  test("/etc, then ~/.cloudpy.conf, then ./cloudpy.conf; later keys win; unknown keys kept", () => {
    const m = machine();
    write(m.paths.etc, `{"host": "root@a", "depository": "depo", "host_sep": "/", "color": True}`);
    write(m.paths.user, `{'host': 'me@b', 'extra': [1, 2]}`);
    write(m.paths.local, `{"depository": "here_depo"}`);
    const c = loadCloudpyConfig(m.opts);
    assert.equal(c.host, "me@b");
    assert.equal(c.depository, "here_depo");
    assert.equal(c.hostSep, "/");
    assert.deepEqual(c.sources, {
      host: m.paths.user,
      depository: m.paths.local,
      host_sep: m.paths.etc,
    });
    assert.deepEqual(c.files, [m.paths.etc, m.paths.user, m.paths.local]);
    assert.deepEqual(
      [...c.extra],
      [
        ["color", true],
        ["extra", [1, 2]],
      ],
    );
  });

  test("no files: nothing set", () => {
    const m = machine();
    assert.deepEqual(loadCloudpyConfig(m.opts), { extra: new Map(), sources: {}, files: [] });
  });

  test("a known key that is not a string, and a hostile file, are errors naming the file", () => {
    const m = machine();
    write(m.paths.user, `{"host": 42}`);
    assert.throws(() => loadCloudpyConfig(m.opts), {
      name: "UserError",
      message: `${m.paths.user}: the value of "host" must be a string.`,
    });
    write(m.paths.user, `{"host": __import__("os").system("touch ${m.paths.cwd}/pwned")}`);
    assert.throws(() => loadCloudpyConfig(m.opts), {
      name: "UserError",
      message: `${m.paths.user} is not a plain Python dict: unexpected name "__import__" at line 1.`,
    });
  });
});
