/**
 * A project's optional dependency sets in pyproject.toml: its extras
 * (`[project.optional-dependencies]`) and its dependency groups (`[dependency-groups]`, PEP
 * 735), each expanded into plain requirements: an extra naming the project itself
 * (`all = ["demo[web,cli]"]`) takes those extras' requirements, a group's `{include-group}`
 * takes that group's.
 */
import { UserError } from "../util/errors.js";
import { isTable, type Table } from "../util/toml-table.js";
import type { Marker } from "./marker.js";
import { normalizeName } from "./names.js";
import { parseRequirement, type Requirement } from "./requirement.js";

export interface DependencySets {
  /** Normalized extra name -> its requirements, as written. */
  extras: Map<string, string[]>;
  /** Normalized group name -> its entries, as written. */
  groups: Map<string, (string | { includeGroup: string })[]>;
  /** The project's normalized name, for self-references; absent without [project] name. */
  project?: string;
  /** The file, for messages. */
  path: string;
}

function fail(path: string, reason: string, exitCode = 1): never {
  throw new UserError(`${path}: ${reason}.`, exitCode);
}

/** Both tables of a parsed pyproject.toml, checked for shape (names must differ once normalized). */
export function readDependencySets(doc: Table, path: string): DependencySets {
  const sets: DependencySets = { extras: new Map(), groups: new Map(), path };
  const project = doc.project;
  if (isTable(project)) {
    if (typeof project.name === "string") sets.project = normalizeName(project.name);
    const optional = project["optional-dependencies"];
    if (optional !== undefined) {
      if (!isTable(optional)) fail(path, "[project.optional-dependencies] must be a table");
      for (const [name, reqs] of Object.entries(optional)) {
        if (!Array.isArray(reqs) || reqs.some((r) => typeof r !== "string")) {
          fail(path, `the extra '${name}' must be a list of requirement strings`);
        }
        const key = normalizeName(name);
        if (sets.extras.has(key)) fail(path, `two extras are named '${key}' once normalized`);
        sets.extras.set(key, reqs as string[]);
      }
    }
  }
  const groups = doc["dependency-groups"];
  if (groups !== undefined) {
    if (!isTable(groups)) fail(path, "[dependency-groups] must be a table");
    for (const [name, entries] of Object.entries(groups)) {
      if (!Array.isArray(entries)) fail(path, `the dependency group '${name}' must be a list`);
      const key = normalizeName(name);
      if (sets.groups.has(key))
        fail(path, `two dependency groups are named '${key}' once normalized`);
      sets.groups.set(
        key,
        entries.map((e) => {
          if (typeof e === "string") return e;
          if (isTable(e) && Object.keys(e).length === 1 && typeof e["include-group"] === "string") {
            return { includeGroup: e["include-group"] };
          }
          return fail(
            path,
            `the dependency group '${name}' holds ${JSON.stringify(e)}, which is neither a requirement string nor {include-group = "NAME"}`,
          );
        }),
      );
    }
  }
  return sets;
}

/** ": it has a, b" or ": it has none", for a message about a name that is not there. */
function offered(names: Map<string, unknown>): string {
  return names.size > 0 ? ` (it has ${[...names.keys()].sort().join(", ")})` : " (it has none)";
}

function parseIn(sets: DependencySets, text: string, where: string): Requirement {
  try {
    return parseRequirement(text);
  } catch (err) {
    return fail(sets.path, `${where} holds '${text}', ${(err as Error).message}`);
  }
}

/** `r` also under `outer` (a self-reference's marker), when there is one. */
function within(r: Requirement, outer: Marker | undefined): Requirement {
  if (!outer) return r;
  return { ...r, marker: r.marker ? { kind: "and", items: [r.marker, outer] } : outer };
}

/** The requirements an extra adds, self-references to the project's other extras expanded. */
export function extraRequirements(sets: DependencySets, extra: string): Requirement[] {
  const out: Requirement[] = [];
  const expand = (name: string, outer: Marker | undefined, seen: Set<string>): void => {
    const reqs = sets.extras.get(name);
    if (!reqs) fail(sets.path, `the project has no extra '${name}'${offered(sets.extras)}`, 2);
    for (const text of reqs) {
      const r = parseIn(sets, text, `the extra '${name}'`);
      const here = within(r, outer);
      if (sets.project !== undefined && r.normalized === sets.project && r.url === undefined) {
        for (const inner of r.extras.map(normalizeName)) {
          if (!seen.has(inner)) expand(inner, here.marker, new Set([...seen, inner]));
        }
        continue;
      }
      out.push(here);
    }
  };
  expand(normalizeName(extra), undefined, new Set([normalizeName(extra)]));
  return out;
}

/** A group's requirements, included groups expanded; a cycle of inclusions is refused. */
export function groupRequirements(sets: DependencySets, group: string): Requirement[] {
  const out: Requirement[] = [];
  const expand = (name: string, path: string[]): void => {
    const entries = sets.groups.get(name);
    if (!entries && path.length > 1) {
      fail(
        sets.path,
        `the dependency group '${path.at(-2)}' includes '${name}', which it does not define`,
      );
    }
    if (!entries) {
      fail(sets.path, `the project has no dependency group '${name}'${offered(sets.groups)}`, 2);
    }
    for (const e of entries) {
      if (typeof e === "string") {
        out.push(parseIn(sets, e, `the dependency group '${name}'`));
        continue;
      }
      const inner = normalizeName(e.includeGroup);
      if (path.includes(inner)) {
        fail(
          sets.path,
          `the dependency groups include each other in a cycle (${[...path, inner].join(" -> ")})`,
        );
      }
      expand(inner, [...path, inner]);
    }
  };
  const start = normalizeName(group);
  expand(start, [start]);
  return out;
}
