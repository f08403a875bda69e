import assert from "node:assert/strict";
import { test } from "node:test";
import { hoistGlobalFlags } from "../../../src/cli/main.js";

test("--debug and --no-color count wherever pyferry's own options are, not in a program's arguments", () => {
  assert.deepEqual(hoistGlobalFlags(["deploy", "--check", "--debug", "web"]), [
    "--debug",
    "deploy",
    "--check",
    "web",
  ]);
  assert.deepEqual(hoistGlobalFlags(["wheelhouse", "export", "x.tar", "--no-color"]), [
    "--no-color",
    "wheelhouse",
    "export",
    "x.tar",
  ]);
  // After --, and after the script of run or the bundle's command, they are the program's.
  assert.deepEqual(hoistGlobalFlags(["deploy", "--", "--debug"]), ["deploy", "--", "--debug"]);
  assert.deepEqual(hoistGlobalFlags(["run", "s.py", "--debug"]), ["run", "s.py", "--debug"]);
  assert.deepEqual(hoistGlobalFlags(["run", "--debug", "s.py", "--debug"]), [
    "--debug",
    "run",
    "s.py",
    "--debug",
  ]);
  assert.deepEqual(hoistGlobalFlags(["run", "--on", "gpu1", "--debug", "s.py", "--debug"]), [
    "--debug",
    "run",
    "--on",
    "gpu1",
    "s.py",
    "--debug",
  ]);
  assert.deepEqual(hoistGlobalFlags(["exec", "b.tar.gz", "--", "python", "--debug"]), [
    "exec",
    "b.tar.gz",
    "--",
    "python",
    "--debug",
  ]);
});
