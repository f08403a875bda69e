/**
 * The fleet's inventory: hosts, groups, and on each host the virtual environments pyferry keeps
 * in sync, written in TOML (see README "Fleets"). Paths in it are relative to its own folder.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, posix, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { parseDestination } from "../config/destination.js";
import { sshOptionList } from "../config/schema.js";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";
import { isTable, type Table } from "../util/toml-table.js";

export interface FleetEnv {
  host: string;
  /** The login user that owns the environment (ssh's user). */
  user?: string;
  /** Absolute path of the environment on the host. */
  path: string;
  /** The host's interpreter the environment is made for. */
  python: string;
  /** A requirements file (pip syntax, local) or a lock (pylock.toml), resolved here. */
  requirements?: string;
  lock?: string;
  /** The lock's extras and dependency groups installed (besides its default groups). */
  extras: string[];
  dependencyGroups: string[];
  /** Commands run in the new environment after the switch (e.g. a database migration). */
  hooks: string[];
  /** Run last, e.g. to reload a service. */
  reload?: string;
  /** Where hooks and reload run; default: the environment's parent folder. */
  workdir?: string;
  /** Compile bytecode on the host once the environment is assembled. */
  compile: boolean;
}

export interface FleetHost {
  name: string;
  /** What ssh is given: host or user@host (no port). */
  address: string;
  user?: string;
  port?: number;
  identityFile?: string;
  knownHostsFile?: string;
  /** Accept a host key seen for the first time (never a changed one). */
  acceptNewHostKeys: boolean;
  sshOptions: string[];
  /** The store folder there; "" = the default under the login user's cache. */
  root: string;
  groups: string[];
  envs: FleetEnv[];
}

export interface Inventory {
  file: string;
  /** The wheelhouse requirements are resolved from (its wheels/ folder). */
  wheelhouse: string;
  hosts: FleetHost[];
  groups: Map<string, string[]>;
}

class Reader {
  constructor(readonly file: string) {}

  fail(at: string, what: string): never {
    throw new UserError(`${this.file}: ${at} ${what}.`);
  }

  text(v: unknown, at: string): string {
    if (typeof v !== "string" || v === "") this.fail(at, "must be a non-empty string");
    return v;
  }

  optText(v: unknown, at: string): string | undefined {
    return v === undefined ? undefined : this.text(v, at);
  }

  list(v: unknown, at: string): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      this.fail(at, "must be an array of strings");
    }
    return v as string[];
  }

  /** A local path: `~` expanded, relative ones from the inventory's folder. */
  local(v: unknown, at: string): string | undefined {
    const t = this.optText(v, at);
    if (t === undefined) return undefined;
    if (t === "~" || t.startsWith("~/")) return join(homedir(), t.slice(1));
    return isAbsolute(t) ? t : resolve(dirname(this.file), t);
  }

  known(t: Table, at: string, keys: readonly string[]): void {
    for (const k of Object.keys(t)) {
      if (!keys.includes(k))
        this.fail(`${at}${k}`, `is not a known key (known: ${keys.join(", ")})`);
    }
  }
}

const HOST_KEYS = [
  "address",
  "port",
  "identity_file",
  "known_hosts_file",
  "accept_new_host_keys",
  "ssh_options",
  "root",
  "groups",
  "envs",
] as const;
const ENV_KEYS = [
  "path",
  "user",
  "python",
  "requirements",
  "lock",
  "extras",
  "dependency_groups",
  "hooks",
  "reload",
  "workdir",
  "compile",
] as const;

function readEnv(r: Reader, host: string, t: unknown, at: string, defaults: Table): FleetEnv {
  if (!isTable(t)) r.fail(at, "must be a table");
  r.known(t, `${at}.`, ENV_KEYS);
  const v = { ...defaults, ...t };
  const path = r.text(v.path, `${at}.path`);
  if (!path.startsWith("/")) r.fail(`${at}.path`, "must be an absolute path on the host");
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0 || parts.some((c) => c === "." || c === ".."))
    r.fail(`${at}.path`, "must name a folder below / with no . or .. in it");
  if (/[\n\r]/.test(path)) r.fail(`${at}.path`, "must not contain a line break");
  if (v.python === undefined)
    r.fail(
      at,
      'names no interpreter: set python (e.g. "/usr/bin/python3.11") in it or in [defaults]',
    );
  const python = r.text(v.python, `${at}.python`);
  const requirements = r.local(v.requirements, `${at}.requirements`);
  const lock = r.local(v.lock, `${at}.lock`);
  if ((requirements === undefined) === (lock === undefined)) {
    r.fail(at, "needs exactly one of requirements and lock");
  }
  const extras = r.list(v.extras, `${at}.extras`);
  const dependencyGroups = r.list(v.dependency_groups, `${at}.dependency_groups`);
  if (requirements !== undefined && extras.length > 0) {
    r.fail(
      `${at}.extras`,
      "picks from a lock; with requirements, name extras in them (name[extra])",
    );
  }
  if (requirements !== undefined && dependencyGroups.length > 0) {
    r.fail(
      `${at}.dependency_groups`,
      "picks from a lock (pyferry lock PROJECT --group G writes one)",
    );
  }
  if (v.compile !== undefined && typeof v.compile !== "boolean")
    r.fail(`${at}.compile`, "must be true or false");
  const env: FleetEnv = {
    host,
    path: posix.normalize(path).replace(/\/+$/, ""),
    python,
    extras,
    dependencyGroups,
    hooks: r.list(v.hooks, `${at}.hooks`),
    compile: v.compile === true,
  };
  const user = r.optText(v.user, `${at}.user`);
  if (user !== undefined) env.user = user;
  if (requirements) env.requirements = requirements;
  if (lock) env.lock = lock;
  const reload = r.optText(v.reload, `${at}.reload`);
  if (reload) env.reload = reload;
  const workdir = r.optText(v.workdir, `${at}.workdir`);
  // A relative one would be taken from the session's folder there: pyferry's store.
  if (workdir !== undefined && !workdir.startsWith("/"))
    r.fail(`${at}.workdir`, "must be an absolute path on the host");
  if (workdir) env.workdir = workdir;
  return env;
}

/** Read and check the inventory at `file`. */
export function readInventory(file: string): Inventory {
  const abs = resolve(file);
  const r: Reader = new Reader(abs);
  let doc: Table;
  try {
    doc = parse(readFileSync(abs, "utf8")) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      throw new UserError(
        `${abs} is not valid TOML (line ${err.line}: ${err.message.split("\n")[0]}).`,
      );
    }
    throw new UserError(`Cannot read the inventory ${abs} (${whyUnreadable(err)}).`);
  }
  r.known(doc, "", ["wheelhouse", "defaults", "hosts", "groups"]);
  const defaults: unknown = doc.defaults ?? {};
  if (!isTable(defaults)) r.fail("defaults", "must be a table");
  r.known(
    defaults,
    "defaults.",
    ENV_KEYS.filter((k) => k !== "path"),
  );
  const hostsTable = doc.hosts ?? {};
  if (!isTable(hostsTable)) r.fail("hosts", "must be a table of [hosts.NAME] tables");
  const hosts: FleetHost[] = [];
  // One machine's path under two host names would be deployed twice, each undoing the other.
  const places = new Map<string, string>();
  for (const [name, t] of Object.entries(hostsTable)) {
    const at = `hosts.${name}`;
    if (!isTable(t)) r.fail(at, "must be a table");
    r.known(t, `${at}.`, HOST_KEYS);
    const address = r.optText(t.address, `${at}.address`) ?? name;
    const d = parseDestination(address, `${abs}: ${at}.address "${address}"`);
    if (
      t.port !== undefined &&
      (!Number.isInteger(t.port) || (t.port as number) < 1 || (t.port as number) > 65535)
    ) {
      r.fail(`${at}.port`, "must be a port number");
    }
    const port = (t.port as number | undefined) ?? d.port;
    const envList: unknown = t.envs ?? [];
    if (!Array.isArray(envList))
      r.fail(`${at}.envs`, "must be an array of [[hosts.NAME.envs]] tables");
    if (t.accept_new_host_keys !== undefined && typeof t.accept_new_host_keys !== "boolean")
      r.fail(`${at}.accept_new_host_keys`, "must be true or false");
    const host: FleetHost = {
      name,
      address: d.address,
      acceptNewHostKeys: t.accept_new_host_keys === true,
      sshOptions: sshOptionList(r.list(t.ssh_options, `${at}.ssh_options`), `${at}.ssh_options`),
      root: r.optText(t.root, `${at}.root`) ?? "",
      groups: r.list(t.groups, `${at}.groups`),
      envs: envList.map((e, i) => readEnv(r, name, e, `${at}.envs[${i}]`, defaults)),
    };
    if (d.user) host.user = d.user;
    if (port !== undefined) host.port = port;
    const id = r.local(t.identity_file, `${at}.identity_file`);
    if (id) host.identityFile = id;
    const kh = r.local(t.known_hosts_file, `${at}.known_hosts_file`);
    if (kh) host.knownHostsFile = kh;
    const paths = new Set<string>();
    for (const e of host.envs) {
      if (paths.has(e.path)) r.fail(at, `lists the environment ${e.path} twice`);
      paths.add(e.path);
      // The login user is not part of the place: u@h1 and h1 are one machine.
      const machine = host.address.slice(host.address.lastIndexOf("@") + 1);
      const place = `${machine}\0${host.port ?? ""}\0${e.path}`;
      const other = places.get(place);
      if (other !== undefined && other !== name)
        r.fail(at, `deploys to ${machine}:${e.path}, as hosts.${other} does; list it once`);
      places.set(place, name);
    }
    hosts.push(host);
  }
  const groups = new Map<string, string[]>();
  for (const h of hosts)
    for (const g of h.groups) groups.set(g, [...(groups.get(g) ?? []), h.name]);
  const groupTable = doc.groups ?? {};
  if (!isTable(groupTable)) r.fail("groups", "must be a table of [groups.NAME] tables");
  for (const [g, t] of Object.entries(groupTable)) {
    if (!isTable(t)) r.fail(`groups.${g}`, "must be a table");
    r.known(t, `groups.${g}.`, ["hosts"]);
    for (const h of r.list(t.hosts, `groups.${g}.hosts`)) {
      if (!hosts.some((x) => x.name === h))
        r.fail(`groups.${g}.hosts`, `names the unknown host "${h}"`);
      groups.set(g, [...new Set([...(groups.get(g) ?? []), h])]);
    }
  }
  for (const g of groups.keys()) {
    if (hosts.some((h) => h.name === g)) r.fail(`groups.${g}`, "has the name of a host");
  }
  return {
    file: abs,
    wheelhouse: r.local(doc.wheelhouse, "wheelhouse") ?? resolve(dirname(abs), "wheelhouse"),
    hosts,
    groups,
  };
}

/**
 * Check that the inventory's wheelhouse is one, before any host is connected to: a wrong path
 * would otherwise fail every environment, each with the same error about its wheels folder.
 */
export function checkWheelhouse(inv: Inventory): void {
  const named = `The wheelhouse ${inv.wheelhouse} (from ${inv.file})`;
  const kind = (path: string): "folder" | "other" | "missing" => {
    try {
      return statSync(path).isDirectory() ? "folder" : "other";
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
      throw new UserError(`${named} cannot be read: ${whyUnreadable(err)}.`);
    }
  };
  const root = kind(inv.wheelhouse);
  if (root === "missing") throw new UserError(`${named} does not exist.`);
  if (root === "other") throw new UserError(`${named} is not a folder.`);
  if (kind(join(inv.wheelhouse, "wheels")) !== "folder") {
    throw new UserError(`${named} has no wheels folder; pyferry wheelhouse add makes one.`);
  }
}

/** The login user of an environment: its own, else its host's. */
export function envUser(host: FleetHost, env: FleetEnv): string | undefined {
  return env.user ?? host.user;
}
