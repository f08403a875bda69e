/**
 * A project's own scripts (`[project.scripts]` and `[project.gui-scripts]` of its
 * pyproject.toml), which a bundle gives launchers although it does not install the project.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePyproject } from "../analyze/declared.js";
import { ACTIVATE_SCRIPTS } from "../install/activate.js";
import { type EntryPoint, INTERPRETER_NAME, readEntryPoint } from "../install/scripts.js";
import { UserError } from "../util/errors.js";

/** Names a script may not take in a bundle's env/bin: the environment's own files there. */
const OWN_SCRIPTS = new Set(
  ["pyvenv.cfg", ...Object.keys(ACTIVATE_SCRIPTS)].map((n) => n.toLowerCase()),
);

/**
 * The project's scripts, console and GUI alike (on POSIX both are the same launcher). Every
 * entry is checked: a malformed one, a name in both tables, or a name the environment's own
 * files have (its interpreter, its activation scripts) is refused in a sentence.
 */
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
  const found = new Map<string, { ep: EntryPoint; table: string }>();
  for (const key of ["scripts", "gui-scripts"]) {
    const table = (project as Record<string, unknown>)[key];
    if (table === undefined) continue;
    const at = `[project.${key}]`;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new UserError(`${path}: ${at} must be a table of "name = module:function".`);
    }
    for (const [name, value] of Object.entries(table)) {
      const bad = (why: string): never => {
        throw new UserError(`${path}: ${at} ${JSON.stringify(name)} is invalid: ${why}.`);
      };
      if (typeof value !== "string") bad('its value is not a string "module:function"');
      if (name !== name.trim()) bad("the name starts or ends with a space");
      const ep = readEntryPoint(name, value as string, bad);
      if (INTERPRETER_NAME.test(name) || OWN_SCRIPTS.has(name.toLowerCase())) {
        bad(`it would replace the environment's own bin/${name}`);
      }
      const twice = found.get(name);
      if (twice) bad(`${twice.table} has a script of that name too`);
      found.set(name, { ep, table: at });
    }
  }
  return [...found.values()].map((f) => f.ep);
}
