/**
 * Deciding which distribution provides an import, with the evidence for every decision.
 * Sources rank: the user's --pkg-mapping > declared dependencies > the environment's file
 * ownership > the index-derived map > the built-in table. Several candidates on the same
 * rank are reported as ambiguous, never silently chosen.
 */

import { lookupModule, type TopLevelMap } from "../index/top-level-map.js";
import { type InstalledDist, ownerOf } from "../python/installed.js";
import { normalizeName } from "../python/names.js";
import type { Requirement } from "../python/requirement.js";
import { knownDistributions } from "./known-mappings.js";

export type Source = "option" | "declared" | "installed" | "index" | "table";

export interface Evidence {
  source: Source;
  /** One phrase a person can check, e.g. "numpy 2.1.0 owns numpy/__init__.py in /venv/lib/...". */
  detail: string;
  /** Weak evidence: a stray tests/docs folder shipped at the top level of a wheel. */
  weak?: boolean;
}

export interface Candidate {
  /** PEP 503 normalized distribution name. */
  name: string;
  evidence: Evidence[];
  version?: string;
  declared?: Requirement;
  /** Position in the built-in table's list for this import (0 = the usual choice). */
  tableRank?: number;
}

export type Decision =
  | { kind: "chosen"; dist: Candidate; alternatives: Candidate[]; reason?: string }
  | { kind: "ambiguous"; candidates: Candidate[] }
  | { kind: "unresolved"; suggestions: string[] };

export interface MappingContext {
  /** --pkg-mapping IMPORT=NAME, keyed by import name (dotted allowed). */
  options: Map<string, string>;
  declared: Requirement[];
  /** Where declared dependencies came from, e.g. "pyproject.toml". */
  declaredFrom: Map<string, string>;
  installed?: { sysPath: string[]; dists: InstalledDist[] };
  /** Loaded lazily: reading the index costs time, and most imports never need it. */
  index?: () => Promise<TopLevelMap | undefined>;
}

function longestPrefix<T>(map: Map<string, T>, dotted: string): [string, T] | undefined {
  const parts = dotted.split(".");
  for (let k = parts.length; k > 0; k--) {
    const key = parts.slice(0, k).join(".");
    const v = map.get(key);
    if (v !== undefined) return [key, v];
  }
  return undefined;
}

function add(into: Map<string, Candidate>, name: string, e: Evidence, version?: string): void {
  const n = normalizeName(name);
  let c = into.get(n);
  if (!c) {
    c = { name: n, evidence: [] };
    into.set(n, c);
  }
  c.evidence.push(e);
  if (version && !c.version) c.version = version;
}

const RANK: Record<Source, number> = { option: 0, declared: 1, installed: 2, index: 3, table: 4 };

function bestRank(c: Candidate): number {
  return Math.min(...c.evidence.map((e) => RANK[e.source]));
}

/** Rank candidates: best source first, then the amount of independent evidence, then name. */
function rank(cands: Candidate[]): Candidate[] {
  return cands.sort(
    (a, b) =>
      bestRank(a) - bestRank(b) ||
      b.evidence.length - a.evidence.length ||
      (a.name < b.name ? -1 : 1),
  );
}

export async function decide(dotted: string, ctx: MappingContext): Promise<Decision> {
  const top = dotted.split(".")[0] as string;
  const opt = longestPrefix(ctx.options, dotted);
  if (opt) {
    const dist: Candidate = {
      name: normalizeName(opt[1]),
      evidence: [{ source: "option", detail: `--pkg-mapping ${opt[0]}=${opt[1]}` }],
    };
    return { kind: "chosen", dist, alternatives: [] };
  }

  const found = new Map<string, Candidate>();
  if (ctx.installed) {
    const owner = await ownerOf(dotted, ctx.installed.sysPath, ctx.installed.dists);
    if (owner) {
      add(
        found,
        owner.dist.name,
        {
          source: "installed",
          detail: `${owner.dist.name} ${owner.dist.version} provides ${owner.module} (${owner.file})`,
        },
        owner.dist.version,
      );
    }
  }
  const known = knownDistributions(dotted);
  if (known) {
    known.dists.forEach((d, k) => {
      add(found, d, {
        source: "table",
        detail: `built-in table: ${known.prefix} is provided by ${d}`,
      });
      const c = found.get(normalizeName(d)) as Candidate;
      c.tableRank = Math.min(c.tableRank ?? k, k);
    });
  }

  const declaredMatch = (): Candidate | undefined => {
    for (const r of ctx.declared) {
      const c = found.get(r.normalized);
      if (c || r.normalized === normalizeName(top)) {
        const cand = c ?? { name: r.normalized, evidence: [] };
        cand.evidence.unshift({
          source: "declared",
          detail: `declared in ${ctx.declaredFrom.get(r.normalized) ?? "the project"}: ${r.name}${r.specifier}`,
        });
        cand.declared = r;
        return cand;
      }
    }
    return undefined;
  };

  let decl = declaredMatch();
  const installedOwner = [...found.values()].find((c) =>
    c.evidence.some((e) => e.source === "installed"),
  );
  if (!decl && !installedOwner && ctx.index) {
    const map = await ctx.index();
    if (map) {
      const hit = lookupModule(map, dotted);
      if (hit) {
        for (const p of hit.providers) {
          const note = p.incidental ? " (as a stray top-level folder)" : "";
          const e: Evidence = {
            source: "index",
            detail: `the index's ${p.wheel} contains ${hit.prefix}${note}`,
          };
          if (p.incidental) e.weak = true;
          add(found, p.project, e);
        }
      }
      decl = declaredMatch();
    }
  }
  if (decl)
    return {
      kind: "chosen",
      dist: decl,
      alternatives: [...found.values()].filter((c) => c !== decl),
    };
  if (installedOwner) {
    return {
      kind: "chosen",
      dist: installedOwner,
      alternatives: [...found.values()].filter((c) => c !== installedOwner),
    };
  }

  const all = rank([...found.values()]);
  if (all.length === 0) return { kind: "unresolved", suggestions: [] };
  const indexed = all.filter((c) => c.evidence.some((e) => e.source === "index" && !e.weak));
  if (indexed.length === 1) {
    return {
      kind: "chosen",
      dist: indexed[0] as Candidate,
      alternatives: all.filter((c) => c !== indexed[0]),
    };
  }
  if (indexed.length > 1) {
    // Tie-break only on independent evidence: the table's usual choice, or the project named exactly as the import.
    const usual = Math.min(...indexed.map((c) => c.tableRank ?? Number.POSITIVE_INFINITY));
    const backed = indexed.filter(
      (c) => (c.tableRank !== undefined && c.tableRank === usual) || c.name === normalizeName(top),
    );
    if (backed.length === 1) {
      const dist = backed[0] as Candidate;
      return {
        kind: "chosen",
        dist,
        alternatives: indexed.filter((c) => c !== dist),
        reason:
          dist.name === normalizeName(top)
            ? "named like the import"
            : "the usual choice in the built-in table",
      };
    }
    return { kind: "ambiguous", candidates: indexed };
  }
  const table = all.filter((c) => c.evidence.some((e) => e.source === "table"));
  if (table.length >= 1) {
    const dist = table[0] as Candidate;
    return table.length === 1
      ? { kind: "chosen", dist, alternatives: [] }
      : {
          kind: "chosen",
          dist,
          alternatives: table.slice(1),
          reason: "the usual choice in the built-in table",
        };
  }
  return { kind: "ambiguous", candidates: all };
}

/** Close names for an unresolved import: edit distance, or one name containing the other. */
export function suggest(name: string, known: Iterable<string>, limit = 5): string[] {
  const want = normalizeName(name);
  const scored: [number, string][] = [];
  for (const k of known) {
    const n = normalizeName(k);
    const d = editDistance(want, n, 3);
    if (d <= 2 || (want.length >= 4 && (n.includes(want) || want.includes(n)) && n.length >= 3)) {
      scored.push([d, k]);
    }
  }
  scored.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1));
  return [...new Set(scored.map((s) => s[1]))].slice(0, limit);
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > cap) return cap + 1;
    prev = cur;
  }
  return prev[b.length] as number;
}
