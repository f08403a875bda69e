/**
 * Running a command inside a bundle, as if its environment were activated: the bundle is
 * unpacked once into the cache, the command is started with no shell, stdio inherited, and
 * it is treated as us: its exit status becomes ours, and so does its death by a signal.
 */
import { constants as fsConstants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { endBySignal, spawnForwarding } from "../run/child.js";
import { UserError } from "../util/errors.js";
import type { Manifest } from "./manifest.js";
import { ensureUnpacked } from "./unpack.js";

export interface ExecOptions {
  /** Where the command runs; default: our own working folder (the caller's). */
  cwd?: string;
  /** The environment to start from; default: ours. */
  env?: NodeJS.ProcessEnv;
  stdio?: "inherit";
}

/** Signals that, sent to us, are meant for the program we run. */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * The environment a command in the unpacked bundle `dir` runs with: env/bin first on PATH
 * (so a bare `python` is the bundle's), VIRTUAL_ENV set, no PYTHONHOME and no user
 * site-packages, and the app folder first on PYTHONPATH (then its `importRoots`, such as a src
 * layout's src) and named in PYFERRY_APP_DIR.
 */
export function bundleEnv(
  dir: string,
  base: NodeJS.ProcessEnv,
  importRoots: readonly string[] = [],
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env.PYTHONHOME;
  const prepend = (first: string, rest: string | undefined): string =>
    rest ? `${first}${delimiter}${rest}` : first;
  const app = join(dir, "app");
  env.PATH = prepend(join(dir, "env", "bin"), base.PATH);
  env.VIRTUAL_ENV = join(dir, "env");
  env.PYTHONNOUSERSITE = "1";
  env.PYFERRY_APP_DIR = app;
  const roots = importRoots.map((r) => join(app, ...r.split("/")));
  env.PYTHONPATH = prepend([app, ...roots].join(delimiter), base.PYTHONPATH);
  return env;
}

/**
 * Fail clearly, before starting anything, when the bundle's interpreter cannot run here: a
 * symlink to the base interpreter with nothing behind it on this machine, or no interpreter
 * at all (a bare `python` would then silently be the machine's own).
 */
async function checkInterpreter(dir: string, manifest: Manifest): Promise<void> {
  const exists = async (path: string) => (await stat(join(dir, path)).catch(() => null)) !== null;
  const py = `${manifest.python.implementation} ${manifest.python.version}`;
  for (const [path, link] of Object.entries(manifest.links)) {
    if (link.external && !(await exists(path)))
      throw new UserError(
        `The bundle's ${path} links to ${link.target}, which this machine lacks: install ${py} there, or pack the bundle with its interpreter included.`,
      );
  }
  if (!(await exists(manifest.env.python))) {
    // Listed, so the bundle had it: the unpacked copy lost it since.
    const listed =
      Object.hasOwn(manifest.files, manifest.env.python) ||
      Object.hasOwn(manifest.links, manifest.env.python);
    throw new UserError(
      listed
        ? `The unpacked bundle ${dir} is damaged (${manifest.env.python} is missing); remove it and run again.`
        : `The bundle has no ${manifest.env.python}, so it cannot run ${py} programs.`,
    );
  }
}

/** The executable file `cmd` names, looked up on `path` as seen from `cwd`, or undefined. */
async function lookup(
  cmd: string,
  path: string | undefined,
  cwd: string,
): Promise<string | undefined> {
  const candidates = cmd.includes("/")
    ? [resolve(cwd, cmd)]
    : (path ?? "").split(delimiter).map((d) => resolve(cwd, d || ".", cmd));
  for (const c of candidates) {
    const runnable = await access(c, fsConstants.X_OK).then(
      () => true,
      () => false,
    );
    if (runnable) return c;
  }
  return undefined;
}

/** Why `cmd` did not start, as one UserError with the exit status a shell would give. */
async function startFailure(
  err: NodeJS.ErrnoException,
  cmd: string,
  path: string | undefined,
  cwd: string,
): Promise<Error> {
  if (err.code === "EACCES") return new UserError(`${cmd}: permission denied.`, 126);
  if (err.code !== "ENOENT") return err;
  const found = await lookup(cmd, path, cwd);
  if (found)
    return new UserError(
      `${found} exists but cannot start: the interpreter on its #! line, or its dynamic loader, is missing on this machine.`,
      126,
    );
  return new UserError(`${cmd}: command not found in the bundle's environment or on PATH.`, 127);
}

/**
 * Run `argv` (the manifest's entry when empty) inside `archive`'s environment, in the
 * caller's working folder unless `cwd` says otherwise. Resolves to the exit status. When the
 * command dies of a signal, the same signal is raised on this process (unless something else
 * here listens for it); if we survive that, the status is 128 + the signal number.
 */
export async function execInBundle(
  archive: string,
  argv: string[],
  opts: ExecOptions = {},
): Promise<number> {
  const { dir, manifest } = await ensureUnpacked(archive);
  const command =
    argv.length > 0
      ? argv
      : manifest.script
        ? ["python", join(dir, ...manifest.script.split("/"))]
        : manifest.entry;
  if (!command || command.length === 0)
    throw new UserError(`The bundle ${archive} has no default command; name one to run.`, 2);
  await checkInterpreter(dir, manifest);
  const cwd = opts.cwd ?? process.cwd();
  if (!(await stat(cwd).catch(() => null))?.isDirectory())
    throw new UserError(`The working folder ${cwd} does not exist.`);
  const env = bundleEnv(dir, opts.env ?? process.env, manifest.app.import_roots);
  const [cmd, ...args] = command;

  // Node looks the command up on env.PATH, so env/bin wins.
  const outcome = await spawnForwarding(cmd, args, {
    cwd,
    env,
    stdio: opts.stdio ?? "inherit",
    forward: FORWARDED,
  });
  if ("error" in outcome) throw await startFailure(outcome.error, cmd, env.PATH, cwd);
  if ("code" in outcome) return outcome.code;
  return endBySignal(outcome.signal);
}
