/** makeDirs: mkdir -p that ends with an error where Node's recursive mkdir spins for ever. */
import assert from "node:assert/strict";
import { existsSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { makeDirs, makeDirsSync } from "../../../src/util/make-dirs.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-make-dirs-");
after(() => rmSync(root, { recursive: true, force: true }));

test("makes missing parents, accepts folders that exist, and applies the mode", async () => {
  await makeDirs(join(root, "a", "b", "c"));
  makeDirsSync(join(root, "s", "t", "u"), 0o700);
  await makeDirs(join(root, "a", "b"));
  makeDirsSync(join(root, "s"));
  assert.ok(statSync(join(root, "a", "b", "c")).isDirectory());
  assert.equal(statSync(join(root, "s", "t", "u")).mode & 0o777, 0o700 & ~process.umask());
});

test("a file in the way is an error, not a folder", async () => {
  writeFileSync(join(root, "file"), "");
  await assert.rejects(makeDirs(join(root, "file")), { code: "EEXIST" });
  await assert.rejects(makeDirs(join(root, "file", "x")), { code: "ENOTDIR" });
  assert.throws(() => makeDirsSync(join(root, "file", "x")), { code: "ENOTDIR" });
});

test("a parent that exists but cannot hold the child (a dangling symlink, /proc) fails at once", async () => {
  symlinkSync(join(root, "nowhere"), join(root, "dangling"));
  const cases = [join(root, "dangling", "x", "y")];
  if (existsSync("/proc/self")) cases.push("/proc/pyferry-no-such/x");
  for (const path of cases) {
    await assert.rejects(makeDirs(path), { code: "ENOENT" }, path);
    assert.throws(() => makeDirsSync(path), { code: "ENOENT" }, path);
  }
  assert.ok(!existsSync(join(root, "nowhere")));
});
