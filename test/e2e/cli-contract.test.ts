/**
 * The command line's promises across commands: an output never replaces an input, bad usage is
 * one sentence before any work, and --json always answers in JSON.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pyferry, runBin } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

function temp(files: Record<string, string>): string {
  const dir = tempDir("pyferry-contract-");
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

describe("an output never replaces an input", () => {
  const files = { "u.py": "import six\nimport helper\n", "helper.py": "X = 1\n" };
  const unchanged = (dir: string) => {
    for (const [name, content] of Object.entries(files))
      assert.equal(readFileSync(join(dir, name), "utf8"), content, name);
  };
  test("python_package_analyze SCRIPT SCRIPT, or a local module of it", () => {
    const dir = temp(files);
    for (const target of ["u.py", "helper.py"]) {
      const r = runBin("python_package_analyze", ["u.py", target], { cwd: dir });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`${target} is a file being analyzed`));
    }
    unchanged(dir);
  });
  test("python_package_create SPEC SPEC", () => {
    const dir = temp({ "p.json": '{"name": "p", "dependencies": ["python=3.11"]}\n' });
    const r = runBin("python_package_create", ["p.json", "p.json"], { cwd: dir });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /p\.json is the dependency file being read/);
    assert.equal(
      readFileSync(join(dir, "p.json"), "utf8"),
      '{"name": "p", "dependencies": ["python=3.11"]}\n',
    );
  });
  test("analyze --format pep723 -o a local module; -o the script itself updates it", () => {
    const dir = temp(files);
    const r = pyferry(["analyze", "u.py", "--format", "pep723", "-o", "helper.py"], { cwd: dir });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /helper\.py is a file being analyzed/);
    unchanged(dir);
    const inPlace = pyferry(["analyze", "u.py", "--format", "pep723", "-o", "u.py"], {
      cwd: dir,
    });
    assert.equal(inPlace.status, 0, inPlace.stderr);
    assert.match(readFileSync(join(dir, "u.py"), "utf8"), /^# \/\/\/ script$/m);
    assert.ok(existsSync(join(dir, "helper.py")));
  });
});

describe("pack --folder takes pack's options", () => {
  const src = "import yaml\n\ndef f():\n    import tabulate\n";
  test("--pkg-mapping and --toplevel decide what conf/mods lists", () => {
    const dir = temp({ "s.py": src });
    const r = pyferry(
      ["pack", "s.py", "--folder", "-n", "p1", "--toplevel", "--pkg-mapping", "yaml=my-yaml"],
      { cwd: dir },
    );
    assert.equal(r.status, 0, r.stderr);
    const mods = readFileSync(join(dir, "p1", "conf", "mods"), "utf8");
    assert.match(mods, /^my-yaml$/m);
    assert.doesNotMatch(mods, /tabulate|pyyaml/i);
  });
  test("options that cannot apply to a folder are refused in one sentence, before any work", () => {
    const dir = temp({ "s.py": src });
    const r = pyferry(
      ["pack", "s.py", "--folder", "-n", "p2", "-o", "x.tar.gz", "--compile", "--no-bundle-python"],
      { cwd: dir },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /^error: -o, --compile and --no-bundle-python do not apply to pack --folder/m,
    );
    assert.ok(!existsSync(join(dir, "p2")));
  });
});

test("a packed src-layout project imports from its bundle, and its scripts have launchers", () => {
  const dir = temp({
    "proj/pyproject.toml": [
      "[project]",
      'name = "mypkg"',
      'version = "1.0"',
      'dependencies = ["tabulate"]',
      "[project.scripts]",
      'hello = "mypkg.cli:main"',
      "[project.gui-scripts]",
      'hello-gui = "mypkg.cli:gui"',
      "",
    ].join("\n"),
    "proj/src/mypkg/__init__.py": "from mypkg.core import VALUE\n",
    "proj/src/mypkg/core.py": "import tabulate\nVALUE = 42\n",
    "proj/src/mypkg/cli.py":
      "import sys\nfrom mypkg import VALUE\ndef main():\n    print('hello', VALUE, sys.argv[1:])\n    return 3\ndef gui():\n    print('gui')\n",
  });
  const packed = pyferry(["pack", "proj", "--no-bundle-python"], { cwd: dir });
  assert.equal(packed.status, 0, packed.stderr);
  const r = pyferry(
    ["exec", "proj.tar.gz", "--", "python", "-c", "import mypkg; print(mypkg.VALUE)"],
    { cwd: dir },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "42\n");
  // The project is not installed; its scripts run from env/bin, through exec or on their own.
  const script = pyferry(["exec", "proj.tar.gz", "--", "hello", "a b"], { cwd: dir });
  assert.equal(script.status, 3, script.stderr);
  assert.equal(script.stdout, "hello 42 ['a b']\n");
  const out = join(dir, "unpacked");
  mkdirSync(out);
  assert.equal(spawnSync("tar", ["-xzf", join(dir, "proj.tar.gz"), "-C", out]).status, 0);
  const alone = spawnSync(join(out, "env", "bin", "hello"), [], { cwd: "/", encoding: "utf8" });
  assert.equal(alone.status, 3, alone.stderr);
  assert.equal(alone.stdout, "hello 42 []\n");
  const gui = spawnSync(join(out, "env", "bin", "hello-gui"), [], { encoding: "utf8" });
  assert.equal(gui.stdout, "gui\n", gui.stderr);

  // Refused before any work, in a sentence: nothing is written.
  const head = '[project]\nname = "mypkg"\nversion = "1.0"\n';
  for (const [tables, message] of [
    [
      '[project.scripts]\nhello = "mypkg.cli"\n',
      /"hello" is invalid: a script needs a callable after a colon/,
    ],
    [
      "[project.scripts]\nhello = 1\n",
      /"hello" is invalid: its value is not a string "module:function"/,
    ],
    ['[project.scripts]\n"a/b" = "m:f"\n', /"a\/b" is invalid: the name is not a file name/],
    [
      '[project.scripts]\npython = "mypkg.cli:main"\n',
      /"python" is invalid: it would replace the environment's own bin\/python/,
    ],
    [
      '[project.gui-scripts]\n"Python3.11" = "mypkg.cli:main"\n',
      /"Python3\.11" is invalid: it would replace/,
    ],
    ['[project.scripts]\nactivate = "mypkg.cli:main"\n', /"activate" is invalid: it would replace/],
    [
      '[project.scripts]\nhello = "mypkg.cli:main"\n[project.gui-scripts]\nhello = "mypkg.cli:gui"\n',
      /\[project\.gui-scripts\] "hello" is invalid: \[project\.scripts\] has a script of that name too/,
    ],
  ] as const) {
    writeFileSync(join(dir, "proj", "pyproject.toml"), head + tables);
    const bad = pyferry(["pack", "proj", "-o", "bad.tar.gz", "--no-bundle-python"], { cwd: dir });
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(
      bad.stderr,
      /^error: \S+pyproject\.toml: \[project\.[a-z-]+\] "[^"]+" is invalid: [^\n]+\.\n$/,
      tables,
    );
    assert.match(bad.stderr, message, tables);
    assert.doesNotMatch(bad.stderr, /Resolving|Packed/);
  }
  assert.ok(!existsSync(join(dir, "bad.tar.gz")));
});

test("pack -n takes a plain name only, refused before any work", () => {
  const dir = temp({ "sub/s.py": "import six\n" });
  for (const name of ["../evil", "", "a b"]) {
    for (const folder of [[], ["--folder"]]) {
      const r = pyferry(["pack", "s.py", "-n", name, ...folder], { cwd: join(dir, "sub") });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^error: A pack name is letters, digits, /m);
      assert.doesNotMatch(r.stderr, /Resolving|warning/);
    }
  }
  assert.ok(!existsSync(join(dir, "evil.tar.gz")) && !existsSync(join(dir, "evil")));
});

/** A folder holding one wheel of `project` 1.0 whose only module is `module`. */
function findLinksDir(project: string, module: string): string {
  const dir = tempDir("pyferry-links-");
  const r = spawnSync(
    "python3",
    [
      "-c",
      `import sys, zipfile
p, m, d = sys.argv[1:]
info = f"{p}-1.0.dist-info"
with zipfile.ZipFile(f"{d}/{p}-1.0-py3-none-any.whl", "w") as z:
    z.writestr(f"{m}/__init__.py", "")
    z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\\nName: {p}\\nVersion: 1.0\\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr(f"{info}/RECORD", "")`,
      project,
      module,
      dir,
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return dir;
}

test("analyze and python_package_analyze --no-index --find-links DIR map imports from DIR", () => {
  const links = findLinksDir("zz_provider", "zzmod");
  const dir = temp({ "s.py": "import zzmod\n" });
  const flags = ["--no-index", "--find-links", links];
  const r = pyferry(["analyze", "s.py", ...flags, "--json"], { cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { requirements: { name: string }[] };
  assert.deepEqual(
    report.requirements.map((q) => q.name),
    ["zz-provider"],
  );
  const seed = runBin("python_package_analyze", [...flags, "s.py", "o.json"], { cwd: dir });
  assert.equal(seed.status, 0, seed.stderr);
  assert.match(readFileSync(join(dir, "o.json"), "utf8"), /"zz-provider"/);
});

describe("analyze refuses what it can before the analysis", () => {
  // The analysis of these would fail on its own; the usage error must come first.
  const dir = temp({ "notes.txt": "no Python here\n", "out/keep": "" });
  test("--format pep723 for a folder", () => {
    const r = pyferry(["analyze", ".", "--format", "pep723"], { cwd: dir });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^error: --format pep723 needs a single script/m);
  });
  test("-o a folder, or in a folder that does not exist", () => {
    for (const [out, why] of [
      ["out", /out is a folder/],
      ["nodir/x.json", /the folder .*nodir does not exist/],
    ] as const) {
      for (const bin of ["pyferry", "python_package_analyze"]) {
        const args = bin === "pyferry" ? ["analyze", "missing.py", "-o", out] : ["missing.py", out];
        const r = runBin(bin, args, { cwd: dir });
        assert.equal(r.status, 2, `${bin} ${out}: ${r.stderr}`);
        assert.match(r.stderr, why);
      }
    }
  });
});

describe("--json answers in JSON when the command fails", () => {
  const dir = temp({ "u.py": "print(1)\n", f: "a file\n", "bad/pyferry.toml": "x = [\n" });
  const broken = { PYFERRY_CACHE_DIR: join(dir, "f", "cache") };
  const cases: [string[], RegExp, { cwd?: string; env?: NodeJS.ProcessEnv }?][] = [
    [["analyze", "u.py", "-o", "nodir/x.json", "--json"], /nodir does not exist/],
    [["analyze", ".", "--format", "pep723", "--json"], /needs a single script/],
    [["analyze", "u.py", "--json", "--name", "a b"], /not an environment name/],
    [["analyze", "u.py", "--json", "--format", "bogus"], /--format must be/],
    [["analyze", "u.py", "--json", "--frobnicate"], /unknown option '--frobnicate'/],
    [["config", "show", "--json"], /pyferry\.toml is not valid TOML/, { cwd: join(dir, "bad") }],
    [["cache", "info", "--json"], /part of it is a file/, { env: broken }],
    [["cache", "prune", "--json"], /part of it is a file/, { env: broken }],
  ];
  for (const [args, why, opts] of cases) {
    test(args.join(" "), () => {
      const r = pyferry(args, { cwd: dir, ...opts });
      assert.notEqual(r.status, 0);
      const { error } = JSON.parse(r.stdout) as { error: string };
      assert.match(error, why);
      assert.match(r.stderr, /^error: /m);
    });
  }
  test("not for a --json of the program run starts", () => {
    const r = pyferry(["run", "missing.py", "--json"], { cwd: dir });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, "");
  });
});

test("pack's and env create's help say what --python and the index are for", () => {
  const pack = pyferry(["pack", "--help"]).stdout.replace(/\s+/g, " ");
  assert.match(pack, /--python <version\|path> interpreter to analyze, lock and build for/);
  assert.match(pack, /--index-url <url> package index for mapping imports, locking and building/);
  assert.match(pack, /-f, --guess-files pack the existing files/);
  const env = pyferry(["env", "create", "--help"]).stdout.replace(/\s+/g, " ");
  assert.match(
    env,
    /--python <version\|path> interpreter to build on \(default: the Python series the lock's target or a spec names, else the active one\)/,
  );
});

test("cache prune --json: dry_run, a leftover tree's real size, kinds named as cache info's keys", () => {
  const cache = tempDir("pyferry-cache-");
  const leftover = join(cache, "unpacked", ".demo.999999-abcd");
  mkdirSync(join(leftover, "pkg"), { recursive: true });
  writeFileSync(join(leftover, "pkg", "big.bin"), Buffer.alloc(3 * 1024 * 1024));
  const old = new Date(Date.now() - 2 * 86_400_000);
  utimesSync(leftover, old, old);
  const env = { PYFERRY_CACHE_DIR: cache };
  const r = pyferry(["cache", "prune", "--dry-run", "--json"], { env });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    dry_run: boolean;
    removed: { kind: string; path: string; bytes: number }[];
  };
  assert.equal(out.dry_run, true);
  const entry = out.removed.find((e) => e.path === leftover);
  assert.equal(entry?.kind, "partial");
  assert.ok((entry?.bytes ?? 0) >= 3 * 1024 * 1024, `${entry?.bytes}`);
  const info = JSON.parse(pyferry(["cache", "info", "--json"], { env }).stdout) as object;
  for (const k of ["wheels", "unpacked", "built", "envs", "bundles", "partial"])
    assert.ok(k in info, k);
});

test("help for a command that does not exist says so, as the command itself does", () => {
  const r = pyferry(["help", "bogus"]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, "error: unknown command 'bogus'\n(run with --help for usage)\n");
  assert.equal(r.stdout, "");
  assert.equal(pyferry(["help", "lock"]).status, 0);
});

test("cache info only looks: a cache folder that does not exist is not made", () => {
  const root = join(tempDir("pyferry-contract-"), "no-cache-yet");
  const r = pyferry(["cache", "info", "--json"], { env: { PYFERRY_CACHE_DIR: root } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { wheels: { count: number } }).wheels.count, 0);
  assert.equal(existsSync(root), false);
});
