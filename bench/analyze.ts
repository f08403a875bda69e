/**
 * `npm run bench:analyze`: how fast pyferry's scanner reads real Python next to CPython's own
 * ast module, and how well `analyze` recovers the runtime dependencies that wheels declare.
 * The two tables go to stdout; progress goes to stderr.
 *
 * Environment: PYFERRY_BENCH_WHEELS (wheels in the speed corpus, default 300),
 * PYFERRY_BENCH_PROJECTS (projects checked for accuracy, default 150, or "all"),
 * PYFERRY_BENCH_JSON (a file to write the per-project accuracy details to),
 * PYFERRY_BENCH_ONLY ("speed" or "accuracy": run one part).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { type AnalysisReport, analyze } from "../src/analyze/analyze.js";
import { type IndexSettings, loadPipSettings } from "../src/index/pip-config.js";
import { findInterpreter, probeInterpreter } from "../src/python/interpreter.js";
import { evaluateMarker, type MarkerEnvironment, parseMarker } from "../src/python/marker.js";
import { parseCoreMetadata } from "../src/python/metadata.js";
import { normalizeName } from "../src/python/names.js";
import { parseRequirement } from "../src/python/requirement.js";
import { extractWheels, indexWheels, pyFiles, python3, stdlibDir } from "../test/support/corpus.js";
import { envCount, progress } from "./common.js";
import { projectWheels, spread, unpackedPath, unpackWheels } from "./projects.js";
import { addCounts, emptyCounts, type ScanCounts, scanFiles } from "./scan-files.js";
import type { WorkerReply, WorkerRequest } from "./scan-worker.js";
import { formatTable } from "./table.js";

const AST_IMPORTS = fileURLToPath(new URL("../../bench/ast_imports.py", import.meta.url));
const WORKER = new URL("./scan-worker.js", import.meta.url);
/** pyferry's pool must scan at least this many times as many files per second as CPython. */
const TARGET_SPEEDUP = 5;
/** Files per message to a worker: large enough to make messaging cheap, small to balance. */
const BATCH = 128;
const MAX_MISS_ROWS = 40;

/** Like envCount, but "all" is allowed too. */
function envCountOrAll(name: string, fallback: number): number | "all" {
  return process.env[name] === "all" ? "all" : envCount(name, fallback);
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

// ---------------------------------------------------------------------------------------------
// 1. Speed

interface SpeedRow {
  engine: string;
  counts: ScanCounts;
  seconds: number;
}

/** Scan `files` with `workers` threads; batches go to whichever worker asks next. */
async function scanWithPool(files: string[], workers: number): Promise<ScanCounts> {
  const total = emptyCounts();
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const worker = new Worker(WORKER);
      const feed = () => {
        const batch = files.slice(next, next + BATCH);
        next += batch.length;
        worker.postMessage((batch.length > 0 ? batch : null) satisfies WorkerRequest);
      };
      worker.on("message", (reply: WorkerReply) => {
        addCounts(total, reply);
        feed();
      });
      worker.on("error", reject);
      worker.on("exit", (code) =>
        code === 0 ? resolve() : reject(new Error(`a scan worker exited with code ${code}`)),
      );
      feed();
    });
  await Promise.all(Array.from({ length: workers }, one));
  return total;
}

async function speed(): Promise<string> {
  const wheelCount = envCountOrAll("PYFERRY_BENCH_WHEELS", 300);
  progress("speed: collecting the corpus (python3's standard library + index wheels)");
  const stdlib = pyFiles(stdlibDir());
  const wheels = await indexWheels(wheelCount === "all" ? Number.MAX_SAFE_INTEGER : wheelCount);
  const wheelFiles = pyFiles(extractWheels(wheels));
  const files = [...stdlib, ...wheelFiles];

  // One read of everything first, so that both sides find the files in the OS cache.
  progress(`speed: warming the file cache (${files.length} files)`);
  let bytes = 0;
  for (const f of files) bytes += readFileSync(f).length;

  // Other work on the machine slows both sides and the pool most; say how busy it was.
  const load = loadavg()[0] ?? 0;
  progress("speed: CPython ast.parse + ast.walk, one process");
  const started = performance.now();
  const out = execFileSync(python3(), [AST_IMPORTS], {
    input: files.join("\n"),
    encoding: "utf8",
  });
  const withStartup = seconds(started);
  const cpython = JSON.parse(out) as ScanCounts & { seconds: number };

  progress("speed: pyferry, one thread");
  const single = emptyCounts();
  let t = performance.now();
  scanFiles(files, single);
  const singleSeconds = seconds(t);

  const workers = availableParallelism();
  progress(`speed: pyferry, ${workers} worker threads`);
  t = performance.now();
  // Worker start-up (module loading) is counted: it is part of what a real run pays.
  const pooled = await scanWithPool(files, workers);
  const pooledSeconds = seconds(t);

  const rows: SpeedRow[] = [
    { engine: "CPython ast (parse loop only)", counts: cpython, seconds: cpython.seconds },
    { engine: "CPython ast (with start-up)", counts: cpython, seconds: withStartup },
    { engine: "pyferry, 1 thread", counts: single, seconds: singleSeconds },
    { engine: `pyferry, ${workers} worker threads`, counts: pooled, seconds: pooledSeconds },
  ];
  const baseRate = cpython.files / cpython.seconds;
  const table = formatTable(
    [
      { header: "engine" },
      { header: "files", align: "right" },
      { header: "failed", align: "right" },
      { header: "imports", align: "right" },
      { header: "seconds", align: "right" },
      { header: "files/s", align: "right" },
      { header: "vs CPython", align: "right" },
    ],
    rows.map((r) => [
      r.engine,
      thousands(r.counts.files),
      thousands(r.counts.failed),
      thousands(r.counts.imports),
      r.seconds.toFixed(2),
      thousands(r.counts.files / r.seconds),
      `${(r.counts.files / r.seconds / baseRate).toFixed(2)}x`,
    ]),
  );
  const achieved = pooled.files / pooledSeconds / baseRate;
  const verdict = achieved >= TARGET_SPEEDUP ? "met" : "NOT met";
  return [
    `Speed: extracting imports from ${thousands(files.length)} files ` +
      `(${(bytes / 1048576).toFixed(1)} MiB: ${thousands(stdlib.length)} from the standard library, ` +
      `${thousands(wheelFiles.length)} from ${wheels.length} index wheels)`,
    "",
    table,
    "",
    "failed: files that did not decode or parse; imports: distinct import names per file, summed.",
    `Machine: ${workers} cores, load average ${load.toFixed(2)} when the timing started ` +
      `(${process.version}, ${execFileSync(python3(), ["-VV"], { encoding: "utf8" }).trim()}).`,
    `Target: pyferry with worker threads >= ${TARGET_SPEEDUP}x the CPython single-process rate ` +
      `(parse loop only): ${verdict} (${achieved.toFixed(2)}x).`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// 2. Accuracy

interface Miss {
  name: string;
  /** What analyze did with it instead, when it saw it at all. */
  why?: string;
}

interface ProjectResult {
  project: string;
  declared: string[];
  found: string[];
  tp: number;
  missed: Miss[];
  extra: string[];
  /** Extra names whose every import sits inside a function: loaded lazily, maybe never. */
  lazy: string[];
  /** Declared names found only through imports inside functions. */
  lazyTp: number;
  unresolved: string[];
  parseErrors: number;
  seconds: number;
  /** Evidence behind each extra name, for diagnosing false positives. */
  extraEvidence: Record<string, string[]>;
}

function readMetadata(root: string): string {
  const info = readdirSync(root).find((n) => n.endsWith(".dist-info"));
  if (!info) throw new Error("the wheel has no .dist-info folder");
  return readFileSync(join(root, info, "METADATA"), "utf8");
}

/** Whether a reported requirement's marker holds for the local interpreter. */
function appliesHere(marker: string | null, env: MarkerEnvironment): boolean {
  if (marker === null) return true;
  try {
    return evaluateMarker(parseMarker(marker), env);
  } catch {
    // A marker that cannot be evaluated here is kept: dropping it would hide the requirement.
    return true;
  }
}

/** Unconditional runtime dependencies: Requires-Dist entries whose marker holds with no extra. */
function declaredRuntime(requiresDist: string[], env: MarkerEnvironment, self: string): string[] {
  const out = new Set<string>();
  for (const text of requiresDist) {
    try {
      const r = parseRequirement(text);
      if (r.marker && !evaluateMarker(r.marker, env)) continue;
      if (r.normalized !== self) out.add(r.normalized);
    } catch {
      // A requirement this parser rejects cannot be compared; pip would refuse it too.
    }
  }
  return [...out].sort();
}

/** Why analyze did not list a declared name as a plain runtime requirement. */
function missReason(
  name: string,
  report: AnalysisReport,
  env: MarkerEnvironment,
): string | undefined {
  const req = report.requirements.find((r) => r.name === name);
  if (req?.optional) return "optional";
  if (req && !appliesHere(req.marker, env)) return "marker";
  if (req?.dev) return "tests only";
  if (report.type_checking_only.includes(name)) return "typing only";
  if (report.ambiguous.some((a) => a.candidates.some((c) => c.name === name))) return "ambiguous";
  if (report.unresolved.some((u) => normalizeName(u.import) === name)) return "unresolved";
  return undefined;
}

async function checkProject(
  project: string,
  root: string,
  env: MarkerEnvironment,
  settings: IndexSettings,
): Promise<ProjectResult> {
  const meta = parseCoreMetadata(readMetadata(root));
  const self = normalizeName(meta.name);
  const declared = declaredRuntime(meta.requiresDist, env, self);
  const started = performance.now();
  const report = await analyze(root, { index: settings });
  const took = seconds(started);
  // Judged like the declared side: a requirement whose marker fails here is not needed here.
  const runtime = report.requirements.filter(
    (r) => !r.optional && !r.dev && r.name !== self && appliesHere(r.marker, env),
  );
  const found = runtime.map((r) => normalizeName(r.name)).sort();
  const foundSet = new Set(found);
  const declaredSet = new Set(declared);
  const extra = found.filter((n) => !declaredSet.has(n));
  const extraEvidence: Record<string, string[]> = {};
  // The report's own judgement: imported only inside functions.
  const lazyFound = runtime.filter((r) => r.lazy).map((r) => normalizeName(r.name));
  const lazy = extra.filter((n) => lazyFound.includes(n));
  for (const r of runtime) {
    if (extra.includes(normalizeName(r.name))) {
      extraEvidence[r.name] = [
        ...r.imports,
        ...r.provenance.map((e) => `${e.source}: ${e.detail}`),
      ];
    }
  }
  return {
    project,
    declared,
    found,
    tp: declared.filter((n) => foundSet.has(n)).length,
    missed: declared
      .filter((n) => !foundSet.has(n))
      .map((name) => {
        const why = missReason(name, report, env);
        return why ? { name, why } : { name };
      }),
    extra,
    lazy,
    lazyTp: declared.filter((n) => foundSet.has(n) && lazyFound.includes(n)).length,
    unresolved: report.unresolved.map((u) => u.import),
    parseErrors: report.errors.length,
    seconds: took,
    extraEvidence,
  };
}

function ratio(a: number, b: number): string {
  return b === 0 ? "n/a" : `${((100 * a) / b).toFixed(1)}%`;
}

async function accuracy(): Promise<string> {
  const started = performance.now();
  const want = envCountOrAll("PYFERRY_BENCH_PROJECTS", 150);
  const settings = loadPipSettings();
  progress("accuracy: listing the projects of the configured local indexes");
  const all = await projectWheels(settings);
  const sample = want === "all" ? all : spread(all, want);
  progress(`accuracy: unpacking ${sample.length} wheels`);
  const unpacked = unpackWheels(sample.map((p) => p.wheel));
  const env = (await probeInterpreter(await findInterpreter())).markerEnv;

  const results: ProjectResult[] = [];
  const failures: { project: string; message: string }[] = [];
  for (const [i, p] of sample.entries()) {
    const root = unpackedPath(unpacked.dir, p.wheel);
    try {
      const r = await checkProject(p.project, root, env, settings);
      results.push(r);
      const first = i === 0 ? " (the first run builds the index map)" : "";
      progress(
        `accuracy: [${i + 1}/${sample.length}] ${p.project} ${r.seconds.toFixed(1)} s${first}`,
      );
    } catch (err) {
      // The folder's path adds nothing to the message but width.
      const message = (err as Error).message.replaceAll(root, "the wheel");
      failures.push({ project: p.project, message });
      progress(`accuracy: [${i + 1}/${sample.length}] ${p.project} failed: ${message}`);
    }
  }
  if (process.env.PYFERRY_BENCH_JSON) {
    writeFileSync(process.env.PYFERRY_BENCH_JSON, JSON.stringify({ results, failures }, null, 2));
  }

  const sum = (f: (r: ProjectResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const tp = sum((r) => r.tp);
  const fp = sum((r) => r.extra.length);
  const fn = sum((r) => r.missed.length);
  const withMisses = results
    .filter((r) => r.missed.length + r.extra.length > 0)
    .sort(
      (a, b) =>
        b.missed.length + b.extra.length - (a.missed.length + a.extra.length) ||
        b.missed.length - a.missed.length ||
        (a.project < b.project ? -1 : 1),
    );
  const shown = withMisses.slice(0, MAX_MISS_ROWS);
  const table = formatTable(
    [
      { header: "project" },
      { header: "declared", align: "right" },
      { header: "found", align: "right" },
      { header: "tp", align: "right" },
      { header: "fp", align: "right" },
      { header: "fn", align: "right" },
      { header: "missed (declared, not found)", wrap: 34 },
      { header: "extra (found, not declared)", wrap: 36 },
    ],
    [
      ...shown.map((r) => [
        r.project,
        String(r.declared.length),
        String(r.found.length),
        String(r.tp),
        String(r.extra.length),
        String(r.missed.length),
        r.missed.map((m) => (m.why ? `${m.name}(${m.why})` : m.name)).join(" "),
        r.extra.map((n) => (r.lazy.includes(n) ? `${n}(lazy)` : n)).join(" "),
      ]),
      null,
      [
        `all ${results.length} projects`,
        String(sum((r) => r.declared.length)),
        String(sum((r) => r.found.length)),
        String(tp),
        String(fp),
        String(fn),
        `precision ${ratio(tp, tp + fp)}`,
        `recall ${ratio(tp, tp + fn)}`,
      ],
    ],
  );
  const exact = results.length - withMisses.length;
  const lines = [
    `Accuracy: analyze(<unpacked wheel>) against the wheel's unconditional Requires-Dist ` +
      `(${sample.length} of ${all.length} projects${want === "all" ? "" : ", spread over the sorted list"})`,
    "",
    table,
    "",
    `Projects analyzed: ${results.length}; exactly right: ${exact}; with misses: ${withMisses.length}` +
      (withMisses.length > shown.length ? ` (worst ${shown.length} shown)` : "") +
      (failures.length > 0 ? `; not analyzable: ${failures.length}` : "") +
      `; files analyze could not parse: ${sum((r) => r.parseErrors)}.`,
    `Micro-averaged precision ${ratio(tp, tp + fp)}, recall ${ratio(tp, tp + fn)}; ` +
      `whole accuracy run ${seconds(started).toFixed(1)} s ` +
      `(analyze calls ${sum((r) => r.seconds).toFixed(1)} s` +
      `${unpacked.cached ? ", wheels already unpacked" : ""}).`,
    "Found: requirements neither optional nor tests-only whose marker (if any) holds here, the " +
      "project itself excluded. A missed " +
      "name's note says what analyze made of it instead (no note: no import was mapped to it).",
  ];
  // The causes, counted, so that a change in the analyzer shows up as a change in a number.
  const why = new Map<string, number>();
  for (const r of results) {
    for (const m of r.missed) why.set(m.why ?? "no note", (why.get(m.why ?? "no note") ?? 0) + 1);
  }
  const lazy = sum((r) => r.lazy.length);
  const lazyTp = sum((r) => r.lazyTp);
  lines.push(
    `Leaving out requirements imported only inside functions (the report's "lazy"): ` +
      `precision ${ratio(tp - lazyTp, tp - lazyTp + fp - lazy)}, recall ${ratio(tp - lazyTp, tp + fn)}.`,
  );
  lines.push(
    `Misses by note: ${[...why]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(", ")}. ` + `Extras only imported inside functions ("lazy"): ${lazy} of ${fp}.`,
  );
  for (const f of failures) lines.push(`  not analyzable: ${f.project}: ${f.message}`);
  return lines.join("\n");
}

const only = process.env.PYFERRY_BENCH_ONLY;
if (only !== undefined && only !== "speed" && only !== "accuracy") {
  throw new Error('PYFERRY_BENCH_ONLY must be "speed" or "accuracy"');
}
if (only !== "accuracy") console.log(await speed());
if (only === undefined) console.log();
if (only !== "speed") console.log(await accuracy());
