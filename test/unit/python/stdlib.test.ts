import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isStdlibModule, knownStdlibVersions, stdlibTable } from "../../../src/python/stdlib.js";
import { packageRoot } from "../../../src/util/package-root.js";

const PYENV_VERSIONS = join(process.env.PYENV_ROOT || join(homedir(), ".pyenv"), "versions");

function table(version: string): Set<string> {
  const t = stdlibTable(version);
  assert.ok(t, `no table for ${version}`);
  return t;
}

describe("stdlib tables", () => {
  test("ship 3.8 through 3.14, oldest first", () => {
    assert.deepEqual(knownStdlibVersions(), ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]);
    assert.ok(existsSync(join(packageRoot(), "package.json")));
  });

  test("accept X.Y and X.Y.Z, and nothing else", () => {
    assert.equal(stdlibTable("3.11.7"), stdlibTable("3.11"));
    assert.equal(stdlibTable("3.7"), undefined);
    assert.equal(stdlibTable("3"), undefined);
    assert.equal(stdlibTable("latest"), undefined);
  });

  const interpreters = existsSync(PYENV_VERSIONS)
    ? readdirSync(PYENV_VERSIONS).filter((v) => /^3\.(1\d|[2-9]\d)\.\d+$/.test(v))
    : [];
  for (const version of interpreters) {
    test(`match sys.stdlib_module_names of pyenv ${version}`, () => {
      const python = join(PYENV_VERSIONS, version, "bin", "python");
      const out = execFileSync(python, [
        "-I",
        "-c",
        "import json, sys; print(json.dumps(sorted(sys.stdlib_module_names)))",
      ]);
      const real = JSON.parse(out.toString()) as string[];
      assert.deepEqual([...table(version)].sort(), real.sort());
    });
  }

  test("follow removals and additions between versions", () => {
    for (const v of ["3.8", "3.9"]) {
      for (const name of [
        "asyncore",
        "distutils",
        "imp",
        "_winapi",
        "msvcrt",
        "_frozen_importlib",
      ]) {
        assert.ok(table(v).has(name), `${v} lacks ${name}`);
      }
      for (const name of ["test", "_testcapi", "xxlimited", "__phello__", "sitecustomize"]) {
        assert.ok(!table(v).has(name), `${v} has ${name}`);
      }
    }
    assert.ok(table("3.9").has("zoneinfo") && !table("3.8").has("zoneinfo"));
    for (const v of ["3.12", "3.13", "3.14"]) {
      assert.ok(!table(v).has("distutils") && !table(v).has("imp"), v);
    }
    for (const v of ["3.13", "3.14"]) {
      assert.ok(!table(v).has("cgi") && !table(v).has("telnetlib"), v);
    }
    const t314 = table("3.14");
    for (const name of ["annotationlib", "compression", "_zstd", "_remote_debugging"]) {
      assert.ok(t314.has(name), name);
    }
    assert.ok(!t314.has("_compression") && table("3.13").has("_compression"));
  });
});

describe("isStdlibModule", () => {
  test("looks at the top-level name", () => {
    const t = table("3.11");
    assert.ok(isStdlibModule("os.path", t));
    assert.ok(isStdlibModule("_thread", t));
    assert.ok(isStdlibModule("distutils.core", t));
    assert.ok(!isStdlibModule("distutils.core", table("3.12")));
    assert.ok(!isStdlibModule("yaml", t));
    assert.ok(!isStdlibModule(".sibling", t));
  });

  test("treats dunder modules as the interpreter's own", () => {
    const t = table("3.12");
    assert.ok(isStdlibModule("__main__", t));
    assert.ok(isStdlibModule("__future__", t));
    assert.ok(!isStdlibModule("__init", t));
  });
});
