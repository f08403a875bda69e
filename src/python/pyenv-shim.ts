/**
 * What a pyenv shim would run, found the way pyenv finds it, without running the shim: a shim
 * is a chain of bash scripts that costs a quarter of a second per call. Anything unusual
 * (plugins' which hooks, "system", an unknown version) gives undefined, and the caller asks
 * the shim itself.
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";

/** pyenv's root folder. */
export function pyenvRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.PYENV_ROOT || join(env.HOME || homedir(), ".pyenv");
}

/**
 * The files that choose pyenv's version when PYENV_VERSION does not, in the order pyenv reads
 * them: .python-version up from PYENV_DIR (else `cwd`), then the global version file.
 */
export function versionFiles(root: string, env: NodeJS.ProcessEnv, cwd: string): string[] {
  const files: string[] = [];
  for (let dir = resolve(env.PYENV_DIR || cwd); ; dir = dirname(dir)) {
    files.push(join(dir, ".python-version"));
    if (dirname(dir) === dir) break;
  }
  files.push(join(root, "version"));
  return files;
}

/** The versions pyenv would try, in order: PYENV_VERSION, a .python-version up the tree, the global file. */
function selectedVersions(root: string, env: NodeJS.ProcessEnv, cwd: string): string[] | undefined {
  const fromText = (text: string) =>
    text
      .split(/\s+|:/)
      .map((v) => v.trim())
      .filter((v) => v !== "" && !v.startsWith("#"));
  if (env.PYENV_VERSION) return fromText(env.PYENV_VERSION);
  const read = (file: string) => {
    try {
      return fromText(readFileSync(file, "utf8"));
    } catch {
      return undefined;
    }
  };
  for (const file of versionFiles(root, env, cwd)) {
    const found = read(file);
    if (found) return found;
  }
  return ["system"];
}

function hasWhichHooks(root: string, env: NodeJS.ProcessEnv): boolean {
  const dirs = [...(env.PYENV_HOOK_PATH ?? "").split(":").filter(Boolean), join(root, "pyenv.d")];
  return dirs.some((d) => {
    try {
      return readdirSync(join(d, "which")).length > 0;
    } catch {
      return false;
    }
  });
}

/**
 * What the shim at `shim` would run here: the interpreter's path, "none" when pyenv would say
 * "command not found" (no selected version has it), or undefined when that is not plain.
 */
function shimTarget(
  shim: string,
  root: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
): string | "none" | undefined {
  if (dirname(resolve(shim)) !== join(resolve(root), "shims") || hasWhichHooks(root, env)) {
    return undefined;
  }
  const versions = selectedVersions(root, env, cwd);
  if (!versions || versions.includes("system")) return undefined;
  for (const v of versions) {
    const dir = join(root, "versions", v);
    if (!existsSync(dir)) return undefined;
    const file = join(dir, "bin", basename(shim));
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // pyenv tries the next selected version that has the command.
    }
  }
  return "none";
}

/** The interpreter the shim at `shim` would run here, or undefined when that is not plain. */
export function resolvePyenvShim(
  shim: string,
  root: string,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): string | undefined {
  const target = shimTarget(shim, root, env, cwd);
  return target === "none" ? undefined : target;
}

/** Whether the pyenv shim would fail here: none of the selected versions has its command. */
export function pyenvShimMisses(
  shim: string,
  root: string,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): boolean {
  return shimTarget(shim, root, env, cwd) === "none";
}
