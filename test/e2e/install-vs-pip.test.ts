/**
 * Differential test of the installer against pip: the same exact wheels (resolved by pip
 * from the configured index, found again there through pyferry's index reader) installed by
 * pip into one environment and by pyferry into another must give the same files, bytes and
 * modes, the same `pip list`, the same importable modules and scripts that behave the same.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { basename, join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { EnvLayout } from "../../src/install/env.js";
import { parseRecord } from "../../src/install/record.js";
import { ONE_LINE_HEADER, parseEntryPoints } from "../../src/install/scripts.js";
import { probeInterpreter } from "../../src/python/interpreter.js";
import {
  installFiles,
  PIP_FLAGS,
  type Pinned,
  pinWheels,
  testPython,
} from "../support/install-child.js";
import { tempDir } from "../support/temp.js";

/**
 * Asked for by name; pip adds their dependencies. Besides the big ones, these have
 * `.data/scripts` (`#!python` and binaries), `.data/data`, `.data/headers` and `.pth` files.
 */
const REQUIREMENTS = [
  "numpy",
  "pandas",
  "scikit-learn",
  "matplotlib",
  "flask",
  "django",
  "requests",
  "scipy",
  "jmespath",
  "xlrd",
  "dill",
  "jsonpatch",
  "pdfminer.six",
  "xlsxwriter",
  "ruff",
  "ninja",
  "greenlet",
  "pygame",
  "fonttools",
  "ipython",
  "coverage",
  "sphinxcontrib-jsmath",
  "sympy",
  "mutagen",
  "click",
  "pyyaml",
  "lxml",
  "pillow",
  "sqlalchemy",
  "pytest",
  "rich",
  "httpx",
  "beautifulsoup4",
  "tqdm",
];

const PIP = PIP_FLAGS;
const PYTHON = testPython();
/** Files venv writes that pyferry's environments leave out. */
const VENV_ONLY = new Set([
  "bin/activate",
  "bin/activate.csh",
  "bin/activate.fish",
  "bin/Activate.ps1",
]);

const work = tempDir("pyferry-vs-pip-");
after(() => rmSync(work, { recursive: true, force: true }));

let pinned: Pinned[] = [];
let pipEnv: string;
let ours: EnvLayout;
let warm: EnvLayout;
const timings: Record<string, number> = {};

function time<T>(label: string, fn: () => T): T {
  const start = performance.now();
  const r = fn();
  timings[label] = (timings[label] ?? 0) + (performance.now() - start);
  return r;
}

async function timeAsync<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const r = await fn();
  timings[label] = (timings[label] ?? 0) + (performance.now() - start);
  return r;
}

async function pyferryInstall(dir: string, label: string): Promise<EnvLayout> {
  await probeInterpreter(PYTHON);
  return timeAsync(label, () =>
    installFiles(
      dir,
      PYTHON,
      pinned.map((p) => p.file),
    ),
  );
}

before(async () => {
  pinned = await pinWheels(PYTHON, REQUIREMENTS);
  // pip installs the very same files, offered to it in one find-links folder.
  const links = join(work, "links");
  mkdirSync(links);
  for (const p of pinned) symlinkSync(fileURLToPath(p.file.url), join(links, p.file.filename));
  // No space in this path: pip writes `#!python` shebangs as plain absolute paths.
  pipEnv = join(work, "pip-env");
  time("pip", () => {
    execFileSync(PYTHON, ["-m", "venv", "--without-pip", pipEnv]);
    const r = spawnSync(
      PYTHON,
      [
        "-m",
        "pip",
        "--python",
        join(pipEnv, "bin", "python"),
        "install",
        ...PIP,
        "--no-deps",
        "--no-compile",
        "--no-index",
        "--find-links",
        links,
        ...pinned.map((p) => `${p.name}==${p.version}`),
      ],
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    assert.equal(r.status, 0, r.stderr);
  });
  process.env.PYFERRY_CACHE_DIR = join(work, "cache");
  ours = await pyferryInstall(join(work, "pyferry env"), "pyferry, cold cache");
  warm = await pyferryInstall(join(work, "pyferry warm"), "pyferry, warm cache");
});

/**
 * Both environments have these, with other contents: venv's name the environment's folder,
 * pyferry's work it out when sourced (test/e2e/activate.test.ts tests them).
 */
const ACTIVATION = new Set(
  ["activate", "activate.csh", "activate.fish", "Activate.ps1"].map((n) => `bin/${n}`),
);

interface Node {
  kind: "file" | "dir" | "link";
  mode: number;
  links: number;
  target?: string;
}

function walk(root: string, rel = "", out = new Map<string, Node>()): Map<string, Node> {
  for (const name of readdirSync(join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    if (name === "__pycache__" || (rel === "" && name === "pyvenv.cfg")) continue;
    const st = lstatSync(join(root, r));
    if (st.isSymbolicLink()) {
      out.set(r, { kind: "link", mode: 0, links: 1, target: readlinkSync(join(root, r)) });
    } else if (st.isDirectory()) {
      out.set(r, { kind: "dir", mode: st.mode & 0o7777, links: 1 });
      walk(root, r, out);
    } else out.set(r, { kind: "file", mode: st.mode & 0o7777, links: st.nlink });
  }
  return out;
}

/** RECORD paths without bytecode, which pip lists only when it compiles. */
function recordPaths(file: string): string[] {
  return parseRecord(readFileSync(file, "utf8"))
    .map((r) => r.path)
    .filter((p) => !p.endsWith(".pyc"))
    .sort();
}

/** Launchers pyferry generated: bin/<name> for each console or GUI entry point. */
function launcherPaths(layout: EnvLayout): Set<string> {
  const out = new Set<string>();
  for (const d of readdirSync(layout.purelib)) {
    if (!d.endsWith(".dist-info")) continue;
    let text: string;
    try {
      text = readFileSync(join(layout.purelib, d, "entry_points.txt"), "utf8");
    } catch {
      continue;
    }
    const eps = parseEntryPoints(text, d);
    for (const ep of [...eps.console, ...eps.gui]) out.add(`bin/${ep.name}`);
  }
  return out;
}

/** Distribution owning each path (relative to the environment root), from pyferry's RECORDs. */
function owners(layout: EnvLayout): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of readdirSync(layout.purelib)) {
    if (!d.endsWith(".dist-info")) continue;
    const name = d.slice(0, -".dist-info".length).split("-")[0] as string;
    for (const row of parseRecord(readFileSync(join(layout.purelib, d, "RECORD"), "utf8"))) {
      out.set(relative(layout.root, join(layout.purelib, row.path)), name);
    }
  }
  return out;
}

/** A rewritten script without pyferry's header (either kind). */
function withoutHeader(data: Buffer): Buffer {
  const oneLine = Buffer.from(ONE_LINE_HEADER);
  if (data.subarray(0, oneLine.length).equals(oneLine)) return data.subarray(oneLine.length);
  const close = "\n' '''\n";
  const end = data.indexOf(close);
  return data.subarray(0, 10).toString() === "#!/bin/sh\n" && end > 0
    ? data.subarray(end + close.length)
    : data;
}

interface Comparison {
  compared: Map<string, number>;
  differences: string[];
}

function compareTrees(pipRoot: string, layout: EnvLayout): Comparison {
  const a = walk(pipRoot);
  const b = walk(layout.root);
  const launchers = launcherPaths(layout);
  const owner = owners(layout);
  const compared = new Map<string, number>();
  const differences: string[] = [];
  const diff = (path: string, what: string) => differences.push(`${path}: ${what}`);
  const pipShebang = Buffer.from(`#!${join(pipRoot, "bin", "python")}\n`);
  for (const path of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(path);
    const y = b.get(path);
    if (VENV_ONLY.has(path) && x && !y) continue;
    if (!x || !y) {
      diff(path, x ? "only pip installed it" : "only pyferry installed it");
      continue;
    }
    if (x.kind !== y.kind) {
      diff(path, `a ${x.kind} under pip, a ${y.kind} under pyferry`);
      continue;
    }
    if (x.kind === "link") {
      if (x.target !== y.target) diff(path, `links to ${x.target} vs ${y.target}`);
      continue;
    }
    // A hardlink into the cache carries the cache's read-only mode: only +x must agree then.
    const modeOk = y.links > 1 ? (x.mode & 0o111) === (y.mode & 0o111) : x.mode === y.mode;
    if (!modeOk) diff(path, `mode ${x.mode.toString(8)} vs ${y.mode.toString(8)}`);
    if (x.kind === "dir") continue;
    const dist = owner.get(path) ?? "(environment)";
    compared.set(dist, (compared.get(dist) ?? 0) + 1);
    const name = basename(path);
    if (/\.dist-info\/RECORD$/.test(path)) {
      const pa = recordPaths(join(pipRoot, path));
      const pb = recordPaths(join(layout.root, path));
      if (JSON.stringify(pa) !== JSON.stringify(pb)) diff(path, "RECORD lists other paths");
      continue;
    }
    if (name === "INSTALLER" || launchers.has(path) || ACTIVATION.has(path)) continue;
    const da = readFileSync(join(pipRoot, path));
    const db = readFileSync(join(layout.root, path));
    if (da.subarray(0, pipShebang.length).equals(pipShebang)) {
      // A `#!python` script: pip wrote an absolute shebang, pyferry its relocatable header.
      const body = da.subarray(pipShebang.length);
      if (!withoutHeader(db).equals(body)) diff(path, "rewritten script differs beyond its header");
      continue;
    }
    if (!da.equals(db)) diff(path, "contents differ");
  }
  return { compared, differences };
}

test("pyferry installs the same files, bytes and modes as pip", () => {
  assert.ok(pinned.length >= 30, `only ${pinned.length} distributions`);
  const { compared, differences } = compareTrees(pipEnv, ours);
  const perDist = new Map<string, number>();
  for (const d of differences) {
    const path = d.slice(0, d.indexOf(": "));
    const dist = owners(ours).get(path) ?? "(environment)";
    perDist.set(dist, (perDist.get(dist) ?? 0) + 1);
  }
  const rows = [...compared.entries()].sort((x, y) => x[0].localeCompare(y[0]));
  const lines = rows.map(
    ([dist, n]) =>
      `${dist.padEnd(28)} ${String(n).padStart(6)} ${String(perDist.get(dist) ?? 0).padStart(6)}`,
  );
  const total = rows.reduce((s, [, n]) => s + n, 0);
  console.log(
    [
      `${"distribution".padEnd(28)} ${"files".padStart(6)} ${"diffs".padStart(6)}`,
      ...lines,
      `${`${rows.length} distributions`.padEnd(28)} ${String(total).padStart(6)} ${String(differences.length).padStart(6)}`,
      "",
      ...Object.entries(timings).map(([k, ms]) => `${k.padEnd(22)} ${(ms / 1000).toFixed(2)} s`),
    ].join("\n"),
  );
  assert.deepEqual(differences, []);
});

test("a warm-cache install gives exactly the cold one's tree", () => {
  const a = walk(ours.root);
  const b = walk(warm.root);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [path, node] of a) {
    if (node.kind !== "file") continue;
    const x = readFileSync(join(ours.root, path));
    const y = readFileSync(join(warm.root, path));
    assert.ok(x.equals(y), path);
  }
});

function pipList(python: string): unknown {
  const r = spawnSync(PYTHON, ["-m", "pip", "--python", python, "list", "--format=json", ...PIP], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test("pip list agrees", () => {
  const theirs = pipList(join(pipEnv, "bin", "python"));
  const mine = pipList(ours.python);
  assert.deepEqual(mine, theirs);
  assert.equal((mine as unknown[]).length, pinned.length);
});

const IMPORT_ALL = `
import importlib, json, sys
names = json.loads(sys.argv[1])
failed = []
for n in names:
    try:
        importlib.import_module(n)
    except BaseException as e:
        failed.append(n)
sys.stdout.flush()
sys.stdout.write("\\nRESULT:" + json.dumps(failed) + "\\n")
`;

function importFailures(python: string, modules: string[]): string[] {
  const r = spawnSync(python, ["-c", IMPORT_ALL, JSON.stringify(modules)], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, MPLBACKEND: "Agg", PYGAME_HIDE_SUPPORT_PROMPT: "1" },
    timeout: 300_000,
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT:"));
  assert.ok(line, r.stderr);
  return JSON.parse(line.slice("RESULT:".length)) as string[];
}

test("every top-level module imports under pyferry as under pip", () => {
  const modules = new Set<string>();
  for (const e of readdirSync(ours.purelib, { withFileTypes: true })) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\.py|\.(?:cpython-\d+|abi3)[^/]*\.so)?$/.exec(e.name);
    if (!m) continue;
    if (e.isDirectory()) {
      const inner = readdirSync(join(ours.purelib, e.name));
      if (!inner.includes("__init__.py")) continue;
    }
    modules.add(m[1] as string);
  }
  const list = [...modules].sort();
  assert.ok(list.includes("numpy") && list.includes("sklearn") && list.includes("django"));
  const mine = importFailures(ours.python, list);
  const theirs = importFailures(join(pipEnv, "bin", "python"), list);
  console.log(
    `${list.length} top-level modules; ${mine.length} fail to import in both: ${mine.join(", ")}`,
  );
  assert.deepEqual(mine, theirs);
  for (const m of ["numpy", "pandas", "sklearn", "matplotlib", "flask", "django", "requests"]) {
    assert.ok(!mine.includes(m), m);
  }
});

test("every launcher and script behaves the same", () => {
  const bin = readdirSync(ours.scripts).filter((n) => !n.startsWith("python"));
  const results: string[] = [];
  const runIn = (root: string, name: string) => {
    const r = spawnSync(join(root, "bin", name), ["--help"], {
      encoding: "utf8",
      input: "",
      timeout: 60_000,
      env: { ...process.env, MPLBACKEND: "Agg", PYGAME_HIDE_SUPPORT_PROMPT: "1", COLUMNS: "80" },
    });
    const norm = (s: string) => s.replaceAll(root, "<env>");
    return { status: r.status, stdout: norm(r.stdout ?? ""), stderr: norm(r.stderr ?? "") };
  };
  for (const name of bin) {
    const a = runIn(pipEnv, name);
    const b = runIn(ours.root, name);
    results.push(`${name}: exit ${b.status}`);
    assert.equal(b.status, a.status, `${name}: ${b.stderr}`);
    assert.equal(b.stdout, a.stdout, name);
  }
  console.log(`${bin.length} scripts run with --help under both: ${results.join(", ")}`);
  assert.ok(bin.includes("flask") && bin.includes("django-admin") && bin.includes("jp.py"));
  const version = execFileSync(join(ours.scripts, "flask"), ["--version"], { encoding: "utf8" });
  assert.match(version, /Flask \d/);
});
