/**
 * `pyferry deploy` and `pyferry rollback`: keep the inventory's environments exactly in sync
 * with their requirements, from the wheelhouse. Each environment is read on its host (its
 * .dist-info folders; no pip there), built here for the host's interpreter, planned, confirmed,
 * then shipped into the host's store (only what it lacks), assembled beside the old one and
 * switched to with one rename; hooks and the reload command run after, and any failure
 * switches back. Hosts are worked on in parallel; each environment gets one summary line.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import type { IndexSettings } from "../index/pip-config.js";
import { cachedEnv, lockRequirements } from "../pipeline/build.js";
import { envTree } from "../pipeline/env-tree.js";
import { fromRequirementsTxt } from "../pipeline/inputs.js";
import { type InterpreterInfo, readProbeOutput } from "../python/interpreter.js";
import { normalizeName } from "../python/names.js";
import { probeSource } from "../python/probe.js";
import { tagRanks } from "../python/tags.js";
import { targetFromInterpreter, targetTagList } from "../python/target.js";
import { satisfies } from "../python/version.js";
import { type Lock, type LockedFile, type LockedPackage, readLock } from "../resolve/lock.js";
import { builtHere, installFile, type LockChoice, selectPackages } from "../resolve/lock-select.js";
import type { RemoteStore, Tree, TreeStatus } from "../transport/index.js";
import { treeObjects } from "../transport/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { memoSha256 } from "../util/hash-memo.js";
import type { Progress } from "../util/progress.js";
import { readTextSync } from "../util/read-text.js";
import { sha256File } from "../util/sha256-file.js";
import { mib } from "../util/units.js";
import { VERSION } from "../version.js";
import { Connections } from "./connections.js";
import { envUser, type FleetEnv, type Inventory } from "./inventory.js";
import { type Change, describeChanges, diff, distInfoName } from "./plan.js";
import * as sh from "./scripts.js";
import type { Selected } from "./selector.js";
import { wheelIdentity } from "./wheelhouse.js";

export type Answer = "yes" | "no" | "all" | "quit";

export interface DeployOptions {
  check: boolean;
  yes: boolean;
  forks: number;
  /** Asks whether to apply a plan; undefined means nobody can answer (then --yes is needed). */
  confirm?: (question: string) => Promise<Answer>;
  /** Progress and plans for people (stderr). */
  say: (line: string) => void;
  /** A status line while hosts are read and changed (cleared before `say` and at the end). */
  status?: Progress;
  /** Hears of each environment as soon as its outcome is final (in no particular order). */
  onResult?: (result: EnvResult) => void;
}

export type Outcome = "ok" | "changed" | "failed" | "pending" | "skipped";

export interface EnvResult {
  host: string;
  user?: string;
  path: string;
  outcome: Outcome;
  /**
   * The package moves made (changed), or to be made (pending, skipped). A failed environment's
   * are those that took effect all the same (most often none); its plan is in `planned`.
   */
  changes: Change[];
  /** Why it is (to be) changed besides its package moves, e.g. a wheel replaced, hooks owed. */
  reason?: string;
  /** A failed environment's planned package moves, not (all) made. */
  planned?: Change[];
  /** What failed and where, for failed environments. */
  error?: string;
}

/** What one environment looks like now, and what it should be. */
interface Planned {
  sel: Selected;
  currentKey?: string;
  /** The current environment's hooks never finished (its deploy was stopped). */
  hooksPending: boolean;
  currentKind: string;
  installed: Map<string, string>;
  wanted: Map<string, string>;
  envDir: string;
  tree: Tree;
  changes: Change[];
  /**
   * The path already points at the environment of the plan, but what it has installed differs
   * (changed or removed by hand in the store): it is assembled again.
   */
  drifted: boolean;
  /** What the store said of the tree while planning. */
  shipping?: TreeStatus;
  /** The path's environment is this one with `compile` the other way. */
  compileFlipped: boolean;
  /** "3.12.1 -> 3.10.13": the path's environment was made for another interpreter. */
  pythonChange?: string;
}

/** Only the wheelhouse: deployments never reach out to an index. */
function wheelhouseSettings(inv: Inventory): IndexSettings {
  return {
    indexUrl: "",
    extraIndexUrls: [],
    findLinks: [`${inv.wheelhouse}/wheels`],
    noIndex: true,
    trustedHosts: [],
    sources: { "find-links": "the inventory's wheelhouse", "no-index": "pyferry deploy" },
  };
}

interface HostState {
  info: InterpreterInfo;
  envs: Map<string, EnvState>;
}

interface EnvState {
  kind: string;
  link?: string;
  hooksPending?: boolean;
  /** The interpreter its pyvenv.cfg names (version, real path), for a linked environment. */
  pyVersion?: string;
  pyExecutable?: string;
  dists: Map<string, string>;
}

/** A file kept between deploys in pyferry's cache, named by the hash of `key`. */
function deployCacheFile(kind: "pythons" | "locks", key: string, ext: string): string {
  const id = createHash("sha256").update(key).digest("hex");
  return join(cacheDir(), "remote", kind, `${id.slice(0, 32)}${ext}`);
}

/** Where the description of a host's interpreter is kept between deploys. */
function probeCache(store: RemoteStore, python: string): string {
  return deployCacheFile("pythons", `${store.conn.label}\0${store.root}\0${python}`, ".json");
}

interface ProbeRecord {
  stamp: string;
  info: InterpreterInfo;
}

function readProbeRecord(file: string): ProbeRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as ProbeRecord;
  } catch {
    return undefined;
  }
}

/**
 * Read the interpreter and the environments that use it, in one session. The interpreter is
 * probed (Python started there) only when its file changed since the last deploy. `trees`
 * are asked about in the same session: whether the store has them, and which objects it lacks.
 */
async function readState(
  store: RemoteStore,
  python: string,
  paths: string[],
  known: ProbeRecord | undefined,
  trees: readonly Tree[],
): Promise<HostState & { trees: Map<string, TreeStatus> }> {
  const ask = trees.map((t) => `tree ${t.key}\n${treeObjects(t).join("\n")}\n`).join("");
  const r = await store.conn.exec(
    sh.STATE,
    [store.root, python, probeSource(), known?.stamp ?? "", ...paths],
    ask,
  );
  const out = r.stdout.toString("utf8");
  if (r.code !== 0) throw store.failure("reading the environments", r);
  const stamp = /^stamp (.*)$/m.exec(out)?.[1] ?? "";
  let info: InterpreterInfo;
  if (known && /^same-python$/m.test(out)) info = known.info;
  else {
    const real = /^real (.*)$/m.exec(out)?.[1] ?? python;
    info = readProbeOutput(out, r.stderr, `exit status ${r.code}`, python, real);
    if (stamp) {
      await writeFileAtomic(probeCache(store, python), JSON.stringify({ stamp, info })).catch(
        () => undefined,
      );
    }
  }
  const envs: HostState["envs"] = new Map();
  const statuses = new Map<string, TreeStatus>();
  let current: EnvState | undefined;
  let tree: TreeStatus | undefined;
  for (const line of out.split("\n")) {
    const sp = line.indexOf(" ");
    const [tag, rest] = sp === -1 ? [line, ""] : [line.slice(0, sp), line.slice(sp + 1)];
    if (tag === "env") {
      current = { kind: "none", dists: new Map() };
      envs.set(rest, current);
    } else if (current && tag === "link") {
      current.kind = "link";
      current.link = rest;
    } else if (current && tag === "kind") current.kind = rest;
    else if (current && tag === "hooks-pending") current.hooksPending = true;
    else if (current && tag === "cfg-version") current.pyVersion = rest;
    else if (current && tag === "cfg-executable") current.pyExecutable = rest;
    else if (current && tag === "dist") {
      const nv = distInfoName(rest);
      if (nv) current.dists.set(nv[0], nv[1]);
    } else if (tag === "tree") {
      const [key = "", status = "", all] = rest.split(" ");
      const asked = trees.find((t) => t.key === key);
      tree = { envComplete: status === "complete", missing: [] };
      if (all && asked) tree.missing = treeObjects(asked);
      statuses.set(key, tree);
    } else if (tree && tag === "missing") tree.missing.push(rest);
  }
  return { info, envs, trees: statuses };
}

/** Locks resolved in this process: environments with the same file and target share one. */
const locks = new Map<string, Promise<{ text: string; lock: Lock }>>();

/** The lock for an environment on this interpreter, from its requirements or its lock file. */
async function resolveLock(
  env: FleetEnv,
  info: InterpreterInfo,
  inv: Inventory,
): Promise<{ text: string; lock: Lock }> {
  if (env.lock) {
    const text = readTextSync(env.lock, "the lock file");
    const lock = readLock(text, env.lock);
    // Deploys compare versions and reuse builds by the lock's text: each package needs a
    // version, and content the text pins (a hash), which a folder or a checkout lacks.
    const loose = lock.packages.find((p) => builtHere(p) || p.version === "");
    if (loose) {
      throw new UserError(
        `${env.lock} names ${loose.name} by ${loose.source?.kind ?? "file"} without a version or hash, which a deploy cannot compare; build its wheel into the wheelhouse (pyferry wheelhouse add FOLDER) and lock from there.`,
      );
    }
    return { text, lock: await fromWheelhouse(lock, inv) };
  }
  const file = env.requirements as string;
  const text = readTextSync(file, "the requirements file");
  const target = targetFromInterpreter(info);
  // The wheelhouse is the only source: the same requirements, target and wheelhouse resolve the
  // same, so a redeploy with nothing new reuses the last lock instead of resolving again.
  const key = JSON.stringify([VERSION, resolvePath(file), text, target, wheelhouseFiles(inv)]);
  const saved = deployCacheFile("locks", key, ".toml");
  try {
    const lockText = readFileSync(saved, "utf8");
    return { text: lockText, lock: readLock(lockText, saved) };
  } catch {
    // Not saved yet, or unreadable: resolve.
  }
  const input = fromRequirementsTxt(text, file);
  const r = await lockRequirements(input.requirements, target, wheelhouseSettings(inv), {
    lockDir: dirname(file),
  });
  await writeFileAtomic(saved, r.text).catch(() => undefined);
  return { text: r.text, lock: r.lock };
}

/** Files of a lock that the wheelhouse holds, taken from there (see fromWheelhouse). */
const housed = new WeakSet<LockedFile>();

/**
 * `lock` with each file the wheelhouse holds (a wheel of the same name and sha256) taken from
 * there rather than from the URL or path the lock gives: deployments install from the
 * wheelhouse only. A file it lacks stays as it is, and is refused if it is installed (prepare).
 */
async function fromWheelhouse(lock: Lock, inv: Inventory): Promise<Lock> {
  const dir = join(inv.wheelhouse, "wheels");
  const byWheel = new Map<string, string[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".whl"))) {
    byWheel.set(wheelIdentity(f), [...(byWheel.get(wheelIdentity(f)) ?? []), f]);
  }
  const take = async (f: LockedFile): Promise<LockedFile> => {
    for (const name of byWheel.get(wheelIdentity(f.name)) ?? []) {
      const path = join(dir, name);
      if ((await memoSha256(path, () => sha256File(path))) !== f.sha256) continue;
      const here: LockedFile = { name: f.name, path, sha256: f.sha256 };
      if (f.size !== undefined) here.size = f.size;
      housed.add(here);
      return here;
    }
    return f;
  };
  const packages = await Promise.all(
    lock.packages.map(async (p) => ({
      ...p,
      wheels: await Promise.all(p.wheels.map(take)),
      ...(p.source?.kind === "archive"
        ? { source: { ...p.source, file: await take(p.source.file) } }
        : {}),
    })),
  );
  return { ...lock, packages };
}

/** Refuse a lock that would install a file the wheelhouse lacks, naming the first one. */
function installsFromWheelhouse(
  env: FleetEnv,
  lock: Lock,
  info: InterpreterInfo,
  inv: Inventory,
): void {
  const ranks = tagRanks(targetTagList(targetFromInterpreter(info)));
  for (const p of selectFor(env, lock, info)) {
    const f = installFile(p, ranks);
    if (!housed.has(f)) {
      throw new UserError(
        `${env.lock} installs ${f.name} (sha256 ${f.sha256.slice(0, 12)}...), which the wheelhouse ${inv.wheelhouse} does not hold; pyferry wheelhouse add it, as deployments install from the wheelhouse only.`,
      );
    }
  }
}

/** Listings of wheelhouses read in this process: one deploy does not change its wheelhouse. */
const listings = new Map<string, string[]>();

/** The wheelhouse's files as name, size and modification time: what a resolution there read. */
function wheelhouseFiles(inv: Inventory): string[] {
  const dir = join(inv.wheelhouse, "wheels");
  let listing = listings.get(dir);
  if (!listing) {
    try {
      listing = readdirSync(dir)
        .sort()
        .map((name) => {
          const st = statSync(join(dir, name));
          return `${name} ${st.size} ${st.mtimeMs}`;
        });
    } catch {
      listing = [];
    }
    listings.set(dir, listing);
  }
  return listing;
}

function lockFor(
  env: FleetEnv,
  info: InterpreterInfo,
  inv: Inventory,
): Promise<{ text: string; lock: Lock }> {
  const key = JSON.stringify([env.lock ?? env.requirements, targetFromInterpreter(info)]);
  let found = locks.get(key);
  if (!found) {
    found = resolveLock(env, info, inv);
    locks.set(key, found);
  }
  return found;
}

/**
 * The extras and dependency groups the inventory picks from the environment's lock (spelt as
 * there: selection and cachedEnv's key normalize the names).
 */
function choiceOf(env: FleetEnv): LockChoice {
  return { extras: env.extras, groups: env.dependencyGroups };
}

/**
 * What the environment installs from the lock for this interpreter (PEP 751's selection: the
 * default groups and the inventory's choice); a refusal names the environment's lock file.
 */
function selectFor(env: FleetEnv, lock: Lock, info: InterpreterInfo): LockedPackage[] {
  try {
    return selectPackages(lock, info, choiceOf(env));
  } catch (err) {
    if (err instanceof UserError && env.lock) throw new UserError(`${env.lock}: ${err.message}`);
    throw err;
  }
}

/** The locked versions the environment gets on this interpreter. */
function lockedVersions(env: FleetEnv, lock: Lock, info: InterpreterInfo): Map<string, string> {
  return new Map(selectFor(env, lock, info).map((p) => [normalizeName(p.name), p.version]));
}

interface Prepared {
  lock: Lock;
  envDir: string;
  tree: Tree;
}

/** Environments built in this process, by requirements file and interpreter. */
const builds = new Map<string, Promise<Prepared>>();

/** The environment for `env` on interpreter `info`, built here (once per process). */
function prepare(env: FleetEnv, info: InterpreterInfo, inv: Inventory): Promise<Prepared> {
  const key = JSON.stringify([env.lock ?? env.requirements, info, choiceOf(env)]);
  let found = builds.get(key);
  if (!found) {
    found = (async () => {
      const { text, lock } = await lockFor(env, info, inv);
      if (env.lock) {
        // Said here for a deploy, which takes its interpreter from the inventory, not --python.
        const python = info.markerEnv.python_full_version;
        if (lock.requiresPython !== undefined && !satisfies(python, lock.requiresPython)) {
          throw new UserError(
            `${env.lock} requires Python ${lock.requiresPython}, and ${env.python} there is Python ${python}; set the environment's python in the inventory to one that is, or lock again for that one.`,
          );
        }
        installsFromWheelhouse(env, lock, info, inv);
      }
      const built = await cachedEnv(text, lock, info, {
        venvBase: {
          base: info.isVirtualenv ? info.realPath : info.sysExecutable,
          real: info.realPath,
          version: info.version,
          pointerBits: info.pointerBits,
        },
        index: wheelhouseSettings(inv),
        lockDir: env.lock ? dirname(env.lock) : dirname(env.requirements as string),
        choice: choiceOf(env),
      });
      return { lock, envDir: built.dir, tree: envTree(built.dir) };
    })();
    builds.set(key, found);
  }
  return found;
}

/**
 * The tree an environment is deployed as. Bytecode is compiled on the host into the assembled
 * environment, so a compiled one is another environment there (the same objects, another key):
 * turning `compile` on or off is a change, and never adds .pyc files under another path.
 */
function deployedTree(sel: Selected, prepared: Prepared, compile = sel.env.compile): Tree {
  if (!compile) return prepared.tree;
  const key = createHash("sha256").update(`${prepared.tree.key}\0compiled`).digest("hex");
  return { ...prepared.tree, key };
}

/** Phase one for one connection: state, locks and local builds, plans. Nothing changes there. */
async function planConnection(
  store: RemoteStore,
  sels: Selected[],
  inv: Inventory,
): Promise<(Planned | EnvResult)[]> {
  const byPython = new Map<string, Selected[]>();
  for (const s of sels) byPython.set(s.env.python, [...(byPython.get(s.env.python) ?? []), s]);
  const planned: (Planned | EnvResult)[] = [];
  for (const [python, group] of byPython) {
    try {
      planned.push(...(await planPython(store, python, group, inv)));
    } catch (err) {
      // One interpreter that does not work there fails only the environments that use it.
      planned.push(...failedAll(group, err));
    }
  }
  return planned;
}

/** planConnection for the environments of one interpreter. */
async function planPython(
  store: RemoteStore,
  python: string,
  group: Selected[],
  inv: Inventory,
): Promise<(Planned | EnvResult)[]> {
  const planned: (Planned | EnvResult)[] = [];
  // The interpreter as it was at the last deploy: the locks and builds usually need nothing
  // more from the host, so they start now, while the connection is still being made, and
  // the store is asked about their trees in the state's own session.
  const known = readProbeRecord(probeCache(store, python));
  const guessed = known
    ? (await Promise.allSettled(group.map((sel) => prepare(sel.env, known.info, inv)))).flatMap(
        (r, i) => (r.status === "fulfilled" ? [deployedTree(group[i] as Selected, r.value)] : []),
      )
    : [];
  const state = await readState(
    store,
    python,
    group.map((s) => s.env.path),
    known,
    guessed,
  );
  for (const sel of group) {
    const now = state.envs.get(sel.env.path) ?? {
      kind: "none",
      dists: new Map<string, string>(),
    };
    let prepared: Prepared;
    try {
      prepared = await prepare(sel.env, state.info, inv);
    } catch (err) {
      planned.push(...failedAll([sel], err));
      continue;
    }
    const { lock, envDir } = prepared;
    const tree = deployedTree(sel, prepared);
    const currentKey = now.link?.split("/").pop();
    const shipping = state.trees.get(tree.key);
    const wanted = lockedVersions(sel.env, lock, state.info);
    const changes = diff(now.dists, wanted);
    const pythonChange =
      currentKey !== undefined && currentKey !== tree.key
        ? interpreterChange(now, state.info)
        : undefined;
    planned.push({
      sel,
      currentKind: now.kind,
      installed: now.dists,
      wanted,
      envDir,
      tree,
      changes,
      drifted: currentKey === tree.key && changes.length > 0,
      compileFlipped: currentKey === deployedTree(sel, prepared, !sel.env.compile).key,
      hooksPending: now.hooksPending === true && currentKey === tree.key,
      ...(currentKey ? { currentKey } : {}),
      ...(shipping ? { shipping } : {}),
      ...(pythonChange ? { pythonChange } : {}),
    });
  }
  return planned;
}

/** "3.12.1 -> 3.10.13" (or the paths) when the environment there is for another interpreter. */
function interpreterChange(now: EnvState, info: InterpreterInfo): string | undefined {
  if (now.pyVersion !== undefined && now.pyVersion !== info.version)
    return `${now.pyVersion} -> ${info.version}`;
  if (now.pyExecutable !== undefined && now.pyExecutable !== info.realPath)
    return `${now.pyExecutable} -> ${info.realPath}`;
  return undefined;
}

/** Why an environment is planned as a change besides its package moves; none when they say it all. */
function planReason(p: Planned): string | undefined {
  if (p.drifted)
    return "its environment in the store was changed or removed since it was deployed, and is assembled again";
  if (p.currentKey === p.tree.key)
    return "its hooks and reload, not completed since it was switched to";
  if (p.pythonChange) return `the Python changed (${p.pythonChange})`;
  if (p.changes.length > 0) return undefined;
  if (p.compileFlipped)
    return `the same packages, ${p.sel.env.compile ? "with" : "without"} bytecode compiled there`;
  if (p.currentKey)
    return "the same versions, with files that differ from those deployed (a wheel replaced under the same version, or a pyferry that lays environments out differently)";
  return "the same packages, as a pyferry environment";
}

function label(sel: Selected): string {
  const user = envUser(sel.host, sel.env);
  return `${user ? `${user}@` : ""}${sel.host.name}:${sel.env.path}`;
}

/** Why the environment's path holds something a deploy must not replace, if it does. */
function notReplaced(p: Planned): string | undefined {
  const path = p.sel.env.path;
  if (p.currentKind === "dir")
    return `${path} is a folder but not a virtualenv (no pyvenv.cfg), so pyferry will not replace it; move it away or choose another path`;
  if (p.currentKind === "file") return `${path} is a file, not an environment`;
  return undefined;
}

/** True when the environment is already exactly the one the plan would switch to. */
function inSync(p: Planned): boolean {
  return p.currentKey === p.tree.key && !p.hooksPending && !p.drifted;
}

/** The run of a remote script in the store, with its output as text; `input` is its stdin. */
async function step(
  store: RemoteStore,
  script: string,
  args: string[],
  input?: Readable,
): Promise<{ code: number; out: string; err: string }> {
  const r = await store.conn.exec(script, [store.root, ...args], input);
  return { code: r.code, out: r.stdout.toString("utf8"), err: r.stderr.trim() };
}

/**
 * A hook or the reload command run in the environment at its path. The session's stdin stays
 * open while it runs: its end tells the host that pyferry is gone, and the hook is stopped.
 */
function runHook(store: RemoteStore, env: FleetEnv, cmd: string) {
  return step(store, sh.HOOK, [env.path, env.workdir ?? "", cmd], new PassThrough());
}

/** The host's sentence on a hook of an earlier deploy still running, without its prefix. */
function hookStillRuns(err: string): string {
  return lastLine(err).replace(/^pyferry: /, "");
}

function lastLine(text: string): string {
  return text.split("\n").filter(Boolean).pop() ?? "no output";
}

/** Environments taken away for repair in this process, by host. */
const repairs = new WeakMap<RemoteStore, Set<string>>();

/** Phase three for one environment: ship, switch, hooks, reload; switch back on failure. */
async function apply(
  store: RemoteStore,
  p: Planned,
  onBytes: (n: number) => void,
): Promise<EnvResult> {
  const { sel } = p;
  const reason = planReason(p);
  const base = {
    host: sel.host.name,
    path: sel.env.path,
    changes: p.changes,
    ...(envUser(sel.host, sel.env) ? { user: envUser(sel.host, sel.env) as string } : {}),
    ...(reason ? { reason } : {}),
  };
  /** `applied`: the environment stays switched to the new one (its changes took effect). */
  const fail = (error: string, applied = false): EnvResult => ({
    ...base,
    changes: applied ? p.changes : [],
    planned: p.changes,
    outcome: "failed",
    error,
  });
  const sources = new Map<string, { source: string; size: number }>();
  for (const e of p.tree.entries) {
    if (e.type === "file") sources.set(e.object, { source: `${p.envDir}/${e.path}`, size: e.size });
  }
  const commands = [
    ...sel.env.hooks.map((h) => ({ what: `hook "${h}"`, cmd: h })),
    ...(sel.env.reload ? [{ what: `reload "${sel.env.reload}"`, cmd: sel.env.reload }] : []),
  ];
  const resumed = p.currentKey === p.tree.key && !p.drifted;
  const switchArgs = [sel.env.path, p.tree.key, "deploy", commands.length > 0 ? "hooks" : ""];
  let switched: { code: number; out: string; err: string } | undefined;
  // Paths that share the environment share its repair: the copy is taken away only once.
  const repaired = repairs.get(store) ?? new Set<string>();
  repairs.set(store, repaired);
  if (p.drifted && !repaired.has(p.tree.key)) {
    repaired.add(p.tree.key);
    const d = await step(store, sh.DISCARD, [p.tree.key]);
    if (d.code !== 0) return fail(`removing the changed copy in the store: ${lastLine(d.err)}`);
  }
  try {
    // Without bytecode to compile first, the switch runs in the session that sends the tree.
    const after =
      !resumed && !sel.env.compile ? { script: sh.SWITCH_BODY, args: switchArgs } : undefined;
    const shipped = await store.ensureTree(p.tree, sources, {
      // Hosts lacking the same files get the same bytes, made once.
      share: true,
      onBytes,
      ...(p.shipping && !p.drifted ? { known: p.shipping } : {}),
      ...(after ? { after } : {}),
    });
    if (shipped.after) {
      const r = shipped.after;
      switched = { code: r.code, out: r.stdout.toString("utf8"), err: r.stderr.trim() };
    }
  } catch (err) {
    return fail(`sending the environment: ${(err as Error).message.replace(/\.$/, "")}`);
  }
  if (sel.env.compile) {
    const c = await step(store, sh.COMPILE, [p.tree.key]);
    if (c.code !== 0) return fail(`compiling bytecode: ${lastLine(c.err)}`);
  }
  let prev: string | undefined;
  if (resumed) {
    // Switched by a deploy that was stopped before its hooks: only they are left to do.
    prev = /^prev (.*)$/m.exec((await step(store, sh.PREVIOUS, [sel.env.path])).out)?.[1];
  } else {
    const sw = switched ?? (await step(store, sh.SWITCH, switchArgs));
    // Not switched: a hook of an earlier deploy still runs in the environment there.
    if (sw.code === sh.FLEET_EXIT.hookRunning) return fail(hookStillRuns(sw.err));
    if (sw.code !== 0) return fail(`switching ${sel.env.path}: ${lastLine(sw.err)}`);
    prev = /^prev (.*)$/m.exec(sw.out)?.[1];
    if (commands.length === 0) return { ...base, outcome: "changed" };
  }
  for (const c of commands) {
    const r = await runHook(store, sel.env, c.cmd);
    if (r.code === 0) continue;
    // Not a failure of this deploy's hooks: they did not start, and stay owed. Switching back
    // (or removing the environment) would pull it from under the hook still running in it.
    if (r.code === sh.FLEET_EXIT.hookRunning) return fail(hookStillRuns(r.err), true);
    const why = `${c.what} failed with exit status ${r.code} (${lastLine(r.err || r.out)})`;
    if (p.drifted) return fail(`${why}; the repaired environment stays in place`, true);
    const back = await step(store, sh.SWITCH, [sel.env.path, prev ?? "none", "back"]);
    if (back.code !== 0)
      return fail(`${why}, and switching back failed too (${lastLine(back.err)})`, true);
    if (!prev)
      return fail(`${why}; ${sel.env.path} was removed again, as it had no environment before`);
    if (sel.env.reload) await runHook(store, sel.env, sel.env.reload);
    return fail(`${why}; switched back to the previous environment`);
  }
  await step(store, sh.HOOKS_DONE, [sel.env.path]);
  return { ...base, outcome: "changed" };
}

function failedAll(group: Selected[], err: unknown): EnvResult[] {
  const message = err instanceof Error ? err.message.replace(/\.$/, "") : String(err);
  return group.map((s) => ({
    host: s.host.name,
    path: s.env.path,
    outcome: "failed" as const,
    changes: [],
    error: message,
    ...(envUser(s.host, s.env) ? { user: envUser(s.host, s.env) as string } : {}),
  }));
}

/**
 * Deploy the selected environments. `connections` may come with handshakes already started
 * (Connections.connectAhead); they are closed at the end.
 */
export async function deploy(
  inv: Inventory,
  sels: Selected[],
  opts: DeployOptions,
  connections = new Connections(),
): Promise<EnvResult[]> {
  connections.connectAhead(sels, opts.forks);
  try {
    return await deployWith(connections, inv, sels, opts);
  } finally {
    await connections.close();
  }
}

async function deployWith(
  connections: Connections,
  inv: Inventory,
  sels: Selected[],
  opts: DeployOptions,
): Promise<EnvResult[]> {
  // Phase one, in parallel: read every environment and plan it.
  let read = 0;
  opts.status?.update("reading the environments", 0, sels.length);
  const plans: (Planned | EnvResult)[] = await connections.each<Planned | EnvResult>(
    sels,
    opts.forks,
    async (store, group) => {
      const planned = await planConnection(store, group, inv);
      read += group.length;
      opts.status?.update("reading the environments", read, sels.length);
      return planned;
    },
    failedAll,
  );
  opts.status?.done();
  // Phase two, in order: show the plans and ask.
  const approved: Planned[] = [];
  const results: EnvResult[] = [];
  const settled = (r: EnvResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  let all = opts.yes;
  let quit = false;
  for (const p of plans) {
    if (!("sel" in p)) {
      settled(p);
      continue;
    }
    const user = envUser(p.sel.host, p.sel.env);
    const head = {
      host: p.sel.host.name,
      path: p.sel.env.path,
      changes: p.changes,
      ...(user ? { user } : {}),
    };
    if (inSync(p)) {
      settled({ ...head, outcome: "ok" });
      continue;
    }
    const refused = notReplaced(p);
    if (refused) {
      settled({ ...head, changes: [], planned: p.changes, outcome: "failed", error: refused });
      continue;
    }
    const reason = planReason(p);
    const what = [describeChanges(p.changes), reason].filter(Boolean).join(": ");
    const aside =
      p.currentKind === "venv"
        ? `; the virtualenv there is moved aside to ${p.sel.env.path}.pyferry-orig and kept for rollback`
        : "";
    opts.say(`${label(p.sel)}: ${what}${aside}`);
    if (opts.check || quit) {
      settled({
        ...head,
        ...(reason ? { reason } : {}),
        outcome: opts.check ? "pending" : "skipped",
      });
      continue;
    }
    if (!all) {
      if (!opts.confirm) {
        throw new UserError(
          "Changes need confirmation and nobody can answer here; pass --yes (or --check to only look).",
          2,
        );
      }
      const a = await opts.confirm(`Apply to ${label(p.sel)}?`);
      if (a === "quit") quit = true;
      if (a === "all") all = true;
      if (a === "no" || a === "quit") {
        settled({ ...head, ...(reason ? { reason } : {}), outcome: "skipped" });
        continue;
      }
    }
    approved.push(p);
  }
  // Phase three, in parallel across hosts: apply.
  const bySel = new Map(approved.map((p) => [p.sel, p]));
  let done = 0;
  let sent = 0;
  const applying = () => opts.status?.update(`applying (${mib(sent)} sent)`, done, approved.length);
  const counted = (n: number) => {
    sent += n;
    applying();
  };
  const applied = await connections.each<EnvResult>(
    approved.map((p) => p.sel),
    opts.forks,
    async (store, group) => {
      const out: EnvResult[] = [];
      for (const s of group) {
        const r = await apply(store, bySel.get(s) as Planned, counted);
        opts.onResult?.(r);
        out.push(r);
        done++;
        applying();
      }
      return out;
    },
    failedAll,
  );
  opts.status?.done();
  return order(sels, [...results, ...applied]);
}

/** Results in the inventory's order. */
export function order(sels: Selected[], results: EnvResult[]): EnvResult[] {
  const index = new Map(sels.map((s, i) => [`${s.host.name}\0${s.env.path}`, i]));
  return results.sort(
    (a, b) => (index.get(`${a.host}\0${a.path}`) ?? 0) - (index.get(`${b.host}\0${b.path}`) ?? 0),
  );
}

/** Switch each environment back to the one before its last deployment. */
export async function rollback(sels: Selected[], forks: number): Promise<EnvResult[]> {
  const connections = new Connections();
  const results = await connections
    .each<EnvResult>(
      sels,
      forks,
      async (store, group) => {
        const out: EnvResult[] = [];
        for (const s of group) {
          const user = envUser(s.host, s.env);
          const head = {
            host: s.host.name,
            path: s.env.path,
            changes: [],
            ...(user ? { user } : {}),
          };
          const prev = await step(store, sh.PREVIOUS, [s.env.path]);
          const reload = s.env.reload;
          // The last rollback switched, and its reload failed: this one only runs the reload.
          if (reload && /^reload-owed$/m.test(prev.out)) {
            const r = await runHook(store, s.env, reload);
            if (r.code !== 0) {
              out.push({
                ...head,
                outcome: "failed",
                error: `reload "${reload}" failed again with exit status ${r.code} (${lastLine(r.err || r.out)}); pyferry rollback runs it again, and goes back further only once it has worked`,
              });
              continue;
            }
            await step(store, sh.RELOAD_DONE, [s.env.path]);
            out.push({
              ...head,
              outcome: "changed",
              reason: "its reload, which failed after the last rollback switched to it",
            });
            continue;
          }
          const key = /^prev (.*)$/m.exec(prev.out)?.[1];
          const held = (tag: string) =>
            new Map(
              [...prev.out.matchAll(new RegExp(`^${tag} (.+)$`, "gm"))].flatMap((m) => {
                const nv = distInfoName(m[1] as string);
                return nv ? [nv] : [];
              }),
            );
          if (prev.code !== 0 || !key) {
            out.push({
              ...head,
              outcome: "failed",
              error: "there is no earlier environment to return to",
            });
            continue;
          }
          const sw = await step(store, sh.SWITCH, [
            s.env.path,
            key,
            "back",
            reload ? "reload" : "",
          ]);
          if (sw.code !== 0) {
            out.push({
              ...head,
              outcome: "failed",
              error: `switching back failed (${lastLine(sw.err)})`,
            });
            continue;
          }
          const changes = diff(held("now"), held("then"));
          if (reload) {
            const r = await runHook(store, s.env, reload);
            if (r.code !== 0) {
              // Switched all the same: the changes took effect, and the reload is owed.
              out.push({
                ...head,
                outcome: "failed",
                changes,
                error: `switched back, but reload "${reload}" failed with exit status ${r.code} (${lastLine(r.err || r.out)}); pyferry rollback runs it again`,
              });
              continue;
            }
            await step(store, sh.RELOAD_DONE, [s.env.path]);
          }
          out.push({ ...head, outcome: "changed", changes });
        }
        return out;
      },
      failedAll,
    )
    .finally(() => connections.close());
  return order(sels, results);
}
