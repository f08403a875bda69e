/**
 * Loading a command-line bundle (dist/bundle/NAME.cjs, one file) with V8's code cache: the
 * bytecode an earlier run of the same command compiled is read back instead of being compiled
 * again, as Node 22's module.enableCompileCache does and Node 20 cannot. One cache per bundle,
 * command and Node version, in .v8-cache beside the bundle when that folder is writable (a
 * checkout or a user's own install); elsewhere the bundle is simply compiled each time.
 *
 * Under --debug (or PYFERRY_DEBUG=1) the bundle is loaded by Node's own CommonJS loader with
 * source maps on, so that stack traces name the TypeScript sources.
 */
import { createHash } from "node:crypto";
import {
  accessSync,
  constants as fsConstants,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as vm from "node:vm";
import { makeDirsSync } from "../util/make-dirs.js";

/** What CommonJS gives a module: the bundle is compiled inside this function, as require() does. */
const HEAD = "(function (exports, require, module, __filename, __dirname) {";
const TAIL = "\n})";

/** Set (on globalThis) by a run that did no real work: help, the version, a usage error. */
export const LIGHT_RUN = Symbol.for("pyferry.lightRun");

/** Mark this run as one whose compilations are not worth a code cache. */
export function markLightRun(): void {
  (globalThis as Record<symbol, unknown>)[LIGHT_RUN] = true;
}

/** A command word fit for a file name ("main" for a program without commands); others share one. */
function variantOf(word: string | undefined): string {
  if (word === undefined) return "main";
  return /^[a-z][a-z0-9-]{0,31}$/.test(word) ? word : "other";
}

/**
 * The bundle's code (`source`, read from `file`) compiled as CommonJS compiles a module, with
 * `cachedData` from an earlier compilation when there is one (V8 checks that it fits). The
 * code may not use import(): vm offers it only behind an experimental flag (scripts/bundle.mjs
 * makes sure that no program does).
 */
export function compileBundle(file: string, source: string, cachedData?: Buffer): vm.Script {
  return new vm.Script(HEAD + source + TAIL, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
}

/**
 * The exports of the bundle at `url` (a .cjs file) for a run of `command` (the first word of
 * the command line, for pyferry: its cache holds what that command compiles).
 */
export function loadBundle<T>(url: URL, command?: string): T {
  const file = fileURLToPath(url);
  if (process.argv.includes("--debug") || process.env.PYFERRY_DEBUG === "1") {
    process.setSourceMapsEnabled(true);
    return createRequire(file)(file) as T;
  }
  const source = readFileSync(file, "utf8");
  const dir = join(dirname(file), ".v8-cache");
  const key = createHash("sha256").update(source).digest("hex").slice(0, 16);
  // Node versions used in turn (nvm) keep a cache each; a new bundle replaces its version's.
  const prefix = `${basename(file, ".cjs")}-${variantOf(command)}-${process.version}-${process.arch}-`;
  const cacheFile = join(dir, `${prefix}${key}.bin`);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // Not made yet.
  }
  const script = compileBundle(file, source, cachedData);
  if (!cachedData || script.cachedDataRejected) {
    // Made at the end of a run that worked, so that it holds everything that run compiled; a
    // run that only printed help or its version compiled little of the command, and a cache
    // of that, accepted later, would leave the real work to be compiled every time.
    process.once("exit", (code) => {
      if (code === 0 && !(globalThis as Record<symbol, unknown>)[LIGHT_RUN])
        saveCache(script, dir, prefix, cacheFile);
    });
  }
  const module = { exports: {} as T };
  const wrapper = script.runInThisContext() as (
    exports: T,
    require: NodeJS.Require,
    module: { exports: T },
    filename: string,
    dirname: string,
  ) => void;
  wrapper(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

/** Write the cache atomically, and drop this bundle's older ones for the same command. */
function saveCache(script: vm.Script, dir: string, prefix: string, cacheFile: string): void {
  try {
    makeDirsSync(dir);
    accessSync(dir, fsConstants.W_OK);
  } catch {
    // An install nobody may write to (a system-wide one, run by a user): no cache.
    return;
  }
  try {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cacheFile);
    for (const f of readdirSync(dir)) {
      if (f.startsWith(prefix) && f !== basename(cacheFile)) rmSync(join(dir, f), { force: true });
    }
  } catch {
    // The cache only saves time.
  }
}
