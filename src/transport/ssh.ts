/**
 * The user's own OpenSSH client, one multiplexed connection per host per invocation: a master
 * connection is opened once and every remote command after it is a session over that master,
 * with no handshake of its own. ~/.ssh/config, agents, ProxyJump and known_hosts work as they
 * do for ssh; host keys are checked strictly unless the target says to accept new ones. The
 * master outlives the invocation that opened it by PYFERRY_SSH_PERSIST seconds after its last
 * session (60 by default, as Ansible's ControlPersist; 0: closed on exit), and the next
 * invocations reuse it.
 */
import { type ChildProcess, type StdioOptions, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { acquireLock, type Lock } from "../bundle/lock.js";
import { capture } from "../util/capture.js";
import { UserError } from "../util/errors.js";
import { pidAlive } from "../util/pid.js";
import { type Finished, ShellConnection, SSH_FAILED } from "./connection.js";
import { shCommand, splitCommandLine } from "./shell.js";
import { type ChannelResult, proxyExec, STALLED } from "./ssh-channel.js";
import { muxAlive, muxTerminate } from "./ssh-mux.js";

export interface SshTarget {
  /** What ssh is given: "user@host", "host" or an alias from ~/.ssh/config. */
  destination: string;
  port?: number;
  identityFile?: string;
  knownHostsFile?: string;
  sshOptions?: string[];
  acceptNewHostKeys?: boolean;
  /** How messages name the target (a configured name, or the destination). */
  label: string;
}

/**
 * Limits on a host that does not answer: without them one silent host (a firewall dropping
 * packets, a server that accepts and never speaks) held a whole deploy for minutes, and a
 * host that died mid-deploy held it until TCP gave up. Ten seconds is Ansible's timeout too;
 * keepalives go over the encrypted channel, so a silent but live session is never cut. They
 * are defaults: what the target's options or the user's ssh configuration say wins.
 */
/** ssh's connect timeout (s) where the user's configuration sets none. */
const DEFAULT_CONNECT_TIMEOUT = 10;
const CONNECT_TIMEOUT = ["-o", `ConnectTimeout=${DEFAULT_CONNECT_TIMEOUT}`];
const KEEPALIVE = ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"];

/**
 * What ssh's configuration says for this destination, as `ssh -G` evaluates it (Host and Match
 * blocks, Includes, the options given): lower-case keyword to value; empty if ssh cannot tell.
 */
async function sshSettings(
  program: string[],
  args: string[],
  destination: string,
): Promise<Map<string, string>> {
  const [cmd, ...lead] = program as [string, ...string[]];
  // BatchMode off for the query (ssh keeps the first value): in batch mode ssh reports its
  // own 300 s ServerAliveInterval, which would read as the user's.
  const query = [...lead, "-G", "-o", "BatchMode=no", ...args, "--", destination];
  const r = await capture(cmd, query, { timeoutMs: 10_000, group: true }).catch(() => undefined);
  const settings = new Map<string, string>();
  for (const line of r?.code === 0 ? r.stdout.split("\n") : []) {
    const [key, value] = line.trim().split(/\s+/, 2);
    if (key && value !== undefined) settings.set(key.toLowerCase(), value);
  }
  return settings;
}

/**
 * The liveness defaults ssh's configuration for this destination leaves unset. ssh keeps the
 * first value it is given, and an option on its command line comes before every configuration
 * file: passed blindly, ConnectTimeout=10 would override a user's longer one for a slow jump
 * host.
 */
function livenessDefaults(settings: Map<string, string>): string[] {
  const timeout = settings.get("connecttimeout");
  const alive = settings.get("serveraliveinterval");
  return [
    ...(timeout === undefined || timeout === "none" ? CONNECT_TIMEOUT : []),
    ...(alive === undefined || alive === "0" ? KEEPALIVE : []),
  ];
}

/** The connect timeout ssh uses for this destination (ms): its configuration's, else ours. */
function connectTimeoutMs(settings: Map<string, string>): number {
  const seconds = Number(settings.get("connecttimeout"));
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_CONNECT_TIMEOUT) * 1000;
}

/** The user ssh logs in as for `target` (its configuration's `User`, else the local user). */
export async function loginUser(
  target: SshTarget,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const settings = await sshSettings(sshProgram(env), targetOptions(target), target.destination);
  return settings.get("user");
}

let swept = false;

/**
 * Remove the socket folders of pyferry processes that died without closing (kill -9): once per
 * process and in the background, since a busy temporary folder can take long to list.
 */
function sweepControlDirs(): void {
  if (swept) return;
  swept = true;
  readdir(tmpdir()).then(
    (names) => {
      for (const name of names) {
        const pid = /^pf-ssh-(\d+)-/.exec(name)?.[1];
        if (!pid || Number(pid) === process.pid || pidAlive(Number(pid))) continue;
        rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => undefined);
      }
    },
    () => undefined,
  );
}

/** How old the pointer file of a kept master that is gone must be before it is removed. */
const STALE_POINTER_MS = 60 * 60 * 1000;

/** The folders of kept sockets swept by this process. */
const sweptKept = new Set<string>();

/**
 * Remove the pointer files (see reuseOrStartMaster) of kept masters that ended long ago, which
 * took their sockets with them: once per process and folder, in the background. One written
 * since (a new master) is recent, so it stays.
 */
function sweepKeptDir(dir: string): void {
  if (sweptKept.has(dir)) return;
  sweptKept.add(dir);
  readdir(dir).then(
    async (names) => {
      const present = new Set(names);
      for (const name of names) {
        if (!name.endsWith(POINTER)) continue;
        const file = join(dir, name);
        const st = await stat(file).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs <= STALE_POINTER_MS) continue;
        const socket = await readFile(file, "utf8").catch(() => "");
        if (!present.has(socket.trim())) await rm(file, { force: true }).catch(() => undefined);
      }
    },
    () => undefined,
  );
}

/** The ending of the file that names a kept connection's current socket. */
const POINTER = ".current";

/** A kept master's socket: KEY-RANDOM (see reuseOrStartMaster). */
const KEPT_SOCKET = /^[0-9a-f]{16}-[0-9a-f]{6}$/;

/**
 * Close every master kept in this user's folder of kept sockets (`pyferry disconnect`); how
 * many answered. Commands still using one lose their sessions, as with `ssh -O exit`.
 */
export async function closeKeptConnections(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // Nothing was ever kept; making the folder now would leave an empty one behind.
  if (!existsSync(keptControlPath(env))) return 0;
  let dir: string;
  try {
    dir = keptControlDir(env);
  } catch {
    // No folder of kept sockets can be there, so nothing was kept.
    return 0;
  }
  const names = await readdir(dir);
  const closed = await Promise.all(
    names.filter((n) => KEPT_SOCKET.test(n)).map((n) => muxTerminate(join(dir, n))),
  );
  await Promise.all(
    names
      .filter((n) => n.endsWith(POINTER))
      .map((n) => rm(join(dir, n), { force: true }).catch(() => undefined)),
  );
  return closed.filter(Boolean).length;
}

/** The size of a socket address's path, its final NUL included (sun_path). */
const SOCKET_PATH_MAX = process.platform === "linux" ? 108 : 104;

/** Seconds a master connection outlives its last session when pyferry could not close it. */
const MASTER_LINGER = 15;

/**
 * Seconds a master stays up after its last session unless PYFERRY_SSH_PERSIST says otherwise:
 * Ansible's default, so that a command run again within a minute (a redeploy after a deploy)
 * logs in no more.
 */
export const DEFAULT_PERSIST = 60;

/**
 * PYFERRY_SSH_PERSIST: seconds a master stays up after its last session for later use (0: it is
 * closed when the command ends); `asked` when the user set it rather than took the default.
 */
export function persistSetting(env: NodeJS.ProcessEnv = process.env): {
  seconds: number;
  asked: boolean;
} {
  const value = env.PYFERRY_SSH_PERSIST?.trim();
  if (!value) return { seconds: DEFAULT_PERSIST, asked: false };
  if (!/^\d{1,6}$/.test(value)) {
    throw new UserError(`PYFERRY_SSH_PERSIST must be a number of seconds, not "${value}".`, 2);
  }
  return { seconds: Number(value), asked: true };
}

/**
 * The folder of kept masters' sockets (keptControlPath), made if need be. A socket there gives
 * a shell on the host without a login, so a folder that anyone else owns or can enter is
 * refused.
 */
export function keptControlDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  const dir = keptControlPath(env);
  let st: ReturnType<typeof lstatSync>;
  try {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    st = lstatSync(dir);
  } catch (err) {
    throw new UserError(
      `pyferry cannot keep ssh connections in ${dir} (${(err as Error).message}); set XDG_RUNTIME_DIR to a folder of yours, or set PYFERRY_SSH_PERSIST=0.`,
    );
  }
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new UserError(
      `${dir} is not a private folder of yours, so pyferry will not keep ssh connections in it; remove it, or set PYFERRY_SSH_PERSIST=0.`,
    );
  }
  return dir;
}

/** Where kept masters' sockets are: $XDG_RUNTIME_DIR/pyferry-ssh, else TMPDIR/pyferry-ssh-UID. */
function keptControlPath(env: NodeJS.ProcessEnv): string {
  return env.XDG_RUNTIME_DIR
    ? join(env.XDG_RUNTIME_DIR, "pyferry-ssh")
    : join(tmpdir(), `pyferry-ssh-${process.getuid?.() ?? 0}`);
}

/** The ssh options a target's settings make. */
function targetOptions(t: SshTarget): string[] {
  const args: string[] = [];
  if (t.port !== undefined) args.push("-p", String(t.port));
  if (t.identityFile) args.push("-i", t.identityFile);
  if (t.knownHostsFile) args.push("-o", `UserKnownHostsFile=${t.knownHostsFile}`);
  if (t.acceptNewHostKeys) args.push("-o", "StrictHostKeyChecking=accept-new");
  args.push(...(t.sshOptions ?? []));
  return args;
}

/** A failure of the connection (not of a remote command), as one sentence. */
export class SshError extends UserError {
  constructor(message: string) {
    super(message, SSH_FAILED);
    this.name = "SshError";
  }
}

/** The ssh program and its leading arguments: PYFERRY_SSH_COMMAND (like GIT_SSH_COMMAND), else ssh. */
export function sshProgram(env: NodeJS.ProcessEnv = process.env): string[] {
  const line = env.PYFERRY_SSH_COMMAND?.trim();
  if (!line) return ["ssh"];
  try {
    const words = splitCommandLine(line);
    if (words.length > 0) return words;
  } catch (err) {
    throw new UserError(`PYFERRY_SSH_COMMAND cannot be read (${(err as Error).message}).`, 2);
  }
  return ["ssh"];
}

/** Turn ssh's stderr after a failed connection into one sentence a person can act on. */
export function explainSshFailure(target: SshTarget, stderr: string): string {
  const who = target.label;
  const last =
    stderr
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("@"))
      .pop()
      ?.replace(/\.$/, "") ?? "no message";
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
    return `The host key of ${who} has changed since it was recorded in known_hosts, so pyferry will not connect; if the change is expected, remove the old key (ssh-keygen -R HOST) and connect once with ssh to check the new one.`;
  }
  if (/Host key verification failed|No .* host key is known/i.test(stderr)) {
    return `The host key of ${who} is not in known_hosts; connect once with ssh to check and accept it, or set accept_new_host_keys = true in its [targets.NAME] (pyferry.toml) or [hosts.NAME] (inventory) table.`;
  }
  if (/Permission denied/i.test(stderr)) {
    return `${who} refused the login (${last}); check the user name and that your key (identity_file or ssh-agent) is authorized there.`;
  }
  if (/Could not resolve hostname|Name or service not known|nodename nor servname/i.test(stderr)) {
    return `The host of ${who} is unknown (${last}); check the address or the alias in ~/.ssh/config.`;
  }
  if (/Connection refused/i.test(stderr)) {
    return `${who} refused the connection (${last}); check that sshd runs there, on that port.`;
  }
  if (/timed out|No route to host|Network is unreachable/i.test(stderr)) {
    return `${who} cannot be reached (${last}).`;
  }
  if (/closed|reset|Broken pipe|disconnect/i.test(stderr)) {
    return `The connection to ${who} dropped (${last}).`;
  }
  return `ssh to ${who} failed (${last}).`;
}

/** One connection to one target, opened on first use and closed by close(). */
export class SshConnection extends ShellConnection {
  private readonly program: string[];
  /** Seconds a master is kept after its last session; 0 once keeping it is not possible. */
  private persist: number;
  /** Whether the user asked for `persist` (then a folder that cannot keep sockets is an error). */
  private readonly persistAsked: boolean;
  private readonly env: NodeJS.ProcessEnv;
  private controlDir: string | undefined;
  /**
   * The socket's name in controlDir: fixed in a folder of this connection's own; among kept
   * masters, KEY-RANDOM (see reuseOrStartMaster). Never ssh's %C: pyferry talks to the socket too.
   */
  private socketName = "master";
  private opening: Promise<void> | undefined;
  private masterUp = false;
  /** The liveness defaults for this target, once ssh's configuration for it has been read. */
  private liveness: string[] | undefined;
  /** What `ssh -G` makes of this connection, read once per invocation. */
  private settings: Promise<Map<string, string>> | undefined;
  /**
   * A master kept by an earlier invocation answers locally even when its link to the host died
   * in silence (a laptop that changed networks, a VPN that reconnected), and its first command
   * would then wait out the keepalives, over a minute. Until a channel has opened over it, this
   * is the connect timeout (ms) that command gets to open one; past it the master is replaced.
   */
  private unproven: number | undefined;
  /** The replacement of a stalled kept master, once started. */
  private replacing: Promise<void> | undefined;
  /** The socket of the stalled master it replaces, never to be reused even if it answers. */
  private abandoned: string | undefined;
  /** Whether the master runs commands in its proxy mode (see exec); false once it did not. */
  private proxy = true;

  constructor(
    readonly target: SshTarget,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    super();
    if (target.destination.startsWith("-") || /[\s\0]/.test(target.destination)) {
      throw new UserError(`"${target.destination}" is not an SSH destination.`, 2);
    }
    this.program = sshProgram(env);
    const persist = persistSetting(env);
    this.persist = persist.seconds;
    this.persistAsked = persist.asked;
    this.env = env;
  }

  /** Options every ssh call of this connection takes but the control path, in order. */
  private targetArgs(): string[] {
    const args = ["-T"];
    // No prompts where nobody can answer them: an unknown host key is then refused, not asked.
    if (!process.stdin.isTTY) args.push("-o", "BatchMode=yes");
    return [...args, ...targetOptions(this.target)];
  }

  /**
   * Options every ssh call of this connection takes: the control options first, since ssh keeps
   * the first value it is given and a target's own ControlMaster or ControlPersist would
   * otherwise leave the master in the foreground for ever.
   */
  private baseArgs(control: string[] = []): string[] {
    return [
      "-o",
      `ControlPath=${this.socketPath()}`,
      ...control,
      ...this.targetArgs(),
      ...(this.liveness ?? [...CONNECT_TIMEOUT, ...KEEPALIVE]),
    ];
  }

  /** Open the master connection, once; later calls wait for the same one. */
  open(): Promise<void> {
    if (!this.opening) {
      // Whatever this connection uses, earlier killed invocations may have left folders.
      sweepControlDirs();
      this.opening = this.persist > 0 ? this.reuseOrStartMaster() : this.startMaster();
    }
    return this.opening;
  }

  /**
   * A kept master: the one an earlier invocation left for this very connection, else a new one
   * that stays `persist` seconds after its last session. What identifies the connection is the
   * command line and what ssh's configuration makes of it (`ssh -G`, read for every command):
   * an edit that sends an alias to another address, port, user or jump host gets a master of its
   * own instead of the old one. KEY.current names the master's socket, KEY-RANDOM: a new master
   * never listens where an older one may still remove its socket as it ends (a master that
   * stopped answering at the end of its keeping time unlinks its path on the way out). A lock
   * per key keeps two pyferry processes from starting two masters for it.
   */
  private async reuseOrStartMaster(): Promise<void> {
    const settings = await this.sshSettings();
    this.liveness = livenessDefaults(settings);
    const id = JSON.stringify([
      this.program,
      this.targetArgs(),
      this.target.destination,
      [...settings],
    ]);
    // Short: a socket's path must fit in 108 bytes (104 on some systems).
    const key = createHash("sha256").update(id).digest("hex").slice(0, 16);
    let lock: Lock | undefined;
    let dir: string;
    try {
      dir = keptControlDir(this.env);
      // ssh first listens on the path and a 17-character suffix, then renames.
      if (Buffer.byteLength(join(dir, `${key}-000000`)) + 17 >= SOCKET_PATH_MAX) {
        throw new UserError(
          `pyferry cannot keep ssh connections in ${dir}: its path is too long for a socket; set XDG_RUNTIME_DIR to a shorter folder of yours, or set PYFERRY_SSH_PERSIST=0.`,
        );
      }
      try {
        lock = await acquireLock(join(dir, `${key}.lock`), { timeoutMs: 120_000 });
      } catch (err) {
        if (err instanceof UserError) throw err;
        // A folder that looks right but cannot be written: full, read-only, not writable.
        throw new UserError(
          `pyferry cannot keep ssh connections in ${dir} (${(err as Error).message}); set XDG_RUNTIME_DIR to a folder of yours, or set PYFERRY_SSH_PERSIST=0.`,
        );
      }
    } catch (err) {
      if (this.persistAsked) throw err;
      // Only the default asked for it: this invocation's own master will do.
      this.persist = 0;
      return this.startMaster();
    }
    this.controlDir = dir;
    sweepKeptDir(dir);
    const pointer = join(dir, `${key}${POINTER}`);
    try {
      let current = "";
      try {
        current = readFileSync(pointer, "utf8").trim();
      } catch {
        // No master yet.
      }
      if (current.startsWith(`${key}-`)) {
        this.socketName = current;
        if (current !== this.abandoned && (await this.check())) {
          this.masterUp = true;
          this.unproven = connectTimeoutMs(settings);
          return;
        }
        // Its master was killed, or is ending: the socket goes, nothing will listen there.
        rmSync(this.socketPath(), { force: true });
      }
      this.socketName = `${key}-${randomBytes(3).toString("hex")}`;
      await this.spawnMaster(this.persist);
      try {
        writeFileSync(pointer, this.socketName);
      } catch {
        // Unrecorded, the master serves this invocation only and ends `persist` seconds after.
      }
    } finally {
      await lock?.release();
    }
  }

  private startMaster(): Promise<void> {
    // A short private folder: a socket path must fit in 108 bytes.
    this.controlDir = mkdtempSync(join(tmpdir(), `pf-ssh-${process.pid}-`));
    return this.spawnMaster(MASTER_LINGER);
  }

  /** A kept master whose link to the host is dead (see unproven) goes; a new one comes. */
  private replaceStalledMaster(): Promise<void> {
    this.replacing ??= (async () => {
      this.abandoned = this.socketName;
      await muxTerminate(this.socketPath());
      this.unproven = undefined;
      this.masterUp = false;
      this.opening = undefined;
      await this.open();
    })();
    return this.replacing;
  }

  private sshSettings(): Promise<Map<string, string>> {
    this.settings ??= sshSettings(this.program, this.targetArgs(), this.target.destination);
    return this.settings;
  }

  /** The master's control socket. */
  private socketPath(): string {
    return join(this.controlDir as string, this.socketName);
  }

  /** Whether a master answers on this connection's socket. */
  private check(): Promise<boolean> {
    return muxAlive(this.socketPath());
  }

  private async spawnMaster(linger: number): Promise<void> {
    this.liveness ??= livenessDefaults(await this.sshSettings());
    const [cmd, ...lead] = this.program as [string, ...string[]];
    // No remote command (-N), so no login shell runs for the master. ControlPersist makes ssh
    // return once the connection is up, leaving the master in the background; if pyferry is
    // killed before close(), the master still goes `linger` seconds after its last session.
    const master = spawn(
      cmd,
      [
        ...lead,
        ...this.baseArgs(["-o", "ControlMaster=yes", "-o", `ControlPersist=${linger}`]),
        "-N",
        "--",
        this.target.destination,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    master.stderr?.setEncoding("utf8");
    master.stderr?.on("data", (s: string) => {
      stderr = (stderr + s).slice(-8192);
      // It could not listen on its socket and would run in the foreground, unused, for ever.
      if (/disabling multiplexing/.test(stderr)) master.kill("SIGTERM");
    });
    return new Promise((resolve, reject) => {
      master.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          e.code === "ENOENT"
            ? new UserError(`The ssh client (${cmd}) is not installed or not on PATH.`, 127)
            : e,
        ),
      );
      // Up once the foreground ssh exits 0, not once its stderr closes: with -v (say, in
      // PYFERRY_SSH_COMMAND) the master in the background keeps writing to it until it ends,
      // which a kept master does only `linger` seconds after its last session. The pipe is
      // still drained (the master never blocks on it) but no longer keeps pyferry alive.
      master.once("exit", (code) => {
        if (code !== 0) return;
        this.masterUp = true;
        (master.stderr as (Readable & { unref?: () => void }) | null)?.unref?.();
        resolve();
      });
      master.once("close", (code) => {
        if (code === 0) return;
        this.masterUp = false;
        if (/disabling multiplexing/.test(stderr))
          reject(
            new SshError(
              `ssh could not share its connection to ${this.target.label} (${stderr.trim().split("\n").pop()}).`,
            ),
          );
        else reject(new SshError(explainSshFailure(this.target, stderr)));
      });
    });
  }

  /** Arguments for one session over the master running `script` with `args` under sh. */
  sessionArgs(script: string, args: readonly string[] = []): string[] {
    return [
      ...this.program.slice(1),
      ...this.baseArgs(["-o", "ControlMaster=no"]),
      "--",
      this.target.destination,
      shCommand(script, args),
    ];
  }

  /** Start a session; the caller owns its stdio. */
  async spawn(
    script: string,
    args: readonly string[],
    stdio: StdioOptions,
    opts: { detached?: boolean } = {},
  ): Promise<ChildProcess> {
    await this.open();
    await this.proveReused();
    return spawn(this.program[0] as string, this.sessionArgs(script, args), {
      stdio,
      detached: opts.detached ?? false,
    });
  }

  /**
   * A session of ssh's own as the first use of a reused master would wait out the keepalives
   * if its link is dead (see unproven): an empty command through the proxy mode proves the
   * master first, or has it replaced. Only then, so the usual path pays no round trip.
   */
  private async proveReused(): Promise<void> {
    if (this.unproven !== undefined && this.proxy && !(await this.proxyRun("true"))) {
      this.proxy = false;
    }
  }

  /**
   * `command` through the master's proxy mode (undefined: not started, see proxyExec). The
   * first over a reused master (see unproven) must have its channel opened within the connect
   * timeout; if not, the master is replaced and the command, which was not sent, goes again.
   */
  private async proxyRun(
    command: string,
    input?: Buffer | string,
    onSent?: (n: number) => void,
  ): Promise<ChannelResult | undefined> {
    let r = await proxyExec(this.socketPath(), command, input, onSent, this.unproven);
    if (r === STALLED) {
      await this.replaceStalledMaster();
      // No deadline this time, so never STALLED.
      r = await proxyExec(this.socketPath(), command, input, onSent);
    }
    this.unproven = undefined;
    return r === STALLED ? undefined : r;
  }

  /**
   * Run `script` over the master in its proxy mode, with no ssh process of its own; when the
   * master does not offer that (an old OpenSSH), or for streamed input, as a session of ssh.
   */
  override async exec(
    script: string,
    args: readonly string[] = [],
    input?: Buffer | string | Readable,
    onSent?: (n: number) => void,
  ): Promise<Finished> {
    await this.open();
    if (
      this.proxy &&
      (input === undefined || typeof input === "string" || Buffer.isBuffer(input))
    ) {
      const r = await this.proxyRun(shCommand(script, args), input, onSent);
      if (r) {
        if (r.code === SSH_FAILED) await this.failIfConnectionLost(r.stderr);
        return r;
      }
      this.proxy = false;
    }
    return super.exec(script, args, input, onSent);
  }

  get label(): string {
    return this.target.label;
  }

  override get overNetwork(): boolean {
    return true;
  }

  /**
   * Throw an SshError when a session that ended with 255 did so because the connection
   * failed: ssh said so, or the master connection is gone (a reset connection says nothing).
   */
  override async failIfConnectionLost(stderr: string): Promise<void> {
    const said =
      /^(ssh|mux_client|Control socket|client_loop|Connection)|Broken pipe|closed by remote/m;
    if (said.test(stderr) || !(this.masterUp && this.controlDir && (await this.check()))) {
      const why = stderr.trim() || "Connection reset";
      throw new SshError(explainSshFailure(this.target, `${why}\nconnection closed`));
    }
  }

  /** Drop this object's hold on the master (a kept master stays for later invocations). */
  private forget(): void {
    this.controlDir = undefined;
    this.opening = undefined;
    this.masterUp = false;
  }

  /** A kept master stays up for the next invocations: only forget it; true when it was one. */
  private releaseKept(): boolean {
    if (this.persist === 0) return false;
    this.forget();
    return true;
  }

  /** close(), for an exiting process that can no longer wait. */
  closeSync(): void {
    if (this.releaseKept()) return;
    if (this.masterUp && this.controlDir) {
      const [cmd, ...lead] = this.program as [string, ...string[]];
      const exit = [...lead, ...this.baseArgs(), "-O", "exit", "--", this.target.destination];
      spawnSync(cmd, exit, { stdio: "ignore", timeout: 5000 });
    }
    if (this.controlDir) rmSync(this.controlDir, { recursive: true, force: true });
    this.forget();
  }

  /** Close the master connection and its socket folder (a kept master stays up). */
  override async close(): Promise<void> {
    if (this.releaseKept()) return;
    // A master that does not answer goes by itself, MASTER_LINGER seconds after its last session.
    if (this.masterUp && this.controlDir) await muxTerminate(this.socketPath());
    if (this.controlDir) rmSync(this.controlDir, { recursive: true, force: true });
    this.forget();
  }
}
