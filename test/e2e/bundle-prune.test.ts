/**
 * `cache prune` against `exec` of the same unpacked bundle, with real processes: prune is held
 * at the bundle's lock (a FIFO there blocks it while it reads the lock) after it has judged the
 * tree old, an exec starts on the tree meanwhile, and then prune goes on.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, constants, existsSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { packBundle } from "../../src/bundle/pack.js";
import { CHILD, testHead } from "../support/bundle-child.js";
import { REPO } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const PYTHON = process.env.PYFERRY_TEST_PYTHON ?? "python3";

/** Resolves to the first line `stream` prints. */
function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((go) => {
    let text = "";
    stream.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) go(text.slice(0, text.indexOf("\n")));
    });
  });
}

const exited = (child: ReturnType<typeof spawn>): Promise<number | null> =>
  new Promise((go) => child.once("exit", (code) => go(code)));

test("a prune that judged a bundle old leaves it to an exec that started on it meanwhile", async () => {
  const cache = tempDir("pyferry-prune-race-");
  const env = { ...process.env, PYFERRY_CACHE_DIR: cache, NO_COLOR: "1" };
  const venv = join(tempDir("pyferry-prune-venv-"), "env");
  execFileSync(PYTHON, ["-m", "venv", "--without-pip", venv]);
  const app = tempDir("pyferry-prune-app-");
  execFileSync("sh", ["-c", `echo 'still here' > ${join(app, "data.txt")}`]);
  const archive = join(tempDir("pyferry-prune-out-"), "app.tar.gz");
  const { sha256 } = await packBundle({
    envDir: venv,
    appFiles: [{ source: join(app, "data.txt"), dest: "data.txt" }],
    manifest: testHead(),
    output: archive,
  });
  const dir = join(cache, "bundles", sha256);
  const first = spawnSync(process.execPath, [CHILD, "exec", archive, "--", "python", "-c", ""], {
    env,
    encoding: "utf8",
  });
  assert.equal(first.status, 0, first.stderr);

  // The lock as a FIFO: prune opens it to read its owner and waits there until it is written.
  const fifo = `${dir}.lock`;
  execFileSync("mkfifo", [fifo]);
  const prune = spawn(
    process.execPath,
    [join(REPO, "bin", "pyferry.js"), "cache", "prune", "--older-than", "0", "--json"],
    { env, stdio: ["ignore", "pipe", "inherit"] },
  );
  let pruneOut = "";
  prune.stdout.on("data", (c: Buffer) => {
    pruneOut += c.toString();
  });
  const pruneDone = exited(prune);
  let writer: number | undefined;
  for (let i = 0; i < 300 && writer === undefined; i++) {
    try {
      writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      await sleep(20);
    }
  }
  assert.ok(writer !== undefined, "prune never reached the bundle's lock");
  const heldAt = Date.now();

  // The program says it has started, then reads its app's file when told to.
  const program = spawn(
    process.execPath,
    [
      CHILD,
      "exec",
      archive,
      "--",
      "python",
      "-c",
      "import os, sys; print('ready', flush=True); sys.stdin.readline(); print(open(os.path.join(os.environ['PYFERRY_APP_DIR'], 'data.txt')).read(), end='')",
    ],
    { env, stdio: ["pipe", "pipe", "pipe"] },
  );
  let programErr = "";
  program.stderr.on("data", (c: Buffer) => {
    programErr += c.toString();
  });
  const programDone = exited(program);
  assert.equal(await firstLine(program.stdout), "ready");
  // Prune gives up on a lock after 2 s; past that, this test would prove nothing.
  assert.ok(Date.now() - heldAt < 1500, "the exec started too slowly to test anything");
  unlinkSync(fifo);
  writeSync(writer, "x");
  closeSync(writer);
  assert.equal(await pruneDone, 0);
  const rest = firstLine(program.stdout);
  program.stdin.end("go\n");
  assert.equal(await programDone, 0, programErr);
  assert.equal(await rest, "still here");
  assert.ok(!JSON.parse(pruneOut).removed.some((r: { path: string }) => r.path === dir));

  // Once no one uses it, it goes.
  const later = spawnSync(
    process.execPath,
    [join(REPO, "bin", "pyferry.js"), "cache", "prune", "--older-than", "0"],
    { env, encoding: "utf8" },
  );
  assert.equal(later.status, 0, later.stderr);
  assert.ok(!existsSync(dir));
});
