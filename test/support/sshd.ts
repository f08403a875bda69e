/**
 * Real OpenSSH servers for end-to-end tests of pyferry's remote features.
 *
 * A lab is a private temporary folder with a client key, a known_hosts file and an ssh_config
 * naming every host by an alias; point pyferry at it with `PYFERRY_SSH_COMMAND=lab.sshCommand`.
 * Nothing reads or writes the machine's /etc/ssh or ~/.ssh: `ssh -F` skips the system config and
 * does not create ~/.ssh, and each sshd gets its own generated sshd_config.
 *
 * As root each host runs in its own network namespace (its own address, port 22, like a separate
 * machine); otherwise, or when namespaces cannot be made and `netns: "auto"`, hosts are loopback
 * ports. Namespaces outlive processes, so they carry the creating pid in their name, are removed
 * on close(), on process exit and signals, and left-overs of dead test processes are reaped when
 * the next lab starts.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

/** sshd refuses to start unless run by its absolute path (it re-executes itself). */
export const SSHD = "/usr/sbin/sshd";

export interface SshHost {
  /** Host alias in the generated ssh_config, e.g. "h1". */
  readonly alias: string;
  /** IP the sshd listens on: 127.0.0.1, or the namespace side of the host's veth. */
  readonly address: string;
  readonly port: number;
  /** The network namespace sshd runs in, if any. */
  readonly netns?: string;
  /** A private folder for this host; sessions get it as $HOME (the working directory stays the
   *  user's real home from /etc/passwd, so remote commands must use $HOME or absolute paths). */
  readonly root: string;
  /** SHA256 fingerprint of the current host key, as ssh prints it ("SHA256:..."). */
  readonly hostKeyFingerprint: string;
  /** Whether sshd is running (false after stop() or kill()). */
  readonly running: boolean;
  /** Kill sshd and every session, and wait until it is gone. */
  stop(): Promise<void>;
  /** Start sshd again (after stop() or kill()) on the same address and port. */
  restart(): Promise<void>;
  /** A new host key, then restart; known_hosts keeps the old one, so clients see a changed key. */
  replaceHostKey(): Promise<void>;
  /** SIGKILL sshd and all its session processes at once: every connection drops. */
  kill(): void;
  /** What sshd wrote to stderr (LogLevel ERROR), the last 16 kB. */
  log(): string;
}

export interface AliasOptions {
  /** The alias of the host whose key the connection will meet (e.g. behind a proxy); without
   *  it the alias is its own HostKeyAlias, which known_hosts does not know. */
  hostKeyOf?: string;
  /** More ssh_config keywords for this alias; they win over the lab's defaults. */
  options?: Record<string, string>;
}

export interface SshLab {
  /** Temporary folder with keys, ssh_config, known_hosts and each host's files. */
  readonly dir: string;
  /** "netns" when hosts run in their own network namespaces, "loopback" when on 127.0.0.1. */
  readonly mode: "netns" | "loopback";
  /** Why namespaces were not used when `netns: "auto"` fell back to loopback. */
  readonly netnsError?: string;
  /** The user every alias logs in as. */
  readonly user: string;
  readonly sshConfig: string;
  /** Value for PYFERRY_SSH_COMMAND: "ssh -F <sshConfig>". */
  readonly sshCommand: string;
  readonly knownHosts: string;
  readonly identityFile: string;
  readonly hosts: SshHost[];
  /** The host with this alias (throws if there is none). */
  host(alias: string): SshHost;
  /** process.env + PYFERRY_SSH_COMMAND (+ extra). */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Add a Host block to ssh_config, e.g. for a proxy in front of a host. */
  addAlias(name: string, address: string, port: number, opts?: AliasOptions): void;
  /** Rewrite known_hosts with every host's current key (e.g. after replaceHostKey()). */
  trustCurrentHostKeys(): void;
  /** Stop every sshd, remove namespaces and veths, remove dir. Idempotent. */
  close(): Promise<void>;
}

export interface SshLabOptions {
  hosts: number;
  /** true: namespaces or fail; "auto": namespaces if possible, else loopback; default false. */
  netns?: boolean | "auto";
  /** The user to log in as; default the current user (sshd can only switch users as root). */
  user?: string;
}

let availability: string | undefined | null = null;

/** undefined if real sshd labs can run here, else why not (for t.skip). */
export function sshAvailable(): string | undefined {
  if (availability !== null) return availability;
  availability = probe();
  return availability;
}

function probe(): string | undefined {
  if (process.platform !== "linux") return `sshd labs need Linux (this is ${process.platform})`;
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install openssh-server)`;
  for (const [bin, args] of [
    ["ssh", ["-V"]],
    ["ssh-keygen", ["-?"]],
  ] as const) {
    const r = spawnSync(bin, args, { stdio: "ignore" });
    if (r.error) return `${bin} is not available: ${r.error.message}`;
  }
  if (/\s/.test(tmpdir())) return `the temporary folder ${tmpdir()} contains whitespace`;
  if (process.getuid?.() === 0) {
    try {
      ensurePrivsepDir();
    } catch (e) {
      return `cannot create /run/sshd: ${(e as Error).message}`;
    }
  }
  return undefined;
}

/** sshd running as root chroots its pre-auth child into /run/sshd and refuses to start without it. */
function ensurePrivsepDir(): void {
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Parent pid of every process, read from /proc (comm may contain spaces and parentheses). */
function childrenByParent(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = map.get(ppid) ?? [];
    list.push(Number(name));
    map.set(ppid, list);
  }
  return map;
}

/**
 * SIGKILL a process and all its descendants. sshd puts every connection in a new session and
 * the user's command in another, so process groups do not cover them; and once a parent dies its
 * children are re-parented and lost. So: stop the whole tree first (nothing forks or exits while
 * stopped), look again until no new process appears, then kill everything.
 */
export function killTree(root: number): void {
  const seen = new Set<number>();
  for (let round = 0; round < 10; round++) {
    const map = childrenByParent();
    let grew = false;
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.pop() as number;
      if (!seen.has(pid)) {
        seen.add(pid);
        grew = true;
        signal(pid, "SIGSTOP");
      }
      queue.push(...(map.get(pid) ?? []));
    }
    if (!grew) break;
  }
  for (const pid of seen) signal(pid, "SIGKILL");
}

function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (e) {
    // EPERM: it exists but is not ours, which for a liveness check still means alive.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Pids whose command line contains `needle`: sshd's process title keeps its -f path. */
function pidsWithCmdline(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) pids.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tryConnect(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Keys

function keygen(path: string, comment: string): void {
  rmSync(path, { force: true });
  rmSync(`${path}.pub`, { force: true });
  run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]);
}

/** "ssh-ed25519 AAAA..." without the comment. */
function publicKey(path: string): string {
  return readFileSync(`${path}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
}

function fingerprint(path: string): string {
  return (
    run("ssh-keygen", ["-l", "-f", `${path}.pub`])
      .trim()
      .split(/\s+/)[1] ?? ""
  );
}

// ---------------------------------------------------------------------------------------------
// Hosts

class LabHost implements SshHost {
  hostKeyFingerprint = "";
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stderr = "";
  readonly hostKey: string;
  readonly config: string;
  readonly authorizedKeys: string;

  constructor(
    readonly alias: string,
    public address: string,
    public port: number,
    readonly netns: string | undefined,
    readonly root: string,
    files: string,
    clientPublicKey: string,
  ) {
    mkdirSync(files, { recursive: true });
    mkdirSync(root, { recursive: true });
    this.hostKey = join(files, "ssh_host_ed25519_key");
    this.config = join(files, "sshd_config");
    this.authorizedKeys = join(files, "authorized_keys");
    writeFileSync(this.authorizedKeys, `${clientPublicKey}\n`, { mode: 0o600 });
    this.newHostKey();
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  log(): string {
    return this.stderr;
  }

  newHostKey(): void {
    keygen(this.hostKey, `pyferry-lab-${this.alias}`);
    this.hostKeyFingerprint = fingerprint(this.hostKey);
  }

  private writeConfig(): void {
    const lines = [
      "# Generated by test/support/sshd.ts for one test host.",
      `ListenAddress ${this.address}`,
      `Port ${this.port}`,
      `HostKey ${this.hostKey}`,
      "PidFile none",
      `AuthorizedKeysFile ${this.authorizedKeys}`,
      // The lab folder lives under /tmp; its modes are not what StrictModes wants to see.
      "StrictModes no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "PermitRootLogin prohibit-password",
      // Never run the real ~/.ssh/rc or read ~/.ssh/environment of the machine.
      "PermitUserRC no",
      "PermitUserEnvironment no",
      `SetEnv HOME=${this.root}`,
      // pyferry opens many sessions at once over one multiplexed connection.
      "MaxStartups 100",
      "MaxSessions 100",
      "Subsystem sftp internal-sftp",
      "PrintMotd no",
      "PrintLastLog no",
      "X11Forwarding no",
      "UseDNS no",
      "LogLevel ERROR",
      "",
    ];
    writeFileSync(this.config, lines.join("\n"));
  }

  /** Start sshd and wait until it accepts connections; `pickPort` gives a new port to retry on. */
  async start(pickPort?: () => Promise<number>): Promise<void> {
    if (this.child) return;
    if (process.getuid?.() === 0) ensurePrivsepDir();
    for (let attempt = 1; ; attempt++) {
      this.writeConfig();
      const argv = [SSHD, "-D", "-e", "-f", this.config];
      // `ip netns exec` execs in place, so the child's pid is sshd's.
      const child = this.netns
        ? spawn("ip", ["netns", "exec", this.netns, ...argv], {
            stdio: ["ignore", "ignore", "pipe"],
          })
        : spawn(SSHD, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
      this.stderr = "";
      let exited = false;
      this.exited = new Promise((resolve) => {
        child.once("exit", () => {
          exited = true;
          resolve();
        });
        child.once("error", (e) => {
          this.stderr += `${e.message}\n`;
          exited = true;
          resolve();
        });
      });
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (s: string) => {
        this.stderr = (this.stderr + s).slice(-16384);
      });
      // A test that forgets close() must still be able to exit; the exit hook kills sshd.
      child.unref();
      (child.stderr as { unref?: () => void } | null)?.unref?.();
      this.child = child;

      const deadline = Date.now() + 5000;
      let up = false;
      while (!exited && Date.now() < deadline) {
        if (await tryConnect(this.address, this.port, 500)) {
          up = !exited;
          break;
        }
        await sleep(20);
      }
      if (up) return;
      await this.stop();
      const bindFailed = /Address already in use|Cannot bind/.test(this.stderr);
      if (bindFailed && pickPort && attempt < 5) {
        this.port = await pickPort();
        continue;
      }
      if (bindFailed && !pickPort && attempt < 5) {
        // A restart on a fixed port: the old listener may still be closing.
        await sleep(100 * attempt);
        continue;
      }
      throw new Error(
        `sshd for ${this.alias} (${this.address}:${this.port}${this.netns ? ` in ${this.netns}` : ""}) ` +
          `${exited ? "exited" : "did not accept connections within 5 s"}: ${this.stderr.trim() || "(no output)"}`,
      );
    }
  }

  kill(): void {
    const pid = this.child?.pid;
    if (pid !== undefined) killTree(pid);
    if (this.netns) {
      // Anything else still inside the namespace (a session whose parent died early).
      const r = spawnSync("ip", ["netns", "pids", this.netns], { encoding: "utf8" });
      for (const p of (r.stdout ?? "").split(/\s+/).filter(Boolean)) killTree(Number(p));
    }
    this.child = undefined;
  }

  async stop(): Promise<void> {
    // The child is unref'd; while we wait for its exit it must keep the event loop alive.
    this.child?.ref();
    this.kill();
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async replaceHostKey(): Promise<void> {
    await this.stop();
    this.newHostKey();
    await this.start();
  }
}

// ---------------------------------------------------------------------------------------------
// Labs

interface Alias {
  name: string;
  hostName: string;
  port: number;
  hostKeyAlias: string;
  options: Record<string, string>;
}

const live = new Set<Lab>();
const subnetsInUse = new Set<number>();
let hooked = false;

/** Namespaces outlive the process: clean up on exit and on the usual termination signals. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const lab of live) lab.closeSync();
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.closeSync();
      // Our listener is gone now, so the default action (terminate) applies again.
      process.kill(process.pid, sig);
    });
  }
}

const LAB_PREFIX = "pyferry-sshlab-";
const NS_PREFIX = "pft-";

/** Namespaces, sshd processes and folders left by test processes that died without cleaning up. */
function reapStale(): void {
  const dead = (pid: number) => pid !== process.pid && !signal(pid, 0);
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  for (const line of (list.stdout ?? "").split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(name);
    if (!m || !dead(Number(m[1]))) continue;
    const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" });
    for (const p of (pids.stdout ?? "").split(/\s+/).filter(Boolean)) killTree(Number(p));
    spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  }
  for (const entry of readdirSync(tmpdir())) {
    const m = new RegExp(`^${LAB_PREFIX}(\\d+)-`).exec(entry);
    if (!m || !dead(Number(m[1]))) continue;
    const dir = join(tmpdir(), entry);
    for (const pid of pidsWithCmdline(dir)) killTree(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A random x for 10.x.0.0/16 that no address or route of this machine uses yet. */
function pickSubnet(): number {
  const text = `${spawnSync("ip", ["-4", "-o", "addr"], { encoding: "utf8" }).stdout ?? ""}\n${
    spawnSync("ip", ["-4", "route"], { encoding: "utf8" }).stdout ?? ""
  }`;
  const used = new Set([...text.matchAll(/\b10\.(\d+)\./g)].map((m) => Number(m[1])));
  for (let i = 0; i < 200; i++) {
    const x = randomInt(32, 255);
    if (!used.has(x) && !subnetsInUse.has(x)) {
      subnetsInUse.add(x);
      return x;
    }
  }
  throw new Error("no free 10.x.0.0/16 subnet for the lab's network namespaces");
}

class Lab implements SshLab {
  readonly dir: string;
  readonly sshConfig: string;
  readonly sshCommand: string;
  readonly knownHosts: string;
  readonly identityFile: string;
  hosts: LabHost[] = [];
  mode: "netns" | "loopback" = "loopback";
  netnsError: string | undefined;
  readonly namespaces: string[] = [];
  readonly veths: string[] = [];
  subnet: number | undefined;
  private readonly aliases: Alias[] = [];
  private closed = false;

  constructor(readonly user: string) {
    this.dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${process.pid}-`));
    this.sshConfig = join(this.dir, "ssh_config");
    this.sshCommand = `ssh -F ${this.sshConfig}`;
    this.knownHosts = join(this.dir, "known_hosts");
    this.identityFile = join(this.dir, "id_ed25519");
  }

  host(alias: string): SshHost {
    const h = this.hosts.find((x) => x.alias === alias);
    if (!h) throw new Error(`no lab host ${alias}`);
    return h;
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ...process.env, PYFERRY_SSH_COMMAND: this.sshCommand, ...extra };
  }

  /** One namespace with a veth to it: host side 10.x.i.1, namespace side 10.x.i.2. */
  makeNamespace(i: number, tag: string): { ns: string; address: string } {
    this.subnet ??= pickSubnet();
    const ns = `${NS_PREFIX}${process.pid}-${tag}-${i}`;
    // Interface names are at most 15 characters.
    const outer = `pf${tag}h${i}`;
    const inner = `pf${tag}n${i}`;
    run("ip", ["netns", "add", ns]);
    this.namespaces.push(ns);
    run("ip", ["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns]);
    this.veths.push(outer);
    run("ip", ["addr", "add", `10.${this.subnet}.${i}.1/24`, "dev", outer]);
    run("ip", ["link", "set", outer, "up"]);
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    run("ip", ["-n", ns, "addr", "add", `10.${this.subnet}.${i}.2/24`, "dev", inner]);
    run("ip", ["-n", ns, "link", "set", inner, "up"]);
    return { ns, address: `10.${this.subnet}.${i}.2` };
  }

  addAlias(name: string, address: string, port: number, opts: AliasOptions = {}): void {
    if (this.aliases.some((a) => a.name === name)) throw new Error(`alias ${name} exists`);
    if (opts.hostKeyOf !== undefined) this.host(opts.hostKeyOf);
    this.aliases.push({
      name,
      hostName: address,
      port,
      hostKeyAlias: opts.hostKeyOf ?? name,
      options: opts.options ?? {},
    });
    this.writeSshConfig();
  }

  writeSshConfig(): void {
    const out = ["# Generated by test/support/sshd.ts. ssh uses the first value it finds."];
    for (const a of this.aliases) {
      out.push("", `Host ${a.name}`, `  HostName ${a.hostName}`, `  Port ${a.port}`);
      // known_hosts is keyed by alias, so the entry does not depend on address or port.
      out.push(`  HostKeyAlias ${a.hostKeyAlias}`);
      for (const [k, v] of Object.entries(a.options)) out.push(`  ${k} ${v}`);
    }
    // For every alias and for plain user@address connections. No ControlMaster: pyferry sets it.
    out.push(
      "",
      "Host *",
      `  User ${this.user}`,
      `  IdentityFile ${this.identityFile}`,
      "  IdentitiesOnly yes",
      `  UserKnownHostsFile ${this.knownHosts}`,
      "  GlobalKnownHostsFile /dev/null",
      "  StrictHostKeyChecking yes",
      "  BatchMode yes",
      "  CheckHostIP no",
      "  UpdateHostKeys no",
      "  ForwardAgent no",
      "  ConnectTimeout 5",
      "  LogLevel ERROR",
      "",
    );
    writeFileSync(this.sshConfig, out.join("\n"));
  }

  trustCurrentHostKeys(): void {
    const lines: string[] = [];
    for (const h of this.hosts) {
      const key = publicKey(h.hostKey);
      lines.push(`${h.alias} ${key}`);
      // For connections by address (no HostKeyAlias); ssh writes port 22 without brackets.
      lines.push(`${h.port === 22 ? h.address : `[${h.address}]:${h.port}`} ${key}`);
    }
    writeFileSync(this.knownHosts, `${lines.join("\n")}\n`, { mode: 0o600 });
  }

  /** Remove namespaces (killing whatever runs in them) and veths; best-effort. */
  removeNetworking(): void {
    for (const ns of this.namespaces) {
      const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
      for (const p of (pids.stdout ?? "").split(/\s+/).filter(Boolean)) killTree(Number(p));
      spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    }
    // Deleting a namespace deletes its veth end and so the pair; this covers a half-made pair.
    for (const v of this.veths) {
      if (existsSync(`/sys/class/net/${v}`))
        spawnSync("ip", ["link", "del", v], { stdio: "ignore" });
    }
    this.namespaces.length = 0;
    this.veths.length = 0;
    if (this.subnet !== undefined) subnetsInUse.delete(this.subnet);
    this.subnet = undefined;
  }

  /** Everything, synchronously and best-effort: also used from the process 'exit' hook. */
  closeSync(): void {
    this.closed = true;
    for (const h of this.hosts) h.kill();
    this.removeNetworking();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.hosts.map((h) => h.stop()));
    this.closeSync();
  }
}

export async function startSshLab(opts: SshLabOptions): Promise<SshLab> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 250) {
    throw new Error(`hosts must be an integer in 1..250, not ${opts.hosts}`);
  }
  const why = sshAvailable();
  if (why) throw new Error(`cannot start an sshd lab: ${why}`);
  hookExit();
  reapStale();
  const lab = new Lab(opts.user ?? userInfo().username);
  live.add(lab);
  try {
    keygen(lab.identityFile, "pyferry-lab-client");
    const clientKey = publicKey(lab.identityFile);
    const tag = randomBytes(2).toString("hex");
    const wantNetns = opts.netns ?? false;
    if (wantNetns) {
      try {
        if (process.getuid?.() !== 0) throw new Error("network namespaces need root");
        for (let i = 1; i <= opts.hosts; i++) lab.makeNamespace(i, tag);
        lab.mode = "netns";
      } catch (e) {
        if (wantNetns !== "auto") throw e;
        // Half-made namespaces go; hosts become loopback ports instead.
        lab.removeNetworking();
        lab.mode = "loopback";
        lab.netnsError = (e as Error).message;
      }
    }
    for (let i = 1; i <= opts.hosts; i++) {
      const alias = `h${i}`;
      const ns = lab.mode === "netns" ? lab.namespaces[i - 1] : undefined;
      const address = ns ? `10.${lab.subnet}.${i}.2` : "127.0.0.1";
      const port = ns ? 22 : await freePort();
      const files = join(lab.dir, "sshd", alias);
      const root = join(lab.dir, "home", alias);
      lab.hosts.push(new LabHost(alias, address, port, ns, root, files, clientKey));
    }
    await Promise.all(
      lab.hosts.map((h) => h.start(lab.mode === "loopback" ? freePort : undefined)),
    );
    for (const h of lab.hosts) lab.addAlias(h.alias, h.address, h.port, { hostKeyOf: h.alias });
    lab.trustCurrentHostKeys();
    return lab;
  } catch (e) {
    await lab.close();
    throw e;
  }
}
