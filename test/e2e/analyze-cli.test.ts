import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { AnalysisReport } from "../../src/analyze/analyze.js";
import { pyferry, REPO, runBin } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const HELLO = join(REPO, "examples", "hello", "hello.py");

function report(args: string[], cwd?: string): AnalysisReport {
  const r = pyferry(["analyze", ...args, "--json"], cwd ? { cwd } : {});
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as AnalysisReport;
}

function temp(files: Record<string, string | Buffer>): string {
  const dir = tempDir("pyferry-e2e-");
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

const names = (r: AnalysisReport) => r.requirements.map((q) => q.name);

describe("the built-in example", () => {
  const r = report([HELLO, "-f"]);
  test("finds the third-party distributions with provenance", () => {
    for (const n of ["numpy", "pyyaml", "tabulate"])
      assert.ok(names(r).includes(n), `${n} missing from ${names(r)}`);
    const yaml = r.requirements.find((q) => q.name === "pyyaml");
    assert.deepEqual(yaml?.imports, ["yaml"]);
    assert.ok(yaml && yaml.provenance.length > 0);
  });
  test("optional and platform-guarded imports", () => {
    assert.equal(r.requirements.find((q) => q.name === "ujson")?.optional, true);
    assert.equal(
      r.requirements.find((q) => q.name === "colorama")?.marker,
      'sys_platform == "win32"',
    );
  });
  test("local modules, data files and the Python version", () => {
    assert.deepEqual(r.local_files, ["greet/__init__.py", "greet/words.py", "hello.py"]);
    assert.deepEqual(r.data_files, ["config.yaml"]);
    assert.match(r.python.version ?? "", /^3\.\d+\.\d+$/);
    assert.ok(r.stdlib.includes("sys") && r.stdlib.includes("json"));
  });
});

test("-o writes a conda environment file with a pyferry section", () => {
  const dir = temp({});
  const out = join(dir, "spec.json");
  const r = pyferry(["analyze", HELLO, "-o", out]);
  assert.equal(r.status, 0, r.stderr);
  const spec = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(spec.name, "hello");
  assert.ok(Array.isArray(spec.channels));
  assert.match(spec.dependencies[0], /^python=3\.\d+\.\d+$/);
  assert.equal(spec.dependencies[1], "pip");
  const pip = spec.dependencies[2].pip as string[];
  assert.ok(
    pip.includes("numpy") &&
      pip.includes("pyyaml") &&
      pip.includes('colorama; sys_platform == "win32"'),
  );
  assert.ok(!pip.includes("ujson"), "optional dependencies stay out unless asked");
  assert.ok(spec.pyferry.requirements.length >= 4);
});

test("--format requirements prints a requirements file", () => {
  const r = pyferry(["analyze", HELLO, "--format", "requirements"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^numpy {2}# imported as numpy$/m);
  assert.match(r.stdout, /^colorama; sys_platform == "win32" {2}#/m);
});

test("--format pep723 writes the script's block, idempotently, and the block is then the declaration", () => {
  const dir = temp({ "s.py": "#!/usr/bin/env python3\nimport yaml\nimport tabulate\n" });
  const file = join(dir, "s.py");
  assert.equal(pyferry(["analyze", file, "--format", "pep723"]).status, 0);
  const once = readFileSync(file, "utf8");
  assert.match(once, /^#!\/usr\/bin\/env python3\n# \/\/\/ script\n/);
  assert.match(once, /#\s+"pyyaml",/);
  assert.equal(pyferry(["analyze", file, "--format", "pep723"]).status, 0);
  assert.equal(readFileSync(file, "utf8"), once);
  const r = report([file]);
  assert.equal(r.requirements.find((q) => q.name === "pyyaml")?.provenance[0]?.source, "declared");
});

describe("mapping sources", () => {
  test("declared dependencies in pyproject.toml win and carry their specifiers", () => {
    const dir = temp({
      "pyproject.toml":
        '[project]\nname = "x"\nversion = "1"\nrequires-python = ">=3.9"\ndependencies = ["PyYAML>=6", "gunicorn"]\n',
      "app/main.py": "import yaml\n",
    });
    const r = report([dir]);
    const yaml = r.requirements.find((q) => q.name === "pyyaml");
    assert.equal(yaml?.specifier, ">=6");
    assert.equal(yaml?.provenance[0]?.source, "declared");
    assert.ok(names(r).includes("gunicorn"), "declared but not imported is still a requirement");
    assert.equal(r.python.requires, ">=3.9");
  });
  test("namespace packages resolve per subpackage", () => {
    const dir = temp({ "s.py": "import google.protobuf\nfrom google.api import http_pb2\n" });
    const r = report([join(dir, "s.py")]);
    assert.ok(names(r).includes("protobuf"), names(r).join(","));
    assert.ok(names(r).includes("googleapis-common-protos"), names(r).join(","));
  });
  test("several providers: reported as ambiguous; --pkg-mapping decides", () => {
    const dir = temp({ "s.py": "import cv2\n" });
    const r = report([join(dir, "s.py")]);
    const a = r.ambiguous.find((x) => x.import === "cv2");
    assert.ok(a, "cv2 should be listed as ambiguous");
    assert.ok(a.candidates.length >= 2);
    const decided = report([join(dir, "s.py"), "--pkg-mapping", "cv2=opencv-python-headless"]);
    assert.deepEqual(names(decided), ["opencv-python-headless"]);
    assert.equal(decided.requirements[0]?.provenance[0]?.source, "option");
  });
  test("unknown imports are unresolved, with suggestions", () => {
    const dir = temp({ "s.py": "import reqeusts\nimport zz_no_such_module_zz\n" });
    const r = report([join(dir, "s.py")]);
    assert.deepEqual(
      r.unresolved.map((u) => u.import),
      ["reqeusts", "zz_no_such_module_zz"],
    );
    assert.ok(r.unresolved[0]?.suggestions.includes("requests"), JSON.stringify(r.unresolved[0]));
  });
  test("local modules beat same-named distributions", () => {
    const dir = temp({ "s.py": "import requests\n", "requests.py": "x = 1\n" });
    const r = report([join(dir, "s.py")]);
    assert.deepEqual(names(r), []);
    assert.deepEqual(r.local_files, ["requests.py", "s.py"]);
  });
});

describe("selection", () => {
  const src =
    "import yaml\n\ndef train():\n    import numpy\n\ndef other():\n    import tabulate\n";
  test("--toplevel and --function", () => {
    const dir = temp({ "s.py": src });
    assert.deepEqual(names(report([join(dir, "s.py"), "--toplevel"])), ["pyyaml"]);
    assert.deepEqual(names(report([join(dir, "s.py"), "--function", "train"])), ["numpy"]);
    assert.deepEqual(report([join(dir, "s.py"), "--function", "train"]).warnings, []);
    const typo = report([join(dir, "s.py"), "--function", "trian"]);
    assert.deepEqual(names(typo), []);
    assert.deepEqual(typo.warnings, [
      "s.py defines no function trian, so none of its imports were read; check the name (Class.method for a method).",
    ]);
  });
});

test("a project with a Python 2 file and merge markers reports them and goes on", () => {
  const dir = temp({
    "ok.py": "import yaml\n",
    "old.py": 'print "hello"\n',
    "conflict.py": "<<<<<<< HEAD\nimport a\n=======\nimport b\n>>>>>>> x\n",
  });
  const r = report([dir]);
  assert.deepEqual(names(r), ["pyyaml"]);
  assert.deepEqual(r.errors.map((e) => e.file).sort(), ["conflict.py", "old.py"]);
});

test("notebooks: code cells, magics and %pip install lines", () => {
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { language: "python", name: "python3" } },
    cells: [
      {
        cell_type: "code",
        source: ["%pip install tabulate\n", "!ls\n"],
        metadata: {},
        outputs: [],
      },
      { cell_type: "markdown", source: "import not_code", metadata: {} },
      { cell_type: "code", source: "import yaml\n%matplotlib inline\n", metadata: {}, outputs: [] },
    ],
  };
  const dir = temp({ "n.ipynb": JSON.stringify(nb) });
  const r = report([join(dir, "n.ipynb")]);
  assert.equal(r.kind, "notebook");
  assert.deepEqual(names(r), ["pyyaml", "tabulate"]);
});

describe("bad input: one sentence, non-zero exit, no stack trace", () => {
  const bad = (args: string[], pattern: RegExp, code = 1) => {
    const r = pyferry(["analyze", ...args]);
    assert.equal(r.status, code, r.stderr);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    assert.equal(r.stdout, "");
  };
  test("missing path", () =>
    bad(["/nonexistent/x.py"], /^error: \/nonexistent\/x\.py does not exist\.$/m));
  test("a folder with no Python", () => bad([temp({ "a.txt": "x" })], /holds no Python files/));
  test("a binary file", () =>
    bad(
      [join(temp({ "b.py": Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]) }), "b.py")],
      /NUL bytes/,
    ));
  test("a huge file", () => {
    const dir = temp({});
    writeFileSync(join(dir, "h.py"), Buffer.alloc(17 * 1024 * 1024, 0x20));
    bad([join(dir, "h.py")], /limit for source files/);
  });
  test("a Python 2 script", () =>
    bad([join(temp({ "p.py": 'print "x"\n' }), "p.py")], /does not parse as Python 3/));
  test("a broken pyproject.toml", () =>
    bad(
      [join(temp({ "s.py": "import yaml\n", "pyproject.toml": "[project\nname=" }), "s.py")],
      /pyproject\.toml is not valid TOML at line 1/,
    ));
  test("a bad --pkg-mapping is a usage error", () =>
    bad([HELLO, "--pkg-mapping", "nonsense"], /IMPORT=NAME/, 2));
  test("-o naming the script or a local module it imports: nothing is overwritten", () => {
    const dir = temp({ "m.py": "import six\nimport helper\n", "helper.py": "X = 1\n" });
    for (const target of ["m.py", "helper.py"]) {
      bad(
        [join(dir, "m.py"), "-o", join(dir, target)],
        /is a file being analyzed; write the result elsewhere/,
        2,
      );
    }
    assert.equal(readFileSync(join(dir, "helper.py"), "utf8"), "X = 1\n");
    assert.equal(readFileSync(join(dir, "m.py"), "utf8"), "import six\nimport helper\n");
  });
  test("an unknown option is a usage error", () => {
    const r = pyferry(["analyze", HELLO, "--frobnicate"]);
    assert.equal(r.status, 2);
  });
  test("an unreadable file", {
    skip: process.getuid?.() === 0 ? "root reads everything" : false,
  }, () => {
    const dir = temp({ "u.py": "import yaml\n" });
    chmodSync(join(dir, "u.py"), 0);
    bad([join(dir, "u.py")], /permission denied/);
  });
});

describe("python_package_analyze (seed-compatible)", () => {
  test("the seed's example writes a conda spec", () => {
    const dir = temp({
      "example.py":
        'import os\nimport sys\nimport pickle\n\nimport antigravity\nimport matplotlib\n\n\nif __name__ == "__main__":\n    print("example")\n',
    });
    const r = runBin("python_package_analyze", ["example.py", "dependencies.json"], { cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    const spec = JSON.parse(readFileSync(join(dir, "dependencies.json"), "utf8"));
    assert.match(spec.dependencies[0], /^python=3/);
    assert.deepEqual(spec.dependencies[2].pip, ["matplotlib"]);
  });
  test("options and help", () => {
    const dir = temp({ "s.py": "import yaml\ndef f():\n    import numpy\n" });
    assert.equal(
      runBin("python_package_analyze", ["--toplevel", "s.py", "o.json"], { cwd: dir }).status,
      0,
    );
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "o.json"), "utf8")).dependencies[2].pip, [
      "pyyaml",
    ]);
    assert.equal(
      runBin(
        "python_package_analyze",
        ["--function", "f", "--pkg-mapping", "numpy=numpy", "s.py", "o.json"],
        { cwd: dir },
      ).status,
      0,
    );
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "o.json"), "utf8")).dependencies[2].pip, [
      "numpy",
    ]);
    const help = runBin("python_package_analyze", ["-h"]);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /<python-script> <json-output-file>/);
  });
  test("missing arguments are a usage error", () => {
    assert.equal(runBin("python_package_analyze", ["only-one.py"]).status, 2);
  });
  test("optional imports are named when left out, and kept with --include-optional", () => {
    const dir = temp({
      "o.py":
        "import six\ntry:\n    import simplejson\nexcept ImportError:\n    simplejson = None\n",
    });
    const pip = () => JSON.parse(readFileSync(join(dir, "o.json"), "utf8")).dependencies[2].pip;
    const plain = runBin("python_package_analyze", ["o.py", "o.json"], { cwd: dir });
    assert.equal(plain.status, 0, plain.stderr);
    assert.deepEqual(pip(), ["six"]);
    assert.match(
      plain.stderr,
      /left out as optional .*: simplejson; --include-optional keeps them/,
    );
    const all = runBin("python_package_analyze", ["--include-optional", "o.py", "o.json"], {
      cwd: dir,
    });
    assert.equal(all.status, 0, all.stderr);
    assert.deepEqual(pip(), ["simplejson", "six"]);
    assert.doesNotMatch(all.stderr, /optional/);
  });
});

describe("output into a pipe that closes early", () => {
  // `true` has exited long before node has started and writes, so each write meets a closed pipe.
  for (const [bin, args] of [
    ["pyferry", "analyze --help"],
    ["pyferry", `analyze ${HELLO} --json`],
    ["python_package_run", "--help"],
  ] as const) {
    test(`${bin} ${args.split(" ")[0]}: no stack trace, the status of SIGPIPE`, () => {
      const r = spawnSync(
        "bash",
        [
          "-c",
          `"$0" ${args} | true; echo "status \${PIPESTATUS[0]}" >&2`,
          join(REPO, "bin", `${bin}.js`),
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.stderr, "status 141\n");
    });
  }
});

describe("--python picks the target's standard library and version", () => {
  const src = "import tomllib\n";
  test("3.11 has tomllib; 3.10 does not", {
    skip: !existsSync(join(homedir(), ".pyenv/versions")),
  }, () => {
    const dir = temp({ "s.py": src });
    const new_ = report([join(dir, "s.py"), "--python", "3.11"]);
    assert.match(new_.python.version ?? "", /^3\.11\./);
    assert.deepEqual(new_.unresolved, []);
    assert.ok(new_.stdlib.includes("tomllib"));
    const old = report([join(dir, "s.py"), "--python", "3.10"]);
    assert.match(old.python.version ?? "", /^3\.10\./);
    assert.deepEqual(
      old.unresolved.map((u) => u.import),
      ["tomllib"],
    );
  });
  test("syntax newer than the interpreter raises the version, with a warning", () => {
    const dir = temp({ "s.py": "match x:\n    case _:\n        pass\n" });
    const r = pyferry(["analyze", join(dir, "s.py"), "--python", "3.9", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as AnalysisReport;
    assert.equal(rep.python.version, "3.10");
    assert.equal(rep.python.requires, ">=3.10");
    assert.match(r.stderr, /match statement, which needs Python 3\.10/);
  });
  test("an interpreter that does not exist is one clear error", () => {
    const r = pyferry(["analyze", HELLO, "--python", "3.99"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /3\.99/);
  });
});

describe("regressions found by the accuracy benchmark", () => {
  test("a local namespace package does not hide installed portions of the namespace", () => {
    const dir = temp({
      "google/api_core/__init__.py": "",
      "main.py": "import google.auth\nfrom google import protobuf\nfrom google.api_core import x\n",
    });
    const r = report([dir]);
    assert.deepEqual(names(r), ["google-auth", "protobuf"]);
  });
  test("try/except between two distributions keeps the preferred one required", () => {
    const dir = temp({
      "s.py": [
        "try:\n    import ujson as json\nexcept ImportError:\n    import simplejson as json",
        "try:\n    import tomllib\nexcept ImportError:\n    import tomli as tomllib",
        "",
      ].join("\n"),
    });
    const r = report([join(dir, "s.py"), "--python", "3.11"]);
    const by = Object.fromEntries(r.requirements.map((q) => [q.name, q.optional]));
    assert.equal(by.ujson, false, "the preferred import is the one to install");
    assert.equal(by.simplejson, true, "its fallback never runs once it is installed");
    assert.equal(by.tomli, true, "tomllib is in the 3.11 standard library, so tomli never runs");
  });
  test("test-support modules outside tests/ count as tests", () => {
    const dir = temp({
      "pkg/__init__.py": "",
      "pkg/testing.py": "import pytest\n",
      "pkg/core.py": "import yaml\n",
    });
    const r = report([dir]);
    assert.equal(r.requirements.find((q) => q.name === "pytest")?.dev, true);
    assert.equal(r.requirements.find((q) => q.name === "pyyaml")?.dev, false);
  });
  test("imports only inside functions are marked lazy", () => {
    const dir = temp({ "s.py": "import yaml\n\ndef plot():\n    import numpy\n" });
    const r = report([join(dir, "s.py")]);
    assert.equal(r.requirements.find((q) => q.name === "numpy")?.lazy, true);
    assert.equal(r.requirements.find((q) => q.name === "pyyaml")?.lazy, false);
  });
});
