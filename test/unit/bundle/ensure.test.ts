import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { acquireLock } from "../../../src/bundle/lock.js";
import { packBundle } from "../../../src/bundle/pack.js";
import { COMPLETE_MARKER, ensureUnpacked } from "../../../src/bundle/unpack.js";
import { CHILD, fakeEnv, snapshot, testHead } from "../../support/bundle-child.js";
import { tempDir } from "../../support/temp.js";

/** Folders of hundreds of MB are made here: remove them when the file's tests are done. */
const scratch: string[] = [];
const temp = (prefix: string): string => {
  const dir = tempDir(prefix);
  scratch.push(dir);
  return dir;
};
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** A bundle whose app/ holds `count` random files of `size` bytes; also what app/ must hold. */
async function randomBundle(count: number, size: number) {
  const src = temp("pyferry-random-");
  for (let i = 0; i < count; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(size));
  const archive = join(temp("pyferry-random-out-"), "big.tar.gz");
  const r = await packBundle({
    envDir: fakeEnv(),
    appFiles: [{ source: src, dest: "data" }],
    manifest: testHead(),
    output: archive,
    level: 1,
  });
  return { archive, sha256: r.sha256, app: snapshot(src) };
}

function startEnsure(archive: string, cache: string): ChildProcess {
  return spawn(process.execPath, [CHILD, "ensure", archive], {
    env: { ...process.env, PYFERRY_CACHE_DIR: cache },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function finish(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d;
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d;
  });
  return new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, out, err })),
  );
}

const newCache = () => temp("pyferry-bundle-cache-");
const bundlesIn = (cache: string) => {
  const root = join(cache, "bundles");
  return existsSync(root) ? readdirSync(root) : [];
};

describe("ensureUnpacked across processes", () => {
  test("16 processes at once: exactly one unpacks, all get the same complete tree", async () => {
    const { archive, sha256, app } = await randomBundle(200, 200_000);
    const cache = newCache();
    const results = await Promise.all(
      Array.from({ length: 16 }, () => finish(startEnsure(archive, cache))),
    );
    for (const r of results) assert.equal(r.code, 0, r.err);
    const parsed = results.map((r) => JSON.parse(r.out) as { dir: string; unpacked: boolean });
    assert.equal(parsed.filter((p) => p.unpacked).length, 1, JSON.stringify(parsed));
    const dir = join(cache, "bundles", sha256);
    assert.ok(parsed.every((p) => p.dir === dir));
    assert.deepEqual(snapshot(join(dir, "app", "data")), app);
    assert.deepEqual(bundlesIn(cache), [sha256], "no lock or partial tree is left");
  });

  test("kill -9 during unpacking never leaves a tree that gets used; the next call succeeds", async (t) => {
    const { archive, sha256, app } = await randomBundle(100, 2_000_000);
    // How long one whole run takes here, to aim the kills inside it.
    const t0 = performance.now();
    const first = await finish(startEnsure(archive, newCache()));
    const whole = performance.now() - t0;
    assert.equal(first.code, 0, first.err);

    let cache = newCache();
    let interrupted = 0;
    let attempt = 0;
    for (; attempt < 20 && interrupted < 3; attempt++) {
      const child = startEnsure(archive, cache);
      const done = finish(child);
      await sleep(randomInt(Math.floor(whole * 0.3), Math.floor(whole * 0.95)));
      child.kill("SIGKILL");
      await done;
      const dir = join(cache, "bundles", sha256);
      if (existsSync(dir)) {
        // Killed after publishing: then it must be whole.
        assert.ok(existsSync(join(dir, COMPLETE_MARKER)), "a published tree has its marker");
        assert.deepEqual(snapshot(join(dir, "app", "data")), app);
        cache = newCache();
      } else if (bundlesIn(cache).some((n) => n.includes(".partial."))) interrupted++;
    }
    t.diagnostic(
      `${attempt} kills, ${interrupted} mid-unpack; one whole run takes ${Math.round(whole)} ms`,
    );
    assert.ok(interrupted > 0, "at least one kill landed mid-unpack");
    const next = await finish(startEnsure(archive, cache));
    assert.equal(next.code, 0, next.err);
    const dir = join(cache, "bundles", sha256);
    assert.deepEqual(JSON.parse(next.out).unpacked, true);
    assert.deepEqual(snapshot(join(dir, "app", "data")), app);
    // The dead unpacker's partial tree and lock are gone.
    assert.deepEqual(bundlesIn(cache), [sha256]);
  });
});

describe("ensureUnpacked in one process", () => {
  const env = fakeEnv();
  const bundle = async () => {
    const archive = join(tempDir("pyferry-small-"), "s.tar.gz");
    const r = await packBundle({
      envDir: env,
      appFiles: [],
      manifest: testHead(),
      output: archive,
    });
    return { archive, sha256: r.sha256 };
  };
  const withCache = async <T>(cache: string, fn: () => Promise<T>): Promise<T> => {
    const before = process.env.PYFERRY_CACHE_DIR;
    process.env.PYFERRY_CACHE_DIR = cache;
    try {
      return await fn();
    } finally {
      if (before === undefined) delete process.env.PYFERRY_CACHE_DIR;
      else process.env.PYFERRY_CACHE_DIR = before;
    }
  };

  test("the second call reuses the tree without unpacking", async () => {
    const { archive, sha256 } = await bundle();
    const cache = newCache();
    const a = await withCache(cache, () => ensureUnpacked(archive));
    assert.equal(a.dir, join(cache, "bundles", sha256));
    assert.equal(a.unpacked, true);
    assert.equal(a.manifest.name, "demo");
    writeFileSync(join(a.dir, "sentinel"), "");
    const b = await withCache(cache, () => ensureUnpacked(archive));
    assert.equal(b.unpacked, false);
    assert.deepEqual(b.manifest, a.manifest);
    assert.ok(existsSync(join(b.dir, "sentinel")));
    // Damage to a finished tree is reported, not repaired under tasks that may be using it.
    rmSync(join(a.dir, "manifest.json"));
    await assert.rejects(
      withCache(cache, () => ensureUnpacked(archive)),
      /is damaged \(ENOENT\)/,
    );
    assert.ok(existsSync(join(b.dir, "sentinel")));
  });

  test("a tree without its marker is replaced, not used", async () => {
    const { archive, sha256 } = await bundle();
    const cache = newCache();
    const dir = join(cache, "bundles", sha256);
    mkdirSync(join(dir, "env"), { recursive: true });
    writeFileSync(join(dir, "env", "half-written"), "");
    const r = await withCache(cache, () => ensureUnpacked(archive));
    assert.equal(r.unpacked, true);
    assert.ok(!existsSync(join(dir, "env", "half-written")));
    assert.ok(existsSync(join(dir, "env", "pyvenv.cfg")));
  });

  test("locks of dead owners, and untouched ones, are broken; live ones are waited for", async () => {
    const { archive, sha256 } = await bundle();
    const dead = spawnSync(process.execPath, ["-e", "process.exit(0)"]).pid;
    const owner = (pid: number) => JSON.stringify({ host: hostname(), pid, token: "t" });

    let cache = newCache();
    let lock = join(cache, "bundles", `${sha256}.lock`);
    mkdirSync(join(cache, "bundles"));
    writeFileSync(lock, owner(dead));
    let t = performance.now();
    assert.equal((await withCache(cache, () => ensureUnpacked(archive))).unpacked, true);
    assert.ok(performance.now() - t < 5_000);
    assert.deepEqual(bundlesIn(cache), [sha256]);

    // pid 1 is alive, but nobody has touched the lock for two minutes.
    cache = newCache();
    lock = join(cache, "bundles", `${sha256}.lock`);
    mkdirSync(join(cache, "bundles"));
    writeFileSync(lock, owner(1));
    const old = new Date(Date.now() - 120_000);
    utimesSync(lock, old, old);
    assert.equal((await withCache(cache, () => ensureUnpacked(archive))).unpacked, true);

    cache = newCache();
    mkdirSync(join(cache, "bundles"));
    const held = await acquireLock(join(cache, "bundles", `${sha256}.lock`));
    assert.ok(held);
    t = performance.now();
    const waiting = withCache(cache, () => ensureUnpacked(archive));
    await sleep(400);
    await held.release();
    assert.equal((await waiting).unpacked, true);
    assert.ok(performance.now() - t >= 400, "it waited for the holder");
  });
});
