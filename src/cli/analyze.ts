/** `pyferry analyze`: what a Python program needs, found without running it. */

import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
// The analyzer is loaded when a command runs, not at start-up: `pyferry run` must start fast.
import type { AnalysisReport, AnalyzeOptions } from "../analyze/analyze.js";
import { buildSpec, installable, requirementsTxt, specJson } from "../analyze/spec.js";
import { type IndexSettings, loadPipSettings, withOverrides } from "../index/pip-config.js";
import { UserError } from "../util/errors.js";
import { inputAt, planOutput, sameName, writeOutputFile } from "../util/output-file.js";
import { type Progress, progress } from "../util/progress.js";
import { collect } from "./options.js";
import { type Colors, out, warn, writeJson } from "./output.js";

export interface AnalyzeFlags {
  toplevel?: boolean;
  function?: string;
  pkgMapping?: string[];
  python?: string;
  venv?: string;
  indexUrl?: string;
  extraIndexUrl?: string[];
  findLinks?: string[];
  index: boolean;
  guessFiles?: boolean;
  output?: string;
  format?: string;
  json?: boolean;
  includeOptional?: boolean;
  name?: string;
}

export function parsePkgMappings(values: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const v of values) {
    const m = /^\s*([A-Za-z_][\w.]*)\s*=\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*$/.exec(v);
    if (!m)
      throw new UserError(
        `--pkg-mapping expects IMPORT=NAME (e.g. cv2=opencv-python), not '${v}'.`,
        2,
      );
    map.set(m[1] as string, m[2] as string);
  }
  return map;
}

/** The `# /// script` block of a source, or "" (for the ASCII check of non-UTF-8 files). */
function blockOf(text: string): string {
  return /^# \/\/\/ script$[\s\S]*?^# \/\/\/$/m.exec(text)?.[0] ?? "";
}

/** --pkg-mapping entries that decided nothing, and why: a mapping is never silently dropped. */
function unusedMappings(mappings: Map<string, string>, report: AnalysisReport): string[] {
  const used = new Set(
    [...report.requirements, ...report.ambiguous.map((a) => ({ imports: [a.import] }))].flatMap(
      (r) => r.imports.map((i) => i.split(".")[0] as string),
    ),
  );
  const locals = new Set(report.local_files.map((f) => f.split("/")[0]?.replace(/\.py$/, "")));
  const out: string[] = [];
  for (const [name, dist] of mappings) {
    const top = name.split(".")[0] as string;
    if (used.has(top)) continue;
    const why = report.stdlib.some((m) => m.split(".")[0] === top)
      ? `${top} is in the standard library`
      : locals.has(top)
        ? `${top} is a local module here, which Python imports first`
        : `nothing here imports ${top} (import names are case-sensitive)`;
    out.push(`--pkg-mapping ${name}=${dist} was not used: ${why}.`);
  }
  return out;
}

export function analyzeOptions(flags: AnalyzeFlags): AnalyzeOptions {
  const opts: AnalyzeOptions = { pkgMapping: parsePkgMappings(flags.pkgMapping ?? []) };
  if (flags.toplevel) opts.toplevel = true;
  if (flags.function) opts.function = flags.function;
  if (flags.toplevel && flags.function)
    throw new UserError("--toplevel and --function exclude each other; pick one.", 2);
  if (flags.python) opts.python = flags.python;
  if (flags.venv) opts.venv = flags.venv;
  if (flags.guessFiles) opts.guessFiles = true;
  // --no-index leaves find-links (the command line's or pip's) as the only source, as in pip.
  if (flags.index !== undefined) {
    const settings = indexSettings(flags);
    if (flags.index || settings.findLinks.length > 0) opts.index = settings;
  }
  return opts;
}

/** pip's configuration with the index flags of the command line on top. */
export function indexSettings(flags: AnalyzeFlags): IndexSettings {
  return withOverrides(loadPipSettings(), {
    ...(flags.indexUrl ? { indexUrl: flags.indexUrl } : {}),
    ...(flags.extraIndexUrl ? { extraIndexUrls: flags.extraIndexUrl } : {}),
    ...(flags.findLinks ? { findLinks: flags.findLinks } : {}),
    ...(flags.index === false ? { noIndex: true } : {}),
  });
}

/**
 * Run an analysis with a progress line for the slow part (reading the index the first time):
 * on `show.status`, the caller's own, else on a line of its own unless `show.quiet` (--json).
 */
export async function runAnalysis(
  input: string,
  opts: AnalyzeOptions,
  show: { status?: Progress; quiet?: boolean } = {},
): Promise<AnalysisReport> {
  const { analyze } = await import("../analyze/analyze.js");
  const bar = show.status ?? progress(process.stderr, show.quiet === true);
  try {
    return await analyze(input, { ...opts, onProgress: (m, d, t) => bar.update(m, d, t) });
  } finally {
    if (!show.status) bar.done();
  }
}

/**
 * Refuse an output that would replace the analyzed program or one of its local modules, before
 * anything is written; `allowScript` allows the script itself (a pep723 block updated in place).
 */
export function refuseAnalyzedOutput(
  output: string,
  path: string,
  report: AnalysisReport,
  allowScript = false,
  flag = "-o ",
): void {
  const root = statSync(path).isDirectory() ? path : dirname(path);
  const files = [path, ...report.local_files.map((f) => resolve(root, f))];
  const own = inputAt(output, files);
  if (own === undefined || (allowScript && inputAt(own, [path]) !== undefined)) return;
  throw new UserError(
    `${flag}${output} is ${sameName(output, own)}a file being analyzed; write the result elsewhere.`,
    2,
  );
}

/**
 * The analysis options; `pack` uses the interpreter and the sources to lock and build too, and
 * its help says so.
 */
export function addAnalyzeOptions(cmd: Command, use: "analyze" | "pack" = "analyze"): Command {
  const pack = use === "pack";
  return cmd
    .option("--toplevel", "only imports at the top level of the script (not inside functions)")
    .option("--function <name>", "only imports inside this function (or Class.method)")
    .option(
      "--pkg-mapping <import=name>",
      "the module imported as IMPORT comes from distribution NAME (repeatable)",
      collect,
    )
    .option(
      "--python <version|path>",
      pack
        ? "interpreter to analyze, lock and build for, e.g. 3.11 or /usr/bin/python3 (default: the active one)"
        : "interpreter to analyze for, e.g. 3.11 or /usr/bin/python3 (default: the active one)",
    )
    .option(
      "--venv <dir>",
      pack
        ? "map imports by the distributions installed in this virtual environment"
        : "read installed distributions from this virtual environment",
    )
    .option(
      "--index-url <url>",
      pack
        ? "package index for mapping imports, locking and building (default: pip's configuration)"
        : "package index to map imports with (default: pip's configuration)",
    )
    .option("--extra-index-url <url>", "extra package index (repeatable)", collect)
    .option("--find-links <path|url>", "folder or page of distribution files (repeatable)", collect)
    .option("--no-index", "do not consult any package index (find-links only)")
    .option(
      "-f, --guess-files",
      pack
        ? "pack the existing files the program names in string literals too"
        : "list string literals that name existing files as data files",
    );
}

function summary(r: AnalysisReport, c: Colors): string {
  const lines: string[] = [];
  const py = r.python.version ? `Python ${r.python.version}` : "Python (no interpreter found)";
  lines.push(
    `${c.bold(r.input)} ${c.dim(`(${r.kind}, ${py}${r.python.requires ? `, requires ${r.python.requires}` : ""})`)}`,
  );
  const main = installable(r);
  lines.push("", c.bold(`Requirements (${main.length})`));
  if (main.length === 0) lines.push(c.dim("  none beyond the standard library"));
  const width = Math.min(40, Math.max(0, ...r.requirements.map((x) => x.requirement.length)));
  for (const q of main) {
    const from = q.provenance[0];
    const lazy = q.lazy ? c.dim(" (only inside functions)") : "";
    const why = `${q.imports.join(", ") || "-"}${lazy}  ${c.dim(from ? `${from.source}: ${from.detail}` : "")}`;
    lines.push(`  ${c.green(q.requirement.padEnd(width))}  ${why}`);
  }
  const optional = r.requirements.filter((q) => q.optional);
  if (optional.length > 0) {
    lines.push("", c.bold("Optional (guarded by try/except ImportError; not included)"));
    for (const q of optional)
      lines.push(`  ${q.requirement.padEnd(width)}  ${q.imports.join(", ")}`);
  }
  const dev = r.requirements.filter((q) => q.dev && !q.optional);
  if (dev.length > 0) {
    lines.push("", c.bold("Test-only (imported only by test files; not included)"));
    for (const q of dev) lines.push(`  ${q.requirement.padEnd(width)}  ${q.imports.join(", ")}`);
  }
  if (r.ambiguous.length > 0) {
    lines.push("", c.bold(c.yellow("Ambiguous")));
    for (const a of r.ambiguous) {
      const names = a.candidates.map((x) => x.name).join(", ");
      lines.push(
        a.chosen
          ? `  ${a.import}: chose ${a.chosen} (${a.reason}) over ${a.candidates
              .filter((x) => x.name !== a.chosen)
              .map((x) => x.name)
              .join(", ")}`
          : `  ${a.import}: ${names} — decide with --pkg-mapping ${a.import.split(".")[0]}=NAME`,
      );
    }
  }
  if (r.unresolved.length > 0) {
    lines.push("", c.bold(c.red("Unresolved")));
    for (const u of r.unresolved) {
      const hint = u.suggestions.length ? ` — did you mean ${u.suggestions.join(", ")}?` : "";
      lines.push(`  ${u.import} (${u.files.join(", ")})${hint}`);
    }
  }
  if (r.type_checking_only.length > 0)
    lines.push("", `${c.bold("Type-checking only:")} ${r.type_checking_only.join(", ")}`);
  lines.push(
    "",
    `${c.bold("Local files:")} ${r.local_files.length}${r.data_files.length ? `   ${c.bold("Data files:")} ${r.data_files.length}` : ""}`,
  );
  return `${lines.join("\n")}\n`;
}

/** Whether `path` is a folder; a path that cannot be read is the analysis's to report. */
function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const PEP723_NEEDS_SCRIPT = () =>
  new UserError("--format pep723 needs a single script, not a folder or notebook.", 2);

export function registerAnalyze(program: Command): void {
  const cmd = program
    .command("analyze")
    .description("find what a Python script, project or notebook needs, without running it")
    .argument("<path>", "a script, a project folder, or a notebook (.ipynb)");
  addAnalyzeOptions(cmd)
    .option("-o, --output <file>", "write the result to FILE (the spec for --format json)")
    .option(
      "--format <format>",
      "json (conda-style spec), pep723 (update the script's metadata block), requirements",
    )
    .option("--json", "print the full report as JSON on stdout")
    .option("--include-optional", "also include optional (try/except ImportError) dependencies")
    .option("--name <name>", "environment name in the spec (default: the script's name)")
    .addHelpText(
      "after",
      `
Examples:
  pyferry analyze train.py                      summary of what train.py needs
  pyferry analyze train.py -o spec.json         conda-style spec for python_package_create
  pyferry analyze train.py --format pep723      write the dependencies into train.py's '# /// script' block
  pyferry analyze . --format requirements       requirements.txt for a project folder
  pyferry analyze nb.ipynb --json               machine-readable report
  pyferry analyze app.py --pkg-mapping cv2=opencv-python-headless

Exit status: 0 on success (unresolved imports are reported, not fatal), 1 on bad input, 2 on bad usage.`,
    )
    .action(async (path: string, flags: AnalyzeFlags) => {
      const format = flags.format ?? "json";
      if (!["json", "pep723", "requirements"].includes(format)) {
        throw new UserError(`--format must be json, pep723 or requirements, not '${format}'.`, 2);
      }
      if (flags.output === "") throw new UserError("-o needs a file name.", 2);
      // conda refuses these in an environment's name.
      if (flags.name !== undefined && (flags.name === "" || /[/\s:#]/.test(flags.name)))
        throw new UserError(
          `--name "${flags.name}" is not an environment name conda accepts (no spaces, "/", ":" or "#").`,
          2,
        );
      // What can be refused without the analysis is refused before it.
      if (format === "pep723" && (path.endsWith(".ipynb") || isFolder(path)))
        throw PEP723_NEEDS_SCRIPT();
      const plan = flags.output ? await planOutput(resolve(flags.output)) : undefined;
      const opts = analyzeOptions(flags);
      const report = await runAnalysis(path, opts, { quiet: flags.json === true });
      for (const w of [...report.warnings, ...unusedMappings(opts.pkgMapping ?? new Map(), report)])
        warn(w);
      for (const e of report.errors)
        warn(`${e.file}${e.line ? ` line ${e.line}` : ""}: ${e.message}`);
      const include = flags.includeOptional === true;
      // pep723 rewrites the script itself: -o naming it is the in-place update.
      if (flags.output) refuseAnalyzedOutput(flags.output, path, report, format === "pep723");
      if (format === "pep723") {
        if (report.kind !== "script") throw PEP723_NEEDS_SCRIPT();
        const file = resolve(path);
        const bytes = await readFile(file);
        const { writeScriptMetadata } = await import("../analyze/pep723.js");
        const { declaredEncoding } = await import("../analyze/source.js");
        // Another declared encoding: each byte is kept as it is (latin1 maps bytes to chars one
        // to one), and the block written is ASCII, so the rest of the file never changes.
        const encoding = declaredEncoding(bytes)?.encoding ?? "utf-8";
        const as: BufferEncoding = encoding === "utf-8" ? "utf8" : "latin1";
        const text = bytes.toString(as);
        const updated = writeScriptMetadata(text, {
          ...(report.python.requires ? { requiresPython: report.python.requires } : {}),
          dependencies: installable(report, include).map((q) => q.requirement),
        });
        if (as === "latin1" && /[^\p{ASCII}]/u.test(blockOf(text) + blockOf(updated)))
          throw new UserError(
            `${path} is ${encoding} with non-ASCII text in its # /// script block; pyferry writes that block only in UTF-8 files.`,
          );
        await writeOutputFile(
          flags.output ? resolve(flags.output) : file,
          Buffer.from(updated, as),
          plan,
        );
      } else if (flags.output) {
        const content =
          format === "json"
            ? specJson(
                buildSpec(report, {
                  includeOptional: include,
                  ...(flags.name ? { name: flags.name } : {}),
                }),
              )
            : requirementsTxt(report, include);
        await writeOutputFile(resolve(flags.output), content, plan);
      } else if (flags.format && !flags.json) {
        process.stdout.write(
          format === "json"
            ? specJson(
                buildSpec(report, {
                  includeOptional: include,
                  ...(flags.name ? { name: flags.name } : {}),
                }),
              )
            : requirementsTxt(report, include),
        );
      }
      if (flags.json) writeJson(report);
      else if (!flags.format && !flags.output) process.stdout.write(summary(report, out));
    });
}
