/**
 * Scripts in an environment's bin/: launchers for entry points (the entry points spec's
 * console_scripts and gui_scripts) and `#!python` scripts from a wheel's `.data/scripts`.
 *
 * Both run the `python` that sits in the script's own (resolved) directory, so the environment
 * keeps working when moved, and the 127-byte shebang limit and spaces in the path do not
 * matter. Most start with a header that is a shell script to /bin/sh and a string literal to
 * Python; a script whose first statement matters to Python gets a one-line header instead.
 */
import { UserError } from "../util/errors.js";

/**
 * Line 2 runs the `python` beside the script, resolved through symlinks where `realpath`
 * exists and else as invoked, using nothing else outside the shell; to Python, lines 2-3
 * are one string literal.
 */
const EXEC_LINE =
  `'''exec' "$(d=$(realpath -- "$0" 2>/dev/null) || d=$0; printf %s "\${d%/*}")/python"` +
  ` "$0" "$@"\n' '''\n`;

/** The relocatable header, with a source-encoding declaration on line 2 when one is needed. */
export function relocatableHeader(coding?: string): string {
  const cookie = coding ? `# -*- coding: ${coding} -*-\n` : "";
  return `#!/bin/sh\n${cookie}${EXEC_LINE}`;
}

/** An entry point's object reference, `module.path:attr.path`. */
export interface EntryPoint {
  name: string;
  module: string;
  attr: string;
}

export interface ScriptEntryPoints {
  console: EntryPoint[];
  gui: EntryPoint[];
}

const DOTTED = /^[\p{L}_][\p{L}\p{N}_]*(?:\.[\p{L}_][\p{L}\p{N}_]*)*$/u;

/** An interpreter's name in an environment's scripts folder (python3.13t too), any case. */
export const INTERPRETER_NAME = /^python(\d+(\.\d+)*t?)?$/i;

/**
 * The entry point `name = value` (`module:attr`, extras in brackets after it ignored, as they
 * are for the installer to check); `bad` throws, saying why it is not one.
 */
export function readEntryPoint(
  name: string,
  value: string,
  bad: (why: string) => never,
): EntryPoint {
  const ref = value.replace(/\[[^\]]*\]\s*$/, "").trim();
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name))
    bad("the name is not a file name");
  const colon = ref.indexOf(":");
  if (colon < 0) bad("a script needs a callable after a colon");
  const module = ref.slice(0, colon).trim();
  const attr = ref.slice(colon + 1).trim();
  if (!DOTTED.test(module) || !DOTTED.test(attr)) bad("the reference is not module:attribute");
  return { name, module, attr };
}

/** Throws a UserError naming `source` (the wheel) when the text is malformed. */
export function parseEntryPoints(text: string, source: string): ScriptEntryPoints {
  const result: ScriptEntryPoints = { console: [], gui: [] };
  let section: EntryPoint[] | undefined;
  let sectionName = "";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      sectionName = (header[1] as string).trim();
      section =
        sectionName === "console_scripts"
          ? result.console
          : sectionName === "gui_scripts"
            ? result.gui
            : undefined;
      continue;
    }
    if (!section) continue;
    const eq = line.indexOf("=");
    const bad = (why: string): never => {
      throw new UserError(`${source} has an invalid ${sectionName} entry "${line}": ${why}.`);
    };
    if (eq <= 0) bad('it is not "name = module:attribute"');
    section.push(readEntryPoint(line.slice(0, eq).trim(), line.slice(eq + 1), bad));
  }
  return result;
}

/**
 * The launcher script for an entry point; it names nothing that could clash with the target.
 * A packed project's own scripts pass `appRoots`: a bundle does not install the project, so
 * before the import the launcher puts the bundle's app folders (relative to its own resolved
 * folder, in order) on sys.path after the script's folder, where PYTHONPATH would have put
 * them (`pyferry exec` has put them there already).
 */
export function launcherScript(ep: EntryPoint, appRoots: readonly string[] = []): string {
  const paths =
    appRoots.length === 0
      ? ""
      : "    import os\n" +
        "    here = os.path.dirname(os.path.realpath(__file__))\n" +
        `    for at, root in enumerate(${JSON.stringify(appRoots)}):\n` +
        "        root = os.path.normpath(os.path.join(here, root))\n" +
        "        if root not in sys.path:\n" +
        "            sys.path.insert(1 + at, root)\n";
  return (
    relocatableHeader() +
    "import importlib\n" +
    "import sys\n" +
    'if __name__ == "__main__":\n' +
    paths +
    `    sys.exit(importlib.import_module(${JSON.stringify(ep.module)}).${ep.attr}())\n`
  );
}

const CODING = /^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)/;

/**
 * The one-line header: a shebang that Python reads as a comment. It needs an `env` that takes
 * -S (GNU coreutils 8.30 and later, the BSDs, macOS); `$` inside single quotes is left to sh.
 */
export const ONE_LINE_HEADER =
  `#!/usr/bin/env -S sh -c 'd=$(realpath -- "$0" 2>/dev/null) || d=$0;` +
  ` exec "\${d%/*}/python" "$0" "$@"'\n`;

/**
 * Whether the script's first statement would stop being first under the two-line header: a
 * docstring (which then would no longer be `__doc__`) or a `from __future__` import (which
 * then would be a syntax error).
 */
function firstStatementMatters(body: string): boolean {
  for (const line of body.split("\n")) {
    const text = line.trim();
    if (text === "" || text.startsWith("#")) continue;
    return /^\(*\s*[rRuUbBfF]{0,2}["']/.test(text) || /^from\s+__future__\b/.test(text);
  }
  return false;
}

/**
 * A `.data/scripts` file whose first line starts with `#!python` (`#!pythonw` too), with that
 * line replaced by a relocatable header; undefined for any other file. A source-encoding
 * declaration on its first two lines is kept where Python still sees it.
 */
export function rewriteScript(data: Buffer): Buffer | undefined {
  if (!data.subarray(0, 8).equals(Buffer.from("#!python"))) return undefined;
  const eol = data.indexOf(10);
  const first = data.subarray(0, eol < 0 ? data.length : eol).toString("latin1");
  const rest = eol < 0 ? Buffer.alloc(0) : data.subarray(eol + 1);
  const eol2 = rest.indexOf(10);
  const second = rest.subarray(0, eol2 < 0 ? rest.length : eol2).toString("latin1");
  const firstCoding = CODING.exec(first.slice(8))?.[1];
  const coding = firstCoding ?? CODING.exec(second)?.[1];
  const utf8 = coding === undefined || /^utf[-_]?8$/i.test(coding);
  if (!firstStatementMatters(rest.toString("latin1"))) {
    return Buffer.concat([Buffer.from(relocatableHeader(utf8 ? undefined : coding)), rest]);
  }
  // Only line 1 changes, as with an absolute shebang; a declaration that was on it moves to
  // line 2, where it still counts.
  const cookie = firstCoding && !utf8 ? `# -*- coding: ${firstCoding} -*-\n` : "";
  return Buffer.concat([Buffer.from(ONE_LINE_HEADER + cookie), rest]);
}
