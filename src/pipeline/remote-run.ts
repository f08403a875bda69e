/**
 * `pyferry run SCRIPT --on TARGET`: build for the remote's platform here, send what its store
 * lacks, assemble there, run with live output and the remote's exit code, bring files back.
 */
import { createHash } from "node:crypto";
import { fstatSync, readFileSync, statSync } from "node:fs";
import { machine } from "node:os";
import { join } from "node:path";
import { type InterpreterInfo, readProbeOutput } from "../python/interpreter.js";
import { probeSource } from "../python/probe.js";
import { takeEarly } from "../transport/early.js";
import {
  extractFetched,
  hashFile,
  newId,
  type ObjectSources,
  objectId,
  REMOTE_EXIT,
  type RemoteFacts,
  RemoteStore,
  runHeader,
  SSH_FAILED,
  SshConnection,
  SshError,
  type SshTarget,
  type Tree,
  type TreeEntry,
  treeObjects,
} from "../transport/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { compareDotted } from "../util/dotted.js";
import { UserError } from "../util/errors.js";
import { memoSha256Sync } from "../util/hash-memo.js";
import type { Progress } from "../util/progress.js";
import { mib } from "../util/units.js";
import { VERSION } from "../version.js";
import { envTree } from "./env-tree.js";
import { readPackInfo } from "./pack-folder.js";
import { ENV_MARKER, freshRecord, type RunRecord, runKey } from "./run-cache.js";

export interface RemoteRunRequest {
  /** The script, or with `pack` the pack's ID as given. */
  script: string;
  /** A pack folder (pyferry pack --folder): its conf/mods and app/ are used. */
  pack?: string;
  /** Ship and name the pack there, run nothing (pyferry sync). */
  syncOnly?: boolean;
  args: string[];
  pythonRequest?: string;
  target: SshTarget;
  /** The store folder there ("" = the default under the remote user's cache folder). */
  root: string;
  /** "bundled" (default: the interpreter travels with the environment), or one on the host. */
  python?: string;
  fetch: string[];
  /** K=V settings for the program's environment. */
  env: string[];
  verbose: boolean;
  cleanAfter: boolean;
  /** Names the pack there, so that its environment is kept and reused. */
  name?: string;
  /** With cleanAfter, the name goes too, and with it the environment if nothing else uses it. */
  forgetName?: boolean;
  guessFiles?: boolean;
  /** Where fetched files go (default: the current folder). */
  fetchInto?: string;
  /** A status line for what is sent (cleared before the program's output starts). */
  status?: Progress;
}

/** What a run cost, for -v and for the benchmark. */
export interface RemoteRunReport {
  code: number;
  signal?: string;
  objectsSent: number;
  bytesSent: number;
  fetched: string[];
}

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** `uname -m` of this machine, as the remote reports its own. */
function localArch(): string {
  return machine();
}

function say(req: RemoteRunRequest, message: string): void {
  if (req.verbose) process.stderr.write(`pyferry: ${message}\n`);
}

/** Counts the bytes of one shipment on the status line. */
function shipping(req: RemoteRunRequest, what: string): (n: number) => void {
  let sent = 0;
  const head = `sending ${what} to ${req.target.label}`;
  return (n) => {
    sent += n;
    req.status?.update(`${head}: ${mib(sent)}`);
  };
}

function hostKey(target: SshTarget, root: string): string {
  return createHash("sha256")
    .update(JSON.stringify([target, root, process.env.PYFERRY_SSH_COMMAND ?? ""]))
    .digest("hex")
    .slice(0, 32);
}

/** The remote's facts, probed once per target and kept in the cache. */
async function remoteFacts(store: RemoteStore, req: RemoteRunRequest): Promise<RemoteFacts> {
  const path = join(cacheDir(), "remote", "hosts", `${hostKey(req.target, req.root)}.json`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as RemoteFacts;
  } catch {
    say(req, `looking at ${req.target.label}`);
    const facts = await store.probe();
    // A host that answered nothing pyferry understands is asked again next time.
    if (facts.os !== "unknown") await writeFileAtomic(path, `${JSON.stringify(facts)}\n`);
    return facts;
  }
}

/** Refuse early, and clearly, a host the environment cannot run on. */
export function checkPlatform(facts: RemoteFacts, label: string, glibcFloor?: string): void {
  if (facts.os === "unknown") {
    throw new UserError(
      `${label} gave no answer pyferry understands to a first command (is PYFERRY_SSH_COMMAND an ssh client, and does the account there have a POSIX shell?).`,
    );
  }
  if (facts.os !== "Linux") {
    throw new UserError(
      `${label} runs ${facts.os}; pyferry ships environments to Linux hosts only.`,
    );
  }
  if (facts.arch !== localArch()) {
    throw new UserError(
      `${label} is ${facts.arch} and this machine is ${localArch()}: an environment built here cannot run there.`,
    );
  }
  if (glibcFloor && !facts.glibc) {
    throw new UserError(
      `${label} has no glibc (musl?), and the bundled Python needs glibc ${glibcFloor} or newer.`,
    );
  }
  if (glibcFloor && facts.glibc && compareDotted(facts.glibc, glibcFloor) < 0) {
    throw new UserError(
      `${label} has glibc ${facts.glibc}, but the bundled Python needs glibc ${glibcFloor} or newer; use a host with a newer system or build on an older one.`,
    );
  }
}

/** The app's files as a tree: the folders they need, then each file. */
function appTree(root: string, files: readonly string[]): Tree {
  const entries: TreeEntry[] = [];
  const dirs = new Set<string>();
  for (const rel of [...files].sort()) {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ type: "dir", path: d });
      }
    }
    entries.push({ type: "file", path: rel, ...appFile(join(root, rel)) });
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { key: "", entries };
}

function appFile(abs: string): { object: string; size: number } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch {
    throw new UserError(`${abs} is gone; it was part of the app when it was analyzed.`);
  }
  const sha = memoSha256Sync(abs, () => hashFile(abs));
  return { object: objectId(sha, (st.mode & 0o111) !== 0), size: st.size };
}

function sourcesOf(
  tree: Tree,
  root: string,
  into: Map<string, { source: string; size: number }>,
): void {
  for (const e of tree.entries) {
    if (e.type === "file") into.set(e.object, { source: join(root, e.path), size: e.size });
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*=/;

/** Check the request before anything is built or sent. */
function checkRequest(req: RemoteRunRequest): void {
  for (const kv of req.env) {
    if (!ENV_NAME.test(kv)) throw new UserError(`--env takes NAME=VALUE, not "${kv}".`, 2);
  }
  for (const f of req.fetch) {
    const parts = f.split("/");
    if (f === "" || f.startsWith("/") || parts.includes("..")) {
      throw new UserError(`--fetch takes a path inside the run's folder, not "${f}".`, 2);
    }
  }
  if (req.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(req.name)) {
    throw new UserError(`A pack name is letters, digits, ".", "_" and "-", not "${req.name}".`, 2);
  }
}

/** The interpreter `python` on the host, probed there and kept with the host's facts. */
async function hostInterpreter(
  store: RemoteStore,
  req: RemoteRunRequest,
  python: string,
): Promise<InterpreterInfo> {
  const path = join(
    cacheDir(),
    "remote",
    "hosts",
    `${hostKey(req.target, req.root)}-${hostKey({ destination: python, label: "" }, "")}.json`,
  );
  try {
    return JSON.parse(readFileSync(path, "utf8")) as InterpreterInfo;
  } catch {
    say(req, `looking at ${python} on ${req.target.label}`);
    const r = await store.interpreter(python, probeSource());
    const info = readProbeOutput(
      r.stdout,
      r.stderr,
      `exit status ${r.code}`,
      `${python} on ${req.target.label}`,
      r.real,
    );
    await writeFileAtomic(path, `${JSON.stringify(info)}\n`);
    return info;
  }
}

/** The local side of a run: an environment record for the remote's platform, and the app. */
async function prepare(
  req: RemoteRunRequest,
  facts: RemoteFacts,
  host?: InterpreterInfo,
): Promise<RunRecord> {
  if (req.pack) {
    const { packEnv } = await import("./staged.js");
    return packEnv(req.pack, facts.glibc);
  }
  const key = runKey(
    req.script,
    req.pythonRequest,
    `${VERSION}\0remote\0${facts.glibc ?? "none"}\0${req.guessFiles === true}\0${host?.realPath ?? "bundled"}`,
  );
  const rec = freshRecord(key);
  if (rec?.app) return rec;
  const { prepareRun } = await import("./prepare-run.js");
  return prepareRun(req.script, req.pythonRequest, key, {
    elsewhere: true,
    ...(req.status ? { status: req.status } : {}),
    ...(host ? { hostPython: host } : { bundlePython: true }),
    ...(facts.glibc && !host ? { glibc: facts.glibc } : {}),
    ...(req.guessFiles ? { guessFiles: true } : {}),
  });
}

/** Ship and run; resolves when the remote program has ended and files are back. */
export async function remoteRun(req: RemoteRunRequest): Promise<RemoteRunReport> {
  checkRequest(req);
  const conn = takeEarly(req.target) ?? new SshConnection(req.target);
  const store = new RemoteStore(conn, req.root);
  // The handshake runs while the environment is found or built here; its errors surface at
  // the first remote command.
  conn.open().catch(() => undefined);
  try {
    const facts = await remoteFacts(store, req);
    const python = req.python ?? "bundled";
    if (python !== "bundled" && req.pack) {
      throw new UserError(
        `A pack folder is built with a bundled interpreter; ${req.target.label} asks for python = "${python}".`,
        2,
      );
    }
    // A host's own interpreter: wheels for its platform, nothing built here runs there.
    const host = python === "bundled" ? undefined : await hostInterpreter(store, req, python);
    if (!host) checkPlatform(facts, req.target.label);
    req.status?.update(`preparing the environment for ${req.target.label}`);
    const rec = await prepare(req, facts, host);
    req.status?.done();
    const marker = JSON.parse(readFileSync(join(rec.envDir, ENV_MARKER), "utf8")) as {
      glibc?: string;
      python?: string;
      bundled?: boolean;
      packages?: string[];
    };
    const pkgs = marker.packages ?? [];
    say(
      req,
      `environment: Python ${marker.python ?? "?"}${marker.bundled ? " (travels with it)" : ""}, ${pkgs.length} package(s)${pkgs.length > 0 ? `: ${pkgs.join(" ")}` : ""}`,
    );
    if (!host) checkPlatform(facts, req.target.label, marker.glibc);
    const env = envTree(rec.envDir);
    const app = appTree(rec.app?.root ?? ".", rec.app?.files ?? []);
    const sources = new Map<string, { source: string; size: number }>();
    sourcesOf(app, rec.app?.root ?? ".", sources);
    const runId = newId();
    const report: RemoteRunReport = { code: 0, objectsSent: 0, bytesSent: 0, fetched: [] };
    const sendEnv = async () => {
      const envSources = new Map<string, { source: string; size: number }>();
      sourcesOf(env, rec.envDir, envSources);
      say(req, `sending the environment (${env.entries.length} entries) to ${req.target.label}`);
      const sent = await store.ensureTree(env, envSources as ObjectSources, {
        knownAbsent: true,
        onBytes: shipping(req, "the environment"),
        ...(req.name ? { name: req.name } : {}),
      });
      req.status?.done();
      report.objectsSent += sent.objectsSent;
      report.bytesSent += sent.bytesSent;
      say(
        req,
        `sent ${sent.objectsSent} files (${mib(sent.bytesSent)}); environment ${env.key.slice(0, 12)} assembled`,
      );
    };
    const sendApp = async (ids: string[]) => {
      const sent = await store.upload(ids, sources, shipping(req, "the app's files"));
      req.status?.done();
      report.objectsSent += sent.objectsSent;
      report.bytesSent += sent.bytesSent;
      say(req, `sent ${sent.objectsSent} app files (${mib(sent.bytesSent)})`);
    };
    if (req.syncOnly) {
      // One session says what is there (and names the environment if it is); one sends the rest.
      const name = req.name ?? baseName(req.script);
      const st = await store.status(env.key, name, treeObjects(app));
      if (st.envComplete) {
        say(req, `environment ${env.key.slice(0, 12)} is there already`);
        if (st.missing.length > 0) await sendApp(st.missing);
      } else {
        const envSources = new Map<string, { source: string; size: number }>(sources);
        sourcesOf(env, rec.envDir, envSources);
        const envMissing = await store.missing(treeObjects(env));
        say(req, `sending ${envMissing.length + st.missing.length} files to ${req.target.label}`);
        const sent = await store.send(
          [...new Set([...envMissing, ...st.missing])],
          envSources,
          env,
          { name, onBytes: shipping(req, "the environment and files") },
        );
        req.status?.done();
        report.objectsSent += sent.objectsSent;
        report.bytesSent += sent.bytesSent;
        say(
          req,
          `sent ${sent.objectsSent} files (${mib(sent.bytesSent)}); environment ${env.key.slice(0, 12)} assembled`,
        );
      }
      return report;
    }
    // A small app's folder is made in the run's own session; a large one is sent as a tar first.
    let header = runHeader(app);
    // The app's root is the script's folder (a pack's app/), so the entry sits at its top.
    const entry = req.pack ? readPackInfo(req.pack).entry : baseName(req.script);
    const args = [entry, ...req.args];
    let outcome: { code: number; signal?: string } | undefined;
    say(req, `running in ${facts.root}/runs/${runId}`);
    for (let attempt = 0; outcome === undefined; attempt++) {
      if (attempt > 3) {
        throw new UserError(
          `The store on ${req.target.label} keeps losing files; is a gc running there?`,
        );
      }
      if (header === undefined) {
        const ready = await store.prepareRun(env.key, runId, app, req.name ?? "");
        if (ready === "env") await sendEnv();
        else if (ready !== "ok") await sendApp(ready);
        else header = "";
        continue;
      }
      const r = await runRemote(store, runId, env.key, req, header, args);
      if (r === "env") await sendEnv();
      else if (Array.isArray(r)) await sendApp(r);
      else outcome = r;
    }
    report.code = outcome.code;
    if (outcome.signal) report.signal = outcome.signal;
    if (req.fetch.length > 0) report.fetched = await fetchBack(store, runId, req);
    if (req.cleanAfter) {
      const named = req.name ? (req.forgetName ? { name: req.name } : {}) : undefined;
      const gone = await store.clean({ runId, ...(named ?? { envKey: env.key }) });
      say(req, `removed the run's folder${gone.envs > 0 ? " and its environment" : ""} there`);
    }
    return report;
  } finally {
    req.status?.done();
    await conn.close();
  }
}

function baseName(p: string): string {
  return p.split("/").pop() as string;
}

/**
 * One session that makes the run folder, checks the environment and runs the program: stdout
 * live, stderr live (kept for ssh's errors), our stdin connected once the program starts.
 * "env" or missing object ids: what the store lacked (nothing ran).
 */
async function runRemote(
  store: RemoteStore,
  runId: string,
  envKey: string,
  req: RemoteRunRequest,
  header: string,
  args: string[],
): Promise<{ code: number; signal?: string } | "env" | string[]> {
  const child = await store.startRun(runId, envKey, req.name ?? "", header, req.env, args);
  let ready = false;
  let pending = "";
  let tail = "";
  let envMissing = false;
  const missing: string[] = [];
  const stdin = process.stdin;
  const after = new ExitMarker();
  child.stderr?.on("data", (b: Buffer) => {
    if (ready) {
      const text = after.feed(b.toString("utf8"));
      if (text) process.stderr.write(text);
      tail = (tail + text).slice(-4096);
      return;
    }
    pending += b.toString("utf8");
    for (let nl = pending.indexOf("\n"); nl !== -1 && !ready; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === "pyferry:ready") {
        ready = true;
        const rest = after.feed(pending);
        if (rest) process.stderr.write(rest);
        tail = rest;
        stdin.pipe(child.stdin as NodeJS.WritableStream);
      } else if (line === "pyferry:env-missing") envMissing = true;
      else if (line.startsWith("pyferry:missing "))
        missing.push(line.slice("pyferry:missing ".length));
      else tail = `${tail}${line}\n`.slice(-4096);
    }
  });
  let stopping: string | undefined;
  const stop = (sig: NodeJS.Signals) => {
    // Asked again: stop waiting for the host (its watchdog stops what is left there).
    if (stopping) {
      child.kill("SIGTERM");
      return;
    }
    stopping = sig;
    // Stop the remote program's group; its session then ends and ssh exits by itself.
    void store.signal(runId, sig.replace(/^SIG/, "")).catch(() => child.kill("SIGTERM"));
  };
  for (const s of FORWARDED) process.on(s, stop);
  try {
    const code = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c) => resolve(c ?? SSH_FAILED));
    });
    if (!ready) {
      // Stopped before it started: it never will.
      if (stopping) return { code, signal: stopping };
      if (code === REMOTE_EXIT.envMissing || envMissing) return "env";
      if (code === REMOTE_EXIT.objectsMissing) return missing;
      if (code === SSH_FAILED) await store.conn.failIfConnectionLost(`${tail}${pending}`);
      throw store.failure("starting the program", {
        code,
        stdout: Buffer.alloc(0),
        stderr: `${tail}${pending}`,
      });
    }
    const left = after.end();
    if (left) process.stderr.write(left);
    // Without the wrapper's last line the session was cut short: the program's status is unknown.
    if (after.exit === undefined && !stopping) {
      // With the connection still up, what went away is the reader of our output
      // (`| head`): stop as a program killed by SIGPIPE does.
      const up = await store.conn.failIfConnectionLost("").then(
        () => true,
        () => false,
      );
      if (up && fstatSync(1).isFIFO()) {
        // The program there would run on until it next writes: stop it now.
        await store.signal(runId, "TERM").catch(() => undefined);
        return { code: 141 };
      }
      throw new SshError(
        `The connection to ${req.target.label} dropped while the program ran there (ssh ended with status ${code}).`,
      );
    }
    return stopping ? { code, signal: stopping } : { code };
  } finally {
    for (const s of FORWARDED) process.off(s, stop);
    stdin.unpipe(child.stdin as NodeJS.WritableStream);
    // Reading a terminal keeps the process alive; the program is done with it.
    if (ready) stdin.destroy();
  }
}

/**
 * Passes a stream of text through, less the wrapper's last line "pyferry:exit N", whose
 * number it keeps. A trailing piece that may be the start of that line is held back.
 */
export class ExitMarker {
  exit: number | undefined;
  private held = "";

  feed(text: string): string {
    const all = this.held + text;
    this.held = "";
    let out = "";
    let start = 0;
    for (let nl = all.indexOf("\n"); nl !== -1; nl = all.indexOf("\n", start)) {
      const line = all.slice(start, nl);
      const m = /^pyferry:exit (\d+)$/.exec(line);
      if (m) this.exit = Number(m[1]);
      else out += `${line}\n`;
      start = nl + 1;
    }
    const rest = all.slice(start);
    if ("pyferry:exit ".startsWith(rest) || /^pyferry:exit \d*$/.test(rest)) this.held = rest;
    else out += rest;
    return out;
  }

  /** What is still held back at the end (not the marker: that ends with a newline). */
  end(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }
}

async function fetchBack(
  store: RemoteStore,
  runId: string,
  req: RemoteRunRequest,
): Promise<string[]> {
  const { stream, done } = await store.fetch(runId, req.fetch);
  const got = await extractFetched(stream, req.fetchInto ?? process.cwd(), req.target.label);
  const end = await done;
  for (const line of end.stderr.split("\n")) {
    const m = /^pyferry: (.*) does not exist$/.exec(line);
    if (m) process.stderr.write(`warning: --fetch ${m[1]}: no such file in the run's folder.\n`);
  }
  for (const s of got.skipped)
    process.stderr.write(`warning: --fetch skipped ${s} (not a plain file).\n`);
  say(req, `fetched ${got.files.length} file(s)`);
  return got.files;
}
