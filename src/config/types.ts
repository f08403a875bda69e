/** The shapes of pyferry's configuration, each value with the place it came from. */

/** Where a value came from: an absolute file path, "environment variable X", "flag --on" or "default". */
export type Source = string;

export interface Sourced<T> {
  readonly value: T;
  readonly source: Source;
}

/** One `[targets.NAME]` table after merging; a key is absent when no layer set it. */
export interface TargetEntry {
  /** As written: "user@host", "host", "user@host:port" or "user@[::1]:2222". */
  readonly address?: Sourced<string>;
  readonly port?: Sourced<number>;
  /** Absolute: `~` expanded, relative paths taken from the folder of the file that set them. */
  readonly identityFile?: Sourced<string>;
  readonly knownHostsFile?: Sourced<string>;
  /** ssh_config options, one "Key=Value" (or "Key Value") each, for `ssh -o`. */
  readonly sshOptions?: Sourced<string[]>;
  readonly root?: Sourced<string>;
  readonly python?: Sourced<string>;
  readonly acceptNewHostKeys?: Sourced<boolean>;
}

export interface Config {
  readonly defaultTarget?: Sourced<string>;
  readonly targets: ReadonlyMap<string, TargetEntry>;
  /** The files that contributed a layer, in the order they were applied. */
  readonly files: readonly string[];
  /** Every file looked for, in order, found or not (for `config show`). */
  readonly searched: readonly string[];
}

/** A target ready for the transport: a named target's settings, or a bare SSH destination. */
export interface TargetConfig {
  /** The configured target's name; absent for a destination given directly. */
  name?: string;
  /** What ssh is given as its destination: "user@host" or "host" (no brackets, no port). */
  address: string;
  user?: string;
  /** Host name, address (IPv6 without brackets) or ~/.ssh/config alias. */
  host: string;
  /** Absent: ssh (and ~/.ssh/config) decides. */
  port?: number;
  identityFile?: string;
  knownHostsFile?: string;
  /** "Key=Value" ssh_config options; each goes to ssh as `-o VALUE`. */
  sshOptions: string[];
  /** Remote root folder; absent: the transport decides. */
  root?: string;
  /** "bundled", or an interpreter (path or version) on the host. */
  python: string;
  acceptNewHostKeys: boolean;
}

/** The keys of a target table, as written in TOML, with the TargetEntry property each sets. */
export const TARGET_KEYS = [
  ["address", "address"],
  ["port", "port"],
  ["identity_file", "identityFile"],
  ["known_hosts_file", "knownHostsFile"],
  ["ssh_options", "sshOptions"],
  ["root", "root"],
  ["python", "python"],
  ["accept_new_host_keys", "acceptNewHostKeys"],
] as const satisfies readonly (readonly [string, keyof TargetEntry])[];

/** Values a target has when no layer sets them. */
export const TARGET_DEFAULTS = {
  sshOptions: [] as string[],
  python: "bundled",
  acceptNewHostKeys: false,
} as const;

/** JSON-style quoting for names and values in messages: control characters stay visible. */
export const q = (s: string): string => JSON.stringify(s);

/** A target's dotted key as TOML would write it: targets.gpu1, targets."gpu.lab". */
export const targetKey = (name: string): string =>
  `targets.${/^[A-Za-z0-9_-]+$/.test(name) ? name : q(name)}`;
