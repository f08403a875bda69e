import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { compileBundle } from "../../../src/cli/code-cache.js";
import { tempDir } from "../../support/temp.js";

const LOADER = new URL("../../../src/cli/code-cache.js", import.meta.url).href;

/** A bundle that uses what pyferry's do: exports, require() of Node's modules, __filename. */
const BUNDLE = `
const os = require("node:os");
exports.greet = (who) => "hello " + who + " on " + typeof os.cpus;
exports.later = async () => require("node:path").basename(__filename);
`;

/** Load `file` as bin/ does, for `command`, print what it exports, and exit with `code`. */
function load(file: string, command: string, code = 0, env: NodeJS.ProcessEnv = {}) {
  const script = `
    const { loadBundle } = await import(${JSON.stringify(LOADER)});
    const m = loadBundle(new URL(${JSON.stringify(pathToFileURL(file).href)}), ${JSON.stringify(command)});
    console.log(m.greet("you"), await m.later());
    process.exitCode = ${code};
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, PYFERRY_DEBUG: "", ...env },
  });
  assert.equal(r.stderr, "");
  assert.equal(r.stdout, "hello you on function b.cjs\n");
  assert.equal(r.status, code);
}

function bundleIn(dir: string, source = BUNDLE): string {
  const file = join(dir, "b.cjs");
  writeFileSync(file, source);
  return file;
}

function caches(dir: string): string[] {
  try {
    return readdirSync(join(dir, ".v8-cache")).sort();
  } catch {
    return [];
  }
}

/** The cache file is one V8 takes for this source. */
function accepted(dir: string, name: string, source = BUNDLE): boolean {
  const data = readFileSync(join(dir, ".v8-cache", name));
  return !compileBundle(join(dir, "b.cjs"), source, data).cachedDataRejected;
}

test("a run that worked leaves a cache for its command, which the next run uses as it is", () => {
  const dir = tempDir("pf-code-cache-");
  const file = bundleIn(dir);
  load(file, "deploy");
  const [made, ...more] = caches(dir);
  assert.match(made as string, /^b-deploy-v\d+\.\d+\.\d+-\w+-[0-9a-f]{16}\.bin$/);
  assert.deepEqual(more, []);
  assert.ok(accepted(dir, made as string), "V8 takes the cache for the bundle");
  const before = statSync(join(dir, ".v8-cache", made as string));
  load(file, "deploy");
  const after = statSync(join(dir, ".v8-cache", made as string));
  assert.equal(after.ino, before.ino, "a cache V8 took is not written again");
  assert.equal(after.mtimeMs, before.mtimeMs);
  // Another command has a cache of its own; a word unfit for a file name shares "other".
  load(file, "env");
  load(file, "../x");
  assert.deepEqual(
    caches(dir).map((f) => f.replace(/-v\d+\.\d+\.\d+-\w+-[0-9a-f]{16}\.bin$/, "")),
    ["b-deploy", "b-env", "b-other"],
  );
});

test("a damaged cache is refused by V8 and made again; a failed run makes none", () => {
  const dir = tempDir("pf-code-cache-");
  const file = bundleIn(dir);
  load(file, "lock", 1);
  assert.deepEqual(caches(dir), [], "a run that failed leaves no cache");
  load(file, "lock");
  const [name] = caches(dir) as [string];
  writeFileSync(join(dir, ".v8-cache", name), Buffer.alloc(4096, 7));
  load(file, "lock");
  assert.deepEqual(caches(dir), [name]);
  assert.ok(accepted(dir, name), "the garbage was replaced by a cache V8 takes");
});

test("a new bundle replaces the old one's cache; no cache folder can be made: none is used", () => {
  const dir = tempDir("pf-code-cache-");
  load(bundleIn(dir), "run");
  const [old] = caches(dir) as [string];
  const changed = `${BUNDLE}\nexports.extra = 1;\n`;
  load(bundleIn(dir, changed), "run");
  const [now, ...more] = caches(dir) as [string];
  assert.notEqual(now, old, "the source is part of the key");
  assert.deepEqual(more, [], "the old bundle's cache for the command is gone");
  assert.ok(accepted(dir, now, changed));

  const blocked = tempDir("pf-code-cache-");
  writeFileSync(join(blocked, ".v8-cache"), "a file where the folder would be");
  load(bundleIn(blocked), "run");
  assert.deepEqual(readdirSync(blocked).sort(), [".v8-cache", "b.cjs"]);
});

test("under --debug Node's own loader runs the bundle, and no cache is made", () => {
  const dir = tempDir("pf-code-cache-");
  load(bundleIn(dir), "deploy", 0, { PYFERRY_DEBUG: "1" });
  assert.deepEqual(caches(dir), []);
});

test("a run that only printed help, its version or a usage error makes no cache", () => {
  const dir = tempDir("pf-code-cache-");
  // What runProgram does on such a run (markLightRun), from inside the bundle.
  const file = bundleIn(dir, `${BUNDLE}\nglobalThis[Symbol.for("pyferry.lightRun")] = true;\n`);
  load(file, "lock");
  assert.deepEqual(caches(dir), []);
});
