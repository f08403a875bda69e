import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { type AnalysisReport, type AnalyzeOptions, analyze } from "../../../src/analyze/analyze.js";
import { tempDir } from "../../support/temp.js";

// The interpreter probe caches its answer: keep that out of the user's cache.
const CACHE = tempDir("pyferry-analyze-cache-");
process.env.PYFERRY_CACHE_DIR = CACHE;
const made: string[] = [CACHE];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const dir = tempDir("pyferry-analyze-");
  made.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

// Whatever the interpreter has installed (opencv-contrib-python for cv2, say), these decide.
const pkgMapping = new Map([
  ["cv2", "opencv-python"],
  ["sklearn", "scikit-learn"],
  ["PIL", "pillow"],
  ["bs4", "beautifulsoup4"],
]);

/** Analyze `main.py` of a fresh folder holding `files`, without any package index. */
function run(files: Record<string, string>, opts: AnalyzeOptions = {}): Promise<AnalysisReport> {
  return analyze(join(tree(files), "main.py"), { pkgMapping, ...opts });
}

const names = (r: AnalysisReport) => r.requirements.map((q) => q.name).sort();

describe("a folder with no __init__.py loses to an installed or stdlib module", () => {
  test("import yaml with a yaml/ data folder next to the script needs PyYAML", async () => {
    const r = await run({
      "main.py": "import yaml\nimport logging\nimport mylib.tool\n",
      "yaml/convert.py": "import json\n",
      "yaml/settings.yaml": "a: 1\n",
      "logging/helpers.py": "import cv2\n",
      "mylib/tool.py": "import PIL\n",
    });
    assert.ok(names(r).includes("pyyaml"), `pyyaml missing from ${names(r)}`);
    assert.deepEqual(r.requirements.find((q) => q.name === "pyyaml")?.imports, ["yaml"]);
    assert.ok(r.stdlib.includes("logging"));
    assert.ok(!names(r).includes("opencv-python"), "logging/helpers.py is never imported");
    // A namespace folder nobody else provides is still the program's own code.
    assert.deepEqual(r.local_files, ["main.py", "mylib/tool.py"]);
    assert.ok(names(r).includes("pillow"));
    assert.ok(
      r.warnings.some((w) => /yaml\//.test(w) && /PyYAML|pyyaml/.test(w)),
      r.warnings.join("\n"),
    );
    assert.ok(r.warnings.some((w) => /logging\//.test(w) && /standard library/.test(w)));
  });
  test("the from-import form keeps working", async () => {
    const r = await run({ "main.py": "from yaml import safe_load\n", "yaml/convert.py": "" });
    assert.ok(names(r).includes("pyyaml"));
    assert.deepEqual(r.local_files, ["main.py"]);
  });
});

describe("Python 2 `except X, e:` is not PEP 758", () => {
  const py2 = "try:\n    pass\nexcept ValueError, e:\n    pass\n";
  test("a local module using it is reported and skipped, with no 3.14 floor", async () => {
    const r = await run({ "main.py": "import legacy\nimport sklearn\n", "legacy.py": py2 });
    assert.equal(r.python.floor, null);
    const e = r.errors.find((x) => x.file === "legacy.py");
    assert.match(e?.message ?? "", /does not parse as Python 3/);
    assert.ok(names(r).includes("scikit-learn"), "the run goes on");
  });
  test("an entry script using it is refused", async () => {
    await assert.rejects(run({ "main.py": py2 }), /does not parse as Python 3/);
    await assert.rejects(
      run({ "main.py": "try:\n    pass\nexcept (IOError, OSError), err:\n    pass\n" }),
      /does not parse as Python 3/,
    );
  });
  test("several exception classes without parentheses still need 3.14", async () => {
    for (const src of [
      "try:\n    pass\nexcept KeyError, IndexError:\n    pass\n",
      "class error(Exception):\n    pass\ntry:\n    pass\nexcept KeyError, error:\n    pass\n",
      "from socket import timeout\ntry:\n    pass\nexcept OSError, timeout:\n    pass\n",
    ]) {
      const r = await run({ "main.py": src });
      assert.equal(r.python.floor?.version, "3.14", src);
    }
    const r = await run({
      "main.py": "try:\n    pass\nexcept (KeyError, IndexError):\n    pass\n",
    });
    assert.equal(r.python.floor, null);
  });
});

describe("import_module with a literal package", () => {
  test("relative names resolve against the package argument; aliases are followed", async () => {
    const r = await run({
      "main.py": [
        "import importlib",
        "from importlib import import_module as im",
        'importlib.import_module(".sub", "pkg")',
        'importlib.import_module(".other", package="pkg")',
        'im("yaml")',
        "",
      ].join("\n"),
      "pkg/__init__.py": "",
      "pkg/sub.py": "import sklearn\n",
      "pkg/other.py": "import cv2\n",
    });
    assert.deepEqual(r.local_files, ["main.py", "pkg/__init__.py", "pkg/other.py", "pkg/sub.py"]);
    assert.deepEqual(names(r), ["opencv-python", "pyyaml", "scikit-learn"]);
    assert.ok(!r.warnings.some((w) => /outside a package/.test(w)), r.warnings.join("\n"));
  });

  test("a package argument that is not local is installed, as its absolute name would be", async () => {
    const r = await run({
      "main.py": [
        "import importlib as il",
        'il.import_module(".adapters", package="requests")',
        'importlib.import_module("._yaml", "yaml")',
        'il.import_module("bs4")',
        "",
      ].join("\n"),
    });
    assert.deepEqual(names(r), ["beautifulsoup4", "pyyaml", "requests"]);
    assert.ok(
      !r.warnings.some((w) => /cannot find the local module/.test(w)),
      r.warnings.join("\n"),
    );
  });
});

describe("--toplevel and --function", () => {
  const files = {
    "main.py": [
      "import helper",
      "def fit():",
      "    import sklearn",
      "class Model:",
      "    def fit(self):",
      "        import cv2",
      "def outer():",
      "    def fit():",
      "        import PIL",
      "",
    ].join("\n"),
    "helper.py": "import yaml\ndef later():\n    import bs4\n",
  };
  test("--toplevel drops function-level imports of local modules too", async () => {
    const r = await run(files, { toplevel: true });
    assert.deepEqual(names(r), ["pyyaml"]);
  });
  test("--function NAME is the top-level function; Class.method a method", async () => {
    assert.deepEqual(names(await run(files, { function: "fit" })), ["scikit-learn"]);
    assert.deepEqual(names(await run(files, { function: "Model.fit" })), ["opencv-python"]);
  });
  test("a name defined only as a method or nested function is reported as missing", async () => {
    const r = await run(
      { "main.py": "class Model:\n    def train(self):\n        import cv2\n" },
      { function: "train" },
    );
    assert.deepEqual(names(r), []);
    assert.ok(r.warnings.some((w) => /defines no function train/.test(w)));
  });
});

describe("type-checking guards", () => {
  test("an aliased TYPE_CHECKING and `if False:` guard no runtime requirement", async () => {
    const r = await run({
      "main.py": [
        "from typing import TYPE_CHECKING as TC",
        "if TC:",
        "    import PIL",
        "if False:",
        "    import cv2",
        "",
      ].join("\n"),
    });
    assert.deepEqual(names(r), []);
    assert.deepEqual(r.type_checking_only, ["opencv-python", "pillow"]);
  });
  test("an unresolved import only under TYPE_CHECKING is still listed as such", async () => {
    const r = await run({
      "main.py":
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pyferry_nowhere_stubs\n",
    });
    assert.deepEqual(r.unresolved, []);
    assert.deepEqual(r.type_checking_only, ["pyferry_nowhere_stubs"]);
  });
});

describe("sources that are not regular files", () => {
  test("a module linked to a device is reported and skipped, not read", async () => {
    const dir = tree({ "main.py": "import zero\nimport sklearn\n" });
    symlinkSync("/dev/zero", join(dir, "zero.py"));
    const r = await analyze(join(dir, "main.py"), { pkgMapping });
    const e = r.errors.find((x) => x.file === "zero.py");
    assert.match(e?.message ?? "", /not a regular file/);
    assert.ok(names(r).includes("scikit-learn"));
  });
  test("a named pipe is not opened (that would wait for a writer)", async (t) => {
    const dir = tree({});
    if (spawnSync("mkfifo", [join(dir, "main.py")]).status !== 0) return t.skip("no mkfifo");
    await assert.rejects(analyze(join(dir, "main.py")), /not a regular file/);
  });
});
