/** pyenv shims resolved without running them, checked against what the shim itself runs. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pyenvShimMisses, resolvePyenvShim } from "../../../src/python/pyenv-shim.js";
import { tempDir } from "../../support/temp.js";

const root = process.env.PYENV_ROOT || join(homedir(), ".pyenv");
const versions = existsSync(join(root, "versions"))
  ? readdirSync(join(root, "versions")).sort()
  : [];
const skip =
  existsSync(join(root, "shims", "python3")) && versions.length >= 2
    ? false
    : "no pyenv with two versions here";
const work = tempDir("pyferry-pyenv-");
after(() => rmSync(work, { recursive: true, force: true }));

/** What the shim really runs, asked the slow way. */
function viaShim(name: string, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  try {
    return execFileSync(join(root, "shims", name), ["-c", "import sys; print(sys.executable)"], {
      env,
      cwd,
      stdio: ["ignore", "pipe", "ignore"],
    })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

test("the same interpreter as the shim runs, for the global, local and environment settings", {
  skip,
}, () => {
  const base: NodeJS.ProcessEnv = { ...process.env, PYENV_ROOT: root };
  delete base.PYENV_VERSION;
  delete base.PYENV_DIR;
  const local = join(work, "project", "sub");
  mkdirSync(local, { recursive: true });
  const [a, b] = [versions[0] as string, versions[versions.length - 1] as string];
  writeFileSync(join(work, "project", ".python-version"), `${a}\n`);
  const cases: { name: string; env: NodeJS.ProcessEnv; cwd: string }[] = [
    { name: "python3", env: base, cwd: work },
    { name: "python", env: base, cwd: local },
    { name: "python3", env: { ...base, PYENV_VERSION: b }, cwd: local },
    { name: "python", env: { ...base, PYENV_VERSION: `${a}:${b}` }, cwd: work },
  ];
  for (const c of cases) {
    const fast = resolvePyenvShim(join(root, "shims", c.name), root, c.env, c.cwd);
    const slow = viaShim(c.name, c.env, c.cwd);
    if (fast === undefined) continue; // left to the shim: allowed, never wrong
    assert.ok(slow, `${c.name} in ${c.cwd}`);
    assert.equal(
      realpathSync(fast),
      realpathSync(slow as string),
      JSON.stringify(c.env.PYENV_VERSION ?? c.cwd),
    );
  }
});

test("anything pyenv would treat specially is left to the shim", { skip }, () => {
  const base: NodeJS.ProcessEnv = { ...process.env, PYENV_ROOT: root };
  assert.equal(
    resolvePyenvShim(
      join(root, "shims", "python3"),
      root,
      { ...base, PYENV_VERSION: "system" },
      work,
    ),
    undefined,
  );
  assert.equal(
    resolvePyenvShim(
      join(root, "shims", "python3"),
      root,
      { ...base, PYENV_VERSION: "9.9.9" },
      work,
    ),
    undefined,
  );
  assert.equal(resolvePyenvShim("/usr/bin/python3", root, base, work), undefined);
});

test("a shim whose command no selected version has fails as pyenv says, and is known to", {
  skip,
}, () => {
  const base: NodeJS.ProcessEnv = { ...process.env, PYENV_ROOT: root };
  const a = versions[0] as string;
  const b = versions.find(
    (v) =>
      existsSync(join(root, "shims", `python${v.split(".").slice(0, 2).join(".")}`)) &&
      !v.startsWith(a.split(".").slice(0, 2).join(".")),
  );
  if (!b) return;
  const shim = join(root, "shims", `python${b.split(".").slice(0, 2).join(".")}`);
  const only = { ...base, PYENV_VERSION: a };
  assert.equal(
    viaShim(shim.split("/").pop() as string, only, work),
    undefined,
    "the shim itself fails",
  );
  assert.equal(pyenvShimMisses(shim, root, only, work), true);
  assert.equal(pyenvShimMisses(shim, root, { ...base, PYENV_VERSION: b }, work), false);
  assert.equal(
    pyenvShimMisses(
      join(root, "shims", "python3"),
      root,
      { ...base, PYENV_VERSION: "system" },
      work,
    ),
    false,
  );
});
