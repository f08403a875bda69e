import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../util/package-root.js";

function tablesDir(): string {
  return join(packageRoot(), "data", "stdlib");
}

const tables = new Map<string, Set<string> | undefined>();

/**
 * Top-level standard-library module names of a Python version ("3.11" or "3.11.7"), for every
 * platform, or undefined when pyferry ships no table for it.
 */
export function stdlibTable(pythonVersion: string): Set<string> | undefined {
  const m = /^(\d+)\.(\d+)(?:\.|$)/.exec(pythonVersion);
  if (!m) return undefined;
  const key = `${m[1]}.${m[2]}`;
  if (tables.has(key)) return tables.get(key);
  let table: Set<string> | undefined;
  try {
    const names = JSON.parse(readFileSync(join(tablesDir(), `${key}.json`), "utf8")) as string[];
    table = new Set(names);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  tables.set(key, table);
  return table;
}

/**
 * Whether an absolute import of `dotted` resolves to the standard library: its top-level name is in
 * the table, or is a dunder name such as `__main__` or `__future__`, which no distribution provides.
 */
export function isStdlibModule(dotted: string, table: Set<string>): boolean {
  const top = dotted.split(".")[0] ?? "";
  return table.has(top) || /^__\w+__$/.test(top);
}

/** The versions with a shipped table, oldest first ("3.8", ..., "3.14"). */
export function knownStdlibVersions(): string[] {
  return readdirSync(tablesDir())
    .map((name) => /^(\d+\.\d+)\.json$/.exec(name)?.[1])
    .filter((v): v is string => v !== undefined)
    .sort((a, b) => {
      const [am, an] = a.split(".").map(Number) as [number, number];
      const [bm, bn] = b.split(".").map(Number) as [number, number];
      return am - bm || an - bn;
    });
}
