/**
 * What to build an environment from: a spec written by `pyferry analyze` (conda-style JSON),
 * a requirements file, a script (analyzed on the fly), or requirement strings.
 */
import { stat } from "node:fs/promises";
import { basename, dirname, extname } from "node:path";
import {
  type AnalysisReport,
  type AnalyzeOptions,
  analyze,
  projectImportRoots,
} from "../analyze/analyze.js";
import { installable } from "../analyze/spec.js";
import { warn } from "../cli/output.js";
import { normalizeName } from "../python/names.js";
import { parseRequirement, parseRequirementsTxt, type Requirement } from "../python/requirement.js";
import { UserError } from "../util/errors.js";
import { readText } from "../util/read-text.js";

export interface BuildInput {
  requirements: Requirement[];
  /** Python the input asks for: "3.11.7" from a spec's python=..., or a requires-python. */
  python?: string;
  /** Which input named `python`, when several were merged. */
  pythonSource?: string;
  requiresPython?: string;
  /** Where it came from, for messages. */
  source: string;
  /** For scripts and specs: the local files the program needs, relative to `root`. */
  appFiles?: string[];
  /**
   * For programs analyzed without --guess-files: files and folders beside the program that it
   * names in a string (relative to `root`), which -f would have taken as app files.
   */
  namedFiles?: string[];
  root?: string;
  /** Folders under `root` (a src layout's `src`) that must be on the path for its imports. */
  importRoots?: string[];
  /** The input is a project folder (pyproject.toml or setup.py), at `root`. */
  project?: boolean;
  name?: string;
}

function parseAll(lines: string[], source: string): Requirement[] {
  return lines.map((l) => {
    try {
      return parseRequirement(l);
    } catch (err) {
      throw new UserError(`${source}: ${(err as Error).message}`);
    }
  });
}

/** A conda-style spec from `pyferry analyze -o` / `python_package_analyze`. */
export function fromSpec(text: string, path: string): BuildInput {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path} is not a JSON spec: ${(err as Error).message}.`);
  }
  const deps = (doc as { dependencies?: unknown }).dependencies;
  if (!Array.isArray(deps))
    throw new UserError(
      `${path} has no "dependencies" list; is it a spec written by pyferry analyze?`,
    );
  let python: string | undefined;
  const pip: string[] = [];
  // "pip" among the dependencies is pip itself, which conda would install into the environment:
  // without it, `pip` in the environment would be the host's and install into the host.
  let wantsPip = false;
  for (const d of deps) {
    if (typeof d === "string") {
      const m = /^python\s*(?:==?|=)\s*([\d.]+)/.exec(d);
      if (m) python = m[1];
      else if (/^python\s*=/.test(d)) {
        throw new UserError(
          `${path}: '${d}' does not name a Python version such as python=3.11.7.`,
        );
      } else if (d === "pip") {
        wantsPip = true;
      } else if (!/^python$/.test(d)) {
        throw new UserError(
          `${path}: '${d}' is a conda package; pyferry installs pip packages only (list it under "pip").`,
        );
      }
    } else if (d && typeof d === "object" && Array.isArray((d as { pip?: unknown }).pip)) {
      for (const p of (d as { pip: unknown[] }).pip) {
        if (typeof p !== "string")
          throw new UserError(`${path}: every "pip" entry must be a string.`);
        pip.push(p);
      }
    } else {
      throw new UserError(`${path}: unexpected entry in "dependencies": ${JSON.stringify(d)}.`);
    }
  }
  const meta = (
    doc as {
      pyferry?: { python?: { requires?: string | null }; local_files?: string[]; input?: string };
    }
  ).pyferry;
  const name = (doc as { name?: unknown }).name;
  const requirements = parseAll(pip, path);
  if (wantsPip && !requirements.some((r) => normalizeName(r.name) === "pip"))
    requirements.push(...parseAll(["pip"], path));
  return {
    requirements,
    ...(python ? { python } : {}),
    ...(meta?.python?.requires ? { requiresPython: meta.python.requires } : {}),
    source: path,
    ...(typeof name === "string" ? { name } : {}),
  };
}

/** Requirements-file options that say where packages come from. */
const SOURCE_OPTIONS = new Set([
  "-i",
  "--index-url",
  "--extra-index-url",
  "-f",
  "--find-links",
  "--no-index",
  "--trusted-host",
]);

export function fromRequirementsTxt(text: string, path: string): BuildInput {
  const parsed = parseRequirementsTxt(text);
  if (parsed.errors.length > 0) {
    const e = parsed.errors[0] as { line: number; message: string };
    throw new UserError(`${path} line ${e.line}: ${e.message}`);
  }
  if (parsed.includes.length > 0) {
    throw new UserError(
      `${path} includes ${parsed.includes.join(", ")} with -r/-c; list those requirements directly.`,
    );
  }
  let requireHashes = false;
  for (const o of parsed.options) {
    // "-ihttps://..." is "-i https://...", as for any short option.
    const name = (
      o.text.startsWith("--") ? o.text.split(/[\s=]/)[0] : o.text.slice(0, 2)
    ) as string;
    if (name === "--require-hashes") requireHashes = true;
    else if (name === "--prefer-binary") continue;
    else if (name === "-e" || name === "--editable")
      throw new UserError(
        `${path} line ${o.line}: editable requirements (${o.text}) are not supported; build the project into a wheel (pyferry wheelhouse add DIR) or name it as NAME @ file:///PATH.`,
      );
    else if (SOURCE_OPTIONS.has(name))
      throw new UserError(
        `${path} line ${o.line}: pyferry takes packages only from the sources on its command line and in pip's configuration, never from ${name} in a requirements file (a file must not move where packages come from); remove the line, and ${name === "--trusted-host" ? "set trusted-host in pip's configuration (pip.conf, or PIP_TRUSTED_HOST)" : `give ${name} on the command line`} if it is needed.`,
      );
    else
      throw new UserError(
        `${path} line ${o.line}: pyferry does not read ${name} from requirements files; remove the line${name === "--pre" ? " and give --pre on the command line" : ""}.`,
      );
  }
  const other = parsed.requirementOptions[0];
  if (other)
    throw new UserError(
      `${path} line ${other.line}: pyferry does not take ${other.text} after a requirement (only --hash).`,
    );
  const requirements = requireHashes
    ? parsed.requirements.map((r) => ({ ...r, hashes: r.hashes ?? [] }))
    : parsed.requirements;
  return { requirements, source: path };
}

/**
 * Of the files and folders a program names (found as -f finds them), those that go only with
 * -f: a folder holding local modules (a package named in a logger's name) goes anyway.
 */
export function namedOnly(named: string[], localFiles: string[]): string[] {
  return named.filter((f) => !f.endsWith("/") || !localFiles.some((l) => l.startsWith(f)));
}

/**
 * Warn that `program` names files and folders (beside it, or in it for a folder project) that
 * stay behind without -f, when it is packed or sent elsewhere.
 */
export function warnNamed(
  program: string,
  named: string[],
  verb: "pack" | "send",
  where: "beside it" | "in it" = "beside it",
): void {
  const more = named.length > 5 ? ` and ${named.length - 5} more` : "";
  const are = named.length === 1 ? "is" : "are";
  warn(
    `${program} names ${named.slice(0, 5).join(", ")}${more} ${where}, which ${are} not ${verb === "pack" ? "packed" : "sent"}; pass -f to ${verb} the files the program names.`,
  );
}

/**
 * Warn about the imports analysis could not settle: one no distribution provides, and one
 * several could (`decide` says how to choose); `outcome` says what becomes of them.
 */
export function warnUnsettled(
  report: AnalysisReport,
  outcome: string,
  decide: (imp: string) => string,
): void {
  for (const u of report.unresolved) {
    const hint = u.suggestions.length > 0 ? ` (perhaps ${u.suggestions.join(" or ")})` : "";
    warn(
      `no distribution found for '${u.import}' (imported by ${u.files.join(", ")})${hint}; ${outcome}.`,
    );
  }
  for (const a of report.ambiguous.filter((x) => !x.chosen)) {
    const names = a.candidates.map((c) => c.name).join(" or ");
    warn(`'${a.import}' could come from ${names}; ${outcome}: ${decide(a.import)}.`);
  }
}

/**
 * A program's needs, as analysis finds them. What analysis could not settle (an import no
 * distribution provides, one several could) is left out, with a warning, as `pyferry run` does.
 */
export async function fromScript(path: string, opts: AnalyzeOptions): Promise<BuildInput> {
  // Files the program names are always looked for: without -f they are only mentioned.
  const report = await analyze(path, { ...opts, guessFiles: true });
  warnUnsettled(
    report,
    "it is left out",
    (imp) =>
      `name one as a requirement (or, for pack, with --pkg-mapping ${imp.split(".")[0]}=NAME)`,
  );
  const dataFiles = report.data_files.map((f) => f.replace(/\/$/, ""));
  const named = namedOnly(report.data_files, report.local_files);
  return {
    requirements: installable(report).map((r) => parseRequirement(r.requirement)),
    ...(report.python.requires ? { requiresPython: report.python.requires } : {}),
    source: path,
    appFiles: [...report.local_files, ...(opts.guessFiles ? dataFiles : [])],
    ...(opts.guessFiles || named.length === 0 ? {} : { namedFiles: named }),
    root: report.kind === "project" ? path : dirname(path),
    ...(report.kind === "project"
      ? {
          project: true,
          importRoots: projectImportRoots(path).filter((r) =>
            report.local_files.some((f) => f.startsWith(`${r}/`)),
          ),
        }
      : {}),
    name: report.input,
  };
}

/**
 * Decide what a path is: a spec (.json), a requirements file (.txt, .in, or any other name
 * without a #! line), or a program (.py, a notebook, a folder, a #! script).
 */
export async function readInput(path: string, opts: AnalyzeOptions = {}): Promise<BuildInput> {
  const st = await stat(path).catch(() => {
    throw new UserError(`${path} does not exist.`);
  });
  const ext = extname(path).toLowerCase();
  if (st.isFile() && ext === ".whl")
    throw new UserError(
      `${path} is a wheel file, which pyferry does not take as an input; put it in a folder given with --find-links (or a wheelhouse) and name its project instead.`,
    );
  if (st.isFile() && ext === ".json") return fromSpec(await readText(path, "a spec"), path);
  // A project's pyproject.toml stands for the project.
  if (st.isFile() && basename(path) === "pyproject.toml") return fromScript(dirname(path), opts);
  if (st.isFile() && (ext === ".txt" || ext === ".in"))
    return fromRequirementsTxt(await readText(path, "a requirements file"), path);
  // Another name (requirements, reqs.pip): a program only when it starts with a #! line.
  if (st.isFile() && ![".py", ".pyw", ".ipynb"].includes(ext)) {
    const text = await readText(path, "a requirements file or a program");
    if (!text.startsWith("#!")) return fromRequirementsTxt(text, path);
  }
  return fromScript(path, opts);
}

export function fromStrings(reqs: string[]): BuildInput {
  return { requirements: parseAll(reqs, "the command line"), source: "the command line" };
}
