/**
 * What a deployment changes in one environment: from the distributions it holds (read from
 * its .dist-info folders) to exactly those of the lock, an exact sync.
 */
import { normalizeName } from "../python/names.js";
import { compareVersions } from "../python/version.js";

export interface Change {
  name: string;
  from?: string;
  to?: string;
}

/** "name-1.0.dist-info" -> [normalized name, version]; undefined for other names. */
export function distInfoName(dir: string): [string, string] | undefined {
  const m = /^(.+)-([^-]+)\.dist-info$/.exec(dir);
  return m ? [normalizeName(m[1] as string), m[2] as string] : undefined;
}

/** Installs, upgrades, downgrades and removals, by name. */
export function diff(
  installed: ReadonlyMap<string, string>,
  wanted: ReadonlyMap<string, string>,
): Change[] {
  const out: Change[] = [];
  for (const [name, to] of wanted) {
    const from = installed.get(name);
    if (from !== to) out.push(from === undefined ? { name, to } : { name, from, to });
  }
  for (const [name, from] of installed) if (!wanted.has(name)) out.push({ name, from });
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** "+six 1.16.0 ^requests 2.31.0->2.32.3 v idna 3.7->3.6 -chardet 5.2.0", for summaries. */
export function describeChanges(changes: readonly Change[]): string {
  return changes
    .map((c) => {
      if (c.from === undefined) return `+${c.name} ${c.to}`;
      if (c.to === undefined) return `-${c.name} ${c.from}`;
      let up = true;
      try {
        up = compareVersions(c.to, c.from) > 0;
      } catch {
        // Not PEP 440 versions: call it an upgrade.
      }
      return `${up ? "^" : "v"}${c.name} ${c.from}->${c.to}`;
    })
    .join(" ");
}
