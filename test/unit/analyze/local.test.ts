import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { absoluteName, LocalFinder } from "../../../src/analyze/local.js";
import { tempDir } from "../../support/temp.js";

function tree(files: string[]): string {
  const dir = tempDir("pyferry-local-");
  for (const f of files) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), "");
  }
  return dir;
}

test("regular packages run every __init__.py on the way; modules stop the walk", () => {
  const d = tree(["pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "single.py"]);
  const f = new LocalFinder([d]);
  assert.deepEqual(f.resolve("pkg.sub.mod")?.files, [
    join(d, "pkg/__init__.py"),
    join(d, "pkg/sub/__init__.py"),
    join(d, "pkg/sub/mod.py"),
  ]);
  assert.deepEqual(f.resolve("single.attr"), {
    files: [join(d, "single.py")],
    found: "single",
    namespace: false,
  });
  assert.equal(f.resolve("missing"), undefined);
});

test("a package beats a module of the same name; namespace portions come last and merge", () => {
  const d = tree(["both/__init__.py", "both.py", "ns/a.py", "src/ns/b.py", "data/readme.txt"]);
  const f = new LocalFinder([d, join(d, "src")]);
  assert.deepEqual(f.resolve("both")?.files, [join(d, "both/__init__.py")]);
  assert.deepEqual(f.resolve("ns.a")?.files, [join(d, "ns/a.py")]);
  assert.deepEqual(f.resolve("ns.b")?.files, [join(d, "src/ns/b.py")]);
  assert.equal(f.resolve("data"), undefined, "a folder with no Python is not a namespace package");
  // The rest of a namespace may be installed elsewhere: say where the local part ends.
  assert.deepEqual(f.resolve("ns.elsewhere"), { files: [], found: "ns", namespace: true });
});

test("src layouts and extension modules", () => {
  const d = tree(["src/app/__init__.py", "fast.cpython-311-x86_64-linux-gnu.so"]);
  const f = new LocalFinder([d, join(d, "src")]);
  assert.equal(f.resolve("app")?.found, "app");
  assert.deepEqual(f.resolve("fast")?.files, [join(d, "fast.cpython-311-x86_64-linux-gnu.so")]);
});

test("virtualenvs and build folders are never searched", () => {
  const d = tree(["venv/pyvenv.cfg", "venv/lib/mod.py", "build/lib/x.py", "node_modules/y.py"]);
  const f = new LocalFinder([d]);
  assert.equal(f.resolve("venv"), undefined);
  assert.equal(f.resolve("build"), undefined);
  assert.equal(f.resolve("node_modules"), undefined);
});

test("relative imports resolve against the importing module's package", () => {
  const d = tree(["pkg/__init__.py", "pkg/sub/mod.py"]);
  const f = new LocalFinder([d]);
  assert.equal(f.packageOf(join(d, "pkg/sub/mod.py")), "pkg.sub");
  assert.equal(f.packageOf(join(d, "pkg/__init__.py")), "pkg");
  assert.equal(f.packageOf(join(d, "script.py")), undefined);
  assert.equal(absoluteName("pkg.sub", 1, "x"), "pkg.sub.x");
  assert.equal(absoluteName("pkg.sub", 2, "y.z"), "pkg.y.z");
  assert.equal(absoluteName("pkg.sub", 2, ""), "pkg");
  assert.equal(absoluteName("pkg", 3, "x"), undefined, "beyond the top-level package");
  assert.equal(absoluteName(undefined, 1, "x"), undefined, "a script is not in a package");
});
