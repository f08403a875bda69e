/**
 * `cache prune` against `pyferry run` of the same cached environment, with real processes:
 * prune is held at a file system call (test/support/hold-fs.ts) after it has judged the
 * environment old, a run starts on the environment meanwhile, and then prune goes on.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ENV_MARKER, ENV_RETIRING } from "../../src/pipeline/run-cache.js";
import { REPO } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const BIN = join(REPO, "bin", "pyferry.js");
const HOLD = fileURLToPath(new URL("../support/hold-fs.js", import.meta.url));

/**
 * Says it has started, then, told to go on, starts its environment's interpreter again (as
 * multiprocessing does), which needs the environment still there.
 */
const PROGRAM = `import subprocess, sys
print("ready", flush=True)
sys.stdin.readline()
print(subprocess.run([sys.executable, "-c", "print('still here')"], capture_output=True, text=True, check=True).stdout, end="")
`;

interface Setup {
  env: NodeJS.ProcessEnv;
  cache: string;
  cwd: string;
  script: string;
  /** The run's environment, its marker dated 40 days back. */
  dir: string;
}

/** A script run once (its environment built and recorded), with a private cache. */
function setup(): Setup {
  const cache = tempDir("pyferry-env-prune-");
  const cwd = tempDir("pyferry-env-prune-app-");
  const script = join(cwd, "app.py");
  writeFileSync(script, PROGRAM);
  const env = { ...process.env, PYFERRY_CACHE_DIR: cache, NO_COLOR: "1" };
  const first = spawnSync(process.execPath, [BIN, "run", script], {
    cwd,
    env,
    input: "go\n",
    encoding: "utf8",
  });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, "ready\nstill here\n");
  const keys = readdirSync(join(cache, "envs")).filter((n) => !n.startsWith("."));
  assert.equal(keys.length, 1, `one environment, not ${keys.join(" ")}`);
  const dir = join(cache, "envs", keys[0] as string);
  const longAgo = new Date(Date.now() - 40 * 86_400_000);
  utimesSync(join(dir, ENV_MARKER), longAgo, longAgo);
  return { env, cache, cwd, script, dir };
}

/** The first line `stream` prints; rejected, with what it said on stderr, if `child` ends first. */
function firstLine(child: ChildProcess, stream: Readable, what: string): Promise<string> {
  return new Promise((go, fail) => {
    let text = "";
    let err = "";
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const ended = (code: number | null) =>
      fail(new Error(`${what}: it ended (${code}) first\n${err}`));
    child.once("exit", ended);
    stream.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.includes("\n")) return;
      child.off("exit", ended);
      go(text.slice(0, text.indexOf("\n")));
    });
  });
}

const exited = (child: ChildProcess): Promise<number | null> =>
  new Promise((go) => child.once("exit", (code) => go(code)));

/** `pyferry ARGS` preloaded with hold-fs: held at `hold`, told to go on through fd 3. */
function held(s: Setup, args: string[], hold: string, stderr: "pipe" | "inherit"): ChildProcess {
  return spawn(process.execPath, ["--import", HOLD, BIN, ...args], {
    cwd: s.cwd,
    env: { ...s.env, PYFERRY_TEST_HOLD: hold },
    stdio: ["pipe", "pipe", stderr, "pipe"],
  });
}

const control = (child: ChildProcess): Readable & Writable => child.stdio[3] as Readable & Writable;

async function prunedNow(prune: ChildProcess): Promise<string[]> {
  let out = "";
  prune.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const done = exited(prune);
  control(prune).write("go\n");
  assert.equal(await done, 0);
  return (JSON.parse(out) as { removed: { path: string }[] }).removed.map((r) => r.path);
}

test("a prune that judged an environment old leaves it to a run that started on it meanwhile", async () => {
  const s = setup();
  const prune = held(
    s,
    ["cache", "prune", "--older-than", "0", "--json"],
    `stat ${join(s.dir, ENV_MARKER)}`,
    "inherit",
  );
  assert.equal(await firstLine(prune, control(prune), "prune"), "held");

  const program = spawn(process.execPath, [BIN, "run", s.script], {
    cwd: s.cwd,
    env: s.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let programErr = "";
  program.stderr.on("data", (c: Buffer) => {
    programErr += c.toString();
  });
  const programDone = exited(program);
  assert.equal(await firstLine(program, program.stdout, "the run"), "ready");

  const removed = await prunedNow(prune);
  let rest = "";
  program.stdout.on("data", (c: Buffer) => {
    rest += c.toString();
  });
  program.stdin.end("go\n");
  assert.equal(await programDone, 0, programErr);
  assert.equal(rest, "still here\n");
  assert.ok(!removed.includes(s.dir), "prune removed the environment in use");
  assert.ok(existsSync(join(s.dir, ENV_MARKER)), "the marker is back in place");

  // A prune stopped while deciding leaves the marker aside: the next run takes the environment
  // as it is.
  renameSync(join(s.dir, ENV_MARKER), join(s.dir, ENV_RETIRING));
  const again = spawnSync(process.execPath, [BIN, "run", s.script], {
    cwd: s.cwd,
    env: s.env,
    input: "go\n",
    encoding: "utf8",
  });
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, "ready\nstill here\n");
  assert.deepEqual(readdirSync(join(s.cache, "envs")), [s.dir.split("/").pop()]);

  // Once no one uses it, it goes.
  const later = spawnSync(process.execPath, [BIN, "cache", "prune", "--older-than", "0"], {
    env: s.env,
    encoding: "utf8",
  });
  assert.equal(later.status, 0, later.stderr);
  assert.ok(!existsSync(s.dir));
});

test("a run that finds an environment being pruned waits, and builds it again once it is gone", async () => {
  const s = setup();
  // Held with the environment's lock, its marker aside.
  const prune = held(
    s,
    ["cache", "prune", "--older-than", "0", "--json"],
    `rename ${join(s.dir, ENV_MARKER)}`,
    "inherit",
  );
  assert.equal(await firstLine(prune, control(prune), "prune"), "held");
  // Held once it has found the lock taken.
  const program = held(s, ["run", s.script], `open ${s.dir}.lock`, "pipe");
  let programErr = "";
  program.stderr?.on("data", (c: Buffer) => {
    programErr += c.toString();
  });
  const programDone = exited(program);
  assert.equal(await firstLine(program, control(program), "the run"), "held");

  // Unused but for a process that has not claimed it: it goes.
  assert.ok((await prunedNow(prune)).includes(s.dir));
  assert.ok(!existsSync(s.dir));
  let out = "";
  program.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  control(program).write("go\n");
  program.stdin?.end("go\n");
  assert.equal(await programDone, 0, programErr);
  assert.equal(out, "ready\nstill here\n");
  assert.ok(existsSync(join(s.dir, ENV_MARKER)), "built again in the same place");
});
