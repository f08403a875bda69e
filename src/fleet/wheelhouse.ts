/**
 * A wheelhouse: a folder holding `wheels/` (the wheel files, flat, so that pip can use it with
 * --find-links) and `release.log` (wheelhouse-log.ts). Wheels come in checked whole, are copied
 * into `.tmp/` beside `wheels/` and published by rename, so that `wheels/` never holds half a
 * file; every change runs under the folder's `.lock` and is recorded in the log.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, open, readdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, join, resolve } from "node:path";
import { acquireLock } from "../bundle/lock.js";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename } from "../python/tags.js";
import { compareVersions, isValidVersion, normalizeVersion } from "../python/version.js";
import { UserError } from "../util/errors.js";
import { memoSha256 } from "../util/hash-memo.js";
import { makeDirs } from "../util/make-dirs.js";
import { pidAlive } from "../util/pid.js";
import { sha256File } from "../util/sha256-file.js";
import { checkWheel } from "./wheelhouse-check.js";
import {
  appendLog,
  type LogRecord,
  makeRecord,
  readLog,
  recordKey,
  type WheelFacts,
} from "./wheelhouse-log.js";

export const WHEELS_DIR = "wheels";
export const LOG_FILE = "release.log";

export interface Wheelhouse {
  root: string;
  /** `root/wheels`: the wheel files and nothing else. */
  wheels: string;
  /** `root/release.log`. */
  log: string;
  /** `root/.tmp`: copies being checked, on the same file system as `wheels` for the rename. */
  scratch: string;
  lockFile: string;
}

/** The folder `--wheelhouse` names, else $PYFERRY_WHEELHOUSE, else ./wheelhouse. */
export function wheelhouseRoot(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? (env.PYFERRY_WHEELHOUSE || "wheelhouse"));
}

export function wheelhouseAt(root: string): Wheelhouse {
  const r = resolve(root);
  return {
    root: r,
    wheels: join(r, WHEELS_DIR),
    log: join(r, LOG_FILE),
    scratch: join(r, ".tmp"),
    lockFile: join(r, ".lock"),
  };
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Scratch names start with `<pid>@<host>@`, so that leftovers can be told from work. */
const scratchPrefix = (): string => `${process.pid}@${hostname()}@`;

/** Remove scratch entries of processes on this host that died (others' are left alone). */
async function clearScratch(wh: Wheelhouse): Promise<void> {
  for (const name of await readdir(wh.scratch).catch(() => [])) {
    const m = /^(\d+)@([^@]*)@/.exec(name);
    const pid = Number(m?.[1]);
    if (m?.[2] === hostname() && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
      await rm(join(wh.scratch, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** The wheelhouse at `root`; made when `create` is set, else it must exist. */
export async function openWheelhouse(
  root: string,
  opts: { create?: boolean } = {},
): Promise<Wheelhouse> {
  const wh = wheelhouseAt(root);
  if (opts.create) {
    await makeDirs(wh.wheels);
    await makeDirs(wh.scratch);
    await clearScratch(wh);
    return wh;
  }
  const st = await stat(wh.wheels).catch((err: unknown) => {
    if (errCode(err) === "ENOENT" || errCode(err) === "ENOTDIR") return undefined;
    throw err;
  });
  if (!st?.isDirectory()) {
    throw new UserError(
      `There is no wheelhouse at ${wh.root} (no ${WHEELS_DIR} folder); pyferry wheelhouse add makes one.`,
    );
  }
  return wh;
}

/**
 * Run `fn` on the wheelhouse at `root`, made if missing. When `fn` fails, the folders this call
 * made are removed again (only while empty), so that a refused first add leaves nothing behind.
 */
export async function withWheelhouse<T>(
  root: string,
  fn: (wh: Wheelhouse) => Promise<T>,
): Promise<T> {
  const made = wheelhouseAt(root);
  const hadRoot = existsSync(made.root);
  const hadWheels = existsSync(made.wheels);
  const wh = await openWheelhouse(root, { create: true });
  try {
    return await fn(wh);
  } catch (err) {
    if (!hadWheels) {
      for (const dir of [wh.scratch, wh.wheels, ...(hadRoot ? [] : [wh.root])]) {
        await rmdir(dir).catch(() => undefined);
      }
    }
    throw err;
  }
}

/** Run `fn` holding the wheelhouse's lock, so that concurrent changes do not interleave. */
export async function withLock<T>(wh: Wheelhouse, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(wh.lockFile);
  try {
    return await fn();
  } finally {
    await lock?.release();
  }
}

/** sha256 of a file, remembered across runs by its inode, size and times. */
function sha256Of(path: string): Promise<string> {
  return memoSha256(path, () => sha256File(path));
}

/** A wheel in the wheelhouse. */
export interface WheelEntry extends WheelFacts {
  path: string;
  size: number;
  /** Time of the log's last add of this very file, if the log has one. */
  added?: string;
}

/** What the log knows of `file` with content `sha256`: its last add record. */
function lastAdd(
  records: readonly LogRecord[],
  file: string,
  sha256: string,
): LogRecord | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i] as LogRecord;
    if (r.action === "add" && r.file === file && r.sha256 === sha256) return r;
  }
  return undefined;
}

/** Name and version from the log, else (a wheel put there by hand) from the file name. */
function factsOf(records: readonly LogRecord[], file: string, sha256: string): WheelFacts {
  const r = lastAdd(records, file, sha256);
  if (r) return { file, name: r.name, version: r.version, sha256 };
  const parsed = parseWheelFilename(file);
  return { file, name: parsed.name, version: parsed.version, sha256 };
}

function byNameAndVersion(a: WheelEntry, b: WheelEntry): number {
  const na = normalizeName(a.name);
  const nb = normalizeName(b.name);
  if (na !== nb) return na < nb ? -1 : 1;
  const v =
    isValidVersion(a.version) && isValidVersion(b.version)
      ? compareVersions(a.version, b.version)
      : 0;
  return v !== 0 ? v : a.file < b.file ? -1 : a.file > b.file ? 1 : 0;
}

/** Whether `name` is a wheel file name; files that are not are not the wheelhouse's. */
export function isWheelName(name: string): boolean {
  try {
    parseWheelFilename(name);
    return !name.startsWith(".");
  } catch {
    return false;
  }
}

/** The wheel files in `wheels/` now (regular files with valid wheel names). */
export async function wheelFiles(wh: Wheelhouse): Promise<{ file: string; size: number }[]> {
  const out: { file: string; size: number }[] = [];
  for (const e of await readdir(wh.wheels, { withFileTypes: true })) {
    if (!e.isFile() || !isWheelName(e.name)) continue;
    const st = await stat(join(wh.wheels, e.name)).catch(() => undefined);
    if (st?.isFile()) out.push({ file: e.name, size: st.size });
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Every wheel, by project and PEP 440 version, with what the log says about it. */
export async function listWheels(wh: Wheelhouse): Promise<WheelEntry[]> {
  const { records } = await readLog(wh.log);
  const entries: WheelEntry[] = [];
  for (const { file, size } of await wheelFiles(wh)) {
    const path = join(wh.wheels, file);
    const sha256 = await sha256Of(path);
    const added = lastAdd(records, file, sha256)?.time;
    entries.push({ ...factsOf(records, file, sha256), path, size, ...(added ? { added } : {}) });
  }
  return entries.sort(byNameAndVersion);
}

/** A wheel checked and copied into the scratch folder, ready to be published. */
export interface StagedWheel extends WheelFacts {
  tmp: string;
  /** Recorded in its add record, over the commit's own `via`. */
  via?: string;
}

/** A new scratch path for a copy of `filename`. */
export function scratchPath(wh: Wheelhouse, filename: string): string {
  return join(wh.scratch, `${scratchPrefix()}${randomBytes(6).toString("hex")}-${filename}.part`);
}

/** A new scratch folder, for work that needs more than one file. */
export function scratchDir(wh: Wheelhouse, what: string): Promise<string> {
  return mkdtemp(join(wh.scratch, `${scratchPrefix()}${what}-`));
}

/** Hash and check a wheel already copied to `tmp` in the scratch folder. */
export async function stageInPlace(
  wh: Wheelhouse,
  tmp: string,
  filename: string,
): Promise<StagedWheel> {
  const sha256 = await sha256File(tmp);
  const dir = await scratchDir(wh, "check");
  try {
    const { name, version } = await checkWheel(tmp, filename, join(dir, "tree"));
    return { tmp, file: filename, name, version, sha256 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Copy the wheel at `source` into the scratch folder and check the copy (what gets added). */
export async function stageWheel(wh: Wheelhouse, source: string): Promise<StagedWheel> {
  const filename = basename(source);
  parseWheelFilename(filename);
  const st = await stat(source).catch(() => {
    throw new UserError(`${source} does not exist.`);
  });
  if (!st.isFile()) throw new UserError(`${source} is not a file.`);
  const tmp = scratchPath(wh, filename);
  try {
    await copyFile(source, tmp);
    return await stageInPlace(wh, tmp, filename);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export type AddStatus = "added" | "unchanged" | "replaced";

export interface AddOutcome extends WheelFacts {
  status: AddStatus;
}

/** What a wheel file's name means: project and version normalized, build tag, tags. */
export function wheelIdentity(file: string): string {
  try {
    const w = parseWheelFilename(file);
    return [w.normalized, normalizeVersion(w.version), w.build ?? "", ...w.tags].join(" ");
  } catch {
    return file;
  }
}

/** A wheel's name is taken by a file with other content. */
export class NameTaken extends UserError {
  constructor(
    readonly file: string,
    readonly sha256: string,
  ) {
    super(
      `The wheelhouse already holds a different ${file} (sha256 ${sha256.slice(0, 12)}...); pass --replace to replace it.`,
    );
    this.name = "NameTaken";
  }
}

export interface CommitOptions {
  /** Replace a wheel of the same name with different content (else that is refused). */
  replace?: boolean;
  /** Recorded in the log's add records. */
  via?: string;
  /**
   * Records of another wheelhouse's log, appended first unless the log has them already (or
   * they remove a wheel still held here: those are returned as `skipped`).
   */
  history?: readonly LogRecord[];
}

/** Flush a file's data, so that a crash after the rename cannot leave an empty wheel. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * Publish staged wheels: all or none are refused (a name taken by different content, unless
 * `replace`), then each is renamed into `wheels/` and the log gets their records in one write.
 * Staged files not published stay where they are; the caller removes them.
 */
export async function commitWheels(
  wh: Wheelhouse,
  staged: readonly StagedWheel[],
  opts: CommitOptions = {},
): Promise<{ outcomes: AddOutcome[]; merged: number; skipped: LogRecord[] }> {
  const byFile = new Map<string, StagedWheel>();
  for (const s of staged) {
    const other = byFile.get(s.file);
    if (other && other.sha256 !== s.sha256) {
      throw new UserError(`Two different files named ${s.file} were given; add only one of them.`);
    }
    byFile.set(s.file, s);
  }
  const byWheel = new Map<string, StagedWheel>();
  for (const s of byFile.values()) {
    const other = byWheel.get(wheelIdentity(s.file));
    if (other) {
      throw new UserError(
        `${other.file} and ${s.file} are the same wheel (project, version and tags) spelt two ways; add only one of them.`,
      );
    }
    byWheel.set(wheelIdentity(s.file), s);
  }
  return withLock(wh, async () => {
    const { records: local } = await readLog(wh.log);
    // A wheel is known by what its name means, not how it is spelt: Foo.Bar-1.0 is foo_bar-1.0.
    const held = new Map<string, string>();
    for (const f of await readdir(wh.wheels).catch(() => [] as string[])) {
      if (f.endsWith(".whl")) held.set(wheelIdentity(f), f);
    }
    const plan: { s: StagedWheel; status: AddStatus; old?: string; oldFile?: string }[] = [];
    for (const s of byFile.values()) {
      const oldFile = held.get(wheelIdentity(s.file));
      const old = oldFile !== undefined ? await sha256Of(join(wh.wheels, oldFile)) : undefined;
      if (old === s.sha256) plan.push({ s, status: "unchanged" });
      else if (old === undefined || oldFile === undefined) plan.push({ s, status: "added" });
      else if (opts.replace) plan.push({ s, status: "replaced", old, oldFile });
      else throw new NameTaken(oldFile, old);
    }
    const seen = new Set(local.map(recordKey));
    const fresh: LogRecord[] = [];
    for (const h of opts.history ?? []) {
      if (seen.has(recordKey(h))) continue;
      seen.add(recordKey(h));
      fresh.push(h);
    }
    /** Whether this wheelhouse holds `file` with content `sha256` once the commit is done. */
    const holdsAfter = async (file: string, sha256: string): Promise<boolean> => {
      const id = wheelIdentity(file);
      const coming = byWheel.get(id);
      if (coming) return coming.sha256 === sha256;
      const f = held.get(id);
      return f !== undefined && (await sha256Of(join(wh.wheels, f))) === sha256;
    };
    // The log must stay true of what is here, and merging never removes a wheel: another
    // wheelhouse's remove of one still held here (and not added back later in that history)
    // is left out, for the caller to name.
    const records: LogRecord[] = [];
    const skipped: LogRecord[] = [];
    for (const [i, h] of fresh.entries()) {
      const readded = (l: LogRecord) =>
        l.action === "add" &&
        l.sha256 === h.sha256 &&
        wheelIdentity(l.file) === wheelIdentity(h.file);
      if (
        h.action === "remove" &&
        !fresh.slice(i + 1).some(readded) &&
        (await holdsAfter(h.file, h.sha256))
      )
        skipped.push(h);
      else records.push(h);
    }
    const merged = records.length;
    const now = new Date();
    for (const p of plan) {
      if (p.status === "unchanged") continue;
      if (p.old !== undefined && p.oldFile !== undefined) {
        records.push(makeRecord("remove", factsOf(local, p.oldFile, p.old), "replace", now));
      }
      await syncFile(p.s.tmp);
      await rename(p.s.tmp, join(wh.wheels, p.s.file));
      if (p.oldFile !== undefined && p.oldFile !== p.s.file) await rm(join(wh.wheels, p.oldFile));
      const { file, name, version, sha256 } = p.s;
      records.push(makeRecord("add", { file, name, version, sha256 }, p.s.via ?? opts.via, now));
    }
    await syncFile(wh.wheels).catch(() => undefined);
    await appendLog(wh.log, records);
    const outcomes = plan.map(({ s, status }) => ({
      file: s.file,
      name: s.name,
      version: s.version,
      sha256: s.sha256,
      status,
    }));
    return { outcomes, merged, skipped };
  });
}

/** Stage every path, then commit them together: one bad wheel and nothing is added. */
export async function addWheels(
  wh: Wheelhouse,
  paths: readonly string[],
  opts: CommitOptions = {},
): Promise<AddOutcome[]> {
  const staged: StagedWheel[] = [];
  try {
    for (const p of paths) staged.push(await stageWheel(wh, p));
    return (await commitWheels(wh, staged, opts)).outcomes;
  } finally {
    for (const s of staged) await rm(s.tmp, { force: true });
  }
}

const PINNED = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*(\S+)\s*$/;

/** The entries `target` names: a wheel file (or a path to one), or NAME==VERSION. */
export function matchWheels(entries: readonly WheelEntry[], target: string): WheelEntry[] {
  const pinned = PINNED.exec(target);
  if (pinned) {
    const name = normalizeName(pinned[1] as string);
    const wanted = pinned[2] as string;
    if (!isValidVersion(wanted)) {
      throw new UserError(`"${wanted}" in ${target} is not a valid PEP 440 version.`, 2);
    }
    // PEP 440 equality: 1.17 names 1.17.0 too.
    return entries.filter(
      (e) =>
        normalizeName(e.name) === name &&
        isValidVersion(e.version) &&
        compareVersions(e.version, wanted) === 0,
    );
  }
  // As add does: Six-1.17.0-... names the wheel six-1.17.0-... is.
  const wheel = wheelIdentity(basename(target));
  return entries.filter((e) => wheelIdentity(e.file) === wheel);
}

/** Remove the wheels in `entries` (which the caller holds the lock for) and log it. */
async function removeEntries(
  wh: Wheelhouse,
  entries: readonly WheelEntry[],
  via?: string,
): Promise<void> {
  const now = new Date();
  const records: LogRecord[] = [];
  for (const e of entries) {
    await rm(e.path, { force: true });
    records.push(
      makeRecord(
        "remove",
        { file: e.file, name: e.name, version: e.version, sha256: e.sha256 },
        via,
        now,
      ),
    );
  }
  await appendLog(wh.log, records);
}

/** Remove what `targets` name (each must name something); nothing is removed if one does not. */
export async function removeWheels(
  wh: Wheelhouse,
  targets: readonly string[],
): Promise<WheelEntry[]> {
  return withLock(wh, async () => {
    const entries = await listWheels(wh);
    const chosen = new Map<string, WheelEntry>();
    for (const t of targets) {
      const matched = matchWheels(entries, t);
      if (matched.length === 0) {
        throw new UserError(`The wheelhouse at ${wh.root} has no wheel ${t}.`);
      }
      for (const e of matched) chosen.set(e.file, e);
    }
    const removed = [...chosen.values()];
    await removeEntries(wh, removed);
    return removed;
  });
}

/** Which wheels keeping the `keep` newest versions of each project leaves, and which go. */
export function pruneSelection(
  entries: readonly WheelEntry[],
  keep: number,
): { kept: WheelEntry[]; removed: WheelEntry[] } {
  const versions = new Map<string, string[]>();
  const key = (e: WheelEntry) => parseWheelFilename(e.file).normalized;
  const version = (e: WheelEntry) => normalizeVersion(parseWheelFilename(e.file).version);
  for (const e of entries) {
    const list = versions.get(key(e)) ?? [];
    if (!list.includes(version(e))) list.push(version(e));
    versions.set(key(e), list);
  }
  const newest = new Map<string, Set<string>>();
  for (const [name, list] of versions) {
    newest.set(name, new Set(list.sort((a, b) => compareVersions(b, a)).slice(0, keep)));
  }
  const kept: WheelEntry[] = [];
  const removed: WheelEntry[] = [];
  for (const e of entries) {
    (newest.get(key(e))?.has(version(e)) ? kept : removed).push(e);
  }
  return { kept, removed };
}

/** Keep the `keep` newest versions (PEP 440 order) of each project; the rest is removed. */
export async function pruneWheels(
  wh: Wheelhouse,
  keep: number,
  opts: { dryRun?: boolean } = {},
): Promise<{ kept: WheelEntry[]; removed: WheelEntry[] }> {
  if (!Number.isInteger(keep) || keep < 1) {
    throw new UserError("--keep takes a whole number of versions, at least 1.", 2);
  }
  return withLock(wh, async () => {
    const selection = pruneSelection(await listWheels(wh), keep);
    if (!opts.dryRun) await removeEntries(wh, selection.removed, "prune");
    return selection;
  });
}
