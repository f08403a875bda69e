/**
 * `npm run bench:remote`: pyferry's remote commands against the plain tools a user would
 * otherwise reach for, each pair measured in the same run against real OpenSSH servers
 * (test/support/sshd.ts; network namespaces as root, else loopback ports):
 *
 *   1. a warm `pyferry run --on h1 hello.py` vs `ssh h1 <the same remote python> hello.py`;
 *   2. re-shipping an app and its environment after a one-line edit: `pyferry sync` of a pack
 *      (and `pyferry run --on`) vs `rsync -az` of the same env + app folders, through a
 *      byte-counting proxy;
 *   3. the first ship of a pandas + scikit-learn + matplotlib environment into an empty store:
 *      `pyferry sync` vs `tar -c | ssh 'tar -x'` of the same local folder.
 *
 * pyferry is driven through its CLI with its cache in a temporary folder (PYFERRY_CACHE_DIR);
 * environments are built once before anything is timed. The table goes to stdout; progress
 * goes to stderr.
 *
 * Environment: PYFERRY_BENCH_REPEAT (runs of each timed step, default 3; the median is shown),
 * PYFERRY_BENCH_KEEP=1 (keep the temporary folder and print where it is; the lab goes anyway).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { linkEntries, tarStream } from "../src/transport/tar-stream.js";
import type { Tree } from "../src/transport/tree.js";
import { type SshLab, sshAvailable, startSshLab } from "../test/support/sshd.js";
import { startProxy, type TcpProxy } from "../test/support/tcp-proxy.js";
import {
  BenchFailure,
  ensureDebianPackages,
  envCount,
  median,
  progress,
  settle,
  sshLabNeeds,
  treeBytes,
} from "./common.js";
import { formatTable } from "./table.js";

const PYFERRY = fileURLToPath(new URL("../../bin/pyferry.js", import.meta.url));
/** Targets. */
const TARGET_ADDED_MS = 150;
const TARGET_RESHIP_S = 1;
const TARGET_FIRST_RATIO = 1.2;
const BIG_MODS = ["pandas", "scikit-learn", "matplotlib"];
/** The store's folder under a host's $HOME (scripts.ts PRELUDE, no XDG_CACHE_HOME there). */
const STORE = join(".cache", "pyferry-remote");

// ---------------------------------------------------------------------------------------------
// Processes

interface Finished {
  ms: number;
  stdout: string;
  stderr: string;
}

interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * Run to completion without blocking the event loop (the byte-counting proxy lives in this
 * process and must keep forwarding); wall milliseconds and output. A failure stops the bench.
 */
function exec(file: string, args: string[], opts: ExecOptions = {}): Promise<Finished> {
  const shown = [file, ...args].join(" ").slice(0, 400);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      err = (err + s).slice(-65536);
    });
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new BenchFailure(`${shown}\ndid not finish within ${timeoutMs / 1000} s:\n${err}`));
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new BenchFailure(`${shown}\nfailed: ${e.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      if (code !== 0) {
        const tail = err.trim().split("\n").slice(-30).join("\n");
        reject(new BenchFailure(`${shown}\nfailed (exit ${code ?? signal}):\n${tail}`));
        return;
      }
      resolve({ ms, stdout: Buffer.concat(out).toString("utf8"), stderr: err });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function have(program: string, args: string[]): boolean {
  const r = spawnSync(program, args, { stdio: "ignore" });
  return !r.error;
}

/** Everything the bench needs on this machine, installed when missing (as root). */
function preflight(): void {
  ensureDebianPackages("remote", [
    { pkg: "rsync", what: "rsync", present: () => have("rsync", ["--version"]) },
    ...sshLabNeeds(),
    { pkg: "tar", what: "tar", present: () => have("tar", ["--version"]) },
  ]);
  const why = sshAvailable();
  if (why) throw new BenchFailure(`Cannot start OpenSSH test servers: ${why}.`);
}

// ---------------------------------------------------------------------------------------------
// Numbers

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

function secs(ms: number): string {
  return (ms / 1000).toFixed(2);
}

function runsText(xs: number[], unit: "ms" | "s"): string {
  return xs.map((x) => (unit === "ms" ? x.toFixed(0) : secs(x))).join(" ");
}

/** Entries (files, folders, links) under `dir`, not counting `skip` at its top. */
function countEntries(dir: string, skip: ReadonlySet<string> = new Set()): number {
  let n = 0;
  const walk = (d: string, top: boolean) => {
    for (const name of readdirSync(d)) {
      if (top && skip.has(name)) continue;
      n++;
      const p = join(d, name);
      if (lstatSync(p).isDirectory()) walk(p, false);
    }
  };
  walk(dir, true);
  return n;
}

/** Run `fn` and count what passed the proxy client -> server meanwhile. */
async function counted<T extends Finished>(
  proxy: TcpProxy,
  fn: () => Promise<T>,
): Promise<T & { bytes: number }> {
  const before = proxy.bytes();
  const r = await fn();
  // The last packets (the connection's close) may still be on their way through the proxy.
  await sleep(100);
  return { ...r, bytes: proxy.bytes() - before };
}

// ---------------------------------------------------------------------------------------------
// Where the time goes: an ssh wrapper that logs when each ssh pyferry starts begins and ends

const WRAPPER_KINDS = `case "$*" in
  *ControlMaster=yes*) k=master ;;
  *"-O exit"*) k=close ;;
  *'echo "arch='*) k=probe ;;
  *'pyferry:ready'*) k=run ;;
  *'k=$1; id=$2'*) k=prepare ;;
  *'tar -x -f - -C "$t"'*) k=put ;;
  *'.pyferry-complete" ] && { cat'*) k=assemble ;;
  *'while IFS= read -r o; do'*) k=need ;;
  *'names/$1'*) k=name ;;
  *) k=other ;;
esac`;

interface Timeline {
  /** "kind start-end" in ms after pyferry was started, in start order. */
  sessions: { kind: string; start: number; end: number }[];
  total: number;
  /** pyferry's own -v lines about what it sent. */
  said: string[];
}

class SshTimer {
  readonly command: string;
  private readonly log: string;

  constructor(dir: string, sshCommand: string) {
    this.log = join(dir, "ssh-timeline.log");
    const script = join(dir, "ssh-timed.sh");
    writeFileSync(
      script,
      `#!/bin/sh\ns=$(date +%s%N)\n${sshCommand} "$@"\nrc=$?\ne=$(date +%s%N)\n${WRAPPER_KINDS}\necho "$k $s $e" >> '${this.log}'\nexit $rc\n`,
    );
    chmodSync(script, 0o755);
    this.command = script;
  }

  async trace(run: () => Promise<Finished>): Promise<Timeline> {
    rmSync(this.log, { force: true });
    const t0 = Date.now();
    const r = await run();
    const total = Date.now() - t0;
    const sessions = existsSync(this.log)
      ? readFileSync(this.log, "utf8")
          .trim()
          .split("\n")
          .map((line) => {
            const [kind = "?", s = "0", e = "0"] = line.split(" ");
            return {
              kind,
              start: Number(BigInt(s) / 1000000n) - t0,
              end: Number(BigInt(e) / 1000000n) - t0,
            };
          })
          .sort((a, b) => a.start - b.start)
      : [];
    const said = r.stderr
      .split("\n")
      .filter((l) => /^pyferry: sent|^Synced /.test(l))
      .map((l) => l.trim());
    return { sessions, total, said };
  }
}

function timelineText(t: Timeline): string {
  const parts = t.sessions.map((s) => `${s.kind} ${s.start}-${s.end} (${s.end - s.start})`);
  return `${parts.join(", ")}; exited at ${t.total} ms`;
}

// ---------------------------------------------------------------------------------------------
// The lab and pyferry

interface Ctx {
  w: string;
  cache: string;
  lab: SshLab;
  /** In front of h1 (alias hp) and h2 (alias hq). */
  proxy1: TcpProxy;
  proxy2: TcpProxy;
  repeat: number;
  timer: SshTimer;
}

function pyferryEnv(ctx: Ctx, sshCommand = ctx.lab.sshCommand): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NO_COLOR: "1",
    PYFERRY_CACHE_DIR: ctx.cache,
    PYFERRY_SSH_COMMAND: sshCommand,
  };
  // The user's own target settings must not redirect or reconfigure the lab's aliases.
  delete env.PYFERRY_TARGET;
  delete env.PYFERRY_CONFIG;
  delete env.PYFERRY_DEBUG;
  return env;
}

function pyferry(
  ctx: Ctx,
  args: string[],
  cwd: string,
  opts: { sshCommand?: string; timeoutMs?: number } = {},
): Promise<Finished> {
  return exec(process.execPath, [PYFERRY, ...args], {
    env: pyferryEnv(ctx, opts.sshCommand),
    cwd,
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
}

/** The lab's ssh, as a user would type it: ssh -F <config> ARGS. */
function ssh(ctx: Ctx, args: string[]): Promise<Finished> {
  return exec("ssh", ["-F", ctx.lab.sshConfig, ...args]);
}

function storeOf(ctx: Ctx, alias: string): string {
  return join(ctx.lab.host(alias).root, STORE);
}

/** The finished environments in a host's store. */
function remoteEnvs(ctx: Ctx, alias: string): string[] {
  const dir = join(storeOf(ctx, alias), "envs");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.startsWith(".") && existsSync(join(dir, n, ".pyferry-complete")))
    .map((n) => join(dir, n));
}

/** The local environment pyferry built for a pack folder (from its run record). */
function packEnvDir(ctx: Ctx, packDir: string): string {
  const mods = join(packDir, "conf", "mods");
  const runs = join(ctx.cache, "runs");
  for (const name of readdirSync(runs)) {
    if (!name.endsWith(".json")) continue;
    const rec = JSON.parse(readFileSync(join(runs, name), "utf8")) as {
      inputs?: { path?: string }[];
      envDir?: string;
    };
    if (rec.inputs?.[0]?.path === mods && typeof rec.envDir === "string") return rec.envDir;
  }
  throw new BenchFailure(`pyferry left no run record for the pack ${packDir}.`);
}

/**
 * What a sync with nothing to send still writes to the wire, from pyferry's own encoders: the
 * list of every object id (NEED) and the tar of hardlinks that assembles the environment
 * (ASSEMBLE), both sent even when the remote already holds the environment.
 */
async function fixedSyncPayload(
  ctx: Ctx,
  envDir: string,
): Promise<{ need: number; assemble: number } | null> {
  const id = createHash("sha256").update(envDir).digest("hex").slice(0, 32);
  let tree: Tree;
  try {
    tree = (
      JSON.parse(readFileSync(join(ctx.cache, "remote", "trees", `${id}.json`), "utf8")) as {
        tree: Tree;
      }
    ).tree;
  } catch {
    return null;
  }
  const ids = new Set(
    tree.entries.flatMap((e) => (e.type === "file" && e.size > 0 ? [e.object] : [])),
  );
  let need = 0;
  for (const o of ids) need += o.length + 1;
  let assemble = 0;
  // A temporary name as long as newId()'s ("mwq59l36-6cbb1d6d38be"), so long paths match.
  for await (const chunk of tarStream(linkEntries(tree, "envs/.tmp-xxxxxxxx-xxxxxxxxxxxx"))) {
    assemble += (chunk as Buffer).length;
  }
  return { need, assemble };
}

// ---------------------------------------------------------------------------------------------
// 1. Warm run

interface WarmRun {
  firstMs: number;
  remotePython: string;
  pyferry: number[];
  ssh: number[];
  sshTrue: number[];
  nodeBare: number[];
  pyferryVersion: number[];
  /** A fresh node importing one of pyferry's compiled modules (the remote path's start-up). */
  imports: { module: string; ms: number[] }[];
  timeline: Timeline;
}

/** Modules on the way from `pyferry run --on` to the first ssh, relative to dist/. */
const START_MODULES = ["bundle/fast-run.js", "bundle/main.js"];

async function partWarmRun(ctx: Ctx): Promise<WarmRun> {
  const dir = join(ctx.w, "hello");
  mkdirSync(dir);
  const script = join(dir, "hello.py");
  writeFileSync(script, 'print("hello from the remote")\n');
  progress("1. warm run: first pyferry run --on h1 hello.py (builds here, ships; not timed)");
  const first = await pyferry(ctx, ["run", "--on", "h1", "hello.py"], dir);
  const envs = remoteEnvs(ctx, "h1");
  if (envs.length !== 1) {
    throw new BenchFailure(`h1's store holds ${envs.length} environments after one run, not 1.`);
  }
  const remotePython = join(envs[0] as string, "bin", "python");
  const viaPyferry = () => pyferry(ctx, ["run", "--on", "h1", "hello.py"], dir);
  const viaSsh = () => ssh(ctx, ["h1", remotePython, script]);
  // Untimed: both once, so neither's first timed run pays for cold caches.
  const expected = (await viaSsh()).stdout;
  if (expected !== first.stdout || (await viaPyferry()).stdout !== expected) {
    throw new BenchFailure("pyferry run --on h1 hello.py printed otherwise than ssh h1 python.");
  }
  const result: WarmRun = {
    firstMs: first.ms,
    remotePython,
    pyferry: [],
    ssh: [],
    sshTrue: [],
    nodeBare: [],
    pyferryVersion: [],
    imports: START_MODULES.map((module) => ({ module, ms: [] })).filter((m) =>
      existsSync(fileURLToPath(new URL(`../${m.module}`, import.meta.url))),
    ),
    timeline: { sessions: [], total: 0, said: [] },
  };
  for (let i = 0; i < ctx.repeat; i++) {
    progress(`1. warm run: run ${i + 1} of ${ctx.repeat}`);
    const order: [() => Promise<Finished>, number[]][] = [
      [viaPyferry, result.pyferry],
      [viaSsh, result.ssh],
    ];
    if (i % 2 === 1) order.reverse();
    for (const [run, into] of order) {
      const r = await run();
      if (r.stdout !== expected) throw new BenchFailure(`Warm run ${i + 1} printed otherwise.`);
      into.push(r.ms);
    }
  }
  progress("1. warm run: reference commands and a traced run (not in the table)");
  for (let i = 0; i < ctx.repeat; i++) {
    result.sshTrue.push((await ssh(ctx, ["h1", "true"])).ms);
    result.nodeBare.push((await exec(process.execPath, ["-e", "0"])).ms);
    result.pyferryVersion.push((await exec(process.execPath, [PYFERRY, "--version"])).ms);
    for (const m of result.imports) {
      const url = new URL(`../${m.module}`, import.meta.url).href;
      const code = `await import(${JSON.stringify(url)});`;
      m.ms.push((await exec(process.execPath, ["--input-type=module", "-e", code])).ms);
    }
  }
  const traced = () =>
    pyferry(ctx, ["run", "--on", "h1", "hello.py"], dir, { sshCommand: ctx.timer.command });
  // pyferry keys its cached host facts by the ssh command: the first traced run probes again.
  await traced();
  result.timeline = await ctx.timer.trace(traced);
  return result;
}

// ---------------------------------------------------------------------------------------------
// 2. Re-ship after a one-line edit

interface Reship {
  envDir: string;
  envFiles: number;
  envBytes: number;
  sync: { ms: number[]; bytes: number[] };
  run: { ms: number[]; bytes: number[] };
  rsync: { ms: number[]; bytes: number[] };
  sshTrueBytes: number;
  fixed: { need: number; assemble: number } | null;
  timeline: Timeline;
  runTimeline: Timeline;
}

const REQ_SCRIPT = (edit: number) =>
  `import requests\n\nMESSAGE = "edit ${edit}"\nprint(MESSAGE, requests.__version__)\n`;

async function partReship(ctx: Ctx): Promise<Reship> {
  const packs = join(ctx.w, "packs");
  const src = join(ctx.w, "req");
  mkdirSync(packs, { recursive: true });
  mkdirSync(src);
  writeFileSync(join(src, "fetch.py"), REQ_SCRIPT(0));
  progress("2. re-ship: pyferry pack fetch.py --folder, first sync to hp (builds; not timed)");
  await pyferry(ctx, ["pack", join(src, "fetch.py"), "--folder", "-n", "reqpack"], packs);
  const pack = join(packs, "reqpack");
  const appFile = join(pack, "app", "fetch.py");
  await pyferry(ctx, ["sync", "reqpack", "--on", "hp"], packs, { timeoutMs: 600_000 });
  const envDir = packEnvDir(ctx, pack);
  const dest = join(ctx.lab.host("h1").root, "rsync-dest");
  const rsyncArgs = [
    "-az",
    "-e",
    `ssh -F ${ctx.lab.sshConfig}`,
    envDir,
    join(pack, "app"),
    `hp:${dest}/`,
  ];
  const rsync = () => exec("rsync", rsyncArgs);
  progress("2. re-ship: first rsync of the same env + app folders (not timed)");
  await rsync();
  progress("2. re-ship: first pyferry run --on hp fetch.py (not timed)");
  await pyferry(ctx, ["run", "--on", "hp", "fetch.py"], src, { timeoutMs: 600_000 });
  // Nothing changed since: a second round of each, so the timed ones find warm caches.
  await pyferry(ctx, ["sync", "reqpack", "--on", "hp"], packs);
  await rsync();

  const result: Reship = {
    envDir,
    envFiles: countEntries(envDir),
    envBytes: treeBytes(envDir),
    sync: { ms: [], bytes: [] },
    run: { ms: [], bytes: [] },
    rsync: { ms: [], bytes: [] },
    sshTrueBytes: 0,
    fixed: await fixedSyncPayload(ctx, envDir),
    timeline: { sessions: [], total: 0, said: [] },
    runTimeline: { sessions: [], total: 0, said: [] },
  };
  const storeObjects = join(storeOf(ctx, "h1"), "objects");
  const syncOnce = async () => {
    settle();
    const r = await counted(ctx.proxy1, () =>
      pyferry(ctx, ["sync", "reqpack", "--on", "hp"], packs),
    );
    const sha = createHash("sha256").update(readFileSync(appFile)).digest("hex");
    if (!existsSync(join(storeObjects, sha.slice(0, 2), sha.slice(2)))) {
      throw new BenchFailure("After pyferry sync, h1's store lacks the edited fetch.py.");
    }
    result.sync.ms.push(r.ms);
    result.sync.bytes.push(r.bytes);
  };
  const rsyncOnce = async () => {
    settle();
    const r = await counted(ctx.proxy1, rsync);
    if (readFileSync(join(dest, "app", "fetch.py"), "utf8") !== readFileSync(appFile, "utf8")) {
      throw new BenchFailure("After rsync, the copy of fetch.py on h1 is not the edited one.");
    }
    result.rsync.ms.push(r.ms);
    result.rsync.bytes.push(r.bytes);
  };
  for (let i = 0; i < ctx.repeat; i++) {
    progress(`2. re-ship: run ${i + 1} of ${ctx.repeat}`);
    // One line of the script changes; same size, new content and mtime.
    writeFileSync(appFile, REQ_SCRIPT(i + 1));
    if (i % 2 === 0) {
      await syncOnce();
      await rsyncOnce();
    } else {
      await rsyncOnce();
      await syncOnce();
    }
    writeFileSync(join(src, "fetch.py"), REQ_SCRIPT(i + 1));
    settle();
    const r = await counted(ctx.proxy1, () => pyferry(ctx, ["run", "--on", "hp", "fetch.py"], src));
    if (!r.stdout.startsWith(`edit ${i + 1} `)) {
      throw new BenchFailure(`pyferry run --on hp fetch.py printed "${r.stdout.trim()}".`);
    }
    result.run.ms.push(r.ms);
    result.run.bytes.push(r.bytes);
  }
  result.sshTrueBytes = (await counted(ctx.proxy1, () => ssh(ctx, ["hp", "true"]))).bytes;
  progress("2. re-ship: a traced sync after one more edit (not in the table)");
  const traced = () =>
    pyferry(ctx, ["sync", "-v", "reqpack", "--on", "hp"], packs, {
      sshCommand: ctx.timer.command,
    });
  await traced();
  writeFileSync(appFile, REQ_SCRIPT(ctx.repeat + 1));
  result.timeline = await ctx.timer.trace(traced);
  progress("2. re-ship: a traced pyferry run --on hp after one more edit (not in the table)");
  writeFileSync(join(src, "fetch.py"), REQ_SCRIPT(ctx.repeat + 1));
  // The traced sync above already made pyferry probe hp under the tracing ssh command.
  result.runTimeline = await ctx.timer.trace(() =>
    pyferry(ctx, ["run", "-v", "--on", "hp", "fetch.py"], src, { sshCommand: ctx.timer.command }),
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// 3. First ship of a large environment

interface FirstShip {
  buildMs: number;
  envDir: string;
  envFiles: number;
  envBytes: number;
  sync: number[];
  tar: number[];
  syncBytes: number;
  tarBytes: number;
  pyferrySaid: string;
  timeline: Timeline;
}

async function partFirstShip(ctx: Ctx): Promise<FirstShip> {
  const packs = join(ctx.w, "packs");
  const src = join(ctx.w, "big");
  mkdirSync(packs, { recursive: true });
  mkdirSync(src);
  writeFileSync(
    join(src, "big.py"),
    "import matplotlib\nimport pandas\nimport sklearn\n\nprint(pandas.__version__)\n",
  );
  progress(
    "3. first ship: pyferry pack big.py --folder; conf/mods = pandas scikit-learn matplotlib",
  );
  await pyferry(ctx, ["pack", join(src, "big.py"), "--folder", "-n", "bigpack"], packs);
  const pack = join(packs, "bigpack");
  writeFileSync(join(pack, "conf", "mods"), `${BIG_MODS.join("\n")}\n`);
  progress("3. first ship: first pyferry sync to h2 (builds the environment here; not timed)");
  const build = await pyferry(ctx, ["sync", "bigpack", "--on", "h2"], packs, {
    timeoutMs: 900_000,
  });
  const envDir = packEnvDir(ctx, pack);
  const envFiles = countEntries(envDir);
  const store = storeOf(ctx, "h2");
  const tarDest = join(ctx.lab.host("h2").root, "tar-dest");
  const wipe = () => {
    rmSync(store, { recursive: true, force: true });
    rmSync(tarDest, { recursive: true, force: true });
    settle();
  };
  const tarTo = (alias: string) =>
    exec("bash", [
      "-c",
      'set -o pipefail; tar -C "$1" -c . | ssh -F "$2" "$3" "mkdir -p $4 && tar -x -C $4"',
      "tar-ship",
      envDir,
      ctx.lab.sshConfig,
      alias,
      tarDest,
    ]);
  const checkSync = () => {
    const envs = remoteEnvs(ctx, "h2");
    const got =
      envs.length === 1 ? countEntries(envs[0] as string, new Set([".pyferry-complete"])) : -1;
    if (got !== envFiles) {
      throw new BenchFailure(
        `After pyferry sync, h2 holds ${envs.length} environment(s) with ${got} entries; the local one has ${envFiles}.`,
      );
    }
  };
  const checkTar = () => {
    const got = countEntries(tarDest);
    if (got !== envFiles) {
      throw new BenchFailure(`tar unpacked ${got} entries on h2; the local env has ${envFiles}.`);
    }
  };
  const result: FirstShip = {
    buildMs: build.ms,
    envDir,
    envFiles,
    envBytes: treeBytes(envDir),
    sync: [],
    tar: [],
    syncBytes: 0,
    tarBytes: 0,
    pyferrySaid: "",
    timeline: { sessions: [], total: 0, said: [] },
  };
  const syncOnce = async () => {
    wipe();
    const r = await pyferry(ctx, ["sync", "bigpack", "--on", "h2"], packs);
    checkSync();
    result.sync.push(r.ms);
    result.pyferrySaid = r.stderr.trim().split("\n").pop() ?? "";
  };
  const tarOnce = async () => {
    wipe();
    const r = await tarTo("h2");
    checkTar();
    result.tar.push(r.ms);
  };
  for (let i = 0; i < ctx.repeat; i++) {
    progress(`3. first ship: run ${i + 1} of ${ctx.repeat}`);
    if (i % 2 === 0) {
      await syncOnce();
      await tarOnce();
    } else {
      await tarOnce();
      await syncOnce();
    }
  }
  progress("3. first ship: bytes through a proxy in front of h2 (alias hq; not timed)");
  wipe();
  result.syncBytes = (
    await counted(ctx.proxy2, () => pyferry(ctx, ["sync", "bigpack", "--on", "hq"], packs))
  ).bytes;
  checkSync();
  wipe();
  result.tarBytes = (await counted(ctx.proxy2, () => tarTo("hq"))).bytes;
  checkTar();
  progress("3. first ship: a traced sync into an empty store (not in the table)");
  wipe();
  result.timeline = await ctx.timer.trace(() =>
    pyferry(ctx, ["sync", "-v", "bigpack", "--on", "h2"], packs, {
      sshCommand: ctx.timer.command,
    }),
  );
  checkSync();
  wipe();
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

function verdict(ok: boolean): string {
  return ok ? "met" : "NOT met";
}

function report(
  ctx: Ctx,
  one: WarmRun,
  two: Reship,
  three: FirstShip,
  load: number,
  startedMs: number,
): string {
  const added = median(one.pyferry) - median(one.ssh);
  const syncBytes = median(two.sync.bytes);
  const runBytes = median(two.run.bytes);
  const rsyncBytes = median(two.rsync.bytes);
  const syncMs = median(two.sync.ms);
  const runMs = median(two.run.ms);
  const rsyncMs = median(two.rsync.ms);
  const firstRatio = median(three.sync) / median(three.tar);
  const signed = (ms: number) => `${ms >= 0 ? "+" : ""}${ms.toFixed(0)} ms`;
  const table = formatTable(
    [
      { header: "part", wrap: 30 },
      { header: "measure", wrap: 22 },
      { header: "pyferry", align: "right" },
      { header: "peer", align: "right" },
      { header: "pyferry vs peer", align: "right" },
      { header: "target" },
      { header: "met" },
    ],
    [
      [
        "1. warm run of hello.py on h1",
        "wall time, ms",
        median(one.pyferry).toFixed(0),
        median(one.ssh).toFixed(0),
        signed(added),
        `adds < ${TARGET_ADDED_MS} ms`,
        verdict(added < TARGET_ADDED_MS),
      ],
      null,
      [
        "2. re-ship after a one-line edit: pyferry sync of the pack vs rsync -az",
        "bytes client->server",
        bytesText(syncBytes),
        bytesText(rsyncBytes),
        ratio(syncBytes, rsyncBytes),
        "fewer than rsync",
        verdict(syncBytes < rsyncBytes),
      ],
      [
        "",
        "wall time, s",
        secs(syncMs),
        secs(rsyncMs),
        ratio(syncMs, rsyncMs),
        `pyferry < ${TARGET_RESHIP_S} s`,
        verdict(syncMs < TARGET_RESHIP_S * 1000),
      ],
      [
        "2b. same edit, pyferry run --on hp fetch.py (re-analyzes, runs it) vs the same rsync",
        "bytes client->server",
        bytesText(runBytes),
        bytesText(rsyncBytes),
        ratio(runBytes, rsyncBytes),
        "fewer than rsync",
        verdict(runBytes < rsyncBytes),
      ],
      [
        "",
        "wall time, s",
        secs(runMs),
        secs(rsyncMs),
        ratio(runMs, rsyncMs),
        `pyferry < ${TARGET_RESHIP_S} s`,
        verdict(runMs < TARGET_RESHIP_S * 1000),
      ],
      null,
      [
        `3. first ship of ${BIG_MODS.join(" + ")} (${bytesText(three.envBytes)}, ${three.envFiles} entries) into an empty store on h2`,
        "wall time, s",
        secs(median(three.sync)),
        secs(median(three.tar)),
        ratio(median(three.sync), median(three.tar)),
        `<= ${TARGET_FIRST_RATIO}x tar`,
        verdict(firstRatio <= TARGET_FIRST_RATIO),
      ],
      [
        "",
        "bytes client->server (one more run each, through a proxy)",
        bytesText(three.syncBytes),
        bytesText(three.tarBytes),
        ratio(three.syncBytes, three.tarBytes),
        "-",
        "-",
      ],
    ],
  );
  const fixed = two.fixed;
  const fixedText = fixed
    ? `pyferry's own encoders put the NEED list (every object id of the env) at ${bytesText(fixed.need)} and the ASSEMBLE tar (a 512-byte header per entry) at ${bytesText(fixed.assemble)}; both are sent on every sync even though h1 already holds the environment (ASSEMBLE's script reads and discards its input when envs/<key> is complete)`
    : "the tree listing pyferry caches was not found, so the fixed payload was not computed";
  const t1 = one.timeline.sessions;
  const master = t1.find((s) => s.kind === "master");
  const run = t1.find((s) => s.kind === "run");
  const close = t1.find((s) => s.kind === "close");
  const ext = process.env.NODE_EXTRA_CA_CERTS ? "set" : "unset";
  const total = ((performance.now() - startedMs) / 1000).toFixed(0);
  return [
    `Remote benchmark: ${ctx.lab.hosts.length} OpenSSH servers (${ctx.lab.mode === "netns" ? "each in its own network namespace" : "loopback ports"}), ` +
      `median of ${ctx.repeat} runs per cell, ${process.version}.`,
    "",
    table,
    "",
    `Targets: warm run adds < ${TARGET_ADDED_MS} ms: ${verdict(added < TARGET_ADDED_MS)}; ` +
      `re-ship sends fewer bytes than rsync and takes < ${TARGET_RESHIP_S} s: sync ${verdict(syncBytes < rsyncBytes && syncMs < TARGET_RESHIP_S * 1000)}, ` +
      `run --on ${verdict(runBytes < rsyncBytes && runMs < TARGET_RESHIP_S * 1000)}; ` +
      `first ship <= ${TARGET_FIRST_RATIO}x tar: ${verdict(firstRatio <= TARGET_FIRST_RATIO)} (${firstRatio.toFixed(2)}x).`,
    "",
    "Peers:",
    `  1: ssh -F <lab config> h1 <h1 home>/${STORE}/envs/<key>/bin/python <abs>/hello.py (the interpreter of the environment pyferry shipped there)`,
    `  2: rsync -az -e "ssh -F <lab config>" <local env folder> <pack>/app hp:<h1 home>/rsync-dest/`,
    "  3: bash -c 'set -o pipefail; tar -C <local env folder> -c . | ssh -F <lab config> h2 \"mkdir -p D && tar -x -C D\"'",
    "",
    "Every run:",
    `  1 (ms): pyferry ${runsText(one.pyferry, "ms")} | ssh ${runsText(one.ssh, "ms")}`,
    `  2 sync (s): ${runsText(two.sync.ms, "s")}, bytes ${two.sync.bytes.join(" ")} | rsync (s): ${runsText(two.rsync.ms, "s")}, bytes ${two.rsync.bytes.join(" ")}`,
    `  2b run --on (s): ${runsText(two.run.ms, "s")}, bytes ${two.run.bytes.join(" ")}`,
    `  3 (s): pyferry sync ${runsText(three.sync, "s")} | tar ${runsText(three.tar, "s")}`,
    "",
    "Where pyferry's time goes (one extra traced run each; PYFERRY_SSH_COMMAND pointed at a " +
      "wrapper logging when each ssh process started and ended, ms after pyferry was started; " +
      "the wrapper adds a few ms per ssh):",
    `  1 warm run: ${timelineText(one.timeline)}.`,
    ...(master && run
      ? [
          `    -> node + CLI load before the master ssh is even started: ${master.start} ms; ` +
            `ssh handshake ${master.end - master.start} ms; the run session ${run.end - run.start} ms` +
            (close ? `; closing the master ${close.end - close.start} ms` : "") +
            `. References (median): node -e 0 ${median(one.nodeBare).toFixed(0)} ms, ` +
            `pyferry --version ${median(one.pyferryVersion).toFixed(0)} ms, ssh h1 true ${median(one.sshTrue).toFixed(0)} ms ` +
            `(NODE_EXTRA_CA_CERTS ${ext}); a fresh node importing only ` +
            one.imports.map((m) => `dist/${m.module} ${median(m.ms).toFixed(0)} ms`).join(", ") +
            ".",
        ]
      : []),
    `  2 sync after an edit: ${timelineText(two.timeline)}. ${two.timeline.said.join(" ")}`,
    `    -> ssh -F <cfg> hp true alone sends ${bytesText(two.sshTrueBytes)} client->server; ${fixedText}.`,
    `  2b run --on after an edit: ${timelineText(two.runTimeline)} (the gap between the master's ` +
      "connection and the run session is the local re-analysis and re-lock of the edited script).",
    `  3 first ship: ${timelineText(three.timeline)}. ${three.timeline.said.join(" ")}`,
    "",
    "How it was measured:",
    `- Timed: wall time of each command from spawn to exit, pyferry and its peer alternating which goes first; \`sync\` ran (untimed) before each timed step of parts 2 and 3. pyferry ran from this checkout (node ${PYFERRY.replace(/.*\/(bin\/)/, "$1")}) with a private PYFERRY_CACHE_DIR under a temporary folder.`,
    `- Not timed: building environments. Each part's first pyferry command (run / sync) built the environment locally and shipped it once (part 3's build and first ship: ${secs(three.buildMs)} s; part 1's first run: ${secs(one.firstMs)} s); then one untimed round of each command warmed caches. Timed runs had a warm local cache (envs and pyferry's cached tree listings).`,
    "- 1: everything already on h1; both commands printed the same line every time.",
    `- 2: the pack's conf/mods is "requests" (env ${bytesText(two.envBytes)}, ${two.envFiles} entries); before each run one line of app/fetch.py changed (same size, new content); both tools had the env + app already on h1, and after each run h1 held the edited file (pyferry: its object in the store; rsync: the copy). Bytes: client->server only, counted by test/support/tcp-proxy.ts (alias hp in front of h1), which does not count server->client; they include each tool's SSH handshake and framing. Row 2b edits the script a plain \`pyferry run --on hp\` runs, so it also re-analyzes, re-locks and runs the script (its peer is the same rsync, which runs nothing).`,
    `- 3: h2's store (${STORE} under its $HOME) and tar's destination were removed before every run, so pyferry sent the whole environment into an empty store (${three.pyferrySaid.replace(/^Synced [^:]*: /, "").replace(/\.$/, "")}). tar is uncompressed, like pyferry's stream; ssh compression is off for both. The timed runs went straight to h2; the byte counts come from one more run of each through a proxy (alias hq). Each run was checked: h2 ended up with as many entries as the local env (${three.envFiles}).`,
    "- Hosts share this machine's disk and CPU: the remote side's tar and sh compete with the client for the same cores, and transfers are disk- and CPU-bound, not network-bound.",
    `Machine: ${availableParallelism()} cores, load average ${load.toFixed(2)} at the start and ` +
      `${(loadavg()[0] ?? 0).toFixed(2)} at the end; ${total} s in all.`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<string> {
  const repeat = envCount("PYFERRY_BENCH_REPEAT", 3);
  preflight();
  const startedMs = performance.now();
  const load = loadavg()[0] ?? 0;
  const w = mkdtempSync(join(tmpdir(), "pyferry-bench-remote-"));
  // On Ctrl-C the lab's own hook stops the servers and re-raises; this takes the folder too.
  const dropFolder = () => {
    if (process.env.PYFERRY_BENCH_KEEP !== "1") rmSync(w, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, dropFolder);
  let lab: SshLab | undefined;
  const proxies: TcpProxy[] = [];
  try {
    progress("starting 2 OpenSSH servers and byte-counting proxies");
    lab = await startSshLab({ hosts: 2, netns: "auto" });
    const h1 = lab.host("h1");
    const h2 = lab.host("h2");
    const proxy1 = await startProxy(h1.address, h1.port);
    proxies.push(proxy1);
    const proxy2 = await startProxy(h2.address, h2.port);
    proxies.push(proxy2);
    lab.addAlias("hp", "127.0.0.1", proxy1.port, { hostKeyOf: "h1" });
    lab.addAlias("hq", "127.0.0.1", proxy2.port, { hostKeyOf: "h2" });
    const ctx: Ctx = {
      w,
      cache: join(w, "cache"),
      lab,
      proxy1,
      proxy2,
      repeat,
      timer: new SshTimer(w, lab.sshCommand),
    };
    const one = await partWarmRun(ctx);
    const two = await partReship(ctx);
    const three = await partFirstShip(ctx);
    return report(ctx, one, two, three, load, startedMs);
  } finally {
    await Promise.all(proxies.map((p) => p.close()));
    await lab?.close();
    if (process.env.PYFERRY_BENCH_KEEP === "1") progress(`kept ${w}`);
    else rmSync(w, { recursive: true, force: true });
  }
}

try {
  console.log(await main());
} catch (err) {
  if (!(err instanceof BenchFailure)) throw err;
  process.stderr.write(`\nbench:remote FAILED: ${err.message}\n`);
  process.exitCode = 1;
}
