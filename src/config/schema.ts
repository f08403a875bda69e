/**
 * One configuration file's table checked against the known keys and turned into a layer:
 * every value typed, normalized and stamped with the file it came from. Mistakes are named
 * with file, key and the expected type, because a silently ignored typo sends a run elsewhere.
 */
import { isAbsolute, join, resolve } from "node:path";
import { UserError } from "../util/errors.js";
import { isTable } from "../util/toml-table.js";
import { parseDestination } from "./destination.js";
import { q, type Sourced, TARGET_KEYS, type TargetEntry, targetKey } from "./types.js";

export interface Layer {
  defaultTarget?: Sourced<string>;
  targets: Map<string, TargetEntry>;
}

export interface LayerContext {
  /** Absolute path of the file: the source of every value and the folder for relative paths. */
  file: string;
  /** How the table is reached in the file: "" or "tool.pyferry." for pyproject.toml. */
  prefix: string;
  home: string;
  /** A file that comes with the project (./pyferry.toml, pyproject.toml), not from the user. */
  project: boolean;
}

/** A target name: also a valid host name, so an address-less target is ssh'd to by name. */
const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * The ssh_config options a project's own files (./pyferry.toml, pyproject.toml, which come with
 * a cloned repository) may set: how to reach the host and how patiently. Not HostName: ssh
 * hands it to a ProxyCommand or Match exec of the user's through a shell (%h) unchecked, which
 * would run the project's text here; a target's address is checked for that. Any other option could
 * run a command or load code on this machine (ProxyCommand, LocalCommand, PKCS11Provider),
 * forward or send credentials and data (ForwardAgent, RemoteForward, GSSAPIDelegateCredentials,
 * SendEnv), change which host keys are trusted (StrictHostKeyChecking, UserKnownHostsFile,
 * HostKeyAlias) or weaken the cryptography (Ciphers, KexAlgorithms): a list of what is allowed
 * cannot miss one the way a list of what is forbidden did. The user's own files may set any.
 */
const PROJECT_SSH_OPTIONS = new Map(
  [
    "AddressFamily",
    "BatchMode",
    "Compression",
    "ConnectionAttempts",
    "ConnectTimeout",
    "IdentitiesOnly",
    "IPQoS",
    "KbdInteractiveAuthentication",
    "LogLevel",
    "NumberOfPasswordPrompts",
    "PasswordAuthentication",
    "Port",
    "PreferredAuthentications",
    "ProxyJump",
    "ServerAliveCountMax",
    "ServerAliveInterval",
    "TCPKeepAlive",
    "User",
  ].map((name) => [name.toLowerCase(), name]),
);

/** Target keys that decide which host keys are trusted: the user's to set, never a project's. */
const USER_ONLY_TARGET_KEYS = new Set(["known_hosts_file", "accept_new_host_keys"]);

/** How a wrong value is named in a message. */
function describe(v: unknown): string {
  if (typeof v === "string") return `the string ${q(v)}`;
  if (typeof v === "bigint") return `the integer ${v}`;
  if (typeof v === "number") return `the float ${v}`;
  if (typeof v === "boolean") return `${v}`;
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  return "a table";
}

/** The layer `doc` (a file's top-level table, or its [tool.pyferry]) sets. */
export function readLayer(doc: unknown, ctx: LayerContext): Layer {
  const layer: Layer = { targets: new Map() };
  const at = (key: string): string => `${ctx.file}: ${ctx.prefix}${key}`;
  if (!isTable(doc)) throw wrongType(at("").replace(/\.$/, ""), "a table", doc);
  for (const [key, value] of Object.entries(doc)) {
    if (key === "default_target") {
      layer.defaultTarget = { value: text(value, at(key)), source: ctx.file };
    } else if (key === "targets") {
      if (!isTable(value)) throw wrongType(at(key), "a table of [targets.NAME] tables", value);
      for (const [name, table] of Object.entries(value)) {
        layer.targets.set(name, readTarget(name, table, ctx));
      }
    } else {
      throw new UserError(
        `${at(key)} is not a known key; the known keys are default_target and [targets.NAME].`,
      );
    }
  }
  return layer;
}

function readTarget(name: string, table: unknown, ctx: LayerContext): TargetEntry {
  const key = targetKey(name);
  const at = (k: string): string => `${ctx.file}: ${ctx.prefix}${key}.${k}`;
  if (!TARGET_NAME.test(name)) {
    throw new UserError(
      `${ctx.file}: ${ctx.prefix}${key} has an unusable name; a target name is made of letters, digits, ".", "_" and "-", and starts with a letter or digit.`,
    );
  }
  if (!isTable(table)) throw wrongType(`${ctx.file}: ${ctx.prefix}${key}`, "a table", table);
  const src = <T>(value: T): Sourced<T> => ({ value, source: ctx.file });
  const entry: { -readonly [K in keyof TargetEntry]: TargetEntry[K] } = {};
  for (const [k, v] of Object.entries(table)) {
    if (ctx.project && USER_ONLY_TARGET_KEYS.has(k)) {
      throw new UserError(
        `${at(k)} may be set only in your own configuration (~/.config/pyferry/config.toml): which host keys to trust is not a project's to decide.`,
      );
    }
    switch (k) {
      case "address": {
        const address = text(v, at(k));
        const d = parseDestination(address, `${at(k)} ${q(address)}`);
        entry.address = src(address);
        // A port inside the address is the same as a port key in this file.
        if (d.port !== undefined) {
          if (typeof table.port === "bigint" && Number(table.port) !== d.port) {
            throw new UserError(
              `${at(k)} gives port ${d.port} but ${ctx.prefix}${key}.port gives ${table.port}; keep one of them.`,
            );
          }
          entry.port ??= src(d.port);
        }
        break;
      }
      case "port": {
        if (typeof v !== "bigint" || v < 1n || v > 65535n)
          throw wrongType(at(k), "an integer from 1 to 65535", v);
        entry.port = src(Number(v));
        break;
      }
      case "identity_file":
        entry.identityFile = src(localPath(text(v, at(k)), at(k), ctx));
        break;
      case "known_hosts_file":
        entry.knownHostsFile = src(localPath(text(v, at(k)), at(k), ctx));
        break;
      case "ssh_options":
        entry.sshOptions = src(sshOptions(v, at(k), ctx));
        break;
      case "root":
        entry.root = src(text(v, at(k)));
        break;
      case "python":
        entry.python = src(text(v, at(k)));
        break;
      case "accept_new_host_keys":
        if (typeof v !== "boolean") throw wrongType(at(k), "a boolean (true or false)", v);
        entry.acceptNewHostKeys = src(v);
        break;
      default:
        throw new UserError(
          `${at(k)} is not a known key; a target takes ${TARGET_KEYS.map(([t]) => t).join(", ")}.`,
        );
    }
  }
  return entry;
}

function wrongType(at: string, expected: string, v: unknown): UserError {
  return new UserError(`${at} must be ${expected}, not ${describe(v)}.`);
}

/** A non-empty string without control characters (values end up on command lines). */
function text(v: unknown, at: string): string {
  if (typeof v !== "string") throw wrongType(at, "a string", v);
  if (v === "") throw new UserError(`${at} must not be empty.`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\u0000-\u001f\u007f]/.test(v))
    throw new UserError(`${at} must not contain control characters.`);
  return v;
}

/** `~` is the home folder; a relative path is taken from the folder of the file that says it. */
function localPath(p: string, at: string, ctx: LayerContext): string {
  if (p === "~") return ctx.home;
  if (p.startsWith("~/")) return join(ctx.home, p.slice(2));
  if (p.startsWith("~"))
    throw new UserError(
      `${at} starts with "~user", which pyferry does not expand; write the full path.`,
    );
  return isAbsolute(p) ? p : resolve(ctx.file, "..", p);
}

function sshOptions(v: unknown, at: string, ctx: LayerContext): string[] {
  if (!Array.isArray(v)) throw wrongType(at, "an array of strings", v);
  const items = v.map((item, i) => text(item, `${at}[${i}]`));
  return sshOptionList(items, at, (name, where) => {
    if (ctx.project && !PROJECT_SSH_OPTIONS.has(name.toLowerCase())) {
      throw new UserError(
        `${where} sets ${name}, which a project's configuration may not do: it may set only ${[...PROJECT_SSH_OPTIONS.values()].join(", ")} (options that cannot run commands here, hand out credentials or change which host keys are trusted); set it in ~/.ssh/config or ~/.config/pyferry/config.toml instead.`,
      );
    }
  });
}

/**
 * ssh_config options as a list of "Name=value" (what pyferry passes with -o), from a list that
 * may also use ssh's own spelling, ["-o", "ConnectTimeout=5"]; `check` sees each option's name.
 */
export function sshOptionList(
  items: readonly string[],
  at: string,
  check?: (name: string, where: string) => void,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    if (items[i] === "-o" && i + 1 < items.length) i++;
    let option = items[i] as string;
    if (option.startsWith("-o")) option = option.slice(2);
    const m = /^([A-Za-z][A-Za-z0-9]*)\s*(=|\s)\s*\S/.exec(option);
    if (!m) {
      throw new UserError(
        `${at}[${i}] must be one ssh_config option such as "ServerAliveInterval=30" (pyferry passes it with -o), not ${q(items[i] as string)}.`,
      );
    }
    check?.(m[1] as string, `${at}[${i}]`);
    out.push(option);
  }
  return out;
}
