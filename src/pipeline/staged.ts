/**
 * The staged workflow (cloudpy's pack, sync, run, clean): `pyferry pack --folder` writes a
 * folder named by its ID holding the app's files and an editable record of what it needs;
 * sync and run build from that record for the target's platform.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import type { AnalysisReport, AnalyzeOptions } from "../analyze/analyze.js";
import { installable } from "../analyze/spec.js";
import { runAnalysis } from "../cli/analyze.js";
import { loadPipSettings } from "../index/pip-config.js";
import { parseRequirement } from "../python/requirement.js";
import { targetFromInterpreter } from "../python/target.js";
import { UserError } from "../util/errors.js";
import { makeDirsSync } from "../util/make-dirs.js";
import { VERSION } from "../version.js";
import { cachedEnv, interpreterFor, lockRequirements } from "./build.js";
import { namedOnly, warnNamed } from "./inputs.js";
import {
  checkPackName,
  findPack,
  PACK_CONF,
  PACK_MODS,
  type PackInfo,
  packAppFiles,
  readPackInfo,
} from "./pack-folder.js";
import { olderGlibc } from "./prepare-run.js";
import { freshRecord, type RunRecord, runKey, saveRecord, stamp } from "./run-cache.js";

/** Entries of a pack folder that pyferry did not write: all but app/ and conf's two files. */
function otherEntries(dir: string): string[] {
  const top = readdirSync(dir).filter((n) => n !== "app" && n !== "conf");
  const conf = existsSync(join(dir, "conf"))
    ? readdirSync(join(dir, "conf"))
        .map((n) => join("conf", n))
        .filter((n) => n !== PACK_MODS && n !== PACK_CONF)
    : [];
  return [...top, ...conf];
}

function sha256Text(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The dependency record: requirements, then what the analysis could not decide, as comments. */
export function modsText(report: AnalysisReport, entry: string): string {
  const lines = [
    `# What ${entry} needs: one requirement per line, in pip's syntax. Edit freely;`,
    "# pyferry sync and pyferry run read this file (lines starting with # are ignored).",
    ...installable(report).map((r) => r.requirement),
  ];
  for (const a of report.ambiguous) {
    const names = a.candidates.map((c) => c.name);
    const decided = a.chosen
      ? `${a.chosen} is listed above (${a.reason ?? "the usual choice"})`
      : "uncomment the right one";
    lines.push("", `# '${a.import}' could come from ${names.join(" or ")}; ${decided}:`);
    for (const n of names) if (n !== a.chosen) lines.push(`# ${n}`);
  }
  for (const u of report.unresolved) {
    const hint = u.suggestions.length ? `; perhaps ${u.suggestions.join(" or ")}` : "";
    lines.push(
      "",
      `# '${u.import}' (imported by ${u.files.join(", ")}): no distribution found${hint}.`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The requirements in a dependency record. */
export function readMods(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new UserError(`${path} is missing; is this a folder written by pyferry pack --folder?`);
  }
  const reqs: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") return;
    try {
      parseRequirement(line);
    } catch (err) {
      throw new UserError(`${path}, line ${i + 1}: ${(err as Error).message.replace(/\.$/, "")}.`);
    }
    reqs.push(line);
  });
  return reqs;
}

/**
 * An ID for a pack nobody named: the script's name, spelt as pack names may be ("my script.py"
 * gives my-script), and a random part.
 */
function generatedId(script: string): string {
  const stem = basename(script, extname(script))
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+|-+$/g, "");
  return `${stem || "pack"}-${randomBytes(3).toString("hex")}`;
}

/**
 * Write the pack folder for `script` into `parent`; returns its ID and path. With `refresh`, a
 * pack folder of the same script and name is packed again (cloudpy -n reuses a name): its app
 * files are replaced, and its conf/mods too unless it was edited by hand, which is kept.
 */
export async function packFolder(
  script: string,
  opts: {
    name?: string;
    python?: string;
    guessFiles?: boolean;
    parent?: string;
    refresh?: boolean;
    /** Analysis options of the command line (mappings, --toplevel, index sources, --venv). */
    analysis?: AnalyzeOptions;
  },
): Promise<{ id: string; dir: string; report: AnalysisReport }> {
  const id = opts.name ?? generatedId(script);
  checkPackName(id);
  // Files the program names are always looked for: without -f they are only mentioned.
  const found = await runAnalysis(script, {
    index: loadPipSettings(),
    ...opts.analysis,
    ...(opts.python ? { python: opts.python } : {}),
    guessFiles: true,
  });
  if (found.kind !== "script")
    throw new UserError(`A pack folder is made from a script; ${script} is a ${found.kind}.`, 2);
  const report = opts.guessFiles ? found : { ...found, data_files: [] };
  const named = opts.guessFiles ? [] : namedOnly(found.data_files, found.local_files);
  if (named.length > 0) warnNamed(basename(script), named, "pack");
  const entry = basename(script);
  const dir = resolve(opts.parent ?? ".", id);
  let keptMods: string | undefined;
  let lastMods: string | undefined;
  if (existsSync(dir)) {
    const old = opts.refresh && findPack(dir) ? readPackInfo(dir) : undefined;
    if (!old)
      throw new UserError(`${dir} already exists; pick another name or run pyferry clean ${id}.`);
    if (old.entry !== entry)
      throw new UserError(
        `${dir} is the pack of ${old.entry}, not of ${entry}; pick another name.`,
      );
    // A pack made before pyferry recorded what it wrote may hold edits: kept, to be safe.
    const mods = existsSync(join(dir, PACK_MODS)) ? readFileSync(join(dir, PACK_MODS), "utf8") : "";
    lastMods = old.mods_sha256;
    if (mods !== "" && sha256Text(mods) !== lastMods) keptMods = mods;
  }
  const root = dirname(resolve(script));
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    for (const f of new Set([...report.local_files, ...report.data_files])) {
      const to = join(tmp, "app", f);
      makeDirsSync(dirname(to));
      cpSync(join(root, f), to);
    }
    makeDirsSync(join(tmp, "conf"));
    const mods = modsText(report, entry);
    writeFileSync(join(tmp, PACK_MODS), keptMods ?? mods);
    const info: PackInfo = {
      format: 1,
      entry,
      ...(opts.python ? { python: opts.python } : {}),
      created_by: `pyferry ${VERSION}`,
      mods_sha256: sha256Text(mods),
    };
    writeFileSync(join(tmp, PACK_CONF), `${JSON.stringify(info, null, 2)}\n`);
    if (existsSync(dir)) {
      // What the user put in the folder beside pyferry's own files comes along.
      for (const extra of otherEntries(dir)) {
        makeDirsSync(dirname(join(tmp, extra)));
        renameSync(join(dir, extra), join(tmp, extra));
      }
      // The old folder goes aside with one rename, so the name always holds a whole pack.
      const aside = `${dir}.old-${process.pid}`;
      renameSync(dir, aside);
      renameSync(tmp, dir);
      rmSync(aside, { recursive: true, force: true });
    } else renameSync(tmp, dir);
    // Said only when the analysis changed since the file was written (or nobody knows).
    if (keptMods !== undefined && sha256Text(mods) !== lastMods)
      process.stderr.write(
        `Kept ${join(dir, PACK_MODS)} as ${lastMods ? "edited by hand" : "it was (it predates pyferry's record of what it wrote; remove it to have it written afresh)"}; the analysis now says:\n${mods}`,
      );
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { id, dir, report };
}

/**
 * The environment for a pack on a machine with glibc `glibc`: built from conf/mods with a
 * bundled interpreter, cached until conf/mods or conf/pack.json change.
 */
export async function packEnv(dir: string, glibc: string | undefined): Promise<RunRecord> {
  const info = readPackInfo(dir);
  const mods = join(dir, PACK_MODS);
  const key = runKey(mods, info.python, `${VERSION}\0pack\0${glibc ?? "none"}`);
  const app = { root: join(dir, "app"), files: packAppFiles(dir) };
  const fresh = freshRecord(key);
  if (fresh) return { ...fresh, app };
  const requirements = readMods(mods).map((r) => parseRequirement(r));
  const python = await interpreterFor({}, info.python);
  const target = glibc
    ? targetFromInterpreter({ ...python, glibc: olderGlibc(python.glibc, glibc) })
    : python;
  const { text, lock } = await lockRequirements(requirements, target, loadPipSettings(), {
    interpreter: python,
  });
  const env = await cachedEnv(text, lock, python, { compile: true, bundlePython: true });
  const rec = {
    key,
    inputs: [stamp(mods), stamp(join(dir, PACK_CONF)), stamp(python.realPath)],
    python: env.python,
    envDir: env.dir,
  };
  await saveRecord(rec);
  return { version: 1, ...rec, app };
}

/** Remove the local pack folder `id`; returns its path. */
export async function removePackFolder(id: string): Promise<string> {
  const dir = findPack(id);
  if (!dir)
    throw new UserError(
      `There is no pack folder ${id} here (looked for ${join(resolve(id), PACK_CONF)}).`,
      2,
    );
  rmSync(dir, { recursive: true, force: true });
  return dir;
}
