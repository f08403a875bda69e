/**
 * Differential test: pyferry's resolver against pip's, on real requirement lists from the
 * configured index, for the local python3.
 *
 * Making the comparison fair:
 * - pip runs with --ignore-installed, otherwise it prefers versions already installed here.
 * - pip merges every source's files for a project; pyferry by default uses only the first
 *   source that has the project (no dependency confusion), so the comparison runs pyferry
 *   with allowMixedSources. Where the strict rule gives another answer it is reported.
 * - Both take the newest version that works. Where only backtracking finds an answer, two
 *   correct resolvers may settle on different ones (they explore in different orders); none
 *   of the lists here needs that, so the sets must be equal.
 * - pip's default pypi.org is unreachable here; --retries 0 --timeout 2 make that cost
 *   nothing, as pyferry's skipping of unreachable sources does.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadPipSettings } from "../../src/index/pip-config.js";
import { findInterpreter, probeInterpreter } from "../../src/python/interpreter.js";
import { parseRequirement } from "../../src/python/requirement.js";
import { type Target, targetFromInterpreter } from "../../src/python/target.js";
import { lockFromResolution, lockToml, readLock } from "../../src/resolve/lock.js";
import { IndexProvider, sourcesFromSettings } from "../../src/resolve/provider.js";
import { type Resolution, ResolutionImpossible, resolve } from "../../src/resolve/resolver.js";
import { tempDir } from "../support/temp.js";

const work = tempDir("pyferry-vs-pip-");
// A private metadata cache: the first pyferry run of each list is cold, the second warm.
process.env.PYFERRY_CACHE_DIR = join(work, "cache");
after(() => rmSync(work, { recursive: true, force: true }));

const LISTS: string[][] = [
  ["requests"],
  ["requests[socks]"],
  ["flask"],
  ["django"],
  ["fastapi"],
  ["pandas"],
  ["scikit-learn"],
  ["matplotlib"],
  ["seaborn"],
  ["boto3"],
  ["jupyterlab"],
  ["transformers"],
  ["torch"],
  ["numpy<2"],
  ["httpx", "pydantic"],
  ["uvicorn[standard]"],
  ["aiohttp"],
];
/** Lists that cannot be resolved here; both must refuse them. */
const IMPOSSIBLE: string[][] = [["flask<3", "werkzeug<3"]];

let python: string;
let target: Target;
const settings = loadPipSettings();

type Pins = Record<string, string>;

interface PipResult {
  pins?: Pins;
  error?: string;
  ms: number;
}

function pipResolve(reqs: string[]): Promise<PipResult> {
  const report = join(work, `report-${Math.random().toString(36).slice(2)}.json`);
  const args = [
    ...["-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"],
    ...["--report", report, "--retries", "0", "--timeout", "2", "--disable-pip-version-check"],
    ...reqs,
  ];
  const start = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(python, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", fail);
    child.on("close", (code) => {
      const ms = performance.now() - start;
      if (code !== 0) {
        const lines = stderr.split("\n").filter((l) => l.startsWith("ERROR"));
        done({ error: lines.join(" ") || `pip exited with ${code}`, ms });
        return;
      }
      const data = JSON.parse(readFileSync(report, "utf8")) as {
        install: { metadata: { name: string; version: string } }[];
      };
      const pins: Pins = {};
      for (const i of data.install) pins[normalize(i.metadata.name)] = i.metadata.version;
      done({ pins, ms });
    });
  });
}

function normalize(name: string): string {
  return name.replace(/[-_.]+/g, "-").toLowerCase();
}

async function ours(
  reqs: string[],
  mixed: boolean,
): Promise<{ pins?: Pins; resolution?: Resolution; error?: string; ms: number }> {
  const start = performance.now();
  try {
    const res = await resolve({
      requirements: reqs.map(parseRequirement),
      target,
      settings,
      allowMixedSources: mixed,
    });
    return {
      pins: Object.fromEntries(res.packages.map((p) => [p.name, p.version])),
      resolution: res,
      ms: performance.now() - start,
    };
  } catch (err) {
    if (!(err instanceof ResolutionImpossible)) throw err;
    return { error: err.message, ms: performance.now() - start };
  }
}

function diff(a: Pins, b: Pins): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names
    .filter((n) => a[n] !== b[n])
    .map((n) => `${n}: pyferry ${a[n] ?? "-"}, pip ${b[n] ?? "-"}`);
}

before(async () => {
  python = await findInterpreter();
  target = targetFromInterpreter(await probeInterpreter(python));
});

test("pyferry resolves real requirement lists to exactly what pip installs", async (t) => {
  // Lists whose root projects the index lacks (on another machine) are left out, not failed.
  const probe = new IndexProvider(target, {
    sources: sourcesFromSettings(settings),
    allowMixedSources: true,
    http: { timeoutMs: 2000 },
  });
  const present: string[][] = [];
  for (const reqs of LISTS) {
    const found = await Promise.all(
      reqs.map(async (r) => (await probe.candidates(parseRequirement(r).name)).length > 0),
    );
    if (found.every(Boolean)) present.push(reqs);
    else t.diagnostic(`not on the index, skipped: ${reqs.join(" ")}`);
  }
  assert.ok(present.length >= 12, `only ${present.length} requirement lists are on the index`);

  let pipTotal = 0;
  let coldTotal = 0;
  let warmTotal = 0;
  const mismatches: string[] = [];
  for (const reqs of present) {
    const label = reqs.join(" ");
    const pip = await pipResolve(reqs);
    const cold = await ours(reqs, true);
    const warm = await ours(reqs, true);
    pipTotal += pip.ms;
    coldTotal += cold.ms;
    warmTotal += warm.ms;
    const count = Object.keys(cold.pins ?? {}).length;
    // One line per list: pip's time, and pyferry's first run (cold metadata cache) and second.
    t.diagnostic(
      `${label.padEnd(20)} ${String(count).padStart(3)} packages  pip ${pip.ms.toFixed(0).padStart(5)} ms  pyferry ${cold.ms.toFixed(0).padStart(4)} ms cold, ${warm.ms.toFixed(0).padStart(4)} ms warm`,
    );
    if (pip.error || !pip.pins) {
      mismatches.push(`${label}: pip failed (${pip.error}) but pyferry resolved it`);
      continue;
    }
    if (cold.error || !cold.pins) {
      mismatches.push(`${label}: pyferry failed (${cold.error}) but pip resolved it`);
      continue;
    }
    const d = diff(cold.pins, pip.pins);
    if (d.length > 0) mismatches.push(`${label}: ${d.join("; ")}`);
    assert.deepEqual(warm.pins, cold.pins, `${label}: a warm cache changed the answer`);
    // The lock of a real resolution reads back as written, with a sha256 for every file.
    const resolution = cold.resolution as Resolution;
    const text = lockToml(resolution, { lockDir: work });
    assert.equal(lockToml(warm.resolution as Resolution, { lockDir: work }), text);
    assert.deepEqual(
      readLock(text, join(work, "pylock.toml")),
      lockFromResolution(resolution, { lockDir: work }),
    );

    const strict = await ours(reqs, false);
    if (strict.error) t.diagnostic(`${label}, first source only: ${strict.error}`);
    else if (strict.pins && diff(strict.pins, cold.pins).length > 0) {
      t.diagnostic(`${label}, first source only: ${diff(strict.pins, cold.pins).join("; ")}`);
    }
  }
  t.diagnostic(
    `total: pip ${pipTotal.toFixed(0)} ms, pyferry ${coldTotal.toFixed(0)} ms cold, ${warmTotal.toFixed(0)} ms warm`,
  );
  assert.deepEqual(mismatches, []);
});

test("pyferry refuses what pip refuses, and says why", async () => {
  for (const reqs of IMPOSSIBLE) {
    const pip = await pipResolve(reqs);
    assert.ok(pip.error, `pip resolved ${reqs.join(" ")}`);
    const ours_ = await ours(reqs, true);
    assert.ok(ours_.error, `pyferry resolved ${reqs.join(" ")}`);
    // The explanation names a requirement that cannot be met.
    assert.match(ours_.error, /flask<3|werkzeug<3/);
  }
});
