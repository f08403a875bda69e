/**
 * The cloudpy seed's configuration: /etc/cloudpy.conf, ~/.cloudpy.conf and ./cloudpy.conf, in
 * that order, each a Python dict literal; a later file's keys replace an earlier file's. The
 * files are parsed as data (py-literal.ts), never run.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { UserError } from "../util/errors.js";
import { type PyKey, type PyValue, parsePythonDict } from "./py-literal.js";
import { readIfExists } from "./read.js";
import { q } from "./types.js";

export interface CloudpyLoadOptions {
  /** Folder of ./cloudpy.conf; default: process.cwd(). */
  cwd?: string;
  /** Folder of ~/.cloudpy.conf; default: the user's home. */
  home?: string;
  /** Default: /etc/cloudpy.conf. */
  etcFile?: string;
}

export interface CloudpyConfig {
  /** SSH destination of the remote host, "user@address". */
  host?: string;
  /** Folder on the host where cloudpy keeps its files. */
  depository?: string;
  /** The host's path separator, "/" nearly always. */
  hostSep?: string;
  /** Keys cloudpy does not know, kept as read (the last file's value wins). */
  extra: Map<PyKey, PyValue>;
  /** Which file set each known key (by its cloudpy name: host, depository, host_sep). */
  sources: { host?: string; depository?: string; host_sep?: string };
  /** The files that were read, in order. */
  files: string[];
}

const KNOWN = { host: "host", depository: "depository", host_sep: "hostSep" } as const;

export function loadCloudpyConfig(opts: CloudpyLoadOptions = {}): CloudpyConfig {
  const cwd = resolve(opts.cwd ?? process.cwd());
  const home = resolve(opts.home ?? homedir());
  const candidates = [
    resolve(opts.etcFile ?? "/etc/cloudpy.conf"),
    join(home, ".cloudpy.conf"),
    join(cwd, "cloudpy.conf"),
  ];
  const config: CloudpyConfig = { extra: new Map(), sources: {}, files: [] };
  for (const file of candidates) {
    const text = readIfExists(file);
    if (text === undefined) continue;
    config.files.push(file);
    for (const [key, value] of parsePythonDict(text, file)) {
      if (typeof key === "string" && Object.hasOwn(KNOWN, key)) {
        const known = key as keyof typeof KNOWN;
        if (typeof value !== "string") {
          throw new UserError(`${file}: the value of ${q(key)} must be a string.`);
        }
        config[KNOWN[known]] = value;
        config.sources[known] = file;
      } else {
        config.extra.set(key, value);
      }
    }
  }
  return config;
}
