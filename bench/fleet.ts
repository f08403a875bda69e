/**
 * `npm run bench:fleet`: `pyferry deploy` against Ansible's pip module (Debian's ansible
 * package), side by side in the same run, on ten real OpenSSH servers (test/support/sshd.ts;
 * network namespaces as root, else loopback ports):
 *
 *   a. a 10-package change (ten pins moved to newer versions) deployed to 10 hosts over fresh
 *      connections: `pyferry deploy --yes --forks 10` vs `ansible-playbook` with
 *      `ansible.builtin.pip` (forks 10), both from the same wheelhouse, both starting from fresh
 *      environments holding the same initial set;
 *   b. the no-op redeploy right after it, each tool as it is by default: both keep their ssh
 *      connections for 60 s after a run (Ansible's ControlPersist=60s, pyferry's
 *      PYFERRY_SSH_PERSIST default), so both reuse those a left open;
 *   c. the no-op over fresh connections (a redeploy more than a minute after the last run);
 *   d. the change again from the initial set, over connections a run just before kept open;
 *   e. the no-op of c with both tools preferring a classical key exchange (X25519), to show
 *      what the default post-quantum one costs a fresh login.
 *
 * Every repeat starts over: the hosts' environments and pyferry's store there are removed and
 * pyferry gets an empty local cache, then both tools deploy the initial set (untimed), then each
 * tool's change and its no-op right after are timed, then the no-op over fresh connections, then
 * the no-op with a classical key exchange; then the same reset and initial deploy, and the
 * change over kept connections. Both sides are checked after every timed step.
 *
 * Environment: PYFERRY_BENCH_REPEAT (default 3; medians are shown), PYFERRY_BENCH_KEEP=1 (keep
 * the temporary folder), PYFERRY_BENCH_PYTHON (the hosts' CPython 3.11; default: pyenv's).
 */
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findPython311, makeWheelhouse, norm } from "../test/support/mirror.js";
import { type SshLab, sshAvailable, startSshLab } from "../test/support/sshd.js";
import {
  BenchFailure,
  ensureDebianPackages,
  envCount,
  median,
  progress,
  settle,
  sshLabNeeds,
} from "./common.js";
import { formatTable } from "./table.js";

const PYFERRY = fileURLToPath(new URL("../../bin/pyferry.js", import.meta.url));
const HOSTS = 10;
const TARGET_RATIO = 5;
const TARGET_NOOP_MS = 1000;
/** Step e's key exchange (classical X25519, no post-quantum part). */
const CLASSICAL_KEX = "curve25519-sha256";
/** The store's folder under a host's $HOME (transport/scripts.ts PRELUDE). */
const STORE = join(".cache", "pyferry-remote");
/** The interpreter Ansible's modules run with on the hosts (Debian's). */
const ANSIBLE_PYTHON = "/usr/bin/python3";

/** Unchanged by the change. */
const BASE: [string, string][] = [
  ["six", "1.17.0"],
  ["idna", "3.20"],
  ["attrs", "26.1.0"],
  ["packaging", "26.3"],
];
/** Ten packages, each moved from the first version to the second; none has dependencies. */
const CHANGE: [string, string, string][] = [
  ["websockets", "15.0.1", "17.1"],
  ["fsspec", "2026.6.0", "2026.9.0"],
  ["zipp", "3.23.0", "4.1.0"],
  ["wrapt", "1.17.3", "2.5.0"],
  ["tomli", "2.4.0", "2.4.1"],
  ["tabulate", "0.8.10", "0.10.0"],
  ["msgpack", "1.1.2", "1.2.3"],
  ["mpmath", "1.3.0", "1.4.1"],
  ["more-itertools", "10.8.0", "11.1.0"],
  ["docutils", "0.22.4", "0.23"],
];

type Packages = Map<string, string>;
const before = (): Packages =>
  new Map([...BASE, ...CHANGE.map(([n, a]) => [n, a] as [string, string])]);
const after = (): Packages =>
  new Map([...BASE, ...CHANGE.map(([n, , b]) => [n, b] as [string, string])]);
const pins = (p: Packages) => [...p].map(([n, v]) => `${n}==${v}`);

// ---------------------------------------------------------------------------------------------
// Processes

interface Finished {
  ms: number;
  stdout: string;
  stderr: string;
}

/** Run to completion (without blocking the event loop); a failure stops the bench. */
function exec(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Finished> {
  const shown = [file, ...args].join(" ").slice(0, 300);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      out += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      err = (err + s).slice(-65536);
    });
    const timeoutMs = opts.timeoutMs ?? 300_000;
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
        const tail = `${out}\n${err}`.trim().split("\n").slice(-40).join("\n");
        reject(new BenchFailure(`${shown}\nfailed (exit ${code ?? signal}):\n${tail}`));
        return;
      }
      resolve({ ms, stdout: out, stderr: err });
    });
  });
}

function have(program: string, args: string[]): boolean {
  const r = spawnSync(program, args, { stdio: "ignore" });
  return !r.error && r.status === 0;
}

// ---------------------------------------------------------------------------------------------
// What the machine needs

/** Ansible's version line, or undefined when ansible-playbook does not run. */
function ansibleVersion(): string | undefined {
  const r = spawnSync("ansible-playbook", ["--version"], { encoding: "utf8" });
  return r.error || r.status !== 0 ? undefined : (r.stdout.split("\n")[0] ?? "").trim();
}

/** A CPython 3.11 for the hosts' environments (the wheels include cp311 ones). */
function findPython(): string {
  const found = findPython311(process.env.PYFERRY_BENCH_PYTHON);
  if (!found) {
    throw new BenchFailure(
      "bench:fleet needs a CPython 3.11 for the hosts' environments; set PYFERRY_BENCH_PYTHON to one.",
    );
  }
  return found;
}

function preflight(): { ansible: string; python: string } {
  ensureDebianPackages("fleet", [
    ...sshLabNeeds(),
    {
      pkg: "ansible",
      what: "ansible-playbook (Ansible's pip module is the peer it measures)",
      present: () => ansibleVersion() !== undefined,
    },
  ]);
  const why = sshAvailable();
  if (why) throw new BenchFailure(`Cannot start OpenSSH test servers: ${why}.`);
  if (!existsSync(ANSIBLE_PYTHON))
    throw new BenchFailure(`Ansible's modules need ${ANSIBLE_PYTHON} on the hosts; it is missing.`);
  const python = findPython();
  if (!have(python, ["-c", "import venv, ensurepip"])) {
    throw new BenchFailure(
      `${python} cannot make virtual environments with pip (venv, ensurepip), which Ansible's pip module needs.`,
    );
  }
  return { ansible: ansibleVersion() ?? "?", python };
}

// ---------------------------------------------------------------------------------------------
// The wheelhouse, from the package mirror pip is configured with

function fillWheelhouse(dir: string): { files: number; bytes: number } {
  const wanted = [...before(), ...CHANGE.map(([n, , b]) => [n, b] as [string, string])];
  return makeWheelhouse(
    dir,
    wanted,
    (project, version) =>
      new BenchFailure(
        `The package mirror pip is configured with has no wheel of ${project} ${version}, which bench:fleet deploys.`,
      ),
  );
}

/** name -> version of an environment's *.dist-info folders. */
function distInfos(env: string): Packages {
  const out: Packages = new Map();
  const lib = join(env, "lib");
  for (const py of readdirSync(lib).filter((d) => d.startsWith("python"))) {
    for (const d of readdirSync(join(lib, py, "site-packages"))) {
      const m = /^(.+)-([^-]+)\.dist-info$/.exec(d);
      if (m) out.set(norm(m[1] as string), m[2] as string);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The two sides

interface Ctx {
  w: string;
  lab: SshLab;
  python: string;
  /** pyferry's local cache for the current repeat. */
  cache: string;
}

const pyferryEnv = join("pf", "venv");
const ansibleEnv = join("ans", "venv");

function writePyferry(c: Ctx, state: Packages): void {
  writeFileSync(join(c.w, "reqs.txt"), `${pins(state).join("\n")}\n`);
  const lines = ['wheelhouse = "wheelhouse"', "[defaults]", `python = ${JSON.stringify(c.python)}`];
  for (const h of c.lab.hosts) {
    lines.push(
      `[hosts.${h.alias}]`,
      `address = ${JSON.stringify(h.alias)}`,
      `[[hosts.${h.alias}.envs]]`,
      `path = ${JSON.stringify(join(h.root, pyferryEnv))}`,
      'requirements = "reqs.txt"',
    );
  }
  writeFileSync(join(c.w, "inventory.toml"), `${lines.join("\n")}\n`);
}

function writeAnsible(c: Ctx, state: Packages): void {
  const dir = join(c.w, "ansible");
  mkdirSync(join(dir, "home"), { recursive: true });
  writeFileSync(
    join(dir, "ansible.cfg"),
    [
      "[defaults]",
      `forks = ${HOSTS}`,
      "gathering = explicit",
      "retry_files_enabled = False",
      `local_tmp = ${join(dir, "tmp")}`,
      "",
      "[ssh_connection]",
      "pipelining = True",
      `control_path_dir = ${join(dir, "cp")}`,
      "",
    ].join("\n"),
  );
  // JSON is YAML: the inventory and the playbook.
  const hosts: Record<string, Record<string, string>> = {};
  for (const h of c.lab.hosts)
    hosts[h.alias] = { ansible_host: h.alias, venv: join(h.root, ansibleEnv) };
  writeFileSync(
    join(dir, "hosts.yml"),
    JSON.stringify({
      fleet: {
        hosts,
        vars: {
          ansible_user: c.lab.user,
          ansible_ssh_common_args: `-F ${c.lab.sshConfig}`,
          ansible_python_interpreter: ANSIBLE_PYTHON,
        },
      },
    }),
  );
  writeFileSync(
    join(dir, "site.yml"),
    JSON.stringify([
      {
        hosts: "fleet",
        gather_facts: false,
        tasks: [
          {
            name: "the environment's packages",
            "ansible.builtin.pip": {
              name: "{{ packages }}",
              virtualenv: "{{ venv }}",
              virtualenv_command: "{{ venv_python }} -m venv",
              extra_args:
                "--no-index --find-links {{ wheels }} --no-compile --disable-pip-version-check",
            },
          },
        ],
      },
    ]),
  );
  writeFileSync(
    join(dir, "vars.json"),
    JSON.stringify({
      packages: pins(state),
      venv_python: c.python,
      wheels: join(c.w, "wheelhouse", "wheels"),
    }),
  );
}

function ansibleProcessEnv(c: Ctx): NodeJS.ProcessEnv {
  const dir = join(c.w, "ansible");
  return {
    ...process.env,
    ANSIBLE_CONFIG: join(dir, "ansible.cfg"),
    ANSIBLE_HOME: join(dir, "home"),
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_FORCE_COLOR: "0",
  };
}

/**
 * pyferry with its defaults (connections kept 60 s after a run), its kept connections' sockets
 * in a folder of the benchmark's own (XDG_RUNTIME_DIR/pyferry-ssh) so that it can close them.
 */
function pyferryDeploy(c: Ctx, env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return exec(process.execPath, [PYFERRY, "deploy", "--yes", "--forks", String(HOSTS)], {
    cwd: c.w,
    env: c.lab.env({
      PYFERRY_CACHE_DIR: c.cache,
      NO_COLOR: "1",
      PYFERRY_SSH_PERSIST: "",
      XDG_RUNTIME_DIR: keptRuntime(c),
      ...env,
    }),
  });
}

/**
 * Close the ssh connections both tools left open, so that their next runs connect afresh, as a
 * deploy more than a minute after the last one would.
 */
function closeConnections(c: Ctx): void {
  closeMasters(join(c.w, "ansible", "cp"));
  closeMasters(join(keptRuntime(c), "pyferry-ssh"));
}

/** The folder pyferry is given as XDG_RUNTIME_DIR. */
function keptRuntime(c: Ctx): string {
  const dir = join(c.w, "runtime");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Close every master whose socket is in `dir`; how many answered. */
function closeMasters(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const sock of readdirSync(dir)) {
    if (sock.endsWith(".lock") || sock.endsWith(".current")) continue;
    const r = spawnSync("ssh", ["-o", `ControlPath=${join(dir, sock)}`, "-O", "exit", "x"], {
      stdio: "ignore",
    });
    if (r.status === 0) n++;
  }
  return n;
}

function ansibleDeploy(c: Ctx, extra: string[] = []): Promise<Finished> {
  const dir = join(c.w, "ansible");
  return exec(
    "ansible-playbook",
    [
      "-i",
      join(dir, "hosts.yml"),
      "-e",
      `@${join(dir, "vars.json")}`,
      ...extra,
      join(dir, "site.yml"),
    ],
    { cwd: dir, env: ansibleProcessEnv(c) },
  );
}

/** pyferry said `outcome` for every host (with `moves` package changes each); exact states. */
function checkPyferry(
  c: Ctx,
  r: Finished,
  outcome: "ok" | "changed",
  state: Packages,
  moves = 0,
): void {
  const lines = r.stdout.trim().split("\n");
  const bad = lines.filter((l) => {
    const m = /^\S+ {2}(\w+)(?: {2}(.*))?$/.exec(l);
    if (!m || m[1] !== outcome) return true;
    return (m[2] ?? "").split(" ").filter(Boolean).length !== moves * 2;
  });
  if (lines.length !== HOSTS || bad.length > 0)
    throw new BenchFailure(`pyferry deploy did not say ${outcome} for every host:\n${r.stdout}`);
  for (const h of c.lab.hosts) {
    const got = distInfos(join(h.root, pyferryEnv));
    const want = [...state].sort().join(" ");
    if ([...got].sort().join(" ") !== want)
      throw new BenchFailure(
        `${h.alias}'s pyferry environment holds ${[...got].join(" ")}, not ${want}.`,
      );
  }
}

/** Ansible's recap: every host ok, `changed` of them changed; each environment has `state`. */
function checkAnsible(c: Ctx, r: Finished, changed: boolean, state: Packages): void {
  const recap = [
    ...r.stdout.matchAll(
      /^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm,
    ),
  ];
  const good = recap.filter(
    (m) => m[2] === "1" && m[3] === (changed ? "1" : "0") && m[4] === "0" && m[5] === "0",
  );
  if (recap.length !== HOSTS || good.length !== HOSTS)
    throw new BenchFailure(
      `ansible-playbook did not report ${changed ? "changed" : "ok"} on every host:\n${r.stdout}`,
    );
  for (const h of c.lab.hosts) {
    const got = distInfos(join(h.root, ansibleEnv));
    for (const [n, v] of state) {
      if (got.get(norm(n)) !== v)
        throw new BenchFailure(
          `${h.alias}'s Ansible environment has ${n} ${got.get(norm(n)) ?? "(none)"}, not ${v}.`,
        );
    }
  }
}

/**
 * Fresh start for a repeat: no environments on the hosts, no pyferry store, no local cache.
 * What the last repeat left is moved aside, not removed, until the benchmark ends: ext4 without
 * a journal (as here) passes over inodes freed in the last few seconds when it makes a file,
 * reading each one's inode table block; right after a removal of thousands of files, that was
 * half of the hosts' tar time in a deploy, for a cost no real host pays.
 */
function reset(c: Ctx, repeat: number): void {
  const trash = join(c.w, "trash", String(repeat));
  mkdirSync(trash, { recursive: true });
  for (const h of c.lab.hosts) {
    for (const [i, p] of ["pf", "ans", STORE].entries()) {
      const path = join(h.root, p);
      if (existsSync(path)) renameSync(path, join(trash, `${h.alias}-${i}`));
    }
  }
  c.cache = join(c.w, `cache-${repeat}`);
}

// ---------------------------------------------------------------------------------------------
// Where pyferry's time goes: an ssh wrapper logging each ssh process pyferry starts

const KINDS = `case "$*" in
  *ControlMaster=yes*) k=connect ;;
  *"-O exit"*) k=close ;;
  *'probe=$2'*) k=read-state ;;
  *'tar -x -o -f -'*) k=receive ;;
  *'echo env=complete'*) k=need ;;
  *'pyferry-new'*) k=switch ;;
  *'VIRTUAL_ENV=$p'*) k=hook ;;
  *) k=other ;;
esac`;

interface Span {
  kind: string;
  start: number;
  end: number;
}

function tracer(c: Ctx): { command: string; read: (t0: number) => Span[] } {
  const log = join(c.w, "ssh-trace.log");
  const script = join(c.w, "ssh-traced.sh");
  writeFileSync(
    script,
    `#!/bin/sh\ns=$(date +%s%N)\n${c.lab.sshCommand} "$@"\nrc=$?\ne=$(date +%s%N)\n${KINDS}\necho "$k $s $e" >> '${log}'\nexit $rc\n`,
  );
  chmodSync(script, 0o755);
  return {
    command: script,
    read: (t0: number) => {
      const text = existsSync(log) ? readFileSync(log, "utf8") : "";
      rmSync(log, { force: true });
      return text
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [kind = "?", s = "0", e = "0"] = line.split(" ");
          return { kind, start: Number(s) / 1e6 - t0, end: Number(e) / 1e6 - t0 };
        });
    },
  };
}

function timeline(spans: Span[], total: number): string {
  const kinds = [...new Set(spans.map((s) => s.kind))];
  const parts = kinds.map((k) => {
    const of = spans.filter((s) => s.kind === k);
    const durs = of.map((s) => s.end - s.start);
    return `${k} x${of.length} ${Math.min(...of.map((s) => s.start)).toFixed(0)}-${Math.max(...of.map((s) => s.end)).toFixed(0)} ms (each ${median(durs).toFixed(0)} ms median)`;
  });
  return `${total.toFixed(0)} ms in all; ssh processes: ${parts.join("; ")}`;
}

// ---------------------------------------------------------------------------------------------
// Numbers

const secs = (ms: number) => (ms / 1000).toFixed(2);
const runs = (xs: number[]) => xs.map(secs).join(" ");

/**
 * Busy CPU time of the whole machine so far, in ms: user, nice, system, irq and softirq of
 * /proc/stat, in USER_HZ (100 per second on Linux).
 */
function machineCpuMs(): number {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/);
  const ticks = [1, 2, 3, 6, 7].reduce((n, i) => n + Number(f[i] ?? 0), 0);
  return ticks * 10;
}

interface Results {
  /** The change over fresh connections (step a). */
  change: PerTool;
  /** The no-op right after the change, over the connections it kept (step b). */
  noop: PerTool;
  /** The no-op over fresh connections (step c). */
  noopFresh: PerTool;
  /** The no-op over fresh connections with a classical key exchange (step e). */
  noopClassical: PerTool;
  /** The change, each tool over the connections a no-op just before it kept open (step d). */
  keptChange: PerTool;
  /** Machine CPU (ms) spent during each timed step, hosts' side included. */
  cpu: { change: PerTool; noop: PerTool; noopFresh: PerTool; noopClassical: PerTool };
  initial: { pyferry: number[]; ansible: number[] };
  traceNoop?: string;
  traceChange?: string;
  references: {
    sshAll: number[];
    sshAllClassical: number[];
    version: number[];
    sshCpu: number[];
    sshCpuClassical: number[];
  };
  wheelhouse: { files: number; bytes: number };
  ssh: { version: string; defaultKex: string };
}

/** Times per tool, and the machine CPU (ms) each timed run cost. */
interface PerTool {
  pyferry: number[];
  ansible: number[];
}

/** A no-op redeploy by each tool over fresh connections, timed, with the machine's CPU. */
async function freshNoop(
  c: Ctx,
  order: readonly ("pyferry" | "ansible")[],
  label: string,
  into: PerTool,
  cpuInto: PerTool,
  ssh?: { pyferry: NodeJS.ProcessEnv; ansible: string[] },
): Promise<void> {
  for (const who of order) {
    closeConnections(c);
    settle();
    progress(`${label}, ${who}`);
    const cpu0 = machineCpuMs();
    if (who === "pyferry") {
      const p = await pyferryDeploy(c, ssh?.pyferry);
      cpuInto.pyferry.push(machineCpuMs() - cpu0);
      checkPyferry(c, p, "ok", after());
      into.pyferry.push(p.ms);
      progress(`  ${secs(p.ms)} s`);
    } else {
      const a = await ansibleDeploy(c, ssh?.ansible);
      cpuInto.ansible.push(machineCpuMs() - cpu0);
      checkAnsible(c, a, false, after());
      into.ansible.push(a.ms);
      progress(`  ${secs(a.ms)} s`);
    }
  }
}

/**
 * Step e's ssh settings: the lab's config with a classical key exchange put first, for both
 * tools. OpenSSH 9.2's default, sntrup761x25519, costs its client about 140 ms of CPU per
 * connection; curve25519 about 10. What this step shows is the fleet's cost without it; which
 * key exchange to use stays the user's choice (ssh_config), pyferry never changes it.
 */
function classicalKex(c: Ctx): { pyferry: NodeJS.ProcessEnv; ansible: string[] } {
  const config = classicalKexConfig(c);
  return {
    pyferry: { PYFERRY_SSH_COMMAND: `ssh -F ${config}` },
    ansible: ["-e", JSON.stringify({ ansible_ssh_common_args: `-F ${config}` })],
  };
}

/** The lab's ssh config with CLASSICAL_KEX put first in the key exchanges offered. */
/** The ssh client's version and the key exchange it offers first for the lab's hosts. */
function sshFacts(lab: SshLab): { version: string; defaultKex: string } {
  const v = spawnSync("ssh", ["-V"], { encoding: "utf8" });
  const g = spawnSync("ssh", ["-F", lab.sshConfig, "-G", lab.hosts[0]?.alias ?? "h1"], {
    encoding: "utf8",
  });
  const kex = /^kexalgorithms (\S+)$/m.exec(g.stdout ?? "")?.[1] ?? "";
  return {
    version: (v.stderr ?? "").split(",")[0]?.trim() || "OpenSSH",
    defaultKex: kex.split(",")[0] || "unknown",
  };
}

function classicalKexConfig(c: Ctx): string {
  const config = join(c.w, "ssh_config.classical-kex");
  writeFileSync(config, `KexAlgorithms ^${CLASSICAL_KEX}\nInclude ${c.lab.sshConfig}\n`);
  return config;
}

async function measure(c: Ctx, repeat: number, res: Results): Promise<void> {
  for (let r = 0; r < repeat; r++) {
    reset(c, r);
    progress(
      `[${r + 1}/${repeat}] fresh environments: the initial set (${before().size} packages) with both (untimed)`,
    );
    writePyferry(c, before());
    writeAnsible(c, before());
    const p0 = await pyferryDeploy(c);
    checkPyferry(c, p0, "changed", before(), before().size);
    res.initial.pyferry.push(p0.ms);
    const a0 = await ansibleDeploy(c);
    checkAnsible(c, a0, true, before());
    res.initial.ansible.push(a0.ms);

    writePyferry(c, after());
    writeAnsible(c, after());
    const order =
      r % 2 === 0 ? (["pyferry", "ansible"] as const) : (["ansible", "pyferry"] as const);
    for (const who of order) {
      // a. The change over fresh connections, then b. the no-op right after it, over the
      // connections the change kept (both tools' default).
      closeConnections(c);
      for (const step of ["change", "noop"] as const) {
        settle();
        progress(
          `[${r + 1}/${repeat}] ${step === "change" ? `the ${CHANGE.length}-package change` : "no-op redeploy right after it"}, ${who}`,
        );
        const cpu0 = machineCpuMs();
        if (who === "pyferry") {
          const p = await pyferryDeploy(c);
          res.cpu[step].pyferry.push(machineCpuMs() - cpu0);
          if (step === "change") checkPyferry(c, p, "changed", after(), CHANGE.length);
          else checkPyferry(c, p, "ok", after());
          res[step].pyferry.push(p.ms);
          progress(`  ${secs(p.ms)} s`);
        } else {
          const a = await ansibleDeploy(c);
          res.cpu[step].ansible.push(machineCpuMs() - cpu0);
          checkAnsible(c, a, step === "change", after());
          res[step].ansible.push(a.ms);
          progress(`  ${secs(a.ms)} s`);
        }
      }
    }
    await freshNoop(
      c,
      order,
      `[${r + 1}/${repeat}] no-op redeploy over fresh connections`,
      res.noopFresh,
      res.cpu.noopFresh,
    );
    const classical = classicalKex(c);
    await freshNoop(
      c,
      order,
      `[${r + 1}/${repeat}] no-op redeploy, classical key exchange`,
      res.noopClassical,
      res.cpu.noopClassical,
      classical,
    );
    // d. The change again, from fresh environments holding the initial set, each tool over the
    // connections a no-op just before it (untimed) kept open.
    reset(c, repeat + r);
    progress(
      `[${r + 1}/${repeat}] fresh environments again, then the change over kept connections`,
    );
    writePyferry(c, before());
    writeAnsible(c, before());
    checkPyferry(c, await pyferryDeploy(c), "changed", before(), before().size);
    checkAnsible(c, await ansibleDeploy(c), true, before());
    for (const who of order) {
      progress(
        `[${r + 1}/${repeat}] the ${CHANGE.length}-package change over kept connections, ${who}`,
      );
      if (who === "pyferry") {
        writePyferry(c, before());
        checkPyferry(c, await pyferryDeploy(c), "ok", before());
        writePyferry(c, after());
        settle();
        const p = await pyferryDeploy(c);
        checkPyferry(c, p, "changed", after(), CHANGE.length);
        res.keptChange.pyferry.push(p.ms);
        progress(`  ${secs(p.ms)} s`);
      } else {
        writeAnsible(c, before());
        checkAnsible(c, await ansibleDeploy(c), false, before());
        writeAnsible(c, after());
        settle();
        const a = await ansibleDeploy(c);
        checkAnsible(c, a, true, after());
        res.keptChange.ansible.push(a.ms);
        progress(`  ${secs(a.ms)} s`);
      }
    }
    closeConnections(c);
  }
}

/** One more no-op and one more change by pyferry, untimed, with every ssh process logged. */
async function trace(c: Ctx, res: Results): Promise<void> {
  const t = tracer(c);
  const env = { PYFERRY_SSH_COMMAND: t.command };
  progress("where the time goes: a traced no-op (fresh connections)");
  closeConnections(c);
  let t0 = Date.now();
  const noop = await pyferryDeploy(c, env);
  checkPyferry(c, noop, "ok", after());
  res.traceNoop = timeline(t.read(t0), noop.ms);
  progress("where the time goes: a traced change (fresh hosts and cache, initial set first)");
  reset(c, 99);
  writePyferry(c, before());
  checkPyferry(c, await pyferryDeploy(c), "changed", before(), before().size);
  writePyferry(c, after());
  closeConnections(c);
  settle();
  t.read(0);
  t0 = Date.now();
  const change = await pyferryDeploy(c, env);
  checkPyferry(c, change, "changed", after(), CHANGE.length);
  res.traceChange = timeline(t.read(t0), change.ms);
}

async function references(c: Ctx, res: Results): Promise<void> {
  const classical = ["-F", classicalKexConfig(c)];
  const all = async (config: string[], into: number[]) => {
    const t0 = performance.now();
    await Promise.all(c.lab.hosts.map((h) => exec("ssh", [...config, h.alias, "true"])));
    into.push(performance.now() - t0);
  };
  for (let i = 0; i < 3; i++) {
    await all(["-F", c.lab.sshConfig], res.references.sshAll);
    await all(classical, res.references.sshAllClassical);
    res.references.version.push((await exec(process.execPath, [PYFERRY, "--version"])).ms);
  }
  // One at a time, so that the machine's CPU counts only these.
  const h = c.lab.hosts[0] as SshLab["hosts"][number];
  for (const [config, into] of [
    [["-F", c.lab.sshConfig], res.references.sshCpu],
    [classical, res.references.sshCpuClassical],
  ] as const) {
    const cpu0 = machineCpuMs();
    for (let i = 0; i < 10; i++) await exec("ssh", [...config, h.alias, "true"]);
    into.push((machineCpuMs() - cpu0) / 10);
  }
}

function cpuSecs(ms: number[]): string {
  return (median(ms) / 1000).toFixed(2);
}

function report(
  res: Results,
  ansible: string,
  python: string,
  repeat: number,
  load: number,
  startedMs: number,
): string {
  const pc = median(res.change.pyferry);
  const ac = median(res.change.ansible);
  const pn = median(res.noop.pyferry);
  const an = median(res.noop.ansible);
  const pe = median(res.noopClassical.pyferry);
  const ae = median(res.noopClassical.ansible);
  const pf = median(res.noopFresh.pyferry);
  const af = median(res.noopFresh.ansible);
  const pkc = median(res.keptChange.pyferry);
  const akc = median(res.keptChange.ansible);
  const table = formatTable(
    [
      { header: `fleet deploy to ${HOSTS} hosts (median of ${repeat})` },
      { header: "pyferry", align: "right" },
      { header: "Ansible pip", align: "right" },
      { header: "Ansible / pyferry", align: "right" },
      { header: "runs: pyferry | Ansible (s)" },
    ],
    [
      [
        `a. ${CHANGE.length}-package change, fresh connections`,
        `${secs(pc)} s`,
        `${secs(ac)} s`,
        `${(ac / pc).toFixed(1)}x`,
        `${runs(res.change.pyferry)} | ${runs(res.change.ansible)}`,
      ],
      [
        "b. no-op redeploy right after a (defaults)",
        `${secs(pn)} s`,
        `${secs(an)} s`,
        `${(an / pn).toFixed(1)}x`,
        `${runs(res.noop.pyferry)} | ${runs(res.noop.ansible)}`,
      ],
      [
        "c. no-op redeploy, fresh connections",
        `${secs(pf)} s`,
        `${secs(af)} s`,
        `${(af / pf).toFixed(1)}x`,
        `${runs(res.noopFresh.pyferry)} | ${runs(res.noopFresh.ansible)}`,
      ],
      [
        `d. ${CHANGE.length}-package change, connections kept`,
        `${secs(pkc)} s`,
        `${secs(akc)} s`,
        `${(akc / pkc).toFixed(1)}x`,
        `${runs(res.keptChange.pyferry)} | ${runs(res.keptChange.ansible)}`,
      ],
      [
        `e. c with the ${CLASSICAL_KEX} key exchange`,
        `${secs(pe)} s`,
        `${secs(ae)} s`,
        `${(ae / pe).toFixed(1)}x`,
        `${runs(res.noopClassical.pyferry)} | ${runs(res.noopClassical.ansible)}`,
      ],
      null,
      [
        "   initial set into fresh envs (untimed)",
        `${secs(median(res.initial.pyferry))} s`,
        `${secs(median(res.initial.ansible))} s`,
        `${(median(res.initial.ansible) / median(res.initial.pyferry)).toFixed(1)}x`,
        `${runs(res.initial.pyferry)} | ${runs(res.initial.ansible)}`,
      ],
    ],
  );
  const met = (ok: boolean) => (ok ? "met" : "NOT met");
  const total = ((performance.now() - startedMs) / 1000).toFixed(0);
  return [
    "bench:fleet — pyferry deploy vs Ansible's pip module, same run, same hosts, same wheels",
    "",
    table,
    "",
    "Targets:",
    `- pyferry at least ${TARGET_RATIO}x faster than Ansible on the ${CHANGE.length}-package change: ${met(ac / pc >= TARGET_RATIO)} with fresh connections (${(ac / pc).toFixed(1)}x); ${met(akc / pkc >= TARGET_RATIO)} with kept ones (${(akc / pkc).toFixed(1)}x)`,
    `- a no-op redeploy to ${HOSTS} hosts under ${TARGET_NOOP_MS / 1000} s: ${met(pn < TARGET_NOOP_MS)} right after a deploy, with pyferry's defaults (${secs(pn)} s); ${met(pf < TARGET_NOOP_MS)} over fresh connections (${secs(pf)} s), as a redeploy more than a minute after the last run makes; ${met(pe < TARGET_NOOP_MS)} over fresh connections with a classical key exchange (${secs(pe)} s)`,
    "",
    "Where pyferry's time goes (one more run of each, untimed, every ssh process logged by a wrapper; times from pyferry's start; " +
      "commands whose input and output fit in memory, such as reading the state, run through the master's proxy mode and start no ssh process, so they are not listed):",
    `- no-op, fresh connections: ${res.traceNoop ?? "not traced"}`,
    `- change, fresh connections: ${res.traceChange ?? "not traced"}`,
    `- references (median of 3): ${HOSTS} fresh \`ssh hN true\` at once ${median(res.references.sshAll).toFixed(0)} ms (${median(res.references.sshAllClassical).toFixed(0)} ms with ${CLASSICAL_KEX}); \`pyferry --version\` (node start + CLI) ${median(res.references.version).toFixed(0)} ms; one fresh \`ssh h1 true\` costs ${median(res.references.sshCpu).toFixed(0)} ms of CPU, client and server (${median(res.references.sshCpuClassical).toFixed(0)} ms with ${CLASSICAL_KEX})`,
    `- machine CPU during the timed steps (all processes, hosts' side included; medians): change ${cpuSecs(res.cpu.change.pyferry)} s pyferry, ${cpuSecs(res.cpu.change.ansible)} s Ansible; no-op right after ${cpuSecs(res.cpu.noop.pyferry)} s pyferry, ${cpuSecs(res.cpu.noop.ansible)} s Ansible; no-op, fresh connections ${cpuSecs(res.cpu.noopFresh.pyferry)} s pyferry, ${cpuSecs(res.cpu.noopFresh.ansible)} s Ansible; no-op with ${CLASSICAL_KEX} ${cpuSecs(res.cpu.noopClassical.pyferry)} s pyferry, ${cpuSecs(res.cpu.noopClassical.ansible)} s Ansible (${availableParallelism()} cores)`,
    "",
    "How it was measured:",
    `- ${HOSTS} OpenSSH servers of test/support/sshd.ts on this machine (network namespaces as root, else loopback ports); both tools log in through the lab's ssh config (pyferry: PYFERRY_SSH_COMMAND="ssh -F <config>"; Ansible: ansible_ssh_common_args="-F <config>"). Hosts share this machine's disk and ${availableParallelism()} cores with the client.`,
    `- Packages: ${BASE.map(([n, v]) => `${n} ${v}`).join(", ")} unchanged; the change moves ${CHANGE.map(([n, a, b]) => `${n} ${a}->${b}`).join(", ")}. All pinned with ==, no dependencies. Wheels (${res.wheelhouse.files} files, ${(res.wheelhouse.bytes / 1048576).toFixed(1)} MiB) copied into one wheelhouse from the package mirror pip is configured with; both tools install only from it.`,
    `- pyferry: \`pyferry deploy --yes --forks ${HOSTS}\` from this checkout, inventory with one environment per host (python ${python}), requirements = the pins; it resolves against the wheelhouse, builds the environment locally once, sends each host what its store lacks and switches the environment's link. The no-op reads each host's environment, plans, and finds nothing to do.`,
    `- Ansible: ${ansible}; \`ansible-playbook\` with one ansible.builtin.pip task (name = the ${before().size} pins, virtualenv = the host's env path, virtualenv_command = "${python} -m venv", extra_args = "--no-index --find-links <wheelhouse/wheels> --no-compile --disable-pip-version-check"), forks ${HOSTS}, gather_facts false, pipelining on, modules run by ${ANSIBLE_PYTHON} on the hosts, Ansible's default ssh_args (ControlPersist=60s). Both tools keep their connections 60 s after a run by default (pyferry: PYFERRY_SSH_PERSIST unset). Before steps a, c and e the connections both left open were closed (ssh -O exit), so both connect afresh there; step b follows each tool's step a at once and reuses what a kept. Step e: step c again with both tools given the lab's config behind \`KexAlgorithms ^${CLASSICAL_KEX}\` (pyferry by PYFERRY_SSH_COMMAND, Ansible by ansible_ssh_common_args), so ${res.ssh.version} negotiates ${CLASSICAL_KEX} instead of its default first choice, ${res.ssh.defaultKex}; pyferry never changes the key exchange itself. Step d: each tool reuses the connections a no-op just before it (untimed) left open, both starting again from fresh environments holding the initial set. --no-compile because pyferry does not write bytecode by default, so neither does.`,
    `- Each of ${repeat} repeats: the hosts' environments (both tools') and pyferry's store there were removed and pyferry got an empty local cache (PYFERRY_CACHE_DIR); both deployed the initial set (untimed: pyferry built it, Ansible created the venv with pip and installed it); then for each tool its change and, at once, its no-op; then the no-op over fresh connections, then with a classical key exchange, then (after the same reset and initial deploy) the change over kept connections; the tool going first alternates between repeats; \`sync\` ran (untimed) before each timed step. Timed: wall time from spawn to exit of the whole command.`,
    "- Checked after every step: pyferry said changed (10 package moves) or ok for every host and each env holds exactly the wanted dist-info set; Ansible's recap said changed=1 (or 0 for the no-op) and nothing failed on every host, and each env has every wanted version.",
    `Machine: ${availableParallelism()} cores, load average ${load.toFixed(2)} at the start and ${(loadavg()[0] ?? 0).toFixed(2)} at the end; ${total} s in all.`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<string> {
  const repeat = envCount("PYFERRY_BENCH_REPEAT", 3);
  const { ansible, python } = preflight();
  const startedMs = performance.now();
  const load = loadavg()[0] ?? 0;
  const w = mkdtempSync(join(tmpdir(), "pyferry-bench-fleet-"));
  const dropFolder = () => {
    if (process.env.PYFERRY_BENCH_KEEP !== "1") rmSync(w, { recursive: true, force: true });
  };
  // On Ctrl-C the lab's own hook stops the servers and re-raises; this takes the folder too.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, dropFolder);
  let lab: SshLab | undefined;
  try {
    progress(`${ansible}; hosts' python ${python}`);
    progress(`starting ${HOSTS} OpenSSH servers`);
    lab = await startSshLab({ hosts: HOSTS, netns: "auto" });
    const c: Ctx = { w, lab, python, cache: join(w, "cache") };
    const res: Results = {
      change: { pyferry: [], ansible: [] },
      noop: { pyferry: [], ansible: [] },
      noopFresh: { pyferry: [], ansible: [] },
      noopClassical: { pyferry: [], ansible: [] },
      keptChange: { pyferry: [], ansible: [] },
      initial: { pyferry: [], ansible: [] },
      references: {
        sshAll: [],
        sshAllClassical: [],
        version: [],
        sshCpu: [],
        sshCpuClassical: [],
      },
      cpu: {
        change: { pyferry: [], ansible: [] },
        noop: { pyferry: [], ansible: [] },
        noopFresh: { pyferry: [], ansible: [] },
        noopClassical: { pyferry: [], ansible: [] },
      },
      wheelhouse: fillWheelhouse(join(w, "wheelhouse")),
      ssh: sshFacts(lab),
    };
    await measure(c, repeat, res);
    await trace(c, res);
    await references(c, res);
    return report(res, ansible, python, repeat, load, startedMs);
  } finally {
    await lab?.close();
    if (process.env.PYFERRY_BENCH_KEEP === "1") progress(`kept ${w}`);
    else rmSync(w, { recursive: true, force: true });
  }
}

try {
  console.log(await main());
} catch (err) {
  if (!(err instanceof BenchFailure)) throw err;
  process.stderr.write(`\nbench:fleet FAILED: ${err.message}\n`);
  process.exitCode = 1;
}
