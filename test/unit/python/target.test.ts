/** `--platform FILE`: a pyferry lock, its target table on its own, or a Target as JSON. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { type InterpreterInfo, probeInterpreter } from "../../../src/python/interpreter.js";
import { readTarget, type Target, targetFromInterpreter } from "../../../src/python/target.js";
import { formatLock } from "../../../src/resolve/lock.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const dir = tempDir("pyferry-target-");
let here: Target;
before(async () => {
  const python = execFileSync(process.env.PYFERRY_TEST_PYTHON ?? "python3", [
    "-c",
    "import sys; print(sys.executable)",
  ])
    .toString()
    .trim();
  const info: InterpreterInfo = await probeInterpreter(python);
  here = targetFromInterpreter(info);
});

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

/** The [tool.pyferry.target] section of that lock. */
const targetSection = () => {
  const text = lockText();
  return text.slice(text.indexOf("[tool.pyferry.target]"));
};

/** A pyferry lock made for `here`. */
const lockText = () =>
  formatLock({
    lockVersion: "1.0",
    createdBy: "test",
    environments: [],
    requirements: [],
    constraints: [],
    target: here,
    packages: [],
  });

test("a pyferry lock's own target, the same table alone or at the top level, and JSON agree", async () => {
  const lock = file("pylock.toml", lockText());
  const section = targetSection();
  assert.deepEqual(await readTarget(lock), here);
  assert.deepEqual(await readTarget(file("alone.toml", section)), here);
  const top = section
    .replace("[tool.pyferry.target]\n", "")
    .replace("[tool.pyferry.target.marker-env]", "[marker-env]");
  assert.deepEqual(await readTarget(file("top.toml", top)), here);
  assert.deepEqual(await readTarget(file("t.json", JSON.stringify(here))), here);
  assert.deepEqual(await readTarget(file("bom.json", `\uFEFF${JSON.stringify(here)}`)), here);
});

test("a description that cannot be used is one sentence naming the file and the fault", async () => {
  const cases: [string, string, RegExp][] = [
    [
      "str.json",
      JSON.stringify({ ...here, platforms: "linux_x86_64" }),
      /platforms of the JSON object is not a list of strings\.$/,
    ],
    ["none.json", JSON.stringify({ ...here, platforms: [] }), /names no platforms/],
    [
      "ver.json",
      JSON.stringify({ ...here, pythonVersion: "three" }),
      /pythonVersion of the JSON object is "three", not a version/,
    ],
    [
      "env.json",
      JSON.stringify({ ...here, markerEnv: { os_name: "posix" } }),
      /the JSON object\.markerEnv has no implementation_name, implementation_version, platform_machine, /,
    ],
    ["list.json", "[1, 2]", /it is not a JSON object\.$/],
    [
      "key.toml",
      targetSection().replace("abi-tags", "abi_tags"),
      /\[tool\.pyferry\.target\] has the unknown key abi_tags \(it takes implementation, python-version, abi-tags, platforms, interpreter, marker-env\)\.$/,
    ],
    [
      "full.json",
      JSON.stringify({ ...here, markerEnv: { ...here.markerEnv, python_full_version: "3.9.1" } }),
      /pythonVersion of the JSON object is 3\.\d+\.\d+, but its python_full_version is 3\.9\.1\.$/,
    ],
    [
      "var.json",
      JSON.stringify({ ...here, markerEnv: { ...here.markerEnv, python_versoin: "3.11" } }),
      /markerEnv has python_versoin, which is not a PEP 508 marker variable\.$/,
    ],
    ["bad.json", "{ nope", /is not valid JSON/],
    ["bad.toml", "implementation = \n", /it is neither JSON nor valid TOML/],
    [
      "uv.toml",
      'lock-version = "1.0"\ncreated-by = "uv"\n',
      /it is a lock that records no target \(not pyferry's\)\.$/,
    ],
  ];
  for (const [name, text, pattern] of cases) {
    const path = file(name, text);
    await assert.rejects(readTarget(path), (err: unknown) => {
      assert.ok(err instanceof UserError, name);
      assert.ok(err.message.startsWith(`The target description ${path} `), err.message);
      assert.match(err.message, pattern, name);
      return true;
    });
  }
});
