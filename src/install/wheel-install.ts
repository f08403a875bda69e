/**
 * Installing unpacked wheels into an environment, as the wheel spec describes: the root to
 * purelib or platlib, `.data/<key>/` to the scheme's places, `#!python` scripts rewritten,
 * launchers for entry points, INSTALLER/REQUESTED/RECORD written. Files are cloned, hardlinked
 * or copied from the cache; files the install writes itself are always new files.
 */
import {
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  linkSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { chmod, copyFile, readdir, readFile, rm, rmdir, unlink } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { normalizeName } from "../python/names.js";
import { writeFileAtomic } from "../util/atomic.js";
import { UserError } from "../util/errors.js";
import { isUnder } from "../util/inside.js";
import { makeDirsSync } from "../util/make-dirs.js";
import type { UnpackedWheel } from "./cache.js";
import { copyFiles } from "./copy-pool.js";
import type { EnvLayout } from "./env.js";
import type { LinkMode } from "./link-mode.js";
import { createLimiter, mapLimit, settleAll } from "./pool.js";
import { formatRecord, parseRecord, type RecordRow, sha256Record } from "./record.js";
import { INTERPRETER_NAME, launcherScript, parseEntryPoints, rewriteScript } from "./scripts.js";
import { CachedTreeChanged, cachedFileChange } from "./tree-check.js";
import type { UnpackedFile } from "./wheel-archive.js";

export type { LinkMode } from "./link-mode.js";

export interface InstallOptions {
  /** Write REQUESTED: the user asked for this distribution, it is not only a dependency. */
  requested?: boolean;
  /** How files come from the cache; default "auto": clone, else hardlink, else copy. */
  linkMode?: LinkMode;
  /** Written to INSTALLER; default "pyferry". */
  installer?: string;
  /** Told when an install replaces files it does not own; pip replaces them silently. */
  warn?: (message: string) => void;
  /** Told when a wheel of a batch is in place (for a count on a status line). */
  installed?: () => void;
}

export interface InstallResult {
  /** Absolute paths of the files written, RECORD included. */
  files: string[];
  /** Those that replaced a file already there. */
  overwritten: string[];
}

/** The umask, read once: copies get the mode a newly created file would have. */
const UMASK = process.umask();

function fileMode(executable: boolean): number {
  return (executable ? 0o777 : 0o666) & ~UMASK;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A wheel copying at least this many files copies them on threads of its own (copy-pool.ts). */
const THREADED_COPIES = 64;

/** Errors saying a way of placing files does not work here; the next way is tried. */
const UNSUPPORTED = new Set(["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EPERM", "EINVAL", "ENOSYS"]);

/**
 * Places cache files into environments, falling back clone -> hardlink -> copy. A way that
 * failed for a reason of the file system is not tried again by the same Linker. Clones and
 * links are synchronous calls: they take microseconds, and sending each one through libuv's
 * thread pool cost more in hand-offs than the calls themselves. Copies write the data again,
 * which is kernel time worth spreading over the pool's threads, several at once.
 */
class Linker {
  private clone: boolean;
  private hardlink: boolean;
  private warned = false;
  private readonly copying = createLimiter(ioLimit());

  constructor(
    private readonly mode: LinkMode = "auto",
    private readonly warn?: (message: string) => void,
  ) {
    this.clone = mode === "auto" || mode === "clone";
    // The cache's files are read-only, so an edit through a hardlink fails, except for root;
    // a tree written to that way is found by tree-check.ts and never used again.
    this.hardlink = mode === "auto" || mode === "hardlink";
  }

  private fellBack(way: "clone" | "hardlink", err: unknown): void {
    const code = errCode(err) as string;
    // EMLINK (too many links to one inode) and EPERM on link (a protected file) are per file.
    const perFile = code === "EMLINK" || (way === "hardlink" && code === "EPERM");
    if (!perFile) this[way] = false;
    if (this.mode === way && !this.warned) {
      this.warned = true;
      const done = way === "clone" ? "cloned" : "hardlinked";
      this.warn?.(`Files could not be ${done} here (${code}); they are copied instead.`);
    }
  }

  /** Clone or hardlink `src` to `dest`; false when neither works here and a copy is due. */
  link(src: string, dest: string, executable: boolean): boolean {
    if (this.clone) {
      try {
        copyFileSync(src, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
        chmodSync(dest, fileMode(executable));
        return true;
      } catch (err) {
        if (!UNSUPPORTED.has(errCode(err) ?? "")) throw err;
        this.fellBack("clone", err);
      }
    }
    if (this.hardlink) {
      try {
        linkSync(src, dest);
        return true;
      } catch (err) {
        if (!UNSUPPORTED.has(errCode(err) ?? "") && errCode(err) !== "EMLINK") throw err;
        this.fellBack("hardlink", err);
      }
    }
    return false;
  }

  /**
   * Copy each file (a file already at its destination is unlinked first); whether each one
   * replaced a file. Many go to the copying threads, a few through libuv's pool, as a thread
   * takes longer to start than they take to copy.
   */
  copyAll(
    files: readonly { src: string; dest: string; executable: boolean }[],
  ): Promise<boolean[]> {
    if (files.length >= THREADED_COPIES) {
      return copyFiles(files.map((f) => [f.src, f.dest, fileMode(f.executable)]));
    }
    return settleAll(files.map((f) => this.copy(f.src, f.dest, f.executable)));
  }

  /** Copy `src` to `dest`, a file already there unlinked first; true when one was. */
  private copy(src: string, dest: string, executable: boolean): Promise<boolean> {
    return this.copying(async () => {
      let replaced = false;
      try {
        await copyFile(src, dest, constants.COPYFILE_EXCL);
      } catch (err) {
        if (errCode(err) !== "EEXIST") throw err;
        await unlink(dest);
        replaced = true;
        await copyFile(src, dest, constants.COPYFILE_EXCL);
      }
      await chmod(dest, fileMode(executable));
      return replaced;
    });
  }
}

/** Run `write`, which must create `dest` exclusively; a file already there is unlinked first. */
function replacing(dest: string, write: () => void): boolean {
  try {
    write();
    return false;
  } catch (err) {
    if (errCode(err) !== "EEXIST") throw err;
  }
  // Never write into an existing file: it may be a hardlink into the cache.
  unlinkSync(dest);
  write();
  return true;
}

function writeNew(dest: string, data: string | Buffer, executable: boolean): boolean {
  return replacing(dest, () =>
    writeFileSync(dest, data, { flag: "wx", mode: executable ? 0o777 : 0o666 }),
  );
}

interface Placement {
  file: UnpackedFile;
  dest: string;
  /** From `.data/scripts`: made executable, `#!python` rewritten. */
  script: boolean;
  /** Inside the .dist-info directory: placed after everything else. */
  meta: boolean;
}

interface Plan {
  wheel: UnpackedWheel;
  /** purelib or platlib: where the .dist-info goes and RECORD paths start. */
  site: string;
  placements: Placement[];
  launchers: { dest: string; text: string }[];
}

/** Files of the wheel's own that the install writes anew. */
const REWRITTEN = new Set(["RECORD", "INSTALLER", "REQUESTED", "direct_url.json"]);

/** The name an entry-point wrapper made by setuptools would have for `file` (pip skips those). */
function wrapperName(file: string): string {
  const lower = file.toLowerCase();
  for (const suffix of [".exe", "-script.py", ".pya"]) {
    if (lower.endsWith(suffix)) return file.slice(0, -suffix.length);
  }
  return file;
}

async function planWheel(w: UnpackedWheel, layout: EnvLayout): Promise<Plan> {
  const site = w.rootIsPurelib ? layout.purelib : layout.platlib;
  const schemes: Record<string, string> = {
    purelib: layout.purelib,
    platlib: layout.platlib,
    scripts: layout.scripts,
    headers: join(layout.include, w.name),
    data: layout.data,
  };
  const entryPointsFile = `${w.distInfo}/entry_points.txt`;
  const eps = w.files.some((f) => f.path === entryPointsFile)
    ? parseEntryPoints(await readFile(join(w.dir, entryPointsFile), "utf8"), w.filename)
    : { console: [], gui: [] };
  // On POSIX a GUI script is launched like a console one.
  const entryPoints = [...eps.console, ...eps.gui];
  const epNames = new Set(entryPoints.map((ep) => ep.name));
  const placements: Placement[] = [];
  for (const file of w.files) {
    const parts = file.path.split("/");
    if (parts[0] === w.distInfo) {
      if (parts.length === 2 && REWRITTEN.has(parts[1] as string)) continue;
      placements.push({ file, dest: join(site, file.path), script: false, meta: true });
    } else if (parts[0] === w.dataDir) {
      const key = parts[1] as string;
      const rest = parts.slice(2).join("/");
      const script = key === "scripts";
      // The launcher made from the entry point replaces a wrapper the build tool wrote.
      if (script && epNames.has(wrapperName(rest))) continue;
      placements.push({ file, dest: join(schemes[key] as string, rest), script, meta: false });
    } else {
      placements.push({ file, dest: join(site, file.path), script: false, meta: false });
    }
  }
  const launchers = entryPoints.map((ep) => ({
    dest: join(layout.scripts, ep.name),
    text: launcherScript(ep),
  }));
  const own = ownFiles(layout);
  const clash = [...placements, ...launchers].find((p) => own(p.dest));
  if (clash) {
    throw new UserError(
      `${w.name} ${w.version} would replace the environment's own ${relative(layout.root, clash.dest)}, so pyferry does not install it.`,
    );
  }
  return { wheel: w, site, placements, launchers };
}

/**
 * Whether a path is a file that makes the environment one: its interpreter's names in the
 * scripts folder (python3.13t too), pyvenv.cfg where CPython looks for it (bin/ first, then the
 * root), and a bundled interpreter's standard library and libpython. pip lets a wheel's script
 * named "python" replace bin/python, which leaves an environment without an interpreter (and a
 * launcher that runs itself for ever); a pyvenv.cfg in bin/ would change the environment's home
 * or let the system's packages in. String tests, since every file of every wheel is asked
 * (planned paths are joined from the layout's own, with no ".." in them).
 */
function ownFiles(layout: EnvLayout): (dest: string) => boolean {
  const lib = join(layout.root, "lib");
  const stdlib = `${join(lib, `python${layout.pythonVersion.split(".").slice(0, 2).join(".")}`)}${sep}`;
  const sites = [layout.purelib, layout.platlib].map((site) => `${site}${sep}`);
  return (dest) => {
    // The bundled interpreter's files, when there: a venv has none of them, and a wheel may add
    // files beside site-packages there as pip lets it.
    if (dest.startsWith(stdlib)) return !sites.some((s) => dest.startsWith(s)) && existsSync(dest);
    const dir = dirname(dest);
    const name = basename(dest).toLowerCase();
    if (dir === layout.scripts) return name === "pyvenv.cfg" || INTERPRETER_NAME.test(name);
    if (dir === layout.root) return name === "pyvenv.cfg";
    return dir === lib && name.startsWith("libpython") && existsSync(dest);
  };
}

function recordPath(site: string, file: string): string {
  // Most files are under site-packages: a slice, not path.relative's two resolves per file.
  if (sep === "/" && file.startsWith(`${site}/`)) return file.slice(site.length + 1);
  return relative(site, file).split(sep).join("/");
}

interface Context {
  linker: Linker;
  requested: boolean;
  /** PEP 610's direct_url.json, for a distribution installed from a direct reference. */
  directUrl?: string;
  installer: string;
  /** Destinations another wheel of the same batch installs later: listed, not written. */
  skip: ReadonlySet<string>;
}

async function runPlan(plan: Plan, ctx: Context): Promise<InstallResult> {
  const { wheel, site } = plan;
  const written: string[] = [];
  const overwritten: string[] = [];
  const rows: RecordRow[] = [];
  const dirs = new Set<string>([join(site, wheel.distInfo)]);
  for (const p of plan.placements) dirs.add(dirname(p.dest));
  for (const l of plan.launchers) dirs.add(dirname(l.dest));
  for (const d of [...dirs].sort()) makeDirsSync(d);

  const done = (dest: string, replaced: boolean) => {
    written.push(dest);
    if (replaced) overwritten.push(dest);
  };
  let copies: { src: string; dest: string; executable: boolean; replaced: boolean }[] = [];
  /** Place `ps`, links and rewritten files at once, then the copies, all together. */
  const placeAll = async (ps: Placement[]) => {
    for (const p of ps) place(p);
    const batch = copies;
    copies = [];
    const replaced = await ctx.linker.copyAll(batch);
    batch.forEach((c, i) => {
      done(c.dest, c.replaced || (replaced[i] as boolean));
    });
  };
  const place = (p: Placement) => {
    const src = join(wheel.dir, p.file.path);
    let row: RecordRow = {
      path: recordPath(site, p.dest),
      hash: p.file.hash,
      size: `${p.file.size}`,
    };
    if (!ctx.skip.has(p.dest)) {
      const changed = wheel.fresh ? undefined : cachedFileChange(src, p.file.size, wheel.published);
      if (changed) {
        throw new CachedTreeChanged(
          wheel.dir,
          `${wheel.name} ${wheel.version}`,
          `${p.file.path} ${changed}`,
        );
      }
      const executable = p.script || (p.file.mode & 0o111) !== 0;
      const rewritten = p.script ? rewriteScript(readFileSync(src)) : undefined;
      if (rewritten) {
        done(p.dest, writeNew(p.dest, rewritten, true));
        row = { ...row, hash: sha256Record(rewritten), size: `${rewritten.length}` };
      } else if (executable && (p.file.mode & 0o111) === 0) {
        // A script the zip left without +x gets it on a copy of its own, never on the cache's.
        done(p.dest, writeNew(p.dest, readFileSync(src), true));
      } else {
        let linked = false;
        const replaced = replacing(p.dest, () => {
          linked = ctx.linker.link(src, p.dest, executable);
        });
        if (linked) done(p.dest, replaced);
        else copies.push({ src, dest: p.dest, executable, replaced });
      }
    }
    rows.push(row);
  };
  // Metadata last, so that an interrupted install is not taken for a complete one.
  await placeAll(plan.placements.filter((p) => !p.meta));
  for (const l of plan.launchers) {
    if (!ctx.skip.has(l.dest)) done(l.dest, writeNew(l.dest, l.text, true));
    const data = Buffer.from(l.text);
    rows.push({ path: recordPath(site, l.dest), hash: sha256Record(data), size: `${data.length}` });
  }
  await placeAll(plan.placements.filter((p) => p.meta));

  const distInfo = join(site, wheel.distInfo);
  const generated: [string, string][] = [["INSTALLER", `${ctx.installer}\n`]];
  if (ctx.requested) generated.push(["REQUESTED", ""]);
  if (ctx.directUrl) generated.push(["direct_url.json", ctx.directUrl]);
  for (const [name, text] of generated) {
    const dest = join(distInfo, name);
    done(dest, writeNew(dest, text, false));
    const data = Buffer.from(text);
    rows.push({ path: recordPath(site, dest), hash: sha256Record(data), size: `${data.length}` });
  }
  const record = join(distInfo, "RECORD");
  rows.push({ path: recordPath(site, record), hash: "", size: "" });
  rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // Written last and by rename: a RECORD present means the install completed.
  await writeFileAtomic(record, formatRecord(rows));
  written.push(record);
  return { files: written, overwritten };
}

/** Concurrent file operations: each mostly waits on the disk, so a few per core. */
function ioLimit(): number {
  return Math.max(4, availableParallelism() * 4);
}

function reportOverwrites(
  w: UnpackedWheel,
  result: InstallResult,
  layout: EnvLayout,
  opts: InstallOptions,
): void {
  const n = result.overwritten.length;
  if (n === 0 || !opts.warn) return;
  // Relative to the environment: it may be built in a scratch folder renamed into place later.
  const first = relative(layout.root, result.overwritten[0] as string);
  opts.warn(
    `Installing ${w.name} ${w.version} replaced ${n === 1 ? "a file" : `${n} files`} already ` +
      `in the environment (${n === 1 ? "" : "first: "}${first}).`,
  );
}

/** Install one unpacked wheel, first removing any installed version of the same project. */
export async function installWheel(
  w: UnpackedWheel,
  layout: EnvLayout,
  opts: InstallOptions = {},
): Promise<InstallResult> {
  await uninstall(w.name, layout);
  const plan = await planWheel(w, layout);
  const result = await runPlan(plan, {
    linker: new Linker(opts.linkMode, opts.warn),
    requested: opts.requested ?? false,
    installer: opts.installer ?? "pyferry",
    skip: new Set(),
  });
  reportOverwrites(w, result, layout, opts);
  return result;
}

/** Note `w` in `seen`, by project; a second wheel of one project is an error. */
function claimProject(seen: Map<string, UnpackedWheel>, w: UnpackedWheel): void {
  const key = normalizeName(w.name);
  const other = seen.get(key);
  if (other) throw new UserError(`Both ${other.filename} and ${w.filename} install ${w.name}.`);
  seen.set(key, w);
}

/**
 * Installs wheels into one environment as they arrive (each one as soon as it is unpacked),
 * several at once, where none of their projects is installed (a new environment, or after
 * `uninstall`: removing one while another is placed could delete a file that moved between
 * projects). When two wheels ship the same file, the one with the higher `order` wins,
 * whichever arrives first (as when pip installs them in that order), and `opts.warn` hears.
 */
export class BatchInstall {
  private readonly linker: Linker;
  private readonly names = new Map<string, UnpackedWheel>();
  /** Who places each destination, and when it is done placing it. */
  private readonly owners = new Map<
    string,
    { order: number; wheel: string; done: Promise<void> }
  >();
  private readonly running: Promise<void>[] = [];

  constructor(
    private readonly layout: EnvLayout,
    private readonly opts: InstallOptions = {},
  ) {
    this.linker = new Linker(opts.linkMode, opts.warn);
  }

  /**
   * Start installing `w`; a wheel of the same project already added is an error. `directUrl`:
   * the direct_url.json of a distribution installed from a direct reference.
   */
  add(
    w: UnpackedWheel,
    order: number,
    requested = this.opts.requested ?? false,
    directUrl?: string,
  ): void {
    claimProject(this.names, w);
    const running = this.install(w, order, requested, directUrl);
    // finish() reports the failure; until it is called (the other wheels may still be
    // unpacking) a rejection must not count as unhandled, which would end the process.
    running.catch(() => undefined);
    this.running.push(running);
  }

  /** Wait for every install added; the first failure is thrown once all have settled. */
  async finish(): Promise<void> {
    await settleAll(this.running);
  }

  private async install(
    w: UnpackedWheel,
    order: number,
    requested: boolean,
    directUrl: string | undefined,
  ): Promise<void> {
    const plan = await planWheel(w, this.layout);
    let finished = () => {};
    const done = new Promise<void>((resolve) => {
      finished = resolve;
    });
    // Claimed in one synchronous pass, so two wheels never wait for each other.
    const skip = new Set<string>();
    const batch = new Set<string>();
    const before = new Set<Promise<void>>();
    for (const { dest } of [...plan.placements, ...plan.launchers]) {
      const prev = this.owners.get(dest);
      if (prev) {
        const [loser, winner] =
          prev.order > order ? [w.filename, prev.wheel] : [prev.wheel, w.filename];
        this.opts.warn?.(
          `${loser} and ${winner} both install ${dest}; the copy from ${winner} is kept.`,
        );
        before.add(prev.done);
        if (prev.order > order) {
          skip.add(dest);
          continue;
        }
        batch.add(dest);
      }
      this.owners.set(dest, { order, wheel: w.filename, done });
    }
    try {
      // A file another wheel of the batch places too is written after that wheel's copy.
      await Promise.all(before);
      const result = await runPlan(plan, {
        linker: this.linker,
        requested,
        ...(directUrl ? { directUrl } : {}),
        installer: this.opts.installer ?? "pyferry",
        skip,
      });
      const overwritten = result.overwritten.filter((f) => !batch.has(f));
      reportOverwrites(w, { ...result, overwritten }, this.layout, this.opts);
      this.opts.installed?.();
    } finally {
      finished();
    }
  }
}

/**
 * Install several wheels at once, file operations bounded in number. Installed versions of
 * the same projects are removed first. When two wheels ship the same file, the one later in
 * the list wins (as when pip installs them in that order) and `opts.warn` hears of it.
 */
export async function installAll(
  wheels: readonly UnpackedWheel[],
  layout: EnvLayout,
  opts: InstallOptions = {},
): Promise<void> {
  const seen = new Map<string, UnpackedWheel>();
  for (const w of wheels) claimProject(seen, w);
  const batch = new BatchInstall(layout, opts);
  await mapLimit(wheels, ioLimit(), (w) => uninstall(w.name, layout));
  wheels.forEach((w, i) => {
    batch.add(w, i);
  });
  await batch.finish();
}

/** The .dist-info directories in the environment's site directories that belong to `name`. */
async function findDistInfos(name: string, layout: EnvLayout): Promise<string[]> {
  const wanted = normalizeName(name);
  const found: string[] = [];
  for (const site of new Set([layout.purelib, layout.platlib])) {
    let entries: string[];
    try {
      entries = await readdir(site);
    } catch (err) {
      if (errCode(err) === "ENOENT") continue;
      throw err;
    }
    for (const e of entries) {
      if (!e.endsWith(".dist-info")) continue;
      const project = e.slice(0, -".dist-info".length).split("-")[0] as string;
      if (normalizeName(project) === wanted) found.push(join(site, e));
    }
  }
  return found;
}

/**
 * Remove an installed distribution using its RECORD: its files, the bytecode of its .py
 * files, its .dist-info directory, and directories left empty. Paths outside the
 * environment are never touched. Without a RECORD only the .dist-info directory goes.
 */
export async function uninstall(
  distName: string,
  layout: EnvLayout,
): Promise<{ removed: string[] }> {
  const removed: string[] = [];
  const emptied = new Set<string>();
  for (const distInfo of await findDistInfos(distName, layout)) {
    const site = dirname(distInfo);
    let rows: RecordRow[] = [];
    try {
      rows = parseRecord(await readFile(join(distInfo, "RECORD"), "utf8"));
    } catch (err) {
      if (errCode(err) !== "ENOENT") throw err;
    }
    const pycacheListings = new Map<string, Promise<string[]>>();
    const listPycache = (dir: string) => {
      let listing = pycacheListings.get(dir);
      if (!listing) {
        listing = readdir(dir).catch(() => []);
        pycacheListings.set(dir, listing);
      }
      return listing;
    };
    await mapLimit(rows, ioLimit(), async (row) => {
      const path = resolve(site, row.path);
      if (!isUnder(layout.root, path) || isUnder(distInfo, path)) return;
      const targets = [path];
      if (path.endsWith(".py")) {
        const pycache = join(dirname(path), "__pycache__");
        const stem = `${basename(path, ".py")}.`;
        for (const name of await listPycache(pycache)) {
          if (name.startsWith(stem) && name.endsWith(".pyc")) targets.push(join(pycache, name));
        }
      }
      for (const target of targets) {
        try {
          await unlink(target);
          removed.push(target);
          emptied.add(dirname(target));
        } catch (err) {
          if (errCode(err) !== "ENOENT") throw err;
        }
      }
    });
    await rm(distInfo, { recursive: true, force: true });
    removed.push(distInfo);
  }
  // Directories that held only the removed files go too, but never the scheme's own.
  const keep = new Set([
    layout.root,
    layout.purelib,
    layout.platlib,
    layout.scripts,
    layout.include,
    layout.data,
    dirname(layout.purelib),
    dirname(dirname(layout.purelib)),
  ]);
  const byDepth = [...emptied].sort((a, b) => b.split(sep).length - a.split(sep).length);
  for (const start of byDepth) {
    for (let dir = start; isUnder(layout.root, dir) && !keep.has(dir); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
  }
  return { removed };
}
