/**
 * The content-addressed store on a remote host, driven over one SSH connection: what the
 * remote lacks is found by object id and sent once; environments and run folders are
 * assembled there from hardlinks and renamed into place whole.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { UserError } from "../util/errors.js";
import { type Finished, type ShellConnection, SSH_FAILED } from "./connection.js";
import * as sh from "./scripts.js";
import { SshError } from "./ssh.js";
import {
  linkEntries,
  objectEntries,
  placeTree,
  type StreamEntry,
  tarBytes,
  tarStream,
} from "./tar-stream.js";
import { type Tree, treeObjects } from "./tree.js";

export interface RemoteFacts {
  /** The store's absolute path there. */
  root: string;
  /** `uname -m`, e.g. x86_64. */
  arch: string;
  os: string;
  /** glibc version, when the host uses glibc. */
  glibc?: string;
  python?: string;
  setsid: boolean;
  freeKb?: number;
}

export interface ShipStats {
  objectsSent: number;
  bytesSent: number;
}

/** What the store says of a tree: assembled there, or which of its objects it lacks. */
export interface TreeStatus {
  envComplete: boolean;
  missing: string[];
}

/** A script body run after a tree is received, with its arguments (see scripts.ts receiveThen). */
export interface After {
  script: string;
  args: readonly string[];
}

export interface SendOptions {
  name?: string;
  onBytes?: (n: number) => void;
  after?: After;
  share?: boolean;
  unique?: boolean;
}

/** Transfers with more new files than this send them as objects, not in place. */
const PLACED_FILES = 2048;

/** An empty file as the last member of a stream: the receiver knows it was not cut. */
function endMark(path: string): StreamEntry {
  return { entry: { path, type: "file", mode: 0o644, size: 0, mtime: 0 } };
}

/** The tar entries of one transfer (see scripts.ts RECEIVE), ending with tmp/<tx>.end. */
function transferEntries(
  tx: string,
  wanted: ReadonlyMap<string, { source: string; size: number }>,
  tree: Tree | undefined,
): StreamEntry[] {
  return [...transferMembers(tx, wanted, tree), endMark(`tmp/${tx}.end`)];
}

function transferMembers(
  tx: string,
  wanted: ReadonlyMap<string, { source: string; size: number }>,
  tree: Tree | undefined,
): StreamEntry[] {
  const fresh = `tmp/${tx}`;
  if (!tree) return objectEntries(wanted, fresh);
  if (wanted.size > PLACED_FILES) {
    // Many new files (a first ship): objects under tmp/<tx>/, moved in by whole folders when
    // the store lacks them; the list of links placing would need up front costs more here
    // than the folders it saves.
    const ids = new Set(wanted.keys());
    return [
      ...objectEntries(wanted, fresh),
      ...linkEntries(tree, `envs/.tmp-${tx}`, { dir: fresh, ids }),
    ];
  }
  // Few new files (an update): each is written once, in the environment itself, and linked
  // as an object after, which saves making and removing a folder per object prefix.
  const placed = placeTree(tree, `envs/.tmp-${tx}`, wanted);
  const file = (path: string, data: Buffer): StreamEntry => ({
    entry: { path, type: "file", mode: 0o644, size: data.length, mtime: 0 },
    data,
  });
  return [
    file(`${fresh}.links`, tarBytes(placed.links)),
    file(`${fresh}.sums`, Buffer.from(placed.sums)),
    ...objectEntries(placed.rest, fresh),
    ...placed.entries,
  ];
}

/**
 * Streams up to this size are made whole in memory, so that they can be compressed once and
 * kept for other hosts; larger ones (a first ship of a big environment) are read as they go
 * out, uncompressed: compressing them for each host would cost more than a LAN saves.
 */
const PACKED_BYTES = 32 << 20;
/** gzip's fastest level: on this kind of data (mostly Python sources) level 6 makes a stream
 *  about 12% smaller for two and a half times the CPU. */
const GZIP_LEVEL = 1;
const gzipAsync = promisify(gzip);

/** A stream made whole: its tar and, once asked for, its gzip. */
interface Packed {
  tx: string;
  tar: Buffer;
  gz?: Promise<Buffer>;
}

/** Streams kept for other hosts, by tree and the files sent; at most SHARED_BYTES in all. */
const shared = new Map<string, Packed>();
const SHARED_BYTES = 2 * PACKED_BYTES;

/**
 * The stream for `tree` with the files of `wanted`, made whole; undefined for large ones.
 * With `share` it is made once and kept for the next host that lacks the same files.
 */
function packedStream(
  tree: Tree | undefined,
  wanted: ReadonlyMap<string, { source: string; size: number }>,
  share: boolean,
): Packed | undefined {
  let size = 0;
  for (const w of wanted.values()) size += w.size;
  if (size > PACKED_BYTES) return undefined;
  const pack = (): Packed => {
    const tx = newId();
    return { tx, tar: tarBytes(transferEntries(tx, wanted, tree)) };
  };
  if (!share || !tree) return pack();
  const key = createHash("sha256")
    .update(`${tree.key}\n${[...wanted.keys()].sort().join("\n")}`)
    .digest("hex");
  let made = shared.get(key);
  if (!made) {
    made = pack();
    shared.set(key, made);
    let total = 0;
    for (const m of shared.values()) total += m.tar.length;
    for (const [k, m] of shared) {
      if (total <= SHARED_BYTES || m === made) break;
      shared.delete(k);
      total -= m.tar.length;
    }
  }
  return made;
}

/** The stream's gzip, made once (on libuv's thread pool) for every host that gets it. */
function gzipped(p: Packed): Promise<Buffer> {
  p.gz ??= gzipAsync(p.tar, { level: GZIP_LEVEL });
  return p.gz;
}

/** Where the bytes of each object can be read locally. */
export type ObjectSources = ReadonlyMap<string, { source: string; size: number }>;

function parseFacts(text: string): RemoteFacts {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const free = Number(kv.get("free_kb"));
  return {
    root: kv.get("root") ?? "",
    arch: kv.get("arch") ?? "unknown",
    os: kv.get("os") ?? "unknown",
    ...(kv.get("glibc") ? { glibc: kv.get("glibc") as string } : {}),
    ...(kv.get("python") ? { python: kv.get("python") as string } : {}),
    setsid: kv.get("setsid") === "yes",
    ...(Number.isFinite(free) ? { freeKb: free } : {}),
  };
}

/** Runs with at most this many entries make their folder inside the run's own session. */
export const INLINE_ENTRIES = 64;

/**
 * The lines that describe a run folder to the RUN script, or "" when the tree is too large
 * for that (prepareRun sends it as a tar instead). Paths with a newline cannot be described.
 */
export function runHeader(app: Tree): string | undefined {
  if (app.entries.length > INLINE_ENTRIES) return undefined;
  const lines: string[] = [];
  for (const e of app.entries) {
    if (e.path.includes("\n")) return undefined;
    if (e.type === "dir") lines.push(`d ${e.path}`);
    else if (e.type === "file" && e.size === 0)
      lines.push(`${e.object.endsWith(".x") ? "x" : "e"} ${e.path}`);
    else if (e.type === "file") lines.push(`f ${e.object} ${e.path}`);
    else return undefined;
  }
  return lines.map((l) => `${l}\n`).join("");
}

/** The number after `key=` in a script's summary line. */
function count(text: string, key: string): number {
  return Number(new RegExp(`\\b${key}=(\\d+)`).exec(text)?.[1] ?? 0);
}

/** The remote disk filled up: trying again at once would only fill it again. */
export class RemoteDiskFull extends UserError {}

export function newId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
}

export class RemoteStore {
  /** Whether streams that fit in memory go gzip-compressed (false once the host lacks gzip). */
  compress: boolean;

  constructor(
    readonly conn: ShellConnection,
    /** The store root as configured ("" = the default under the remote user's cache). */
    readonly root: string,
  ) {
    this.compress = conn.overNetwork;
  }

  private get label(): string {
    return this.conn.label;
  }

  private run(
    script: string,
    args: readonly string[],
    input?: Buffer | string | Readable,
    onSent?: (n: number) => void,
  ) {
    return this.conn.exec(script, [this.root, ...args], input, onSent);
  }

  /** A failure of a store script, as one sentence. */
  failure(what: string, r: Finished): UserError {
    const said = r.stderr
      .split("\n")
      .map((l) => l.replace(/^pyferry: /, "").trim())
      .filter(Boolean);
    const last = said.pop() ?? `exit status ${r.code}`;
    if (/No space left on device|Disk quota exceeded|Wrote only \d+ of \d+ bytes/i.test(r.stderr)) {
      return new RemoteDiskFull(
        `The disk of ${this.label} is full (while ${what}); free some space there (pyferry store gc --on ${this.label} removes what nothing uses) and run again.`,
      );
    }
    if (r.code === sh.REMOTE_EXIT.noTar) {
      return new UserError(`${this.label} has no tar, which pyferry needs there; install it.`);
    }
    if (r.code === sh.REMOTE_EXIT.noRoot) {
      return new UserError(`The store folder on ${this.label} cannot be used (${last}).`);
    }
    return new UserError(
      `${what[0]?.toUpperCase()}${what.slice(1)} on ${this.label} failed (${last}).`,
    );
  }

  /** Facts about the host, and the store created if needed. */
  async probe(): Promise<RemoteFacts> {
    const r = await this.run(sh.PROBE, []);
    if (r.code !== 0) throw this.failure("looking at the host", r);
    return parseFacts(r.stdout.toString("utf8"));
  }

  /**
   * The output of the probe script (`probe`, data/python/probe.py) run by the interpreter
   * `python` there (a path, or a version looked for on PATH), and its resolved path.
   */
  async interpreter(
    python: string,
    probe: string,
  ): Promise<{ stdout: string; stderr: string; real: string; code: number }> {
    const r = await this.run(sh.INTERPRETER, [python, probe]);
    const stdout = r.stdout.toString("utf8");
    return {
      stdout,
      stderr: r.stderr,
      real: /^real (.*)$/m.exec(stdout)?.[1] ?? python,
      code: r.code,
    };
  }

  /** The objects among `ids` the store lacks. */
  async missing(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.need("", "", ids)).missing;
  }

  /**
   * In one session: whether environment `envKey` is assembled there (naming it `name` when it
   * is), and if not, which of `ids` the store lacks.
   */
  async need(envKey: string, name: string, ids: readonly string[]): Promise<TreeStatus> {
    const r = await this.run(sh.NEED, [envKey, name], `${ids.join("\n")}\n`);
    if (r.code !== 0) throw this.failure("checking the store", r);
    const lines = r.stdout.toString("utf8").split("\n").filter(Boolean);
    if (lines[0] === "env=complete") return { envComplete: true, missing: [] };
    // "*": the store is empty.
    return { envComplete: false, missing: lines[0] === "*" ? [...ids] : lines };
  }

  /**
   * Whether environment `envKey` is assembled there (naming it `name` when it is), and which
   * of `ids` are missing, in one session.
   */
  async status(envKey: string, name: string, ids: readonly string[]): Promise<TreeStatus> {
    const r = await this.run(sh.STATUS, [envKey, name, ...ids]);
    if (r.code !== 0) throw this.failure("checking the store", r);
    const lines = r.stdout.toString("utf8").split("\n");
    return {
      envComplete: lines.includes("env=complete"),
      missing: lines.filter((l) => l.startsWith("missing=")).map((l) => l.slice("missing=".length)),
    };
  }

  /**
   * Send objects `ids` and, with `tree`, assemble it as envs/<tree.key> (named `name`), all in
   * one stream. On a dropped connection what arrived whole is kept for the next try. `after`
   * runs in the same session once the tree is assembled (see scripts.ts receiveThen); how it
   * ended comes back as `after`. With `share`, a small stream is made once and kept, for other
   * hosts that lack the same files (a deploy to many); `unique` makes a new one regardless.
   */
  async send(
    ids: readonly string[],
    sources: ObjectSources,
    tree?: Tree,
    opts: SendOptions = {},
  ): Promise<ShipStats & { after?: Finished }> {
    const wanted = new Map<string, { source: string; size: number }>();
    for (const id of ids) {
      const s = sources.get(id);
      if (!s) throw new Error(`No local file holds object ${id}.`);
      wanted.set(id, s);
    }
    if (wanted.size === 0 && !tree) return { objectsSent: 0, bytesSent: 0 };
    let bytes = 0;
    const count = (n: number) => {
      bytes += n;
      opts.onBytes?.(n);
    };
    const packed = packedStream(tree, wanted, !!opts.share && !opts.unique);
    const compress = packed !== undefined && this.compress;
    let tx: string;
    let input: Buffer | Readable;
    if (packed) {
      tx = packed.tx;
      // Whole in memory, the bytes can go through the master's proxy mode (ssh.ts exec).
      input = compress ? await gzipped(packed) : packed.tar;
    } else {
      tx = newId();
      input = tarStream(transferEntries(tx, wanted, tree), count);
    }
    const { after } = opts;
    const script = after && tree ? sh.receiveThen(after.script) : sh.RECEIVE;
    const args = [
      tx,
      tree?.key ?? "",
      opts.name ?? "",
      compress ? "gz" : "",
      ...(after?.args ?? []),
    ];
    const r = await this.run(script, args, input, Buffer.isBuffer(input) ? count : undefined);
    if (r.code === sh.REMOTE_EXIT.noGzip) {
      // Nothing was read there: the same transfer again, uncompressed, and so from now on.
      this.compress = false;
      return this.send(ids, sources, tree, opts);
    }
    const stats = { objectsSent: wanted.size, bytesSent: bytes };
    if (after && tree && !sh.RECEIVE_FAILED.has(r.code) && r.code !== SSH_FAILED)
      return { ...stats, after: r };
    if (r.code !== 0) throw this.failure(tree ? "receiving the environment" : "receiving files", r);
    return stats;
  }

  /** Send objects only. */
  upload(
    ids: readonly string[],
    sources: ObjectSources,
    onBytes?: (n: number) => void,
  ): Promise<ShipStats> {
    return this.send(ids, sources, undefined, onBytes ? { onBytes } : {});
  }

  /**
   * Make sure `tree` is assembled there, sending what is missing; returns what was sent.
   * `knownAbsent` skips asking whether it is there already; `known` is what a recent `need`
   * for this tree said. The store may lose objects to a concurrent gc between the steps: one
   * retry, which asks again, covers it.
   */
  async ensureTree(
    tree: Tree,
    sources: ObjectSources,
    opts: {
      knownAbsent?: boolean;
      known?: TreeStatus;
      name?: string;
      onBytes?: (n: number) => void;
      /** Run in the session that assembles the tree, if one does (see send). */
      after?: After;
      /** See send. */
      share?: boolean;
    } = {},
  ): Promise<ShipStats & { after?: Finished }> {
    const ids = treeObjects(tree);
    const name = opts.name ?? "";
    let known = opts.known;
    const total: ShipStats & { after?: Finished } = { objectsSent: 0, bytesSent: 0 };
    for (let attempt = 0; ; attempt++) {
      try {
        const now =
          known ??
          (opts.knownAbsent
            ? { envComplete: false, missing: await this.missing(ids) }
            : await this.need(tree.key, name, ids));
        known = undefined;
        if (now.envComplete) return total;
        const sent = await this.send(now.missing, sources, tree, {
          name,
          ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
          ...(opts.after ? { after: opts.after } : {}),
          ...(opts.share ? { share: true } : {}),
          // A shared stream's transfer id may be taken there (two names for one host).
          unique: attempt > 0,
        });
        total.objectsSent += sent.objectsSent;
        total.bytesSent += sent.bytesSent;
        return sent.after ? { ...total, after: sent.after } : total;
      } catch (err) {
        if (attempt > 0 || err instanceof SshError || err instanceof RemoteDiskFull) throw err;
      }
    }
  }

  /**
   * Create the run folder runs/<runId> from `app` for a run in environment `envKey`.
   * "env" / a list of object ids: what the store lacks for it (nothing was created).
   */
  async prepareRun(
    envKey: string,
    runId: string,
    app: Tree,
    name = "",
  ): Promise<"ok" | "env" | string[]> {
    const ids = treeObjects(app);
    const head = Buffer.from(`${ids.join("\n")}${ids.length > 0 ? "\n" : ""}\n`);
    const body = tarStream([...linkEntries(app, `runs/${runId}`), endMark(`runs/${runId}.end`)]);
    async function* input(): AsyncGenerator<Buffer> {
      yield head;
      for await (const chunk of body) yield chunk as Buffer;
    }
    const r = await this.run(sh.PREPARE_RUN, [envKey, runId, name], Readable.from(input()));
    if (r.code === 0) return "ok";
    if (r.code === sh.REMOTE_EXIT.envMissing) return "env";
    if (r.code === sh.REMOTE_EXIT.objectsMissing)
      return r.stdout.toString("utf8").split("\n").filter(Boolean);
    throw this.failure("preparing the run", r);
  }

  /**
   * Start run `runId`: the remote makes its folder from `header` (see runHeader; empty when
   * prepareRun made it), checks the environment, then starts the program. stdout is the
   * user's; stdin and stderr are the caller's to connect (see scripts.ts RUN).
   */
  async startRun(
    runId: string,
    envKey: string,
    name: string,
    header: string,
    env: readonly string[],
    args: readonly string[],
  ): Promise<ChildProcess> {
    const child = await this.conn.spawn(
      sh.RUN,
      [this.root, runId, envKey, name, String(env.length), ...env, ...args],
      ["pipe", "inherit", "pipe"],
      // Its own process group: a Ctrl-C at the terminal reaches pyferry, which stops the
      // remote program, instead of killing ssh and leaving the program running.
      { detached: true },
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.write(`${header}\n`);
    return child;
  }

  /** Send `signal` (a name without SIG) to run `runId`'s process group. */
  async signal(runId: string, signal: string): Promise<void> {
    await this.run(sh.SIGNAL_RUN, [runId, signal]);
  }

  /** A tar of `paths` from run `runId`'s folder, as a stream, with the session's end. */
  async fetch(
    runId: string,
    paths: readonly string[],
  ): Promise<{ stream: Readable; done: Promise<Finished> }> {
    const child = await this.conn.spawn(
      sh.FETCH,
      [this.root, runId, ...paths],
      ["ignore", "pipe", "pipe"],
    );
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => {
      stderr += s;
    });
    const done = new Promise<Finished>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => resolve({ code: code ?? 1, stdout: Buffer.alloc(0), stderr }));
    });
    return { stream: child.stdout as Readable, done };
  }

  /**
   * Remove a run folder, an environment (unless a running program uses it or a name keeps
   * it), or a pack name with its finished runs and environment. Returns the counts removed.
   */
  async clean(opts: {
    runId?: string;
    envKey?: string;
    name?: string;
  }): Promise<{ runs: number; envs: number }> {
    const r = await this.run(sh.CLEAN, [opts.runId ?? "", opts.envKey ?? "", opts.name ?? ""]);
    if (r.code !== 0) throw this.failure("cleaning up", r);
    const text = r.stdout.toString("utf8");
    return { runs: count(text, "runs"), envs: count(text, "envs") };
  }

  /** Remove what nothing uses; returns the counts removed. */
  async gc(): Promise<{ runs: number; envs: number; objects: number }> {
    const r = await this.run(sh.GC, []);
    if (r.code !== 0) throw this.failure("collecting garbage", r);
    const text = r.stdout.toString("utf8");
    return {
      runs: count(text, "runs"),
      envs: count(text, "envs"),
      objects: count(text, "objects"),
    };
  }
}
