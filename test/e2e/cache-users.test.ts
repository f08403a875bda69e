/**
 * What a process leaves in the cache goes with it, whichever way it ends. Its registration as
 * a user (users/): a cold build that unpacks on threads, one stopped by SIGTERM, an exec whose
 * program dies of a signal; one left behind would keep what it used from every prune. Its
 * threads' half-unpacked wheels (unpacked/.tmp-*, tens of MB) when a signal stops it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { hostTag } from "../../src/util/pid.js";
import { REPO, runBin } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const work = tempDir("pyferry-users-");
const LOCK = join(work, "pylock.toml");
const BIN = join(REPO, "bin", "pyferry.js");

const users = (cache: string): string[] =>
  existsSync(join(cache, "users")) ? readdirSync(join(cache, "users")) : [];

before(() => {
  // Several big wheels: unpacked on worker threads.
  writeFileSync(join(work, "reqs.txt"), "pandas\nflask\nrequests\n");
  const r = runBin("pyferry", [
    "lock",
    "-r",
    join(work, "reqs.txt"),
    "-o",
    LOCK,
    "--python",
    "3.11",
  ]);
  assert.equal(r.status, 0, r.stderr);
});

test("a cold env create, its wheels unpacked on threads, leaves no registration", () => {
  const cache = tempDir("pyferry-users-cold-");
  const r = runBin("pyferry", ["env", "create", join(work, "cold"), "--lock", LOCK], {
    env: { PYFERRY_CACHE_DIR: cache },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readdirSync(join(cache, "unpacked")).length > 3);
  assert.deepEqual(users(cache), []);
});

test("an env create stopped by SIGTERM while unpacking leaves no registration", async () => {
  const cache = tempDir("pyferry-users-term-");
  const child = spawn(
    process.execPath,
    [BIN, "env", "create", join(work, "term"), "--lock", LOCK],
    {
      env: { ...process.env, PYFERRY_CACHE_DIR: cache },
      stdio: "ignore",
    },
  );
  const ended = new Promise<NodeJS.Signals | null>((go) => child.once("exit", (_, s) => go(s)));
  const unpacked = join(cache, "unpacked");
  const unpacking = () =>
    existsSync(unpacked) && readdirSync(unpacked).some((n) => n.startsWith(".tmp-"));
  for (let i = 0; i < 3000 && !unpacking(); i++) await sleep(5);
  assert.ok(unpacking(), "never saw an unpacking");
  child.kill("SIGTERM");
  assert.equal(await ended, "SIGTERM");
  assert.deepEqual(users(cache), []);
});

test("an exec whose program dies of a signal, or that is sent SIGTERM, leaves no registration", async () => {
  const cache = tempDir("pyferry-users-exec-");
  const app = tempDir("pyferry-users-app-");
  writeFileSync(
    join(app, "t.py"),
    "import os, signal, sys, time\nif sys.argv[1:] == ['self']: os.kill(os.getpid(), signal.SIGTERM)\nprint('ready', flush=True)\ntime.sleep(60)\n",
  );
  const archive = join(work, "t.tar.gz");
  const env = { PYFERRY_CACHE_DIR: cache };
  const packed = runBin(
    "pyferry",
    ["pack", join(app, "t.py"), "-o", archive, "--no-bundle-python"],
    {
      env,
    },
  );
  assert.equal(packed.status, 0, packed.stderr);

  const self = spawn(
    process.execPath,
    [BIN, "exec", archive, "--", "python", join(app, "t.py"), "self"],
    {
      env: { ...process.env, ...env },
      stdio: "ignore",
    },
  );
  const selfEnd = await new Promise((go) => self.once("exit", (_, s) => go(s)));
  assert.equal(selfEnd, "SIGTERM");
  assert.deepEqual(users(cache), []);

  const term = spawn(process.execPath, [BIN, "exec", archive], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((go) => term.stdout.once("data", go));
  assert.equal(users(cache).length, 1, "a running exec is registered");
  term.kill("SIGTERM");
  assert.equal(await new Promise((go) => term.once("exit", (_, s) => go(s))), "SIGTERM");
  assert.deepEqual(users(cache), []);
});

test("a cold env create stopped while unpacking leaves no half-unpacked wheels; the next removes a dead one's", async () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const cache = tempDir("pyferry-staging-");
    const child = spawn(
      process.execPath,
      [BIN, "env", "create", join(work, signal), "--lock", LOCK],
      {
        env: { ...process.env, PYFERRY_CACHE_DIR: cache },
        stdio: "ignore",
      },
    );
    const ended = new Promise<NodeJS.Signals | null>((go) => child.once("exit", (_, s) => go(s)));
    const unpacked = join(cache, "unpacked");
    const staging = () =>
      existsSync(unpacked) ? readdirSync(unpacked).filter((n) => n.startsWith(".tmp-")) : [];
    for (let i = 0; i < 3000 && staging().length === 0; i++) await sleep(5);
    assert.ok(staging().length > 0, "never saw an unpacking");
    child.kill(signal);
    assert.equal(await ended, signal);
    assert.deepEqual(staging(), [], signal);
  }

  // Killed outright: a later unpack on this host removes it; another host's may be at work.
  const cache = tempDir("pyferry-staging-dead-");
  const dead = join(cache, "unpacked", `.tmp-0123456789abcdef-${hostTag()}.999999999-aabbccddeeff`);
  const other = join(cache, "unpacked", ".tmp-0123456789abcdef-elsewhere.1-aabbccddeeff");
  for (const dir of [dead, other]) mkdirSync(join(dir, "pkg"), { recursive: true });
  const r = runBin("pyferry", ["env", "create", join(work, "after"), "--lock", LOCK], {
    env: { PYFERRY_CACHE_DIR: cache },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!existsSync(dead) && existsSync(other));
});
