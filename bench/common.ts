/** Small pieces every benchmark script uses. */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Progress goes to stderr so that stdout holds only the tables. */
export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A positive integer from an environment variable, or the default. */
export function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

/** A check inside a benchmark failed: the numbers would mean nothing. */
export class BenchFailure extends Error {}

/** Print what `main` returns; a failed check is one line on stderr and exit status 1. */
export function runBench(name: string, main: () => string): void {
  try {
    console.log(main());
  } catch (err) {
    if (!(err instanceof BenchFailure)) throw err;
    process.stderr.write(`\nbench:${name} FAILED: ${err.message}\n`);
    process.exitCode = 1;
  }
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * Flush what earlier steps wrote, so that their write-back is not billed to the next timed
 * step. The OS page cache is not dropped: "cold" means a tool's own cache is empty.
 */
export function settle(): void {
  spawnSync("sync");
}

/**
 * Bytes of the regular files under `dir` (links not followed; 0 where nothing is), as
 * src/util/tree-bytes.ts counts them, synchronously for the benchmarks' synchronous steps.
 */
export function treeBytes(dir: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) total += treeBytes(p);
    else if (st.isFile()) total += st.size;
  }
  return total;
}

let ticksPerSecond: number | undefined;

/**
 * CPU seconds (user and system) of this process's children that have ended and been waited
 * for, and of their own waited-for children: /proc/self/stat's cutime and cstime, in the
 * kernel's USER_HZ ticks (getconf CLK_TCK; 100 on Linux).
 */
export function childrenCpuSeconds(): number {
  ticksPerSecond ??=
    Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 of proc(5), counted from the state (field 3) at index 0 here.
  return (Number(fields[13]) + Number(fields[14])) / ticksPerSecond;
}

/** A Debian package a benchmark needs, and how to tell that it is there. */
export interface Needed {
  /** The Debian package that provides it. */
  pkg: string;
  /** What the user would miss, for messages ("/usr/sbin/sshd"). */
  what: string;
  present: () => boolean;
}

/** What the OpenSSH labs of test/support/sshd.ts need. */
export function sshLabNeeds(): Needed[] {
  const runs = (program: string, args: string[]) =>
    !spawnSync(program, args, { stdio: "ignore" }).error;
  return [
    { pkg: "openssh-server", what: "/usr/sbin/sshd", present: () => existsSync("/usr/sbin/sshd") },
    { pkg: "openssh-client", what: "ssh", present: () => runs("ssh", ["-V"]) },
  ];
}

/**
 * Install, with apt-get as root, the packages of `needed` whose check fails; as another user,
 * or when apt-get cannot, one sentence naming what to install. Like scripts/test.sh, so that a
 * benchmark runs on a fresh machine after the README's two set-up commands.
 */
export function ensureDebianPackages(bench: string, needed: Needed[]): void {
  const missing = () => needed.filter((n) => !n.present());
  const first = missing();
  if (first.length === 0) return;
  const pkgs = () => [...new Set(missing().map((n) => n.pkg))];
  const hint = `apt-get install -y ${pkgs().join(" ")}`;
  const names = `${first.map((n) => n.what).join(", ")}, which ${first.length === 1 ? "is" : "are"} missing`;
  if (spawnSync("apt-get", ["--version"], { stdio: "ignore" }).error) {
    throw new BenchFailure(
      `bench:${bench} needs ${names}; install ${pkgs().join(" ")} (Debian's names) and run it again.`,
    );
  }
  if (process.getuid?.() !== 0) {
    throw new BenchFailure(`bench:${bench} needs ${names}; as root: ${hint}`);
  }
  progress(`bench:${bench} needs ${names}: ${hint}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", ...pkgs()], {
      stdio: ["ignore", 2, 2],
      env,
    });
  // A fresh machine's package lists may be missing or stale: update once, then try again.
  if (install().status !== 0) {
    spawnSync("apt-get", ["update", "-q"], { stdio: ["ignore", 2, 2], env });
    install();
  }
  const still = missing();
  if (still.length > 0) {
    throw new BenchFailure(
      `${hint} did not provide ${still.map((n) => n.what).join(", ")}; install it and run bench:${bench} again.`,
    );
  }
}
