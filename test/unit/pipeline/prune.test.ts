/**
 * cache prune covers every part of the cache, by last use, and never a bundle being unpacked
 * or an environment being built.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { acquireLock } from "../../../src/bundle/lock.js";
import { COMPLETE_MARKER } from "../../../src/bundle/unpack.js";
import { pruneEverything } from "../../../src/pipeline/prune.js";
import { ENV_MARKER, ENV_RETIRING } from "../../../src/pipeline/run-cache.js";
import { hostTag } from "../../../src/util/pid.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-prune-");
after(() => rmSync(root, { recursive: true, force: true }));

function make(path: string, ageDays: number, text = "x"): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  const t = new Date(Date.now() - ageDays * 86_400_000);
  utimesSync(path, t, t);
  return path;
}

test("old built wheels, environments, bundles and stale run records go; recent ones stay", async () => {
  process.env.PYFERRY_CACHE_DIR = root;
  const oldEnv = join(root, "envs", "a".repeat(32));
  const newEnv = join(root, "envs", "b".repeat(32));
  make(join(oldEnv, ENV_MARKER), 40);
  make(join(oldEnv, "lib", "x.py"), 40, "print(1)\n");
  make(join(newEnv, ENV_MARKER), 1);
  const lockedEnv = join(root, "envs", "l".repeat(32));
  make(join(lockedEnv, ENV_MARKER), 40);
  // Markers a prune stopped while deciding left aside: judged as they are.
  const oldAside = join(root, "envs", "o".repeat(32));
  const newAside = join(root, "envs", "p".repeat(32));
  make(join(oldAside, ENV_RETIRING), 40);
  make(join(newAside, ENV_RETIRING), 1);
  const oldBundle = join(root, "bundles", "c".repeat(64));
  const lockedBundle = join(root, "bundles", "d".repeat(64));
  make(join(oldBundle, COMPLETE_MARKER), 40);
  make(join(lockedBundle, COMPLETE_MARKER), 40);
  const built = make(join(root, "built", "e".repeat(64), "demo-1.0-py3-none-any.whl"), 40);
  make(join(root, "runs", "stale.json"), 0, JSON.stringify({ envDir: oldEnv }));
  make(join(root, "runs", "live.json"), 0, JSON.stringify({ envDir: newEnv }));
  // Another process is unpacking that bundle, and building that environment: they are not touched.
  const lock = await acquireLock(`${lockedBundle}.lock`);
  const envLock = await acquireLock(`${lockedEnv}.lock`);
  assert.ok(lock && envLock);
  try {
    const dry = await pruneEverything(30, true);
    assert.ok(existsSync(oldEnv) && existsSync(built), "a dry run removes nothing");
    assert.ok(dry.some((r) => r.kind === "env"));
    const removed = await pruneEverything(30);
    const kinds = removed.map((r) => `${r.kind}:${r.path.slice(root.length + 1)}`).sort();
    assert.deepEqual(kinds, [
      `built:built/${"e".repeat(64)}/demo-1.0-py3-none-any.whl`,
      `bundle:bundles/${"c".repeat(64)}`,
      `env:envs/${"a".repeat(32)}`,
      `env:envs/${"o".repeat(32)}`,
      "record:runs/stale.json",
    ]);
    assert.ok(existsSync(newEnv) && existsSync(lockedBundle) && existsSync(lockedEnv));
    assert.ok(existsSync(join(newAside, ENV_MARKER)), "a marker kept goes back in place");
    assert.ok(existsSync(join(root, "runs", "live.json")));
  } finally {
    await lock.release();
    await envLock.release();
  }
});

test("what running processes use stays, an unpacker's tree too, and what dead writers left goes", async () => {
  const cache = tempDir("pyferry-prune-users-");
  process.env.PYFERRY_CACHE_DIR = cache;
  try {
    // A process that registers as a user, then uses an environment (its marker touched now).
    const used = join(cache, "envs", "u".repeat(32));
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { useCache } = await import(${JSON.stringify(new URL("../../../src/util/cache-users.js", import.meta.url).href)});
         const { utimesSync } = await import("node:fs");
         useCache(${JSON.stringify(cache)});
         await new Promise((go) => setTimeout(go, 50));
         const now = new Date(); utimesSync(${JSON.stringify(join(used, ENV_MARKER))}, now, now);
         console.log("ready"); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    make(join(used, ENV_MARKER), 40);
    await new Promise<void>((go) => child.stdout.once("data", () => go()));
    const unused = join(cache, "envs", "n".repeat(32));
    make(join(unused, ENV_MARKER), 40);
    // An unpacker at work (this process) and one that was killed (no such pid).
    const live = join(
      cache,
      "bundles",
      `${"f".repeat(64)}.partial.${hostTag()}.${process.pid}.0a0b0c0d`,
    );
    const dead = join(
      cache,
      "bundles",
      `${"f".repeat(64)}.partial.${hostTag()}.999999999.0a0b0c0d`,
    );
    make(join(live, "env", "x.py"), 0);
    make(join(dead, "env", "x.py"), 0);
    // A build killed outright, with a bundled Python's staging beside its scratch.
    const scratch = join(
      cache,
      "envs",
      `.${"k".repeat(32)}.999999999.0a0b0c0d.tmp.partial-1a2b3c4d`,
    );
    make(join(scratch, "bin", "python3"), 0);
    // Left an hour ago: a fresh one might be another machine's build in progress.
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(scratch, hourAgo, hourAgo);
    const recent = join(cache, "envs", `.${"r".repeat(32)}.999999999.0a0b0c0d.tmp`);
    make(join(recent, "x"), 0);

    const removed = await pruneEverything(0);
    const kinds = removed.map((r) => `${r.kind}:${r.path.slice(cache.length + 1)}`).sort();
    assert.deepEqual(kinds, [
      `env:envs/${"n".repeat(32)}`,
      `partial:${dead.slice(cache.length + 1)}`,
      `partial:${scratch.slice(cache.length + 1)}`,
    ]);
    assert.ok(existsSync(used) && existsSync(live) && existsSync(recent));
    child.kill("SIGKILL");
    await new Promise((go) => child.once("exit", go));
    // Its user file goes with it, and then so may what it used.
    const after = await pruneEverything(0);
    assert.deepEqual(
      after.map((r) => r.kind),
      ["env"],
    );
    assert.ok(!existsSync(used));
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test("a dry run leaves even a dead user's registration", async () => {
  const cache = tempDir("pyferry-prune-dry-");
  process.env.PYFERRY_CACHE_DIR = cache;
  try {
    // Killed outright: its registration stays behind.
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { useCache } = await import(${JSON.stringify(new URL("../../../src/util/cache-users.js", import.meta.url).href)});
         useCache(${JSON.stringify(cache)}); console.log("ready"); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((go) => child.stdout.once("data", () => go()));
    child.kill("SIGKILL");
    await new Promise((go) => child.once("exit", go));
    const users = () => readdirSync(join(cache, "users"));
    assert.equal(users().length, 1);
    await pruneEverything(0, true);
    assert.equal(users().length, 1, "a dry run removed a registration");
    await pruneEverything(0);
    assert.deepEqual(users(), []);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
