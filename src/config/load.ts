/**
 * Layered configuration, later layers overriding earlier ones key by key:
 *   1. /etc/pyferry.toml                        (LoadOptions.systemFile)
 *   2. $XDG_CONFIG_HOME/pyferry/config.toml     (else ~/.config/pyferry/config.toml)
 *   3. ./pyferry.toml                           (the current folder only)
 *   4. [tool.pyferry] in ./pyproject.toml
 *   5. the file named by $PYFERRY_CONFIG        (one more file, for users and tests; must exist)
 *   6. environment variables: PYFERRY_TARGET sets default_target
 *   7. flags, applied by the caller with withFlags()
 * Missing files are skipped. Reading is synchronous: it runs at start-up, where a few small
 * reads cost less than scheduling promises.
 */
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { UserError } from "../util/errors.js";
import { isTable } from "../util/toml-table.js";
import { readIfExists } from "./read.js";
import { type Layer, readLayer } from "./schema.js";
import { type Config, type TargetEntry, targetKey } from "./types.js";

export interface LoadOptions {
  /** Folder of ./pyferry.toml and ./pyproject.toml; default: process.cwd(). */
  cwd?: string;
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** For `~` and the user file; default: $HOME, else the OS's idea of it. */
  home?: string;
  /** Default: /etc/pyferry.toml. */
  systemFile?: string;
}

/** Where a file stands: a project's own files may do less (see schema.ts). */
type Kind = "system" | "user" | "project" | "pyproject" | "explicit";

interface Candidate {
  path: string;
  kind: Kind;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = resolve(opts.cwd ?? process.cwd());
  const home = resolve(opts.home ?? (env.HOME || homedir()));
  const candidates = configFiles(cwd, env, home, opts.systemFile ?? "/etc/pyferry.toml");

  let config: Config = { targets: new Map(), files: [], searched: candidates.map((c) => c.path) };
  /** Targets the user's own files (system, user) define, with the file of each. */
  const own = new Map<string, string>();
  for (const c of candidates) {
    const layer = readFileLayer(c, home);
    if (!layer) continue;
    if (c.kind === "project" || c.kind === "pyproject") checkProjectLayer(layer, c, own);
    else for (const name of layer.targets.keys()) own.set(name, c.path);
    config = merge(config, layer, c.path);
  }
  const target = env.PYFERRY_TARGET;
  if (target) {
    const source = "environment variable PYFERRY_TARGET";
    config = { ...config, defaultTarget: { value: target, source } };
  }
  return config;
}

/** The flags' layer on top: `--on TARGET` sets the target to use. */
export function withFlags(config: Config, flags: { target?: string }): Config {
  if (flags.target === undefined) return config;
  return { ...config, defaultTarget: { value: flags.target, source: "flag --on" } };
}

function configFiles(
  cwd: string,
  env: NodeJS.ProcessEnv,
  home: string,
  system: string,
): Candidate[] {
  const xdg = env.XDG_CONFIG_HOME;
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  const userDir = xdg && isAbsolute(xdg) ? xdg : join(home, ".config");
  const files: Candidate[] = [
    { path: resolve(system), kind: "system" },
    { path: join(userDir, "pyferry", "config.toml"), kind: "user" },
    { path: join(cwd, "pyferry.toml"), kind: "project" },
    { path: join(cwd, "pyproject.toml"), kind: "pyproject" },
  ];
  if (env.PYFERRY_CONFIG) files.push({ path: resolve(cwd, env.PYFERRY_CONFIG), kind: "explicit" });
  return files;
}

function readFileLayer({ path, kind }: Candidate, home: string): Layer | undefined {
  const text = readIfExists(path);
  if (text === undefined) {
    if (kind === "explicit")
      throw new UserError(`PYFERRY_CONFIG names ${path}, which does not exist.`);
    return undefined;
  }
  // A pyproject.toml that never mentions pyferry is not parsed: its mistakes are not ours.
  if (kind === "pyproject" && !text.includes("pyferry")) return undefined;
  let doc: Record<string, unknown>;
  try {
    doc = parse(text, { integersAsBigInt: true });
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : "";
    const first = ((err as Error).message.split("\n")[0] ?? "")
      .replace(/^Invalid TOML document: /, "")
      .replace(/\.$/, "");
    throw new UserError(`${path} is not valid TOML${where}: ${first}.`);
  }
  const project = kind === "project" || kind === "pyproject";
  if (kind !== "pyproject") return readLayer(doc, { file: path, prefix: "", home, project });
  const tool = doc.tool;
  const table = isTable(tool) ? tool.pyferry : undefined;
  if (table === undefined) return undefined;
  return readLayer(table, { file: path, prefix: "tool.pyferry.", home, project });
}

/** Keys that say which host a target is and how it is reached, as a file spells them. */
const CONNECTION_KEYS = [
  ["address", "address"],
  ["port", "port"],
  ["identityFile", "identity_file"],
  ["sshOptions", "ssh_options"],
] as const;

/**
 * A project's file may add root or python to a target of the user's own, never change where it
 * connects: the user's trust in that host (accept_new_host_keys, known_hosts_file, keys) would
 * follow the connection to a host the project chose.
 */
function checkProjectLayer(layer: Layer, c: Candidate, own: ReadonlyMap<string, string>): void {
  const prefix = c.kind === "pyproject" ? "tool.pyferry." : "";
  for (const [name, entry] of layer.targets) {
    const theirs = own.get(name);
    const key = CONNECTION_KEYS.find(([field]) => entry[field] !== undefined);
    if (theirs === undefined || key === undefined) continue;
    throw new UserError(
      `${c.path}: ${prefix}${targetKey(name)}.${key[1]} would change how the target ${name} of ${theirs} is reached, which a project's file may not do (it may set only root and python there); give the project's target another name.`,
    );
  }
}

/** A later layer on an earlier one: tables merge key by key, values replace. */
function merge(config: Config, layer: Layer, file: string): Config {
  const targets = new Map<string, TargetEntry>(config.targets);
  for (const [name, entry] of layer.targets) {
    targets.set(name, { ...targets.get(name), ...entry });
  }
  const merged: Config = { ...config, targets, files: [...config.files, file] };
  return layer.defaultTarget ? { ...merged, defaultTarget: layer.defaultTarget } : merged;
}
