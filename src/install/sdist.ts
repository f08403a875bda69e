/**
 * Building an sdist into a wheel through its PEP 517 backend, once per machine. The archive is
 * extracted with every member checked, the build requirements (PEP 518) go into an isolated
 * environment the caller makes with pyferry's own resolver and installer, and the backend's
 * hooks run in a child process of that environment's interpreter. Built wheels are kept in
 * `cacheDir()/built/<sdist sha256>/<wheel filename>`, several per sdist when their tags differ.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { basename, delimiter, dirname, join, posix } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { parse as parseToml, TomlError } from "smol-toml";
import yauzl from "yauzl";
import { BLOCK, decodeHeader, isZeroBlock, padding, parsePax } from "../bundle/tar.js";
import { distMetadata } from "../index/wheel-metadata.js";
import type { InterpreterInfo } from "../python/interpreter.js";
import { type CoreMetadata, parseCoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { parseRequirement, type Requirement } from "../python/requirement.js";
import { bestTagRank, parseSdistFilename, parseWheelFilename, tagRanks } from "../python/tags.js";
import { targetFromInterpreter, targetTagList } from "../python/target.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { isInside } from "../util/inside.js";
import { makeDirs } from "../util/make-dirs.js";
import { sha256File } from "../util/sha256-file.js";
import { inTempDir } from "../util/temp-dir.js";
import { touch } from "../util/touch.js";
import { removeTree } from "./cache.js";
import type { EnvLayout } from "./env.js";

export interface SdistFile {
  path: string;
  /** Lower-case hex; names the sdist's folder in the cache of built wheels. */
  sha256: string;
  filename: string;
}

export interface BuiltWheel {
  /** Path of the wheel in the cache of built wheels. */
  wheel: string;
  sha256: string;
}

/**
 * Makes `envDir` an isolated environment holding `requirements` (resolved and installed by the
 * caller) and returns its layout. Called again with the same folder when the backend asks for
 * more; every call is given the whole set, so that it can be resolved consistently.
 */
export type BuildDeps = (requirements: Requirement[], envDir: string) => Promise<EnvLayout>;

/** PEP 517's fallback for projects that do not name a backend. */
const LEGACY_BACKEND = "setuptools.build_meta:__legacy__";
const LEGACY_REQUIRES = ["setuptools>=40.8.0"];
/** No sdist comes near this unpacked; a bigger one is broken or hostile. */
const MAX_UNPACKED_BYTES = 1 << 30;
/** Backend output kept for an error message (its end is what explains a failure). */
const KEPT_OUTPUT_BYTES = 64 * 1024;
const TAIL_LINES = 20;

/**
 * The hook runner, run by the build environment's interpreter in the source tree. argv: hook,
 * backend, backend-path as JSON, result file, then the hook's arguments. The result goes to a
 * file, so that nothing the backend prints can be taken for it.
 */
const DRIVER = `
import importlib, json, os, sys

hook, backend, backend_path, result_file = sys.argv[1:5]
# PEP 517: the source tree is importable only through backend-path.
here = os.getcwd()
sys.path[:] = [p for p in sys.path if p not in ("", here)]
sys.path[:0] = [os.path.join(here, p) for p in json.loads(backend_path)]
module, _, attrs = backend.partition(":")
obj = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    obj = getattr(obj, attr)
fn = getattr(obj, hook, None)
result = {"missing": True} if fn is None else {"value": fn(*sys.argv[5:])}
with open(result_file, "w", encoding="utf-8") as f:
    json.dump(result, f)
`;

/** An archive member, its path checked and normalized ("/"-separated, no "." or ".."). */
interface Member {
  path: string;
  type: "file" | "dir" | "symlink" | "hardlink";
  executable: boolean;
  data: Buffer;
  /** Symlink text, or the archive path a hard link repeats. */
  linkname: string;
}

/** A reason the archive cannot be used; turned into one UserError naming it. */
class Refused extends Error {}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** An archive path made relative and plain; "" for the archive's own root ("./"). */
function memberPath(name: string): string {
  if (name.includes("\0")) throw new Refused(`a member name holds a NUL character`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) {
    throw new Refused(`it holds the absolute path "${name}"`);
  }
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Refused(`its member "${name}" points outside the archive`);
  return parts.join("/");
}

function cString(data: Buffer): string {
  const end = data.indexOf(0);
  return data.subarray(0, end === -1 ? data.length : end).toString("utf8");
}

/** Tar type flags of the members an sdist may hold; anything else is refused. */
const TAR_TYPES: Record<string, Member["type"]> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "5": "dir",
  "2": "symlink",
  "1": "hardlink",
};

/** The members of a .tar.gz sdist (ustar, pax and GNU long names), read into memory. */
async function tarMembers(path: string): Promise<Member[]> {
  let data: Buffer;
  try {
    data = await promisify(gunzip)(await readFile(path), { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (err) {
    if (errCode(err) === "ERR_BUFFER_TOO_LARGE") throw new Refused("it unpacks to over 1 GiB");
    throw new Refused(`it is not a readable gzip file (${(err as Error).message})`);
  }
  const members: Member[] = [];
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (let at = 0; at + BLOCK <= data.length; ) {
    const block = data.subarray(at, at + BLOCK);
    if (isZeroBlock(block)) break;
    const h = decodeHeader(block);
    if (typeof h === "string") throw new Refused(h);
    const body = data.subarray(at + BLOCK, at + BLOCK + h.size);
    if (body.length < h.size) throw new Refused("it is truncated");
    at += BLOCK + h.size + padding(h.size);
    if (h.typeflag === "x") {
      const parsed = parsePax(body);
      if (typeof parsed === "string") throw new Refused(parsed);
      pax = parsed;
      continue;
    }
    if (h.typeflag === "L" || h.typeflag === "K") {
      if (h.typeflag === "L") longName = cString(body);
      else longLink = cString(body);
      continue;
    }
    if (h.typeflag === "g") continue;
    const name = pax?.get("path") ?? longName ?? h.name;
    const linkname = pax?.get("linkpath") ?? longLink ?? h.linkname;
    // A pax size differs from the header's only for members too big for it: not sdist material.
    const paxSize = pax?.get("size");
    if (paxSize !== undefined && Number(paxSize) !== h.size) {
      throw new Refused(`its member "${name}" is too large`);
    }
    pax = longName = longLink = undefined;
    const type = TAR_TYPES[h.typeflag];
    if (!type) throw new Refused(`its member "${name}" is a device, fifo or other special file`);
    const executable = (h.mode & 0o111) !== 0;
    members.push({ path: memberPath(name), type, executable, data: body, linkname });
  }
  return members;
}

/** The members of a .zip sdist, read into memory. */
async function zipMembers(path: string): Promise<Member[]> {
  let zip: yauzl.ZipFile;
  try {
    // Names are decoded raw and checked by memberPath, with messages of our own.
    zip = await yauzl.openPromise(path, { lazyEntries: true, decodeStrings: false });
  } catch (err) {
    throw new Refused(`it is not a readable zip archive (${(err as Error).message})`);
  }
  const members: Member[] = [];
  let total = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const name = yauzl.getFileNameLowLevel(
        entry.generalPurposeBitFlag,
        entry.fileNameRaw,
        entry.extraFields,
        true,
      );
      const mode = entry.externalFileAttributes >>> 16;
      const kind = mode & 0o170000;
      const dir = name.endsWith("/") || kind === 0o040000;
      total += entry.uncompressedSize;
      if (total > MAX_UNPACKED_BYTES) throw new Refused("it unpacks to over 1 GiB");
      const chunks: Buffer[] = [];
      if (!dir) {
        for await (const c of await zip.openReadStreamPromise(entry)) chunks.push(c as Buffer);
      }
      const data = Buffer.concat(chunks);
      const symlink = kind === 0o120000;
      members.push({
        path: memberPath(name),
        type: dir ? "dir" : symlink ? "symlink" : "file",
        executable: (mode & 0o111) !== 0,
        data,
        linkname: symlink ? data.toString("utf8") : "",
      });
    }
  } catch (err) {
    if (err instanceof Refused) throw err;
    throw new Refused(`its zip data is corrupt (${(err as Error).message})`);
  } finally {
    zip.close();
  }
  return members;
}

/** Refuse a symlink whose text alone takes it out of the archive. */
function checkLinkText(m: Member): void {
  if (m.linkname === "" || posix.isAbsolute(m.linkname)) {
    throw new Refused(`its symbolic link "${m.path}" points to "${m.linkname}"`);
  }
  const joined = posix.normalize(posix.join(posix.dirname(m.path), m.linkname));
  if (joined === ".." || joined.startsWith("../")) {
    throw new Refused(`its symbolic link "${m.path}" points outside the archive`);
  }
}

/**
 * Write `members` under `dest` (new). Symbolic links come last, so nothing is written through
 * one, and must then resolve inside `dest`; links to nothing are dropped, as nothing can be
 * read through them.
 */
async function writeMembers(members: Member[], dest: string): Promise<void> {
  await mkdir(dest);
  const files = new Set<string>();
  const links: Member[] = [];
  for (const m of members) {
    if (m.path === "") continue;
    const target = join(dest, m.path);
    if (m.type === "dir") {
      await makeDirs(target);
    } else if (m.type === "symlink") {
      checkLinkText(m);
      links.push(m);
    } else {
      await makeDirs(dirname(target));
      if (m.type === "file") {
        await writeFile(target, m.data, { mode: m.executable ? 0o755 : 0o644 });
      } else {
        const source = memberPath(m.linkname);
        if (!files.has(source)) {
          throw new Refused(`its hard link "${m.path}" is not to a file before it`);
        }
        await copyFile(join(dest, source), target);
      }
      files.add(m.path);
    }
  }
  const linkPaths = new Set(links.map((l) => l.path));
  for (const l of links) {
    for (let d = posix.dirname(l.path); d !== "."; d = posix.dirname(d)) {
      if (linkPaths.has(d)) throw new Refused(`"${l.path}" lies inside the symbolic link "${d}"`);
    }
    await makeDirs(dirname(join(dest, l.path)));
    await symlink(l.linkname, join(dest, l.path));
  }
  const root = await realpath(dest);
  const resolved = await Promise.all(
    links.map((l) => realpath(join(dest, l.path)).catch(() => undefined)),
  );
  for (const [k, l] of links.entries()) {
    const real = resolved[k];
    if (real === undefined) await rm(join(dest, l.path));
    else if (!isInside(root, real)) {
      throw new Refused(`its symbolic link "${l.path}" points outside the archive`);
    }
  }
}

/** Extract the sdist into `dest` (new) and return its one top-level folder, the source tree. */
async function extractSdist(sdist: SdistFile, dest: string): Promise<string> {
  try {
    const lower = sdist.filename.toLowerCase();
    if (!lower.endsWith(".tar.gz") && !lower.endsWith(".zip")) {
      throw new Refused("only .tar.gz and .zip sdists can be built");
    }
    const members = await (lower.endsWith(".zip") ? zipMembers : tarMembers)(sdist.path);
    const tops = new Set(members.filter((m) => m.path !== "").map((m) => m.path.split("/")[0]));
    const [top] = tops;
    if (tops.size !== 1 || top === undefined || !members.some((m) => m.path.includes("/"))) {
      throw new Refused("it does not hold exactly one top-level folder");
    }
    await writeMembers(members, dest);
    return join(dest, top);
  } catch (err) {
    if (err instanceof Refused) {
      throw new UserError(`The sdist ${sdist.filename} cannot be built: ${err.message}.`);
    }
    if (errCode(err) === "EEXIST" || errCode(err) === "ENOTDIR" || errCode(err) === "EISDIR") {
      throw new UserError(`The sdist ${sdist.filename} cannot be built: it holds clashing paths.`);
    }
    throw err;
  }
}

/** What pyproject.toml's [build-system] asks for (PEP 517/518). */
interface BuildSystem {
  requires: Requirement[];
  backend: string;
  backendPath: string[];
}

async function readBuildSystem(
  root: string,
  label: string,
  what = "The sdist",
): Promise<BuildSystem> {
  const fail = (reason: string): never => {
    throw new UserError(`${what} ${label} cannot be built: its pyproject.toml ${reason}.`);
  };
  let text: string | undefined;
  try {
    text = await readFile(join(root, "pyproject.toml"), "utf8");
  } catch (err) {
    if (errCode(err) !== "ENOENT") throw err;
  }
  let table: Record<string, unknown> | undefined;
  if (text !== undefined) {
    try {
      table = parseToml(text)["build-system"] as Record<string, unknown> | undefined;
    } catch (err) {
      if (!(err instanceof TomlError)) throw err;
      fail(`is not valid TOML (${err.message.split("\n")[0]})`);
    }
  }
  const strings = (v: unknown): v is string[] =>
    Array.isArray(v) && v.every((s) => typeof s === "string");
  let requires = LEGACY_REQUIRES;
  if (table !== undefined) {
    if (!strings(table.requires)) fail("has no [build-system] requires list of strings");
    requires = table.requires as string[];
  }
  const backend = table?.["build-backend"] ?? LEGACY_BACKEND;
  if (typeof backend !== "string" || !/^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$/.test(backend)) {
    return fail(`names the build backend ${JSON.stringify(backend)}, which is not "module:object"`);
  }
  const backendPath = table?.["backend-path"] ?? [];
  if (!strings(backendPath)) return fail("has a backend-path that is not a list of strings");
  for (const p of backendPath) {
    const n = posix.normalize(p);
    if (posix.isAbsolute(p) || n === ".." || n.startsWith("../")) {
      fail(`has the backend-path "${p}" outside the source tree`);
    }
  }
  const reqs = requires.map((r) => {
    try {
      return parseRequirement(r);
    } catch {
      return fail(`lists the invalid build requirement "${r}"`);
    }
  });
  return { requires: reqs, backend, backendPath };
}

/** An extracted sdist with its build environment ready for the backend. */
interface Project {
  sdist: SdistFile;
  root: string;
  system: BuildSystem;
  env: EnvLayout;
  work: string;
}

/**
 * Run one hook in the build environment; `missing` when the backend lacks an optional hook.
 * A failing backend is a UserError with the end of what it printed.
 */
async function runHook(
  p: Project,
  hook: string,
  args: string[],
): Promise<{ missing: true } | { value: unknown }> {
  const resultFile = join(p.work, `${hook}.json`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Tools the build requirements install (cmake, ninja, cython) are found first.
    PATH: `${p.env.scripts}${delimiter}${process.env.PATH ?? ""}`,
    PYTHONNOUSERSITE: "1",
  };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  const argv = ["-c", DRIVER, hook, p.system.backend, JSON.stringify(p.system.backendPath)];
  const child = spawn(p.env.python, [...argv, resultFile, ...args], {
    cwd: p.root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = Buffer.alloc(0);
  const keep = (chunk: Buffer) => {
    output = Buffer.concat([output, chunk]);
    if (output.length > KEPT_OUTPUT_BYTES) output = output.subarray(-KEPT_OUTPUT_BYTES);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const status = await new Promise<number | string>((done, failed) => {
    child.on("error", failed);
    child.on("close", (code, signal) => done(code ?? signal ?? "unknown"));
  }).catch((err: unknown) => {
    throw new UserError(`Cannot run ${p.env.python} to build ${p.sdist.filename} (${err}).`);
  });
  if (status !== 0) {
    const lines = output.toString("utf8").trimEnd().split(/\r?\n/).slice(-TAIL_LINES);
    const how = typeof status === "number" ? `status ${status}` : status;
    throw new UserError(
      `Building ${p.sdist.filename} failed: its build backend ${p.system.backend} stopped with ${how} in ${hook}; its last output was:\n${lines.map((l) => `  ${l}`).join("\n")}`,
    );
  }
  const text = await readFile(resultFile, "utf8").catch(() => {
    throw new UserError(`Building ${p.sdist.filename} failed: ${hook} exited without a result.`);
  });
  return JSON.parse(text) as { missing: true } | { value: unknown };
}

/**
 * Extract the sdist into `work` (unless `tree` is a source tree to build instead) and make its
 * build environment, with what the backend adds.
 */
async function prepare(
  sdist: SdistFile,
  deps: BuildDeps,
  work: string,
  tree?: string,
  hook: "build_wheel" | "build_editable" = "build_wheel",
): Promise<Project> {
  const root = tree ?? (await extractSdist(sdist, join(work, "src")));
  const system = await readBuildSystem(
    root,
    sdist.filename,
    tree ? "The project folder" : "The sdist",
  );
  const envDir = join(work, "env");
  const p: Project = { sdist, root, system, env: await deps(system.requires, envDir), work };
  const getter = `get_requires_for_${hook}`;
  const asked = await runHook(p, getter, []);
  const more = "value" in asked ? asked.value : [];
  if (!Array.isArray(more) || !more.every((r) => typeof r === "string")) {
    throw new UserError(
      `Building ${sdist.filename} failed: ${getter} returned ${JSON.stringify(more)}, not a list of requirements.`,
    );
  }
  if (more.length > 0) {
    const added = more.map((r) => {
      try {
        return parseRequirement(r);
      } catch {
        throw new UserError(
          `Building ${sdist.filename} failed: its backend asks for the invalid requirement "${r}".`,
        );
      }
    });
    p.env = await deps([...system.requires, ...added], envDir);
  }
  return p;
}

/** Where the wheels built from an sdist are kept. */
function builtDir(sha256: string): string {
  return join(cacheDir(), "built", sha256.toLowerCase());
}

/** The wheel built earlier from this sdist that fits `info` best, if any. */
async function cachedWheel(sha256: string, info: InterpreterInfo): Promise<string | undefined> {
  const dir = builtDir(sha256);
  const names = await readdir(dir).catch((err: unknown) => {
    if (errCode(err) === "ENOENT") return [];
    throw err;
  });
  const ranks = tagRanks(targetTagList(targetFromInterpreter(info)));
  let best: { name: string; rank: number } | undefined;
  for (const name of names) {
    if (name.startsWith(".") || !name.endsWith(".whl")) continue;
    const rank = bestTagRank(parseWheelFilename(name), ranks);
    if (rank !== undefined && (!best || rank < best.rank)) best = { name, rank };
  }
  if (!best) return undefined;
  await touch(join(dir, best.name));
  return join(dir, best.name);
}

/** Run the backend's build_wheel and publish the wheel into the cache; returns its path. */
async function buildAndPublish(p: Project, info: InterpreterInfo): Promise<string> {
  const out = join(p.work, "wheel");
  await mkdir(out);
  const result = await runHook(p, "build_wheel", [out]);
  const name = "value" in result ? result.value : undefined;
  const fail = (reason: string): never => {
    throw new UserError(`Building ${p.sdist.filename} failed: ${reason}.`);
  };
  if (typeof name !== "string" || name !== basename(name) || !name.endsWith(".whl")) {
    return fail(`build_wheel returned ${JSON.stringify(name)}, not a wheel file name`);
  }
  const wheel = parseWheelFilename(name);
  const project = parseSdistFilename(p.sdist.filename)?.name;
  if (project !== undefined && wheel.normalized !== normalizeName(project)) {
    fail(`its backend built ${name}, a wheel of another project`);
  }
  const ranks = tagRanks(targetTagList(targetFromInterpreter(info)));
  if (bestTagRank(wheel, ranks) === undefined) {
    fail(`its backend built ${name}, which this interpreter cannot install`);
  }
  const dir = builtDir(p.sdist.sha256);
  await makeDirs(dir);
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}-${randomBytes(6).toString("hex")}.part`);
  try {
    await copyFile(join(out, name), tmp).catch((err: unknown) => {
      if (errCode(err) !== "ENOENT") throw err;
      fail(`build_wheel did not write the ${name} it returned`);
    });
    // link, unlike rename, never replaces: a wheel another process published first is kept.
    await link(tmp, final).catch((err: unknown) => {
      if (errCode(err) !== "EEXIST") throw err;
    });
  } finally {
    await rm(tmp, { force: true });
  }
  return final;
}

/** Run `fn` in a new temporary folder, removed afterwards whatever the backend left in it. */
function inWorkDir<T>(fn: (work: string) => Promise<T>): Promise<T> {
  return inTempDir("pyferry-build-", fn, removeTree);
}

/**
 * A wheel of the sdist at `sdist.path` for the interpreter `info`: from the cache of built
 * wheels, else built once through PEP 517 in a build environment `deps` makes, then cached.
 */
export async function buildWheelFromSdist(
  sdist: SdistFile,
  info: InterpreterInfo,
  deps: BuildDeps,
): Promise<BuiltWheel> {
  const wheel =
    (await cachedWheel(sdist.sha256, info)) ??
    (await inWorkDir(async (work) => buildAndPublish(await prepare(sdist, deps, work), info)));
  return { wheel, sha256: await sha256File(wheel) };
}

/**
 * A wheel built through its PEP 517 backend from the source tree at `root` (a work copy the
 * backend may write into, as into an extracted sdist), written into the folder `outDir`;
 * returns its path. Nothing is cached: a folder, unlike an sdist, has no hash to name it by.
 */
export async function buildWheelFromTree(
  root: string,
  label: string,
  deps: BuildDeps,
  outDir: string,
  hook: "build_wheel" | "build_editable" = "build_wheel",
): Promise<string> {
  return inWorkDir(async (work) => {
    const p = await prepare({ path: root, sha256: "", filename: label }, deps, work, root, hook);
    const result = await runHook(p, hook, [outDir]);
    if ("missing" in result) {
      throw new UserError(
        `Building ${label} failed: its build backend ${p.system.backend} has no ${hook} hook${hook === "build_editable" ? " (PEP 660), so it cannot be installed editable" : ""}.`,
      );
    }
    const name = result.value;
    if (typeof name !== "string" || name !== basename(name) || !name.endsWith(".whl")) {
      throw new UserError(
        `Building ${label} failed: ${hook} returned ${JSON.stringify(name)}, not a wheel file name.`,
      );
    }
    const wheel = join(outDir, name);
    if (!existsSync(wheel)) {
      throw new UserError(`Building ${label} failed: its backend did not write ${name}.`);
    }
    return wheel;
  });
}

/** Core metadata of a wheel file, read from its METADATA member. */
function wheelMetadata(path: string, sha256: string): Promise<CoreMetadata> {
  const url = pathToFileURL(path).href;
  return distMetadata({ filename: basename(path), url, hashes: { sha256 }, yanked: false });
}

/**
 * The sdist's core metadata as its backend makes it, for sdists whose PKG-INFO cannot be
 * trusted (PEP 643): from a wheel already built for `info`, else through
 * prepare_metadata_for_build_wheel, else by building (and caching) the wheel.
 */
export async function sdistMetadata(
  sdist: SdistFile,
  info: InterpreterInfo,
  deps: BuildDeps,
): Promise<CoreMetadata> {
  const cached = await cachedWheel(sdist.sha256, info);
  if (cached) return wheelMetadata(cached, await sha256File(cached));
  return inWorkDir(async (work) => {
    const p = await prepare(sdist, deps, work);
    const out = join(work, "metadata");
    await mkdir(out);
    const result = await runHook(p, "prepare_metadata_for_build_wheel", [out]);
    if (!("value" in result)) {
      const wheel = await buildAndPublish(p, info);
      return wheelMetadata(wheel, await sha256File(wheel));
    }
    const distInfo = result.value;
    if (typeof distInfo !== "string" || distInfo !== basename(distInfo)) {
      throw new UserError(
        `Building ${sdist.filename} failed: prepare_metadata_for_build_wheel returned ${JSON.stringify(distInfo)}, not a folder name.`,
      );
    }
    return parseCoreMetadata(await readFile(join(out, distInfo, "METADATA"), "utf8"));
  });
}
