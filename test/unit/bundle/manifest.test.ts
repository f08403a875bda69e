import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  isBundlePath,
  type Manifest,
  parseManifest,
  readManifest,
  serializeManifest,
  writeManifest,
} from "../../../src/bundle/manifest.js";
import { UserError } from "../../../src/util/errors.js";
import { testHead } from "../../support/bundle-child.js";
import { tempDir } from "../../support/temp.js";

const SHA = "a".repeat(64);

function sample(): Manifest {
  return {
    ...testHead({ entry: ["python", "main.py"] }),
    files: {
      "env/bin/tool": { sha256: SHA, size: 3, mode: 0o755 },
      "app/main.py": { sha256: SHA, size: 0, mode: 0o644 },
    },
    links: { "env/bin/python": { target: "/usr/bin/python3", external: true } },
  };
}

test("a manifest survives writing and reading, in a stable byte form", async () => {
  const dir = tempDir("pyferry-manifest-");
  const m = sample();
  await writeManifest(dir, m);
  assert.deepEqual(await readManifest(dir), m);
  const text = readFileSync(join(dir, "manifest.json"), "utf8");
  // Key order in the input does not matter; files come out sorted by path.
  const shuffled = JSON.parse(text) as Manifest;
  const reordered = Object.fromEntries(Object.entries(shuffled).reverse()) as unknown as Manifest;
  assert.notEqual(JSON.stringify(reordered), JSON.stringify(shuffled));
  assert.equal(serializeManifest(reordered), text);
  assert.ok(text.indexOf('"app/main.py"') < text.indexOf('"env/bin/tool"'));
});

test("a malformed manifest is one UserError that says what is wrong", async () => {
  const bad: [unknown, RegExp][] = [
    ["{not json", /invalid: .*JSON/],
    [[], /not a JSON object/],
    [{ ...sample(), format: 2 }, /only format 1/],
    [{ ...sample(), python: { version: "3.11" } }, /python needs/],
    [{ ...sample(), platform: { tags: "x", machine: "y" } }, /platform needs/],
    [{ ...sample(), entry: [] }, /entry/],
    [{ ...sample(), script: "../main.py" }, /script is not a path under "app\/"/],
    [
      { ...sample(), script: "app/missing.py" },
      /script names app\/missing.py, which is not a file/,
    ],
    [{ ...sample(), env: { root: "venv", python: "venv/bin/python" } }, /env is not/],
    [
      { ...sample(), app: { root: "app", import_roots: ["../env"] } },
      /app\.import_roots is not a list of folders under app\//,
    ],
    [
      { ...sample(), files: { "../etc/passwd": { sha256: SHA, size: 1, mode: 420 } } },
      /unsafe path/,
    ],
    [{ ...sample(), files: { "env/x": { sha256: "zz", size: 1, mode: 420 } } }, /sha256/],
    [{ ...sample(), files: { "env/x": { sha256: SHA, size: 1, mode: 0o777 } } }, /mode/],
    [
      { ...sample(), links: { "env/bin/tool": { target: "x", external: false } } },
      /both a file and a link/,
    ],
    [{ ...sample(), links: { "env/l": { target: "" } } }, /link env\/l/],
  ];
  for (const [value, message] of bad) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    assert.throws(
      () => parseManifest(text, "b.tar.gz"),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /^The bundle manifest in b\.tar\.gz is invalid: /);
        assert.match(err.message, message);
        return true;
      },
    );
  }
  const dir = tempDir("pyferry-manifest-");
  await assert.rejects(
    readManifest(dir),
    /Cannot read the bundle manifest .* \(it does not exist\)/,
  );
  writeFileSync(join(dir, "manifest.json"), "[1]");
  await assert.rejects(readManifest(dir), UserError);
});

test("bundle paths are relative, under env/ or app/, without . or ..", () => {
  for (const ok of ["env/bin/python", "app/x.py", "app/a b/ü.txt"]) assert.ok(isBundlePath(ok), ok);
  for (const bad of [
    "env",
    "/env/x",
    "env/../x",
    "env/./x",
    "env//x",
    "other/x",
    "app/x/",
    "env/a\0b",
  ])
    assert.ok(!isBundlePath(bad), bad);
});

test("a packed src layout's import roots survive writing and reading", async () => {
  const dir = tempDir("pyferry-manifest-");
  const m: Manifest = { ...sample(), app: { root: "app", import_roots: ["src"] } };
  await writeManifest(dir, m);
  assert.deepEqual((await readManifest(dir)).app, { root: "app", import_roots: ["src"] });
});
