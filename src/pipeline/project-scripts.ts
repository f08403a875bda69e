/**
 * A project's own scripts (`[project.scripts]` and `[project.gui-scripts]` of its
 * pyproject.toml), which a bundle gives launchers although it does not install the project.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePyproject } from "../analyze/declared.js";
import { type EntryPoint, parseEntryPoints } from "../install/scripts.js";
import { UserError } from "../util/errors.js";

/** The project's scripts, console and GUI alike (on POSIX both are the same launcher). */
export function projectScripts(dir: string): EntryPoint[] {
  const path = join(dir, "pyproject.toml");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const project = parsePyproject(text, path).project;
  if (typeof project !== "object" || project === null) return [];
  const lines: string[] = [];
  for (const [key, section] of [
    ["scripts", "console_scripts"],
    ["gui-scripts", "gui_scripts"],
  ] as const) {
    const table = (project as Record<string, unknown>)[key];
    if (table === undefined) continue;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new UserError(`${path}: [project.${key}] must be a table of "name = module:function".`);
    }
    lines.push(`[${section}]`);
    for (const [name, value] of Object.entries(table)) {
      if (typeof value !== "string" || name.includes("=") || /[\r\n]/.test(name + value)) {
        throw new UserError(
          `${path}: [project.${key}] ${JSON.stringify(name)} must be a string "module:function".`,
        );
      }
      lines.push(`${name} = ${value}`);
    }
  }
  const scripts = parseEntryPoints(lines.join("\n"), path);
  return [...scripts.console, ...scripts.gui];
}
