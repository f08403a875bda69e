/** Environments written without running venv behave like the ones venv makes. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { createVenv, layoutFor } from "../../../src/install/env.js";
import { probeInterpreter } from "../../../src/python/interpreter.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-env-");
after(() => rmSync(root, { recursive: true, force: true }));
const PYTHON = execFileSync(process.env.PYFERRY_TEST_PYTHON ?? "python3", [
  "-c",
  "import sys; print(sys.executable)",
])
  .toString()
  .trim();

function cfg(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(join(dir, "pyvenv.cfg"), "utf8").split("\n")) {
    const m = /^(\S+) = (.*)$/.exec(line);
    if (m) out.set(m[1] as string, m[2] as string);
  }
  return out;
}

test("createVenv makes a working virtual environment, like venv's, without a subprocess", async () => {
  const info = await probeInterpreter(PYTHON);
  const dir = join(root, "an env");
  const layout = await createVenv(dir, info);
  assert.deepEqual(layout, layoutFor(dir, info.version));
  const out = execFileSync(
    layout.python,
    [
      "-c",
      "import sys, site; print(sys.prefix); print(sys.base_prefix); print('\\n'.join(sys.path))",
    ],
    { encoding: "utf8" },
  ).split("\n");
  assert.equal(out[0], dir);
  assert.equal(out[1], info.basePrefix);
  assert.ok(out.includes(layout.purelib), "site-packages is on sys.path");

  // The same layout as `python -m venv --without-pip`, activation scripts aside.
  const reference = join(root, "venv");
  execFileSync(PYTHON, ["-m", "venv", "--without-pip", reference]);
  const links = (d: string) =>
    readdirSync(join(d, "bin"))
      .filter((n) => n.startsWith("python"))
      .map((n) => `${n} -> ${readlinkSync(join(d, "bin", n))}`);
  assert.deepEqual(links(dir), links(reference));
  assert.equal(readlinkSync(join(dir, "lib64")), readlinkSync(join(reference, "lib64")));
  assert.deepEqual(readdirSync(join(dir, "lib")), readdirSync(join(reference, "lib")));
  assert.deepEqual(readdirSync(join(dir, "include")), readdirSync(join(reference, "include")));
  const ours = cfg(dir);
  const theirs = cfg(reference);
  for (const key of ["home", "include-system-site-packages", "version", "executable"]) {
    assert.equal(ours.get(key), theirs.get(key), key);
  }

  // Creating it again over itself changes nothing and keeps working.
  await createVenv(dir, info);
  assert.equal(
    execFileSync(layout.python, ["-c", "import sys; print(sys.prefix)"]).toString().trim(),
    dir,
  );
});

test("an environment made from a venv's interpreter points at the base interpreter", async () => {
  const first = await createVenv(join(root, "first"), await probeInterpreter(PYTHON));
  const second = await createVenv(join(root, "second"), await probeInterpreter(first.python));
  const home = cfg(join(root, "second")).get("home");
  assert.equal(home, cfg(join(root, "first")).get("home"));
  const prefix = execFileSync(second.python, ["-c", "import sys; print(sys.prefix)"]);
  assert.equal(prefix.toString().trim(), second.root);
});
