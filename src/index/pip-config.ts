import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UserError } from "../util/errors.js";

/** The package-source part of pip's configuration, as `pip install` would see it. */
export interface IndexSettings {
  /** pip's `index-url`; default https://pypi.org/simple. A local path becomes a file:// URL. */
  indexUrl: string;
  extraIndexUrls: string[];
  /** URLs or absolute local paths (relative ones are resolved against the working directory). */
  findLinks: string[];
  noIndex: boolean;
  trustedHosts: string[];
  cert?: string;
  timeoutSeconds?: number;
  /**
   * pip option name ("index-url", "extra-index-url", "find-links", "no-index", "trusted-host",
   * "cert", "timeout") -> where its value came from: an environment variable name, a
   * configuration file path, or "command line". Options left at pip's default are absent.
   */
  sources: Record<string, string>;
}

export const DEFAULT_INDEX_URL = "https://pypi.org/simple";

/** A message about pip's default index when nobody configured it (so its failure is expected). */
export function aboutImplicitDefaultIndex(s: IndexSettings, message: string): boolean {
  return s.sources["index-url"] === undefined && message.includes(DEFAULT_INDEX_URL);
}

type Option =
  | "index-url"
  | "extra-index-url"
  | "find-links"
  | "no-index"
  | "trusted-host"
  | "cert"
  | "timeout";

/** Every long option string pip accepts for the options we read, mapped to the option. */
const OPTION_ALIASES: Record<string, Option> = {
  "index-url": "index-url",
  "pypi-url": "index-url",
  "extra-index-url": "extra-index-url",
  "find-links": "find-links",
  "no-index": "no-index",
  "trusted-host": "trusted-host",
  cert: "cert",
  timeout: "timeout",
  "default-timeout": "timeout",
};

interface RawValue {
  value: string;
  source: string;
}

/** configparser-style sections: section name -> option (lower-cased) -> value, in file order. */
type IniSections = Map<string, Map<string, string>>;

/**
 * Parse the subset of Python's configparser syntax pip.conf files use: `[section]` headers,
 * `key = value` / `key: value`, indented continuation lines, whole-line `#`/`;` comments,
 * and `[DEFAULT]` values inherited by every section. No interpolation, like RawConfigParser.
 */
export function parseIni(text: string, fileName: string): IniSections {
  const sections: IniSections = new Map();
  let current: Map<string, string> | undefined;
  let option: string | undefined;
  let optionIndent = 0;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const stripped = raw.trim();
    if (stripped.startsWith("#") || stripped.startsWith(";")) continue;
    const indent = raw.length - raw.trimStart().length;
    if (stripped === "") {
      // A blank line inside a value keeps it open (configparser's empty_lines_in_values).
      if (current && option !== undefined) current.set(option, `${current.get(option)}\n`);
      continue;
    }
    if (current && option !== undefined && indent > optionIndent) {
      current.set(option, `${current.get(option)}\n${stripped}`);
      continue;
    }
    const header = /^\[(.+)\]/.exec(stripped);
    if (header) {
      const name = header[1] as string;
      current = sections.get(name) ?? new Map<string, string>();
      sections.set(name, current);
      option = undefined;
      continue;
    }
    const pair = /^(.*?)\s*[=:]\s*(.*)$/.exec(stripped);
    if (!current || !pair) {
      const why = current ? "is not a `key = value` line" : "comes before any [section] header";
      throw new UserError(`pip configuration file ${fileName} line ${i + 1} ${why}.`);
    }
    option = (pair[1] as string).toLowerCase();
    optionIndent = indent;
    current.set(option, pair[2] as string);
  }
  const defaults = sections.get("DEFAULT");
  sections.delete("DEFAULT");
  const result: IniSections = new Map();
  for (const [name, values] of sections) {
    const merged = new Map<string, string>();
    for (const [k, v] of [...(defaults ?? []), ...values]) merged.set(k, v.trim());
    result.set(name, merged);
  }
  return result;
}

/** Option names are equivalent with dashes or underscores and in any case, as in pip. */
function normalizeKey(name: string): string {
  const key = name.toLowerCase().replaceAll("_", "-");
  return key.startsWith("--") ? key.slice(2) : key;
}

function homeOf(env: NodeJS.ProcessEnv): string {
  return env.HOME && env.HOME.length > 0 ? env.HOME : homedir();
}

/** pip's configuration files, lowest priority first, for Linux-like systems. */
function configFiles(env: NodeJS.ProcessEnv, cwd: string): string[] {
  if (env.PIP_CONFIG_FILE === "/dev/null") return [];
  const envFile = env.PIP_CONFIG_FILE ? resolve(cwd, env.PIP_CONFIG_FILE) : undefined;
  const xdgDirs = env.XDG_CONFIG_DIRS?.trim() ? env.XDG_CONFIG_DIRS : "/etc/xdg";
  const files = xdgDirs
    .split(":")
    .filter((d) => d.length > 0)
    .map((d) => join(d, "pip", "pip.conf"));
  files.push("/etc/pip.conf");
  // pip skips the per-user files when PIP_CONFIG_FILE names an existing file.
  if (!(envFile && existsSync(envFile))) {
    const home = homeOf(env);
    const xdgHome = env.XDG_CONFIG_HOME?.trim() ? env.XDG_CONFIG_HOME : join(home, ".config");
    files.push(join(home, ".pip", "pip.conf"), join(xdgHome, "pip", "pip.conf"));
  }
  // pip's site file is sys.prefix/pip.conf; without running Python, a venv's prefix is all we know.
  if (env.VIRTUAL_ENV) files.push(join(env.VIRTUAL_ENV, "pip.conf"));
  if (envFile) files.push(envFile);
  return files;
}

function readConfigFile(path: string): IniSections | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new UserError(`Could not read pip configuration file ${path} (${code ?? String(err)}).`);
  }
  return parseIni(text, path);
}

function parseBool(value: string, option: string, source: string): boolean {
  const v = value.toLowerCase();
  if (["y", "yes", "t", "true", "on", "1"].includes(v)) return true;
  if (["n", "no", "f", "false", "off", "0"].includes(v)) return false;
  throw new UserError(
    `The value "${value}" for ${option} in ${source} is not a boolean; use yes/no, true/false or 1/0.`,
  );
}

/** Absolute form of a pip location: URLs stay as they are, paths get `~` expanded and resolved. */
function resolveLocation(location: string, cwd: string, env: NodeJS.ProcessEnv): string {
  if (/^[a-z][a-z0-9+.-]+:/i.test(location)) return location;
  const expanded =
    location === "~" || location.startsWith("~/") ? join(homeOf(env), location.slice(1)) : location;
  return resolve(cwd, expanded);
}

function resolveIndexUrl(location: string, cwd: string, env: NodeJS.ProcessEnv): string {
  const resolved = resolveLocation(location, cwd, env);
  return resolved.startsWith("/") ? pathToFileURL(resolved).href : resolved;
}

/**
 * Read pip's configuration (files and PIP_* environment variables) the way `pip install`
 * does, keeping only the options that decide where packages come from.
 * `command` selects the command section that overrides [global].
 */
export function loadPipSettings(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  command: "install" | "download" = "install",
): IndexSettings {
  // Like pip: later files replace a whole key of earlier ones, then [global] values are applied,
  // then the command's section, then environment variables.
  const merged = new Map<string, RawValue>();
  for (const file of configFiles(env, cwd)) {
    const sections = readConfigFile(file);
    for (const [section, values] of sections ?? []) {
      for (const [key, value] of values) {
        merged.set(`${section}.${normalizeKey(key)}`, { value, source: file });
      }
    }
  }
  const raw = new Map<Option, RawValue>();
  const apply = (key: string, v: RawValue) => {
    const option = OPTION_ALIASES[key];
    // pip ignores empty values, so an empty key in a later file clears an earlier one.
    if (option && v.value.trim() !== "") raw.set(option, v);
  };
  for (const section of ["global", command]) {
    for (const [k, v] of merged) {
      const dot = k.indexOf(".");
      if (k.slice(0, dot) === section) apply(k.slice(dot + 1), v);
    }
  }
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith("PIP_") && value !== undefined) {
      apply(normalizeKey(name.slice(4)), { value, source: name });
    }
  }

  const settings: IndexSettings = {
    indexUrl: DEFAULT_INDEX_URL,
    extraIndexUrls: [],
    findLinks: [],
    noIndex: false,
    trustedHosts: [],
    sources: {},
  };
  const list = (v: RawValue) => v.value.split(/\s+/).filter((s) => s.length > 0);
  for (const [option, v] of raw) {
    settings.sources[option] = v.source;
    switch (option) {
      case "index-url":
        settings.indexUrl = resolveIndexUrl(v.value.trim(), cwd, env);
        break;
      case "extra-index-url":
        settings.extraIndexUrls = list(v).map((u) => resolveIndexUrl(u, cwd, env));
        break;
      case "find-links":
        settings.findLinks = list(v).map((u) => resolveLocation(u, cwd, env));
        break;
      case "no-index":
        settings.noIndex = parseBool(v.value.trim(), option, v.source);
        break;
      case "trusted-host":
        settings.trustedHosts = list(v);
        break;
      case "cert":
        settings.cert = resolveLocation(v.value.trim(), cwd, env);
        break;
      case "timeout": {
        const seconds = Number(v.value.trim());
        if (!Number.isFinite(seconds) || seconds < 0) {
          throw new UserError(`The value "${v.value}" for timeout in ${v.source} is not a number.`);
        }
        settings.timeoutSeconds = seconds;
        break;
      }
    }
  }
  return settings;
}

/**
 * Apply command-line options. As with pip, --index-url and --no-index replace the configured
 * value while --extra-index-url and --find-links add to the configured lists.
 */
export function withOverrides(
  s: IndexSettings,
  o: { indexUrl?: string; extraIndexUrls?: string[]; findLinks?: string[]; noIndex?: boolean },
  cwd: string = process.cwd(),
): IndexSettings {
  const env = process.env;
  const out: IndexSettings = {
    ...s,
    extraIndexUrls: [...s.extraIndexUrls],
    findLinks: [...s.findLinks],
    sources: { ...s.sources },
  };
  const cli = "command line";
  if (o.indexUrl !== undefined) {
    out.indexUrl = resolveIndexUrl(o.indexUrl, cwd, env);
    out.sources["index-url"] = cli;
  }
  if (o.noIndex !== undefined) {
    out.noIndex = o.noIndex;
    out.sources["no-index"] = cli;
  }
  const add = (target: string[], extra: string[]) => {
    for (const e of extra) if (!target.includes(e)) target.push(e);
  };
  if (o.extraIndexUrls?.length) {
    add(
      out.extraIndexUrls,
      o.extraIndexUrls.map((u) => resolveIndexUrl(u, cwd, env)),
    );
    out.sources["extra-index-url"] = cli;
  }
  if (o.findLinks?.length) {
    add(
      out.findLinks,
      o.findLinks.map((u) => resolveLocation(u, cwd, env)),
    );
    out.sources["find-links"] = cli;
  }
  return out;
}
