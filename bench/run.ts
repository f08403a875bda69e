/**
 * `npm run bench:run`: what `pyferry run SCRIPT` adds, once its environment is built and its
 * record is fresh, to running the same script with the environment's own interpreter. pyferry
 * is driven through its CLI with its cache in a temporary folder (PYFERRY_CACHE_DIR). The
 * tables go to stdout; progress goes to stderr.
 *
 * Environment: PYFERRY_BENCH_RUNS (warm runs of each command, default 20),
 * PYFERRY_BENCH_KEEP=1 (keep the temporary folder and print where it is).
 */
import { spawnSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BenchFailure, envCount, median, progress, runBench } from "./common.js";
import { formatTable } from "./table.js";

const PYFERRY = fileURLToPath(new URL("../../bin/pyferry.js", import.meta.url));
const HELLO = fileURLToPath(new URL("../../examples/hello", import.meta.url));
/** The most a warm `pyferry run` may add to plain `python SCRIPT`, at the median. */
const TARGET_ADDED_MS = 100;

interface Command {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Run to completion; milliseconds of wall time and stdout. A failure stops the benchmark. */
function timed(c: Command): { ms: number; stdout: string } {
  const started = performance.now();
  const r = spawnSync(c.file, c.args, { encoding: "utf8", env: c.env, cwd: c.cwd });
  const ms = performance.now() - started;
  if (r.error || r.status !== 0) {
    const what = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
    const tail = (r.stderr ?? "").trim().split("\n").slice(-30).join("\n");
    throw new BenchFailure(`${[c.file, ...c.args].join(" ")} failed (${what}):\n${tail}`);
  }
  return { ms, stdout: r.stdout };
}

function sorted(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Nearest-rank 90th percentile. */
function p90(values: number[]): number {
  const s = sorted(values);
  return s[Math.max(0, Math.ceil(0.9 * s.length) - 1)] as number;
}

function ms(n: number): string {
  return n.toFixed(0);
}

function signedMs(n: number): string {
  return `${n >= 0 ? "+" : ""}${n.toFixed(0)}`;
}

interface ScriptResult {
  label: string;
  firstRunMs: number;
  python: string;
  plain: number[];
  pyferry: number[];
}

/** The run records pyferry has written, by file name, with their modification times. */
function records(cache: string): Map<string, number> {
  const dir = join(cache, "runs");
  const found = new Map<string, number>();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return found;
  }
  for (const n of names) if (n.endsWith(".json")) found.set(n, statSync(join(dir, n)).mtimeMs);
  return found;
}

/** One script: a cold first `pyferry run`, then warm runs of both commands, alternating. */
function benchScript(label: string, script: string, cache: string, runs: number): ScriptResult {
  const env: NodeJS.ProcessEnv = { ...process.env, PYFERRY_CACHE_DIR: cache, NO_COLOR: "1" };
  const cwd = dirname(script);
  const viaPyferry: Command = { file: process.execPath, args: [PYFERRY, "run", script], env, cwd };

  progress(`${label}: first pyferry run (analyze, lock, build)`);
  const before = records(cache);
  const first = timed(viaPyferry);
  const added = [...records(cache)].filter(([n]) => !before.has(n));
  if (added.length !== 1) {
    throw new BenchFailure(
      `The first run of ${script} left ${added.length} new run records, not 1.`,
    );
  }
  const [recordName, recordMtime] = added[0] as [string, number];
  const record = JSON.parse(readFileSync(join(cache, "runs", recordName), "utf8")) as {
    python?: unknown;
  };
  if (typeof record.python !== "string") {
    throw new BenchFailure(`The run record ${recordName} has no python field.`);
  }
  const plain: Command = { file: record.python, args: [script], env, cwd };
  const envsBefore = readdirSync(join(cache, "envs")).length;

  // Untimed: both commands once more, so the first timed run of either finds warm OS caches.
  const expected = timed(plain).stdout;
  if (timed(viaPyferry).stdout !== expected || first.stdout !== expected) {
    throw new BenchFailure(`pyferry run ${script} printed something else than plain python did.`);
  }

  progress(`${label}: ${runs} warm runs of each command, alternating`);
  const result: ScriptResult = {
    label,
    firstRunMs: first.ms,
    python: record.python,
    plain: [],
    pyferry: [],
  };
  for (let i = 0; i < runs; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order: [Command, number[]][] = [
      [plain, result.plain],
      [viaPyferry, result.pyferry],
    ];
    if (i % 2 === 1) order.reverse();
    for (const [command, into] of order) {
      const r = timed(command);
      if (r.stdout !== expected) {
        throw new BenchFailure(`Run ${i + 1} of ${script} printed otherwise.`);
      }
      into.push(r.ms);
    }
  }
  // A warm run must not have rebuilt anything: same record, no new environment.
  if (records(cache).get(recordName) !== recordMtime) {
    throw new BenchFailure(
      `pyferry rewrote its run record for ${script}: a warm run was not warm.`,
    );
  }
  if (readdirSync(join(cache, "envs")).length !== envsBefore) {
    throw new BenchFailure(`pyferry built another environment during the warm runs of ${script}.`);
  }
  return result;
}

interface Reference {
  label: string;
  command: Command;
  times: number[];
}

/** Where a warm run's time goes: node's own start-up, and pyferry's CLI without Python. */
function references(trivial: string, python: string, cache: string, runs: number): Reference[] {
  const env: NodeJS.ProcessEnv = { ...process.env, PYFERRY_CACHE_DIR: cache, NO_COLOR: "1" };
  const cwd = dirname(trivial);
  const name = basename(trivial);
  // The least any Node launcher can cost: start node, spawn the script's Python, wait.
  const spawnOnly = `require("node:child_process").spawnSync(${JSON.stringify(python)}, ${JSON.stringify([trivial])}, { stdio: "inherit" })`;
  const node = (label: string, args: string[], e: NodeJS.ProcessEnv): Reference => ({
    label,
    command: { file: process.execPath, args, env: e, cwd },
    times: [],
  });
  const refs: Reference[] = [
    node("node -e 0", ["-e", "0"], env),
    node(`node spawning python ${name} (a floor for any Node launcher)`, ["-e", spawnOnly], env),
    node("pyferry --version (loads the CLI, runs no Python)", [PYFERRY, "--version"], env),
  ];
  // Node reads every certificate in NODE_EXTRA_CA_CERTS at start-up, before any code runs.
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const bare = { ...env };
    delete bare.NODE_EXTRA_CA_CERTS;
    const without = ", without NODE_EXTRA_CA_CERTS";
    refs.push(
      node(`node -e 0${without}`, ["-e", "0"], bare),
      node(`node spawning python ${name}${without}`, ["-e", spawnOnly], bare),
      node(`pyferry run ${name}${without}`, [PYFERRY, "run", trivial], bare),
    );
  }
  progress(`reference: ${runs} runs of ${refs.length} commands, round robin`);
  for (const r of refs) timed(r.command);
  for (let i = 0; i < runs; i++) for (const r of refs) r.times.push(timed(r.command).ms);
  return refs;
}

function main(): string {
  const runs = envCount("PYFERRY_BENCH_RUNS", 20);
  const w = mkdtempSync(join(tmpdir(), "pyferry-bench-run-"));
  const cache = join(w, "cache");
  try {
    // Copies: the repo's example is edited by others, and an edit mid-benchmark would make a
    // warm run cold; Python's __pycache__ also lands in the copy, not in the repo.
    const hello = join(w, "hello");
    cpSync(HELLO, hello, { recursive: true, filter: (src) => basename(src) !== "__pycache__" });
    const trivial = join(w, "trivial", "hi.py");
    mkdirSync(dirname(trivial));
    writeFileSync(trivial, 'print("hi")\n');

    const load = loadavg()[0] ?? 0;
    const results = [
      benchScript(`trivial (print("hi"))`, trivial, cache, runs),
      benchScript("examples/hello/hello.py", join(hello, "hello.py"), cache, runs),
    ];
    const python = results[0]?.python ?? "python3";
    const refs = references(trivial, python, cache, runs);
    const pythonVersion = spawnSync(python, ["-VV"], { encoding: "utf8" }).stdout ?? "";
    // The env's bin/python is a symlink into the base interpreter; the env goes with `w`.
    const base = realpathSync(python);

    const table = formatTable(
      [
        { header: "script" },
        { header: "first run s", align: "right" },
        { header: "python median", align: "right" },
        { header: "python p90", align: "right" },
        { header: "pyferry median", align: "right" },
        { header: "pyferry p90", align: "right" },
        { header: "added median", align: "right" },
        { header: "added p90", align: "right" },
      ],
      results.map((r) => [
        r.label,
        (r.firstRunMs / 1000).toFixed(2),
        ms(median(r.plain)),
        ms(p90(r.plain)),
        ms(median(r.pyferry)),
        ms(p90(r.pyferry)),
        signedMs(median(r.pyferry) - median(r.plain)),
        signedMs(p90(r.pyferry) - p90(r.plain)),
      ]),
    );
    const refTable = formatTable(
      [
        { header: "reference command" },
        { header: "median", align: "right" },
        { header: "p90", align: "right" },
      ],
      refs.map((r) => [r.label, ms(median(r.times)), ms(p90(r.times))]),
    );
    const worst = Math.max(...results.map((r) => median(r.pyferry) - median(r.plain)));
    const verdict = worst < TARGET_ADDED_MS ? "met" : "NOT met";
    return [
      `Run overhead: \`pyferry run SCRIPT\` with a fresh run record vs \`<env>/bin/python SCRIPT\` ` +
        `(the interpreter from the run record), ${runs} warm runs each, alternating; wall ms.`,
      "",
      table,
      "",
      `Target: a warm pyferry run adds < ${TARGET_ADDED_MS} ms at the median: ${verdict} ` +
        `(worst ${ms(worst)} ms).`,
      "",
      refTable,
      "",
      "first run: the one cold `pyferry run` (analyze, lock, build the environment, run), not " +
        "part of the warm figures. Every warm run's output matched plain python's, and pyferry " +
        "rewrote no run record and built no environment during them.",
      `Python: the environment's bin/python -> ${base} (${pythonVersion.trim().split("\n")[0]}); ` +
        `${process.version}; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? "set" : "unset"}.`,
      ...(process.env.PYTHONDONTWRITEBYTECODE
        ? [
            "PYTHONDONTWRITEBYTECODE is set: every run compiles the modules it imports (numpy for " +
              "hello.py) from source, in both columns alike; the added time is unaffected.",
          ]
        : []),
      `Machine: ${availableParallelism()} cores, load average ${load.toFixed(2)} at the start and ` +
        `${(loadavg()[0] ?? 0).toFixed(2)} at the end.`,
    ].join("\n");
  } finally {
    if (process.env.PYFERRY_BENCH_KEEP === "1") progress(`kept ${w}`);
    else rmSync(w, { recursive: true, force: true });
  }
}

runBench("run", main);
