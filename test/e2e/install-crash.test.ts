/**
 * Crash safety: a child process installing pandas, scikit-learn and matplotlib is killed with
 * SIGKILL at random moments. After every kill the cache holds only complete, correct published
 * entries (and leftovers under names no reader ever opens), nothing was written to the system's
 * temporary directory, and the next install into the same environment succeeds.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { cachePaths, pruneCache, UNPACKED_MARKER } from "../../src/install/cache.js";
import type { UnpackedFile } from "../../src/install/wheel-archive.js";
import { PIP_FLAGS, type Pinned, pinWheels, testPython } from "../support/install-child.js";
import { tempDir } from "../support/temp.js";

const CHILD = fileURLToPath(new URL("../support/install-child.js", import.meta.url));
const PYTHON = testPython();
const work = tempDir("pyferry-crash-");
after(() => {
  spawnSync("chmod", ["-R", "u+w", work]);
  rmSync(work, { recursive: true, force: true });
});
const cache = join(work, "cache");
const env = join(work, "env");
/** The child's TMPDIR: pyferry must never write there. */
const childTmp = join(work, "tmp");

let pinned: Pinned[] = [];
before(async () => {
  pinned = await pinWheels(PYTHON, ["pandas", "scikit-learn", "matplotlib"]);
  mkdirSync(childTmp);
});

/** Names of the cache's temporary entries: the writer's pid, a random part, never published. */
const TEMP = [
  /^\.tmp-[0-9a-f]{16}-.+\.\d+-[0-9a-f]{12}$/,
  /^\.trash-\d+-[0-9a-f]{12}$/,
  /^\..+\.\d+-[0-9a-f]{12}\.part$/,
];

function runChild(killAfterMs?: number): Promise<{ code: number | null; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, "install", env, PYTHON], {
      env: { ...process.env, PYFERRY_CACHE_DIR: cache, TMPDIR: childTmp },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.end(JSON.stringify(pinned.map((p) => p.file)));
    const timer =
      killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && signal !== "SIGKILL") assert.fail(`the child failed: ${stderr}`);
      resolve({ code, killed: signal === "SIGKILL" });
    });
  });
}

function sha256(data: Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

interface Audit {
  wheels: number;
  trees: number;
  leftovers: string[];
}

/** Every published entry complete and correct; everything else a temporary name. */
function auditCache(sampleEvery: number): Audit {
  const paths = cachePaths(cache);
  const audit: Audit = { wheels: 0, trees: 0, leftovers: [] };
  const leftover = (dir: string, name: string) => {
    assert.ok(
      TEMP.some((re) => re.test(name)),
      `${join(dir, name)} is neither published nor a temporary`,
    );
    audit.leftovers.push(join(dir, name));
  };
  for (const sha of existsSync(paths.wheels) ? readdirSync(paths.wheels) : []) {
    for (const name of readdirSync(join(paths.wheels, sha))) {
      if (name.startsWith(".")) {
        leftover(join(paths.wheels, sha), name);
        continue;
      }
      const data = readFileSync(join(paths.wheels, sha, name));
      assert.equal(sha256(data).toString("hex"), sha, name);
      audit.wheels++;
    }
  }
  for (const name of existsSync(paths.unpacked) ? readdirSync(paths.unpacked) : []) {
    if (name.startsWith(".")) {
      leftover(paths.unpacked, name);
      continue;
    }
    const dir = join(paths.unpacked, name);
    const marker = JSON.parse(readFileSync(join(dir, UNPACKED_MARKER), "utf8")) as {
      sha256: string;
      files: UnpackedFile[];
    };
    assert.equal(marker.sha256, name);
    marker.files.forEach((f, i) => {
      const path = join(dir, f.path);
      assert.equal(statSync(path).size, f.size, path);
      if (i % sampleEvery === 0) {
        assert.equal(`sha256=${sha256(readFileSync(path)).toString("base64url")}`, f.hash, path);
      }
    });
    audit.trees++;
  }
  return audit;
}

function importable(python: string): string {
  const code = "import pandas, sklearn, matplotlib; print(pandas.__version__, sklearn.__version__)";
  const r = spawnSync(python, ["-c", code], {
    encoding: "utf8",
    env: { ...process.env, MPLBACKEND: "Agg" },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("kill -9 at random moments leaves a cache of complete entries; the next install works", async () => {
  // Early kills land while wheels are fetched and unpacked; each run gets further, as what
  // was published stays. Then, with the cache full, kills land in the install itself.
  const kills: string[] = [];
  const kill = async (at: number) => {
    const r = await runChild(at);
    kills.push(r.killed ? `${at.toFixed(0)} ms` : `finished before ${at.toFixed(0)} ms`);
    auditCache(7);
    assert.deepEqual(readdirSync(childTmp), [], "nothing in the child's TMPDIR");
  };
  for (const [lo, hi] of [
    [200, 1500],
    [1500, 3000],
    [3000, 6000],
  ] as const) {
    await kill(lo + Math.random() * (hi - lo));
  }
  const start = performance.now();
  assert.equal((await runChild()).code, 0);
  const warm = performance.now() - start;
  // Well inside the warm time, which varies with the machine's load.
  for (let i = 0; i < 3; i++) await kill(100 + Math.random() * 0.5 * warm);
  const done = await runChild();
  assert.equal(done.code, 0);
  const audit = auditCache(1);
  // The wheels come from a file: index: verified where they are, never copied into wheels/.
  assert.equal(audit.wheels, 0);
  assert.equal(audit.trees, pinned.length);
  assert.deepEqual(readdirSync(childTmp), []);
  console.log(
    `kills at: ${kills.join(", ")}; a full warm run took ${warm.toFixed(0)} ms; ${audit.leftovers.length} leftovers of killed writers`,
  );

  // The environment the killed runs left behind was completed by the last one.
  const python = join(env, "bin", "python");
  assert.match(importable(python), /^\d/);
  const list = spawnSync(
    PYTHON,
    ["-m", "pip", "--python", python, "list", "--format=json", ...PIP_FLAGS],
    {
      encoding: "utf8",
    },
  );
  assert.equal(list.status, 0, list.stderr);
  const names = (JSON.parse(list.stdout) as { name: string; version: string }[])
    .map((d) => `${d.name.toLowerCase()}==${d.version}`)
    .sort();
  assert.deepEqual(names, pinned.map((p) => `${p.name.toLowerCase()}==${p.version}`).sort());
  const check = spawnSync(PYTHON, ["-m", "pip", "--python", python, "check", ...PIP_FLAGS], {
    encoding: "utf8",
  });
  assert.equal(check.status, 0, check.stdout + check.stderr);

  // Leftovers of dead writers go at the next prune once they are a minute old; nothing else does.
  const old = new Date(Date.now() - 120_000);
  for (const path of audit.leftovers) utimesSync(path, old, old);
  const pruned = await pruneCache({ olderThanDays: 30, root: cache });
  assert.deepEqual(pruned.removed.map((r) => r.path).sort(), [...audit.leftovers].sort());
  const after = auditCache(50);
  assert.deepEqual(after.leftovers, []);
  assert.equal(after.trees, pinned.length);
});
