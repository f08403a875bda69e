/**
 * Dependencies the author already declared: a PEP 723 block in the script, `[project]` in
 * pyproject.toml, a requirements.txt beside the code. Declared names win over inference.
 */
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { parseRequirement, parseRequirementsTxt, type Requirement } from "../python/requirement.js";
import { isValidSpecifier } from "../python/version.js";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";
import { readScriptMetadata } from "./pep723.js";

export interface Declared {
  requirements: Requirement[];
  /** Normalized name -> the file that declared it. */
  from: Map<string, string>;
  requiresPython?: { spec: string; source: string };
  warnings: string[];
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new UserError(`Cannot read ${path} (${whyUnreadable(err)}).`);
  }
}

function addRequirement(d: Declared, text: string, source: string): void {
  let r: Requirement;
  try {
    r = parseRequirement(text);
  } catch (err) {
    d.warnings.push(`${source}: skipped '${text}': ${(err as Error).message}`);
    return;
  }
  if (!d.from.has(r.normalized)) {
    d.requirements.push(r);
    d.from.set(r.normalized, source);
  }
}

function setRequiresPython(d: Declared, spec: unknown, source: string): void {
  if (spec === undefined || d.requiresPython) return;
  if (typeof spec !== "string" || !isValidSpecifier(spec)) {
    throw new UserError(
      `${source}: requires-python must be a version specifier such as ">=3.9", not ${JSON.stringify(spec)}.`,
    );
  }
  d.requiresPython = { spec, source };
}

/** A pyproject.toml's text as a table; malformed TOML is one sentence naming the place. */
export function parsePyproject(text: string, path: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : "";
    const first = ((err as Error).message.split("\n")[0] ?? "").replace(/\.$/, "");
    throw new UserError(`${path} is not valid TOML${where}: ${first}.`);
  }
}

/** `[project]` of a pyproject.toml; a malformed file is an error, not a warning. */
async function readPyproject(d: Declared, dir: string, root: string): Promise<void> {
  const path = join(dir, "pyproject.toml");
  const text = await readOptional(path);
  if (text === undefined) return;
  const name = relative(root, path) || "pyproject.toml";
  const doc = parsePyproject(text, path);
  const project = doc.project;
  if (project === undefined) return;
  if (typeof project !== "object" || project === null || Array.isArray(project)) {
    throw new UserError(`${path}: [project] must be a table.`);
  }
  const p = project as Record<string, unknown>;
  const deps = p.dependencies;
  if (deps !== undefined) {
    if (!Array.isArray(deps) || deps.some((x) => typeof x !== "string")) {
      throw new UserError(`${path}: [project] dependencies must be a list of strings.`);
    }
    for (const dep of deps as string[]) addRequirement(d, dep, name);
  }
  setRequiresPython(d, p["requires-python"], name);
}

async function readRequirementsTxt(d: Declared, dir: string, root: string): Promise<void> {
  const path = join(dir, "requirements.txt");
  const text = await readOptional(path);
  if (text === undefined) return;
  const name = relative(root, path) || "requirements.txt";
  const parsed = parseRequirementsTxt(text);
  for (const r of parsed.requirements) {
    if (!d.from.has(r.normalized)) {
      d.requirements.push(r);
      d.from.set(r.normalized, name);
    }
  }
  for (const e of parsed.errors)
    d.warnings.push(`${name} line ${e.line}: skipped '${e.text}': ${e.message}`);
  for (const inc of parsed.includes)
    d.warnings.push(
      `${name}: '-r/-c ${inc}' is not followed; declare those dependencies directly.`,
    );
}

/**
 * Gather declarations. `script` is the script's source when analyzing one file (for its PEP
 * 723 block); `dir` is where pyproject.toml and requirements.txt are looked for.
 */
export async function readDeclared(
  dir: string,
  root: string,
  script?: { path: string; text: string },
  extra: { requirements: string[]; source: string }[] = [],
): Promise<Declared> {
  const d: Declared = { requirements: [], from: new Map(), warnings: [] };
  if (script) {
    let meta: ReturnType<typeof readScriptMetadata>;
    try {
      meta = readScriptMetadata(script.text);
    } catch (err) {
      // The parser knows no file name; say which script it was.
      throw new UserError(`${script.path}: ${(err as Error).message}`);
    }
    if (meta) {
      const src = `the script's '# /// script' block (${relative(root, script.path) || script.path})`;
      for (const dep of meta.dependencies) addRequirement(d, dep, src);
      setRequiresPython(d, meta.requiresPython, src);
    }
  }
  for (const e of extra) for (const r of e.requirements) addRequirement(d, r, e.source);
  await readPyproject(d, dir, root);
  await readRequirementsTxt(d, dir, root);
  return d;
}
