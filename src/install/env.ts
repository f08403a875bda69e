/**
 * Environments with the semantics of a PEP 405 virtual environment (what `python -m venv
 * --without-pip` makes), written directly so that no interpreter has to run to create one.
 */
import { randomBytes } from "node:crypto";
import { readlink, realpath, rename, rm, symlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { InterpreterInfo } from "../python/interpreter.js";
import { majorMinor } from "../python/version.js";
import { writeFileAtomic } from "../util/atomic.js";
import { UserError } from "../util/errors.js";
import { makeDirs } from "../util/make-dirs.js";
import { writeActivateScripts } from "./activate.js";

/** Where an environment's install scheme puts each kind of file. */
export interface EnvLayout {
  root: string;
  /** root/bin/python */
  python: string;
  purelib: string;
  platlib: string;
  scripts: string;
  /** Header files go to `include/<project name>/`, as pip does inside a virtual environment. */
  include: string;
  data: string;
  /** "3.11" */
  pythonVersion: string;
}

/** The layout of the environment at `dir` for a Python version ("3.11" or "3.11.7"). */
export function layoutFor(dir: string, pythonVersion: string): EnvLayout {
  const root = resolve(dir);
  const xy = majorMinor(pythonVersion);
  const site = join(root, "lib", `python${xy}`, "site-packages");
  return {
    root,
    python: join(root, "bin", "python"),
    purelib: site,
    platlib: site,
    scripts: join(root, "bin"),
    include: join(root, "include", "site", `python${xy}`),
    data: root,
    pythonVersion: xy,
  };
}

/** Point `path` at `target`, replacing whatever is there in one rename. */
async function placeSymlink(target: string, path: string): Promise<void> {
  if ((await readlink(path).catch(() => undefined)) === target) return;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await symlink(target, tmp);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Create (or refresh) a virtual environment at `dir` for the interpreter `info` describes:
 * pyvenv.cfg, bin/python{,3,X.Y} symlinks to the base interpreter, an empty site-packages,
 * the lib64 symlink venv makes on 64-bit POSIX systems other than macOS, and the activation
 * scripts.
 */
export async function createVenv(dir: string, info: InterpreterInfo): Promise<EnvLayout> {
  if (process.platform === "win32") {
    throw new UserError("pyferry cannot create environments on Windows yet.");
  }
  if (info.implementation !== "cpython") {
    throw new UserError(
      `${info.executable} is ${info.implementation}; pyferry creates environments for CPython only.`,
    );
  }
  // A venv's own interpreter is a symlink into its base: follow it, so the new environment
  // does not depend on the one it was made from.
  const base = info.isVirtualenv ? await realpath(info.sysExecutable) : info.sysExecutable;
  const real = await realpath(base).catch(() => {
    throw new UserError(`The interpreter ${base} does not exist.`);
  });
  return writeVenv(dir, { base, real, version: info.version, pointerBits: info.pointerBits });
}

/** What a virtual environment records of its base interpreter. */
export interface VenvBase {
  /** The interpreter bin/python3 points at. */
  base: string;
  /** Its path with symlinks resolved (pyvenv.cfg's `executable`). */
  real: string;
  version: string;
  pointerBits: number;
}

/**
 * Write a virtual environment's skeleton at `dir` for `base`, which need not exist on this
 * machine: an environment built here for another host's interpreter is shipped there.
 */
export async function writeVenv(dir: string, b: VenvBase): Promise<EnvLayout> {
  const layout = layoutFor(dir, b.version);
  const xy = layout.pythonVersion;
  const bin = layout.scripts;
  await makeDirs(layout.purelib);
  await makeDirs(bin);
  await makeDirs(join(layout.root, "include", `python${xy}`));
  if (b.pointerBits === 64 && process.platform !== "darwin") {
    await placeSymlink("lib", join(layout.root, "lib64"));
  }
  await placeSymlink(b.base, join(bin, "python3"));
  await placeSymlink("python3", join(bin, "python"));
  await placeSymlink("python3", join(bin, `python${xy}`));
  const cfg = [
    `home = ${dirname(b.base)}`,
    "include-system-site-packages = false",
    `version = ${b.version}`,
    `executable = ${b.real}`,
  ];
  await writeFileAtomic(join(layout.root, "pyvenv.cfg"), `${cfg.join("\n")}\n`);
  // Like pyvenv.cfg, they belong to the environment, not to a distribution: no RECORD lists them.
  await writeActivateScripts(bin);
  return layout;
}
