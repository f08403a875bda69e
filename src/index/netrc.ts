/**
 * ~/.netrc (or $NETRC) credentials for private indexes, as pip (through requests) uses them
 * when a URL carries none: `machine HOST login USER password PASS`, or a `default` entry.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface NetrcEntry {
  login: string;
  password: string;
}

/** Parse netrc text: whitespace-separated tokens; `macdef` bodies (up to a blank line) skipped. */
export function parseNetrc(text: string): Map<string, NetrcEntry> {
  const out = new Map<string, NetrcEntry>();
  const lines = text.split(/\r?\n/);
  const tokens: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/(^|\s)#.*$/, "");
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words[0] === "macdef") {
      while (i + 1 < lines.length && (lines[i + 1] as string).trim() !== "") i++;
      continue;
    }
    tokens.push(...words);
  }
  let machine: string | undefined;
  let entry: NetrcEntry | undefined;
  const flush = () => {
    if (machine !== undefined && entry) out.set(machine, entry);
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t === "machine" || t === "default") {
      flush();
      machine = t === "default" ? "" : tokens[++k];
      entry = { login: "", password: "" };
    } else if (entry && (t === "login" || t === "password" || t === "account")) {
      const v = tokens[++k] ?? "";
      if (t === "login") entry.login = v;
      else if (t === "password") entry.password = v;
    }
  }
  flush();
  return out;
}

let cached: Map<string, NetrcEntry> | null | undefined;

/** Credentials for `host` from $NETRC or ~/.netrc (a `default` entry applies to any host). */
export function netrcFor(
  host: string,
  env: NodeJS.ProcessEnv = process.env,
): NetrcEntry | undefined {
  if (cached === undefined) {
    try {
      cached = parseNetrc(readFileSync(env.NETRC ?? join(homedir(), ".netrc"), "utf8"));
    } catch {
      cached = null;
    }
  }
  return cached?.get(host) ?? cached?.get("");
}
