/**
 * `analyze`: from a script, project folder or notebook to what it needs — distributions
 * with provenance, the Python version, local and data files — without running any of it.
 */
import { existsSync, statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { aboutImplicitDefaultIndex, type IndexSettings } from "../index/pip-config.js";
import { loadTopLevelMap, type TopLevelMap } from "../index/top-level-map.js";
import { findModuleFile, listInstalled } from "../python/installed.js";
import { findInterpreter, type InterpreterInfo, probeInterpreter } from "../python/interpreter.js";
import { formatMarker, type Marker, markerOr } from "../python/marker.js";
import { formatRequirement, type Requirement } from "../python/requirement.js";
import { isStdlibModule, knownStdlibVersions, stdlibTable } from "../python/stdlib.js";
import { compareVersions, majorMinor } from "../python/version.js";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";
import { guessDataFiles } from "./data-files.js";
import { readDeclared } from "./declared.js";
import { listSourceFiles, MAX_NOTEBOOK_BYTES, readRegularFile, readSource } from "./files.js";
import { absoluteName, LocalFinder } from "./local.js";
import {
  type Candidate,
  type Decision,
  decide,
  type Evidence,
  type MappingContext,
  suggest,
} from "./mapping.js";
import { readNotebook } from "./notebook.js";
import { pythonReport } from "./python-version.js";
import { type ImportRecord, type ScanResult, type SyntaxFloor, scanSource } from "./scan.js";

export interface AnalyzeOptions {
  /** Only imports at module level (not inside functions), in the entry script and local modules. */
  toplevel?: boolean;
  /** Only imports inside this top-level function (or dotted Class.method) of the entry script. */
  function?: string;
  /** IMPORT -> distribution, deciding over every other source. */
  pkgMapping?: Map<string, string>;
  /** Interpreter request: a version ("3.11") or a path. */
  python?: string;
  /** Use the installed distributions of this environment (a venv folder) for ownership. */
  venv?: string;
  /** Index settings (pip's configuration with overrides); undefined: do not consult an index. */
  index?: IndexSettings;
  /** List string literals naming existing files or folders as data files. */
  guessFiles?: boolean;
  onProgress?: (message: string, done?: number, total?: number) => void;
}

export interface RequirementReport {
  name: string;
  specifier: string;
  extras: string[];
  marker: string | null;
  /** PEP 508 text, ready for pip or a requirements file. */
  requirement: string;
  imports: string[];
  provenance: Evidence[];
  /** Every import of it is optional (try/except ImportError); not installed by default. */
  optional: boolean;
  /** Only imported by test files of a project. */
  dev: boolean;
  /** Only imported inside functions: needed when that code runs, not when the program starts. */
  lazy: boolean;
  /** The installed version seen in the environment, if any. */
  installed_version?: string;
}

export interface PythonReport {
  /** The version an environment should get: the interpreter's, unless the code needs newer. */
  version: string | null;
  /** The requirement on Python: declared requires-python, else derived from the syntax floor. */
  requires: string | null;
  source: string;
  interpreter: string | null;
  floor: (SyntaxFloor & { file: string }) | null;
}

export interface AnalysisReport {
  input: string;
  kind: "script" | "project" | "notebook";
  python: PythonReport;
  requirements: RequirementReport[];
  ambiguous: {
    import: string;
    candidates: { name: string; provenance: Evidence[] }[];
    chosen: string | null;
    reason?: string;
  }[];
  unresolved: { import: string; files: string[]; suggestions: string[] }[];
  /** Distributions (import names, when unresolved) that only type checkers need. */
  type_checking_only: string[];
  stdlib: string[];
  local_files: string[];
  data_files: string[];
  warnings: string[];
  /** Things worth knowing that need no action (shown with --json only). */
  notes: string[];
  errors: { file: string; line?: number; message: string }[];
}

interface Seen {
  record: ImportRecord;
  file: string;
  /** Absolute dotted name. */
  name: string;
  where: "local" | "stdlib" | "external" | "unknown-relative";
  test: boolean;
}

// Test suites and test-support modules (pytest plugins, `testing.py` helpers) of a project.
const TEST_FILE =
  /(^|[\\/])(tests?|testing)[\\/]|(^|[\\/])(test_[^\\/]*|[^\\/]*_tests?|conftest|_?testing|_?test_?utils?|[^\\/]*pytest_?plugin[^\\/]*)\.py$/;

function displayPath(root: string, file: string): string {
  const r = relative(root, file);
  return r === "" ? basename(file) : r.split(sep).join("/");
}

async function chooseInterpreter(
  opts: AnalyzeOptions,
  warnings: string[],
): Promise<InterpreterInfo | undefined> {
  if (opts.venv) {
    const venvPython = join(resolve(opts.venv), "bin", "python");
    if (!existsSync(venvPython))
      throw new UserError(`${opts.venv} is not a virtual environment (no bin/python in it).`);
    return probeInterpreter(venvPython);
  }
  try {
    return await probeInterpreter(await findInterpreter(opts.python));
  } catch (err) {
    if (opts.python) throw err;
    warnings.push(
      `No usable Python interpreter (${(err as Error).message.replace(/\.$/, "")}); using the shipped standard library tables.`,
    );
    return undefined;
  }
}

/**
 * The import sits inside `fn`, a qualified name from the top of the module: `fit` is the
 * top-level function (not `Model.fit`, nor a `fit` nested in another function).
 */
function inFunction(r: ImportRecord, fn: string): boolean {
  return fn.split(".").every((w, k) => r.scopes[k] === w);
}

/** Read a notebook's text: a regular file, of bounded size. */
async function readNotebookText(path: string): Promise<{ text: string } | { error: string }> {
  const read = await readRegularFile(path, MAX_NOTEBOOK_BYTES);
  return "error" in read ? read : { text: read.bytes.toString("utf8") };
}

/**
 * A folder with no __init__.py is only a namespace portion, which Python's path finder takes
 * when no module or regular package of that name exists on any sys.path entry. A stdlib
 * module or an installed distribution of the name therefore wins: returns why, as a warning.
 */
function namespaceLosers(
  finder: LocalFinder,
  stdlib: Set<string>,
  mapping: MappingContext,
  root: string,
): (top: string) => Promise<string | undefined> {
  const known = new Map<string, Promise<string | undefined>>();
  const judge = async (top: string): Promise<string | undefined> => {
    const folders = finder.namespacePortions(top);
    if (folders.length === 0) return undefined;
    const where = folders.map((f) => `${displayPath(root, f)}/`).join(", ");
    if (isStdlibModule(top, stdlib))
      return `${where} has no __init__.py, so 'import ${top}' gets the standard library module and never this folder.`;
    // An installed namespace package merges with the folder instead of hiding it.
    const installed = mapping.installed;
    if (installed && (await findModuleFile(top, installed.sysPath))?.kind === "namespace")
      return undefined;
    // No index here: nearly every short name is some project on it, installed or not.
    const d = await decide(top, mapping);
    if (d.kind !== "chosen") return undefined;
    return `${where} has no __init__.py, so with ${d.dist.name} installed 'import ${top}' gets its module, never this folder.`;
  };
  return (top) => {
    let v = known.get(top);
    if (!v) {
      v = judge(top);
      known.set(top, v);
    }
    return v;
  };
}

function markerText(m: Marker | undefined): string | null {
  return m ? formatMarker(m) : null;
}

/**
 * The folders of a project, besides its own, from which its local imports resolve (relative to
 * it): `src` of a src layout. Whoever runs the project puts them on the path too.
 */
export function projectImportRoots(root: string): string[] {
  const src = join(root, "src");
  return existsSync(src) && statSync(src).isDirectory() ? ["src"] : [];
}

export async function analyze(input: string, opts: AnalyzeOptions = {}): Promise<AnalysisReport> {
  const abs = resolve(input);
  const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") throw new UserError(`${input} does not exist.`);
    throw new UserError(`Cannot read ${input} (${whyUnreadable(err)}).`);
  });
  const kind: AnalysisReport["kind"] = st.isDirectory()
    ? "project"
    : abs.endsWith(".ipynb")
      ? "notebook"
      : "script";
  const root = kind === "project" ? abs : dirname(abs);
  const warnings: string[] = [];
  const notes: string[] = [];
  const errors: AnalysisReport["errors"] = [];

  // The entry files, read first so that a broken script fails before anything slow starts.
  const sources = new Map<string, ScanResult[]>();
  let scriptText: string | undefined;
  const notebookInstalls: { requirements: string[]; source: string }[] = [];
  const entries = kind === "project" ? await listSourceFiles(root) : [abs];
  if (kind === "project" && entries.length === 0)
    throw new UserError(`${input} holds no Python files (.py or .ipynb).`);
  if (kind !== "project") {
    const read = kind === "notebook" ? await readNotebookText(abs) : await readSource(abs);
    if ("error" in read) throw new UserError(`Cannot analyze ${input}: ${read.error}.`);
    if (kind === "notebook") {
      const nb = readNotebook(read.text, input);
      sources.set(
        abs,
        nb.cells.map((c) => scanSource(c.source)),
      );
      nb.cells.forEach((c, k) => {
        const e = sources.get(abs)?.[k]?.error;
        if (e)
          errors.push({
            file: displayPath(root, abs),
            line: e.line,
            message: `cell ${c.index + 1}: ${e.message}`,
          });
      });
      for (const p of nb.pipInstalls) {
        // `%pip install -U pip` or `%conda install python=3.10` set up tools, not the program's needs.
        const wanted = p.requirements.filter((r) => !/^(pip|python)(?![-_.\w])/i.test(r));
        notebookInstalls.push({
          requirements: wanted,
          source: `a %pip install line in cell ${p.cell + 1}`,
        });
      }
    } else {
      scriptText = read.text;
      const scan = scanSource(read.text);
      if (scan.error)
        throw new UserError(
          `${input} does not parse as Python 3 (line ${scan.error.line}: ${scan.error.message}).`,
        );
      sources.set(abs, [scan]);
    }
  }

  const declared = await readDeclared(
    root,
    root,
    scriptText !== undefined ? { path: abs, text: scriptText } : undefined,
    notebookInstalls,
  );
  warnings.push(...declared.warnings);
  const interp = await chooseInterpreter(opts, warnings);

  const roots = [
    root,
    ...(kind === "project" ? projectImportRoots(root) : []).map((r) => join(root, r)),
  ];
  const finder = new LocalFinder(roots);

  // Target Python version: the interpreter's unless declarations or syntax demand otherwise.
  const targetMinor = interp
    ? majorMinor(interp.version)
    : (knownStdlibVersions().at(-1) as string);
  const stdlib =
    interp && majorMinor(interp.version) === targetMinor
      ? new Set(interp.stdlibModules)
      : (stdlibTable(targetMinor) as Set<string>);

  if (opts.function && kind !== "project") {
    const fn = opts.function;
    if (!sources.get(abs)?.some((scan) => scan.functions.includes(fn)))
      warnings.push(
        `${displayPath(root, abs)} defines no function ${fn}, so none of its imports were read; check the name (Class.method for a method).`,
      );
  }

  // What decides ownership, short of the index (read later, only if needed).
  const siteDirs = interp ? interp.sysPath.filter((p) => /[\\/](site|dist)-packages$/.test(p)) : [];
  const installed = interp
    ? { sysPath: interp.sysPath, dists: await listInstalled(siteDirs) }
    : undefined;
  const mapping: MappingContext = {
    options: opts.pkgMapping ?? new Map<string, string>(),
    declared: declared.requirements,
    declaredFrom: declared.from,
    ...(installed ? { installed } : {}),
  };
  const losesToInstalled = namespaceLosers(finder, stdlib, mapping, root);

  // Walk the program's own files from the entries, following local imports.
  const seen: Seen[] = [];
  const localFiles = new Set<string>();
  const queue: string[] = [...entries];
  const entrySet = new Set(entries);
  let floor: (SyntaxFloor & { file: string }) | null = null;
  const stdlibUsed = new Set<string>();
  const strings: { value: string; file: string }[] = [];
  for (let qi = 0; qi < queue.length; qi++) {
    const file = queue[qi] as string;
    if (localFiles.has(file)) continue;
    localFiles.add(file);
    if (/\.(so|pyd)$/.test(file)) continue;
    let scans = sources.get(file);
    if (!scans) {
      if (file.endsWith(".ipynb")) {
        const read = await readNotebookText(file);
        if ("error" in read) {
          errors.push({ file: displayPath(root, file), message: `${read.error}; skipped` });
          continue;
        }
        try {
          const nb = readNotebook(read.text, displayPath(root, file));
          scans = nb.cells.map((c) => scanSource(c.source));
        } catch (err) {
          errors.push({ file: displayPath(root, file), message: (err as Error).message });
          continue;
        }
      } else {
        const read = await readSource(file);
        if ("error" in read) {
          errors.push({ file: displayPath(root, file), message: `${read.error}; skipped` });
          continue;
        }
        scans = [scanSource(read.text)];
      }
    }
    const isEntryScript = kind !== "project" && entrySet.has(file);
    const test = kind === "project" && TEST_FILE.test(displayPath(root, file));
    for (const scan of scans) {
      if (scan.error) {
        if (kind !== "notebook" || !isEntryScript) {
          errors.push({
            file: displayPath(root, file),
            line: scan.error.line,
            message: `does not parse as Python 3 (${scan.error.message}); skipped`,
          });
        }
        continue;
      }
      if (scan.floor && (!floor || compareVersions(scan.floor.version, floor.version) > 0)) {
        floor = { ...scan.floor, file: displayPath(root, file) };
      }
      for (const s of scan.strings) strings.push({ value: s.value, file });
      for (const r of scan.imports) {
        if (opts.toplevel && r.scope === "function") continue;
        if (isEntryScript && opts.function && !inFunction(r, opts.function)) continue;
        if (r.level === 0 && r.module === "__future__") continue;
        const pkg = r.package ?? finder.packageOf(file);
        const name = absoluteName(pkg, r.level, r.module);
        const item: Seen = { record: r, file, name: name ?? r.module, where: "external", test };
        seen.push(item);
        if (name === undefined) {
          item.where = "unknown-relative";
          warnings.push(
            `${displayPath(root, file)} line ${r.line}: relative import '${".".repeat(r.level)}${r.module}' outside a package; Python will refuse it.`,
          );
          continue;
        }
        const hit = finder.resolve(name);
        const top = name.split(".")[0] as string;
        const lost = hit && r.level === 0 ? await losesToInstalled(top) : undefined;
        if (lost) warnings.push(lost);
        // A local namespace package holds only some of its subpackages; the rest are installed.
        const elsewhere = hit?.namespace === true && hit.found !== name && r.level === 0;
        if (hit && !elsewhere && !lost) {
          item.where = "local";
          queue.push(...hit.files);
          for (const n of r.names ?? []) {
            if (n === "*") continue;
            const sub = finder.resolve(`${name}.${n}`);
            if (sub && sub.found === `${name}.${n}`) queue.push(...sub.files);
            else if (hit.namespace && hit.found === name) {
              // A namespace package has no attributes: `from ns import x` imports ns.x, from elsewhere.
              seen.push({ ...item, name: `${name}.${n}`, where: "external" });
            }
          }
          if (r.level === 0 && stdlib.has(top)) {
            warnings.push(
              `${displayPath(root, hit.files[0] ?? file)} shadows the standard library module '${top}'.`,
            );
          }
          continue;
        }
        // import_module(".sub", "pkg") names its package: one not here is installed, as for
        // an absolute import; a relative import statement can only mean a local module.
        if (r.level > 0 && r.package === undefined) {
          item.where = "unknown-relative";
          warnings.push(
            `${displayPath(root, file)} line ${r.line}: cannot find the local module '${".".repeat(r.level)}${r.module}'.`,
          );
          continue;
        }
        if (isStdlibModule(name, stdlib)) {
          item.where = "stdlib";
          stdlibUsed.add(top);
        }
      }
    }
  }

  // Map external imports to distributions, one decision per dotted name.
  let indexMap: Promise<TopLevelMap | undefined> | undefined;
  const loadIndex = (): Promise<TopLevelMap | undefined> => {
    if (!opts.index) return Promise.resolve(undefined);
    indexMap ??= loadTopLevelMap(opts.index, {
      onProgress: (done, total) => opts.onProgress?.("Reading the package index", done, total),
    }).then(
      (m) => {
        // pip's built-in default index (never configured here) failing is expected offline or
        // behind a mirror; it is noted, not warned about on every run.
        for (const w of m.warnings) {
          (opts.index && aboutImplicitDefaultIndex(opts.index, w) ? notes : warnings).push(w);
        }
        return m;
      },
      (err: Error) => {
        warnings.push(`The package index could not be read: ${err.message}`);
        return undefined;
      },
    );
    return indexMap;
  };
  const ctx: MappingContext = { ...mapping, index: loadIndex };
  const decisions = new Map<string, Decision>();
  const externals = seen.filter((s) => s.where === "external");
  for (const s of externals) {
    if (!decisions.has(s.name)) decisions.set(s.name, await decide(s.name, ctx));
  }

  // try/except ImportError pairs: the preferred import and its fallback.
  const byTry = new Map<string, Seen[]>();
  const byFallback = new Map<string, Seen[]>();
  for (const s of seen) {
    if (s.record.tryId !== undefined) {
      const key = `${s.file}#${s.record.tryId}`;
      byTry.set(key, [...(byTry.get(key) ?? []), s]);
    }
    if (s.record.fallbackFor !== undefined) {
      const key = `${s.file}#${s.record.fallbackFor}`;
      byFallback.set(key, [...(byFallback.get(key) ?? []), s]);
    }
  }
  const installedByUs = (s: Seen) =>
    s.where === "stdlib" ||
    s.where === "local" ||
    (s.where === "external" && decisions.get(s.name)?.kind === "chosen");
  const optionalOf = (s: Seen): boolean => {
    if (s.record.fallbackFor !== undefined) {
      // A fallback runs only when the preferred import fails; it cannot when that one is provided.
      const primaries = byTry.get(`${s.file}#${s.record.fallbackFor}`) ?? [];
      return primaries.length > 0 && primaries.every(installedByUs);
    }
    if (!s.record.optional) return false;
    // When the fallback is another distribution, one of the two is needed: the preferred one.
    const fallbacks =
      s.record.tryId !== undefined ? (byFallback.get(`${s.file}#${s.record.tryId}`) ?? []) : [];
    if (fallbacks.some((f) => f.where === "external")) return !installedByUs(s);
    return true;
  };

  interface Acc {
    cand: Candidate;
    imports: Set<string>;
    markers: (Marker | undefined)[];
    optional: boolean;
    dev: boolean;
    lazy: boolean;
    typeCheckingOnly: boolean;
  }
  const acc = new Map<string, Acc>();
  const ambiguous: AnalysisReport["ambiguous"] = [];
  const unresolved = new Map<
    string,
    { files: Set<string>; optional: boolean; typeChecking: boolean }
  >();
  const ambiguousSeen = new Set<string>();
  for (const s of externals) {
    const d = decisions.get(s.name) as Decision;
    const top = s.name.split(".")[0] as string;
    if (d.kind === "chosen") {
      let a = acc.get(d.dist.name);
      if (!a) {
        a = {
          cand: d.dist,
          imports: new Set(),
          markers: [],
          optional: true,
          dev: true,
          lazy: true,
          typeCheckingOnly: true,
        };
        acc.set(d.dist.name, a);
      }
      a.imports.add(s.name);
      if (!s.record.typeChecking) {
        a.typeCheckingOnly = false;
        a.markers.push(s.record.marker);
        if (!optionalOf(s)) a.optional = false;
        if (!s.test) a.dev = false;
        if (s.record.scope !== "function") a.lazy = false;
      }
      if (d.alternatives.length > 0 && d.reason && !ambiguousSeen.has(s.name)) {
        ambiguousSeen.add(s.name);
        ambiguous.push({
          import: s.name,
          candidates: [d.dist, ...d.alternatives].map((c) => ({
            name: c.name,
            provenance: c.evidence,
          })),
          chosen: d.dist.name,
          reason: d.reason,
        });
      }
    } else if (d.kind === "ambiguous") {
      if (!ambiguousSeen.has(s.name)) {
        ambiguousSeen.add(s.name);
        ambiguous.push({
          import: s.name,
          candidates: d.candidates.map((c) => ({ name: c.name, provenance: c.evidence })),
          chosen: null,
        });
      }
    } else {
      const u = unresolved.get(top) ?? {
        files: new Set<string>(),
        optional: true,
        typeChecking: true,
      };
      u.files.add(displayPath(root, s.file));
      if (!optionalOf(s)) u.optional = false;
      if (!s.record.typeChecking) u.typeChecking = false;
      unresolved.set(top, u);
    }
  }

  // Declared dependencies nobody imports are still wanted: plugins, drivers, runtime extras.
  for (const r of declared.requirements) {
    if (acc.has(r.normalized)) continue;
    acc.set(r.normalized, {
      cand: {
        name: r.normalized,
        declared: r,
        evidence: [
          {
            source: "declared",
            detail: `declared in ${declared.from.get(r.normalized)}; no import of it was found`,
          },
        ],
      },
      imports: new Set(),
      markers: [undefined],
      optional: false,
      dev: false,
      lazy: false,
      typeCheckingOnly: false,
    });
  }

  const requirements: RequirementReport[] = [];
  const typeCheckingOnly: string[] = [];
  for (const [name, a] of [...acc].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    if (a.typeCheckingOnly) {
      typeCheckingOnly.push(name);
      continue;
    }
    const decl: Requirement | undefined = a.cand.declared;
    const marker = decl
      ? decl.marker
      : a.markers.some((m) => m === undefined)
        ? undefined
        : markerOr(...a.markers);
    const req: Requirement = {
      name: decl?.name ?? name,
      normalized: name,
      extras: decl?.extras ?? [],
      specifier: decl?.specifier ?? "",
      ...(decl?.url ? { url: decl.url } : {}),
      ...(marker ? { marker } : {}),
    };
    requirements.push({
      name,
      specifier: req.specifier,
      extras: req.extras,
      marker: markerText(marker),
      requirement: formatRequirement({ ...req, name }),
      imports: [...a.imports].sort(),
      provenance: a.cand.evidence,
      optional: a.optional,
      dev: a.dev && a.imports.size > 0,
      lazy: a.lazy && a.imports.size > 0,
      ...(a.cand.version ? { installed_version: a.cand.version } : {}),
    });
  }

  // Unresolved names get suggestions from the index's project list, when it is loaded anyway.
  const unresolvedOut: AnalysisReport["unresolved"] = [];
  if (unresolved.size > 0) {
    const map = await loadIndex();
    const names = map
      ? new Set([...map.modules.values()].flatMap((ps) => ps.map((p) => p.project)))
      : new Set<string>();
    for (const [top, u] of [...unresolved].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
      if (u.typeChecking) {
        typeCheckingOnly.push(top);
        continue;
      }
      unresolvedOut.push({
        import: top,
        files: [...u.files].sort(),
        suggestions: suggest(top, names),
      });
    }
  }

  // An index project that provides a stdlib name (a backport, or a squatter) would shadow the
  // standard library if installed: worth a warning, since pyferry keeps the stdlib one.
  if (opts.index && stdlibUsed.size > 0) {
    const map = await loadIndex();
    for (const mod of [...stdlibUsed].sort()) {
      const providers = map?.modules.get(mod)?.filter((p) => !p.incidental);
      if (providers && providers.length > 0) {
        warnings.push(
          `'${mod}' is in the standard library, but the index also has ${providers.map((p) => p.project).join(", ")} providing it; pyferry uses the standard library.`,
        );
      }
    }
  }

  const python = pythonReport(interp, declared.requiresPython, floor, warnings);
  const localList = [...localFiles].map((f) => displayPath(root, f)).sort();
  const dataFiles = opts.guessFiles ? guessDataFiles(strings, root, localFiles) : [];

  return {
    input,
    kind,
    python,
    requirements,
    ambiguous,
    unresolved: unresolvedOut,
    type_checking_only: typeCheckingOnly.sort(),
    stdlib: [...stdlibUsed].sort(),
    local_files: localList,
    data_files: dataFiles,
    warnings: [...new Set(warnings)],
    notes: [...new Set(notes)],
    errors,
  };
}
