/**
 * Helpers for the remote end-to-end tests: pyferry run as a child process without blocking the
 * event loop (a tcp-proxy in this process must keep forwarding meanwhile), and a look into a
 * lab host's store, which is a folder on this machine.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { CACHE, REPO } from "./cli.js";

export interface Finished {
  /** The exit status, or null when a signal ended the process. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Running {
  child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has ended and its pipes are closed. */
  done: Promise<Finished>;
}

export interface PyferryOptions {
  cwd: string;
  /** Which of bin/'s programs: default pyferry (cloudpy, the seed's entry, for instance). */
  bin?: string;
  env: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; default: nothing (stdin closed at once). */
  input?: string;
  /** Keep stdin open (the test writes or closes it); `input` is ignored. */
  openStdin?: boolean;
  /** The process is SIGKILLed after this long, and the test fails; default 120 s. */
  timeoutMs?: number;
  /**
   * Run it on a terminal (a pty made by util-linux `script`): stdout then holds everything the
   * terminal showed (both streams, CRLF line ends, what the keys typed on stdin echoed).
   */
  terminal?: boolean;
}

/** A word for sh -c. */
function shellWord(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Start `node bin/pyferry.js ARGS` with the test's cache; output is collected. */
export function startPyferry(args: string[], opts: PyferryOptions): Running {
  const t0 = Date.now();
  const argv = [process.execPath, join(REPO, "bin", `${opts.bin ?? "pyferry"}.js`), ...args];
  const [command, ...rest] = opts.terminal
    ? ["script", "-qfec", argv.map(shellWord).join(" "), "/dev/null"]
    : argv;
  const child = spawn(command as string, rest, {
    cwd: opts.cwd,
    env: { PYFERRY_CACHE_DIR: CACHE, ...opts.env, NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  child.stdin?.on("error", () => undefined);
  if (!opts.openStdin) child.stdin?.end(opts.input ?? "");
  const limit = opts.timeoutMs ?? 120_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, limit);
  const done = new Promise<Finished>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (status, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new Error(
            `pyferry ${args.join(" ")} did not finish within ${limit} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
          ),
        );
        return;
      }
      resolve({ status, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Run pyferry to the end. */
export function pyferryAsync(args: string[], opts: PyferryOptions): Promise<Finished> {
  return startPyferry(args, opts).done;
}

/** `r` as text for assertion messages. */
export function show(r: Finished): string {
  return `exit ${r.status}${r.signal ? ` (${r.signal})` : ""} after ${r.ms} ms\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** The store of a lab host with the default root: $HOME/.cache/pyferry-remote. */
export function defaultStore(home: string): string {
  return join(home, ".cache", "pyferry-remote");
}

/** What -v said was sent: the environment's files and MiB, and the app's files. */
export interface Sent {
  /** One entry per "sent N files (X MiB); environment K assembled" line. */
  env: { files: number; mib: number; key: string }[];
  /** One entry per "sent N app files (X MiB)" line. */
  app: { files: number; mib: number }[];
  /** The run folders named by "running in ROOT/runs/ID" (each id once). */
  runIds: string[];
}

export function sentOf(stderr: string): Sent {
  const env = [
    ...stderr.matchAll(
      /^pyferry: sent (\d+) files \(([\d.]+) MiB\); environment (\w+) assembled$/gm,
    ),
  ].map((m) => ({ files: Number(m[1]), mib: Number(m[2]), key: m[3] as string }));
  const app = [...stderr.matchAll(/^pyferry: sent (\d+) app files \(([\d.]+) MiB\)$/gm)].map(
    (m) => ({ files: Number(m[1]), mib: Number(m[2]) }),
  );
  const runIds = [
    ...new Set(
      [...stderr.matchAll(/^pyferry: running in .*\/runs\/([^/\s]+)$/gm)].map(
        (m) => m[1] as string,
      ),
    ),
  ];
  return { env, app, runIds };
}

export interface StoreCheck {
  /** Objects found under objects/. */
  objects: number;
  bytes: number;
  /** Objects whose bytes do not hash to their name, or that are misnamed or writable. */
  bad: string[];
}

/**
 * Walk `store`/objects: every file must be named ab/<62 hex>[.x] by the sha256 of its bytes,
 * and be read-only.
 */
export function checkObjects(store: string): StoreCheck {
  const out: StoreCheck = { objects: 0, bytes: 0, bad: [] };
  const root = join(store, "objects");
  if (!existsSync(root)) return out;
  for (const dir of readdirSync(root)) {
    const d = join(root, dir);
    if (!lstatSync(d).isDirectory() || !/^[0-9a-f]{2}$/.test(dir)) {
      out.bad.push(`${dir} (not an object folder)`);
      continue;
    }
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.objects++;
      out.bytes += st.size;
      const m = /^([0-9a-f]{62})(\.x)?$/.exec(name);
      if (!st.isFile() || !m) {
        out.bad.push(`${dir}/${name} (badly named or not a file)`);
        continue;
      }
      const hash = createHash("sha256").update(readFileSync(p)).digest("hex");
      if (hash !== `${dir}${m[1]}`) out.bad.push(`${dir}/${name} (its bytes hash to ${hash})`);
      else if ((st.mode & 0o222) !== 0) out.bad.push(`${dir}/${name} (writable)`);
      else if (Boolean(m[2]) !== ((st.mode & 0o111) !== 0))
        out.bad.push(`${dir}/${name} (executable bit does not match its name)`);
    }
  }
  return out;
}

/** Names in `store`/`sub` (none when it does not exist). */
export function entries(store: string, sub: string): string[] {
  const p = join(store, sub);
  return existsSync(p) ? readdirSync(p).sort() : [];
}

/** Pids of processes on this machine whose command line contains `marker`, except pgrep. */
export function pgrep(marker: string): number[] {
  const r = spawnSync("pgrep", ["-f", "--", marker], { encoding: "utf8" });
  return (r.stdout ?? "")
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== process.pid);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until `cond` holds, checking every 50 ms; throws naming `what` after `ms`. */
export async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * An error the way pyferry should report one: the last stderr line starts with "error:", and
 * there is no stack trace.
 */
export function errorLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  return lines.filter((l) => l.startsWith("error:")).pop() ?? "";
}

export function hasStackTrace(stderr: string): boolean {
  return /^\s+at .+[:(]/m.test(stderr) || /\bTypeError\b|\bReferenceError\b/.test(stderr);
}

/** Objects (ab/cdef...) that no environment or run folder links to: their link count is 1. */
export function unlinkedObjects(store: string): string[] {
  const out: string[] = [];
  for (const dir of entries(store, "objects")) {
    for (const name of entries(store, join("objects", dir))) {
      if (lstatSync(join(store, "objects", dir, name)).nlink === 1) out.push(`${dir}/${name}`);
    }
  }
  return out;
}

/**
 * Files of an assembled environment that are no longer the store's objects: every non-empty
 * regular file of envs/<key> is a hardlink to its object, unless something there replaced it.
 */
export function replacedEnvFiles(envDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(envDir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(envDir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile() && st.size > 0 && st.nlink < 2 && name !== ".pyferry-complete")
        out.push(r);
    }
  };
  walk("");
  return out.sort();
}

/** Pids (other than this process) whose working directory is under one of `dirs`. */
export function processesIn(dirs: string[]): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if (!dirs.some((d) => cwd === d || cwd.startsWith(`${d}/`))) continue;
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replace(/\0/g, " ");
      // ssh masters linger a few seconds after their last session; they change nothing.
      if (cmd.includes("ControlMaster=yes")) continue;
      out.push({ pid: Number(name), cmd });
    } catch {
      // Gone, or a zombie.
    }
  }
  return out;
}

/** One parsed line of deploy's summary: "[user@]host:/path  outcome  detail". */
export interface SummaryLine {
  outcome: string;
  detail: string;
}

/** Deploy's (or rollback's) summary, by environment; each must have exactly one line. */
export function summary(stdout: string): Map<string, SummaryLine> {
  const out = new Map<string, SummaryLine>();
  for (const line of stdout.split("\n").filter(Boolean)) {
    const m = /^(\S+) {2}(ok|changed|failed|pending|skipped)(?: {2}(.*))?$/.exec(line);
    assert.ok(m, `a summary line: ${JSON.stringify(line)}`);
    assert.ok(!out.has(m[1] as string), `one line per environment: ${line}`);
    out.set(m[1] as string, { outcome: m[2] as string, detail: m[3] ?? "" });
  }
  return out;
}
