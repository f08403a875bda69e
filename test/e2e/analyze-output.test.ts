/** `pyferry analyze` at its edges: what --json, -o and --pkg-mapping say when things are off. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pyferry } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

function dir(files: Record<string, string>): string {
  const d = tempDir("pyferry-analyze-out-");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}

test("--json answers in JSON even when the script cannot be analyzed", () => {
  const d = dir({ "bad.py": 'import yaml\nprint "x"\n' });
  const r = pyferry(["analyze", "--no-index", join(d, "bad.py"), "--json"]);
  assert.equal(r.status, 1);
  assert.match(JSON.parse(r.stdout).error, /bad\.py does not parse as Python 3 \(line 2/);
  assert.match(r.stderr, /^error: .*does not parse as Python 3/);
});

test('-o "" is a usage error, not ignored', () => {
  const d = dir({ "s.py": "import yaml\n" });
  const r = pyferry(["analyze", "--no-index", join(d, "s.py"), "-o", ""]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, "error: -o needs a file name.\n");
  assert.equal(r.stdout, "");
});

test("a --pkg-mapping that decides nothing is said, with the reason", () => {
  const d = dir({ "m.py": "import json\nimport mylocal\nimport yaml\n", "mylocal.py": "X = 1\n" });
  const r = pyferry(
    ["analyze", "--no-index", "m.py"].concat(
      ["json=orjson", "mylocal=mylocal-dist", "YAML=pyyaml-x", "yaml=pyyaml"].flatMap((m) => [
        "--pkg-mapping",
        m,
      ]),
    ),
    { cwd: d },
  );
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning: --pkg-mapping"));
  assert.deepEqual(warnings, [
    "warning: --pkg-mapping json=orjson was not used: json is in the standard library.",
    "warning: --pkg-mapping mylocal=mylocal-dist was not used: mylocal is a local module here, which Python imports first.",
    "warning: --pkg-mapping YAML=pyyaml-x was not used: nothing here imports YAML (import names are case-sensitive).",
  ]);
  assert.match(r.stdout, /pyyaml {2}yaml {2}option: --pkg-mapping yaml=pyyaml/);
});

test("--format pep723 in a Latin-1 file changes nothing but its block", () => {
  const d = tempDir("pyferry-analyze-out-");
  const body = Buffer.concat([
    Buffer.from('# -*- coding: latin-1 -*-\nimport json\nprint("caf'),
    Buffer.from([0xe9]),
    Buffer.from('")\n'),
  ]);
  writeFileSync(join(d, "s.py"), body);
  const r = pyferry(["analyze", "--no-index", "s.py", "--format", "pep723"], { cwd: d });
  assert.equal(r.status, 0, r.stderr);
  const after = readFileSync(join(d, "s.py"));
  assert.match(after.toString("latin1"), /^# \/\/\/ script$/m);
  assert.ok(after.includes(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x22])), "café, byte for byte");
  const run = spawnSync("python3", ["s.py"], { cwd: d, encoding: "utf8" });
  assert.equal(run.stdout, "café\n", run.stderr);
});

test("--name that conda would refuse is a usage error", () => {
  const d = dir({ "s.py": "import json\n" });
  const r = pyferry(["analyze", "--no-index", join(d, "s.py"), "--name", "a/b c"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--name "a\/b c" is not an environment name conda accepts/);
});
