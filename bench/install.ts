/**
 * `npm run bench:install`: how long pyferry takes to resolve and to install requests, flask,
 * pandas, scikit-learn and matplotlib into a fresh environment, next to pip doing the same in
 * the same run. pyferry is driven through its CLI as a user would, with its cache in a
 * temporary folder (PYFERRY_CACHE_DIR). The table goes to stdout; progress goes to stderr.
 *
 * Environment: PYFERRY_BENCH_REPEAT (runs of each timed step, default 3; the median is shown),
 * PYFERRY_BENCH_PYTHON (the interpreter, default python3), PYFERRY_BENCH_KEEP=1 (keep the
 * temporary folder and print where it is).
 */
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "smol-toml";
import { NATIVE_FILE, nativeAddon } from "../src/install/native.js";
import {
  BenchFailure,
  childrenCpuSeconds,
  ensureDebianPackages,
  envCount,
  median,
  progress,
  runBench,
  settle,
  treeBytes,
} from "./common.js";
import { formatTable } from "./table.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const PYFERRY = join(PACKAGE, "bin", "pyferry.js");
const REQUIREMENTS = ["requests", "flask", "pandas", "scikit-learn", "matplotlib"];
const IMPORTS = "pandas, sklearn, matplotlib, flask, requests";
/**
 * pip's default index (pypi.org) is unreachable here; without these flags pip would retry it
 * and wait out its timeout, and the benchmark would time the dead network instead of pip.
 */
const PIP_OFFLINE = ["--retries", "0", "--timeout", "2", "--disable-pip-version-check"];
const TARGET_WARM = 10;
const TARGET_COLD = 3;
/**
 * Free space under which each repetition's folders are removed before the next one. Removal
 * slows what follows: ext4 without a journal (as here) avoids reusing inodes freed in the last
 * minute, looking up each one's inode table block when it makes a new file. A profile of an
 * install right after a large removal spent a quarter of its samples there, for either tool.
 */
const KEEP_ALL_BYTES = 12 * 1024 ** 3;

interface Finished {
  seconds: number;
  /** CPU seconds of the command and the processes it waited for. */
  cpu: number;
  stdout: string;
}

/** Run a command to completion, timing it; a failure stops the benchmark with its stderr. */
function exec(command: string, args: string[], env: NodeJS.ProcessEnv = childEnv()): Finished {
  const cpu0 = childrenCpuSeconds();
  const started = performance.now();
  const r = spawnSync(command, args, { encoding: "utf8", env, maxBuffer: 1 << 28 });
  const seconds = (performance.now() - started) / 1000;
  const cpu = childrenCpuSeconds() - cpu0;
  if (r.error || r.status !== 0) {
    const shown = [command, ...args].join(" ");
    const what = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
    const tail = (r.stderr ?? "").trim().split("\n").slice(-30).join("\n");
    throw new BenchFailure(`${shown.slice(0, 400)}\nfailed (${what}):\n${tail}`);
  }
  return { seconds, cpu, stdout: r.stdout };
}

/** The inherited environment, minus anything pointing pyferry at the user's own cache. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...extra };
  if (!("PYFERRY_CACHE_DIR" in extra)) delete env.PYFERRY_CACHE_DIR;
  return env;
}

/**
 * Seconds to make 7,000 empty files in 70 new folders under `dir`: how dear a new file is on
 * this disk right now. On ext4 without a journal it is about 0.1 s, and many times that within
 * minutes of a large removal, as each new inode passes over the recently freed ones.
 */
function fileMakingProbe(dir: string): number {
  const root = mkdtempSync(join(dir, "probe-"));
  const started = performance.now();
  for (let d = 0; d < 70; d++) {
    const sub = join(root, String(d));
    mkdirSync(sub);
    for (let f = 0; f < 100; f++) closeSync(openSync(join(sub, String(f)), "wx"));
  }
  return (performance.now() - started) / 1000;
}

/** A probe this quick says no recent removal is in the way (0.1-0.3 s when none is). */
const SETTLED_SECONDS = 0.4;
/** ext4 passes over inodes freed in the last 60 s, or 6 minutes while their block is dirty. */
const SETTLE_LIMIT_MS = 7 * 60_000;

/**
 * Wait (up to SETTLE_LIMIT_MS) until making files costs what it costs on a quiet disk: right
 * after a large removal (another job's, or this benchmark's last run cleaning up), each new
 * file costs several times more for some minutes, which would time that removal instead of the
 * installers. Returns the probes made.
 */
function settleDisk(dir: string): number[] {
  const probes = [fileMakingProbe(dir)];
  const started = performance.now();
  while ((probes.at(-1) ?? 0) > SETTLED_SECONDS && performance.now() - started < SETTLE_LIMIT_MS) {
    progress(
      `making files is slow here now (${(probes.at(-1) ?? 0).toFixed(2)} s for 7,000), as right after a large removal: waiting for the disk to settle`,
    );
    spawnSync("sleep", ["30"]);
    probes.push(fileMakingProbe(dir));
  }
  return probes;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

interface Pin {
  name: string;
  version: string;
  marker?: string;
}

/** The packages of a pylock.toml, as pip requirements `name==version[; marker]`. */
function lockPins(path: string): Pin[] {
  const doc: unknown = parse(readFileSync(path, "utf8"));
  const packages = (doc as { packages?: unknown }).packages;
  if (!Array.isArray(packages)) throw new BenchFailure(`${path} has no [[packages]].`);
  return packages.map((p: unknown) => {
    const { name, version, marker } = p as { name?: unknown; version?: unknown; marker?: unknown };
    if (typeof name !== "string" || typeof version !== "string") {
      throw new BenchFailure(`${path} has a package without a name or version.`);
    }
    return typeof marker === "string" ? { name, version, marker } : { name, version };
  });
}

function pinText(p: Pin): string {
  return `${p.name}==${p.version}${p.marker ? `; ${p.marker}` : ""}`;
}

/** What pip's --report would install, as sorted `name==version`. */
function pipReportPins(path: string): string[] {
  const report = JSON.parse(readFileSync(path, "utf8")) as {
    install: { metadata: { name: string; version: string } }[];
  };
  return report.install
    .map((i) => `${normalizeName(i.metadata.name)}==${i.metadata.version}`)
    .sort();
}

const VERIFY = `
import importlib.metadata as md, json, sys
import ${IMPORTS}
print(json.dumps({"python": sys.version, "dists": {d.metadata["Name"]: d.version for d in md.distributions()}}))
`;

/** The environment imports the five projects and holds exactly the locked versions. */
function verifyEnv(label: string, python: string, pins: Pin[], expectPython: string, w: string) {
  progress(`verify: import ${IMPORTS} in the ${label} environment`);
  // matplotlib writes a font cache on first import; keep it out of the user's home.
  const env = childEnv({ MPLCONFIGDIR: join(w, "mplconfig") });
  const out = JSON.parse(exec(python, ["-c", VERIFY], env).stdout) as {
    python: string;
    dists: Record<string, string>;
  };
  if (out.python !== expectPython) {
    throw new BenchFailure(
      `The ${label} environment runs Python ${out.python}, not ${expectPython}.`,
    );
  }
  const have = new Map(Object.entries(out.dists).map(([n, v]) => [normalizeName(n), v]));
  const wrong = pins.filter((p) => have.get(normalizeName(p.name)) !== p.version);
  if (wrong.length > 0) {
    const list = wrong.map(
      (p) => `${pinText(p)} (found ${have.get(normalizeName(p.name)) ?? "none"})`,
    );
    throw new BenchFailure(`The ${label} environment lacks locked versions: ${list.join(", ")}.`);
  }
}

interface Step {
  label: string;
  pip: number[];
  pyferry: number[];
  /** CPU seconds of each run, in the same order. */
  pipCpu: number[];
  pyferryCpu: number[];
  /** The pip column is another step's (a pyferry variant with no pip counterpart of its own). */
  pipFrom?: Step;
}

/** Keep the wall and CPU time of one run of `side` in `into`. */
function record(into: Step, side: "pip" | "pyferry", run: Finished): void {
  if (side === "pip") {
    into.pip.push(run.seconds);
    into.pipCpu.push(run.cpu);
  } else {
    into.pyferry.push(run.seconds);
    into.pyferryCpu.push(run.cpu);
  }
}

function step(label: string): Step {
  return { label, pip: [], pyferry: [], pipCpu: [], pyferryCpu: [] };
}

/** Run the two sides of one repetition, in alternating order so neither always goes first. */
function bothSides(rep: number, first: () => void, second: () => void): void {
  if (rep % 2 === 0) {
    first();
    second();
  } else {
    second();
    first();
  }
}

/**
 * pyferry as a user who followed the README has it: with its native addon, which unpacks wheels
 * with libdeflate (scripts/build-native.mjs), built here if npm install could not build it.
 */
function ensureNativeAddon(): void {
  if (nativeAddon()) return;
  ensureDebianPackages("install", [
    {
      pkg: "libdeflate-dev",
      what: "libdeflate's headers (/usr/include/libdeflate.h)",
      present: () => existsSync("/usr/include/libdeflate.h"),
    },
  ]);
  progress("building pyferry's native addon: npm run build:native");
  const npm = process.env.npm_execpath;
  const r = npm
    ? spawnSync(process.execPath, [npm, "run", "-s", "build:native"], { stdio: "inherit" })
    : spawnSync("npm", ["run", "-s", "build:native"], { stdio: "inherit" });
  // Loaded in a process of its own: this one already found it missing and keeps that answer.
  const loads = spawnSync(process.execPath, [
    "-e",
    `require(${JSON.stringify(join(PACKAGE, NATIVE_FILE))})`,
  ]);
  if (r.status !== 0 || loads.status !== 0) {
    throw new BenchFailure("npm run build:native did not build a native addon that loads.");
  }
}

function main(): string {
  const repeat = envCount("PYFERRY_BENCH_REPEAT", 3);
  ensureNativeAddon();
  const requested = process.env.PYFERRY_BENCH_PYTHON || "python3";
  // The real interpreter, not a pyenv shim: a shim would add its own start-up to every pip call.
  const probe = exec(requested, ["-c", "import sys; print(sys.executable); print(sys.version)"]);
  const [python = "", pyVersion = ""] = probe.stdout.trim().split("\n");
  const pipVersion = exec(python, ["-m", "pip", "--version"]).stdout.split(" ")[1] ?? "?";
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

  const w = mkdtempSync(join(tmpdir(), "pyferry-bench-install-"));
  const locks = join(w, "locks");
  const envs = join(w, "envs");
  mkdirSync(locks);
  mkdirSync(envs);
  const pyferry = (cache: string, args: string[]) =>
    exec(
      process.execPath,
      [PYFERRY, ...args, "--python", python],
      childEnv({ PYFERRY_CACHE_DIR: cache }),
    );
  const load = loadavg()[0] ?? 0;
  const probes = settleDisk(w);
  const started = performance.now();
  const disk = statfsSync(w);
  const keepAll = disk.bavail * disk.bsize >= KEEP_ALL_BYTES;
  /** Remove folders now only when the disk is short; else all go at the end. */
  const done = (paths: string[]) => {
    if (keepAll) return;
    for (const p of paths) rmSync(p, { recursive: true, force: true });
  };

  try {
    // ------------------------------------------------------------------------------------
    // Resolve: pyferry lock against pip's dry-run resolve (pip writes no lock).
    const resolveCold = step("resolve, cold cache");
    const resolveWarm = step("resolve, warm cache");
    const lockFiles: string[] = [];
    const pipReports: string[] = [];
    const pfResolveCache = (i: number) => join(w, `pf-resolve-cache-${i}`);
    const pipResolveCache = (i: number) => join(w, `pip-resolve-cache-${i}`);
    const lockRun = (cache: string, into: Step, name: string) => {
      const out = join(locks, name);
      settle();
      record(into, "pyferry", pyferry(cache, ["lock", ...REQUIREMENTS, "-o", out]));
      lockFiles.push(out);
    };
    const pipResolve = (cache: string, into: Step, name: string) => {
      const report = join(locks, name);
      const args = ["-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"];
      settle();
      const r = exec(python, [
        ...args,
        ...PIP_OFFLINE,
        "--cache-dir",
        cache,
        "--report",
        report,
        ...REQUIREMENTS,
      ]);
      record(into, "pip", r);
      pipReports.push(report);
    };
    for (let i = 0; i < repeat; i++) {
      progress(`resolve, cold cache: run ${i + 1} of ${repeat}`);
      bothSides(
        i,
        () => lockRun(pfResolveCache(i), resolveCold, `cold-${i}.toml`),
        () => pipResolve(pipResolveCache(i), resolveCold, `pip-cold-${i}.json`),
      );
    }
    // Warm: the caches the first cold run filled.
    for (let i = 0; i < repeat; i++) {
      progress(`resolve, warm cache: run ${i + 1} of ${repeat}`);
      bothSides(
        i,
        () => lockRun(pfResolveCache(0), resolveWarm, `warm-${i}.toml`),
        () => pipResolve(pipResolveCache(0), resolveWarm, `pip-warm-${i}.json`),
      );
    }
    const lock = join(locks, "cold-0.toml");
    const lockText = readFileSync(lock, "utf8");
    const notes: string[] = [];
    const differing = lockFiles.filter((f) => readFileSync(f, "utf8") !== lockText);
    if (differing.length > 0) {
      notes.push(
        `WARNING: pyferry wrote different locks for the same inputs (${differing.length} of ${lockFiles.length} differ from the first).`,
      );
    }
    const pins = lockPins(lock);
    const lockSet = pins.map((p) => `${normalizeName(p.name)}==${p.version}`).sort();
    const pipSet = pipReportPins(pipReports[0] as string);
    if (lockSet.join(" ") !== pipSet.join(" ")) {
      const onlyLock = lockSet.filter((p) => !pipSet.includes(p));
      const onlyPip = pipSet.filter((p) => !lockSet.includes(p));
      notes.push(
        `NOTE: pyferry and pip resolved differently; only pyferry: ${onlyLock.join(", ") || "-"}; ` +
          `only pip: ${onlyPip.join(", ") || "-"}.`,
      );
    } else {
      notes.push(`Both resolvers chose the same ${pins.length} packages.`);
    }
    for (let i = 0; i < repeat; i++) done([pfResolveCache(i), pipResolveCache(i)]);

    // ------------------------------------------------------------------------------------
    // Install the exact lock into fresh environments: cold caches, then the same caches warm.
    const installCold = step("install, cold cache");
    const installWarm = step("install, warm cache");
    // pyferry's default hardlinks from its cache; the copy row shows an install whose files
    // are all its own (--link-mode copy), which writes every byte again.
    const installCopied = step("install, warm cache, pyferry --link-mode copy");
    installCopied.pipFrom = installWarm;
    const venvTimes: number[] = [];
    // What copying the same files costs with nothing else to do: the floor of a copying install.
    const copyFloor: number[] = [];
    const pinArgs = pins.map(pinText);
    let pfCacheBytes = 0;
    let pipCacheBytes = 0;
    for (let i = 0; i < repeat; i++) {
      const pfCache = join(w, `pf-cache-${i}`);
      const pipCache = join(w, `pip-cache-${i}`);
      const dirs = {
        pfCold: join(envs, `pf-cold-${i}`),
        pfWarm: join(envs, `pf-warm-${i}`),
        pfCopied: join(envs, `pf-copy-${i}`),
        pipCold: join(envs, `pip-cold-${i}`),
        pipWarm: join(envs, `pip-warm-${i}`),
      };
      const pfInstall = (dir: string, into: Step, extra: string[] = []) => {
        settle();
        record(into, "pyferry", pyferry(pfCache, ["env", "create", dir, "--lock", lock, ...extra]));
      };
      const pipInstall = (dir: string, into: Step) => {
        settle();
        venvTimes.push(exec(python, ["-m", "venv", dir]).seconds);
        const args = [
          "install",
          "--no-compile",
          "--quiet",
          ...PIP_OFFLINE,
          "--cache-dir",
          pipCache,
        ];
        settle();
        record(into, "pip", exec(join(dir, "bin", "pip"), [...args, ...pinArgs]));
      };
      progress(`install, cold cache: run ${i + 1} of ${repeat}`);
      bothSides(
        i,
        () => pfInstall(dirs.pfCold, installCold),
        () => pipInstall(dirs.pipCold, installCold),
      );
      if (i === 0) {
        pfCacheBytes = treeBytes(pfCache);
        pipCacheBytes = treeBytes(pipCache);
      }
      progress(`install, warm cache: run ${i + 1} of ${repeat}`);
      bothSides(
        i,
        () => pfInstall(dirs.pfWarm, installWarm),
        () => pipInstall(dirs.pipWarm, installWarm),
      );
      pfInstall(dirs.pfCopied, installCopied, ["--link-mode", "copy"]);
      const floorCopy = join(envs, `cp-a-${i}`);
      settle();
      copyFloor.push(exec("cp", ["-a", dirs.pfCopied, floorCopy]).seconds);
      if (i === 0) {
        verifyEnv("pyferry cold-cache", join(dirs.pfCold, "bin", "python"), pins, pyVersion, w);
        verifyEnv("pyferry warm-cache", join(dirs.pfWarm, "bin", "python"), pins, pyVersion, w);
        verifyEnv("pyferry copied", join(dirs.pfCopied, "bin", "python"), pins, pyVersion, w);
        verifyEnv("pip cold-cache", join(dirs.pipCold, "bin", "python"), pins, pyVersion, w);
        verifyEnv("pip warm-cache", join(dirs.pipWarm, "bin", "python"), pins, pyVersion, w);
      }
      done([...Object.values(dirs), floorCopy, pfCache, pipCache]);
    }

    // ------------------------------------------------------------------------------------
    // Report.
    const steps = [resolveCold, resolveWarm, installCold, installWarm, installCopied];
    const pipOf = (s: Step) => (s.pipFrom ?? s).pip;
    const pipCpuOf = (s: Step) => (s.pipFrom ?? s).pipCpu;
    const speedup = (s: Step) => median(pipOf(s)) / median(s.pyferry);
    const table = formatTable(
      [
        { header: "step" },
        { header: "pip s", align: "right" },
        { header: "pyferry s", align: "right" },
        { header: "speed-up", align: "right" },
        { header: "CPU s: pip", align: "right" },
        { header: "pyferry", align: "right" },
      ],
      [
        ...steps.map((s) => [
          s.label,
          median(pipOf(s)).toFixed(2),
          median(s.pyferry).toFixed(2),
          `${speedup(s).toFixed(1)}x`,
          median(pipCpuOf(s)).toFixed(2),
          median(s.pyferryCpu).toFixed(2),
        ]),
        null,
        [
          "venv creation (pip's; pyferry's is in its install)",
          median(venvTimes).toFixed(2),
          "-",
          "-",
          "-",
          "-",
        ],
        [
          "cp -a of pyferry's copied environment (a copy's floor)",
          "-",
          median(copyFloor).toFixed(2),
          `${(median(installWarm.pip) / median(copyFloor)).toFixed(1)}x`,
          "-",
          "-",
        ],
      ],
    );
    const verdict = (s: Step, target: number) =>
      `${speedup(s).toFixed(1)}x, ${speedup(s) >= target ? "met" : "NOT met"}`;
    const runs = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
    return [
      `Install benchmark: ${REQUIREMENTS.join(" ")} (${pins.length} packages locked) on Python ` +
        `${pyVersion.split(" ")[0]} (${python}), pip ${pipVersion}, ${process.version}.`,
      `Median of ${repeat} runs, fresh folders for every run; pyferry unpacks wheels with libdeflate (its native addon).`,
      "",
      table,
      "",
      `Targets: warm-cache install >= ${TARGET_WARM}x pip: ${verdict(installWarm, TARGET_WARM)}; ` +
        `cold-cache install >= ${TARGET_COLD}x pip: ${verdict(installCold, TARGET_COLD)}.`,
      "",
      "Every run (s):",
      ...steps.map((s) => `  ${s.label}: pip ${runs(pipOf(s))} | pyferry ${runs(s.pyferry)}`),
      `  venv creation: ${runs(venvTimes)}`,
      `  cp -a: ${runs(copyFloor)}`,
      "",
      "How it was measured:",
      "- CPU s: user and system time of the timed command and every process it waited for (worker threads included), median: the work each tool did, which noise on a shared machine (time stolen by other guests, a slow disk) leaves alone where it moves wall times. As for wall times, pip's column leaves out its `python -m venv`, and pyferry's includes making its environment.",
      `- resolve: \`pyferry lock REQS -o pylock.toml\` vs \`pip install --dry-run --ignore-installed ` +
        "--quiet --report FILE REQS` (pip has no lock; its dry-run resolve is the closest peer). " +
        "Cold: empty PYFERRY_CACHE_DIR / pip --cache-dir; warm: the caches of the first cold run.",
      "- install: `pyferry env create DIR --lock pylock.toml` vs `python -m venv DIR` then " +
        "`DIR/bin/pip install --no-compile --cache-dir C NAME==VERSION...` (every package of the " +
        "lock); only the install command is timed for pip, its venv creation is the last row. Warm: " +
        "a fresh env with the caches the cold run of the same repetition filled.",
      `- pip always ran with ${PIP_OFFLINE.join(" ")}: its default index (pypi.org) is ` +
        "unreachable here and pip.conf adds local mirrors as extra indexes; these flags make the " +
        "dead default cost nothing instead of retries and timeouts.",
      `- After one cold install pyferry's cache held ${mib(pfCacheBytes)} (wheels and their ` +
        `unpacked trees); pip's held ${mib(pipCacheBytes)}` +
        (pipCacheBytes < 1048576
          ? " (pip does not cache wheels it reads from file:// sources, so its warm install repeats the cold one)."
          : "."),
      "- `sync` ran before every timed step (not timed); the OS page cache was not dropped, so " +
        "cold means an empty tool cache, not cold disks.",
      keepAll
        ? "- Every folder was kept until the end: on ext4 without a journal, making files " +
          "within a minute of a large removal costs more, for both tools."
        : "- The disk had under 12 GiB free, so each repetition's folders were removed before " +
          "the next: on ext4 without a journal this can slow the steps that follow, for both tools.",
      `- pyferry's default link mode (auto) clones files out of its cache where the file system ` +
        "can, else hardlinks them (this ext4 cannot clone), as uv does" +
        (asRoot ? ", also for root (this run)" : "") +
        "; the copy row shows the same install writing every byte again (--link-mode copy).",
      "- The cp -a row copies the environment pyferry's copy run just made with coreutils, one " +
        "file at a time: what making those files and writing those bytes costs on this disk, " +
        "with no installer work at all. Its speed-up column (pip's warm time over it) shows how " +
        "much room a copying install has here; pyferry copies on up to four threads.",
      `- Every environment of the first run imported ${IMPORTS} with the locked versions.`,
      ...notes.map((n) => `- ${n}`),
      `- Making 7,000 empty files in 70 new folders took ${probes.map((p) => p.toFixed(2)).join(", then ")} s before the first step and ${fileMakingProbe(w).toFixed(2)} s at the end. On ext4 without a journal (as here) that is about 0.1-0.3 s, and several times more within minutes of a large removal anywhere on the disk (another job's, or the last run of this benchmark cleaning up), when every new file passes over the inodes freed lately, for either tool: the benchmark starts once a probe takes under ${SETTLED_SECONDS} s, waiting ${probes.length > 1 ? `${(probes.length - 1) * 30} s this time` : "not at all this time"} (at most ${SETTLE_LIMIT_MS / 60_000} minutes).`,
      `Machine: ${availableParallelism()} cores, load average ${load.toFixed(2)} at the start and ` +
        `${(loadavg()[0] ?? 0).toFixed(2)} at the end; ${((performance.now() - started) / 1000).toFixed(0)} s in all.`,
    ].join("\n");
  } finally {
    if (process.env.PYFERRY_BENCH_KEEP === "1") progress(`kept ${w}`);
    else rmSync(w, { recursive: true, force: true });
  }
}

runBench("install", main);
