/**
 * Wheels from the package mirror this machine's pip is configured with (read through pip's own
 * configuration, never a fixed path), and a CPython 3.11 for hosts: shared by the fleet tests
 * and bench:fleet.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPipSettings } from "../../src/index/pip-config.js";
import { type IndexFile, projectFiles } from "../../src/index/simple.js";
import { fetchDist } from "../../src/install/cache.js";

/** PEP 503 normalization. */
export const norm = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

/** Every local wheel of `project` `version` that pip's configured indexes and find-links list. */
export function mirrorWheels(project: string, version: string): string[] {
  const s = loadPipSettings();
  const found = new Set<string>();
  const consider = (file: string) => {
    const parts = basename(file).split("-");
    if (file.endsWith(".whl") && norm(parts[0] ?? "") === norm(project) && parts[1] === version)
      found.add(file);
  };
  const indexes = s.noIndex ? [] : [s.indexUrl, ...s.extraIndexUrls];
  for (const url of indexes.filter((u) => u.startsWith("file:"))) {
    const page = new URL(`${norm(project)}/index.html`, url.endsWith("/") ? url : `${url}/`);
    const path = fileURLToPath(page);
    if (!existsSync(path)) continue;
    for (const m of readFileSync(path, "utf8").matchAll(/href="([^"]+)"/g)) {
      const u = new URL((m[1] as string).replace(/&amp;/g, "&"), page);
      u.hash = "";
      consider(decodeURIComponent(fileURLToPath(u)));
    }
  }
  for (const link of s.findLinks) {
    if (link.includes("://") && !link.startsWith("file:")) continue;
    const dir = link.startsWith("file:") ? fileURLToPath(link) : link;
    if (existsSync(dir)) for (const f of readdirSync(dir)) consider(join(dir, f));
  }
  return [...found].filter((f) => existsSync(f));
}

/**
 * A wheelhouse folder (wheels/ inside) holding every wheel of these project versions; `fail`
 * makes the error for a version the mirror lacks.
 */
export function makeWheelhouse(
  dir: string,
  wanted: readonly (readonly [string, string])[],
  fail: (project: string, version: string) => Error = (p, v) =>
    new Error(`the package mirror pip is configured with has no wheel of ${p} ${v}`),
): { files: number; bytes: number } {
  const wheels = join(dir, "wheels");
  mkdirSync(wheels, { recursive: true });
  let files = 0;
  let bytes = 0;
  for (const [project, version] of wanted) {
    const found = mirrorWheels(project, version);
    if (found.length === 0) throw fail(project, version);
    for (const f of found) {
      copyFileSync(f, join(wheels, basename(f)));
      files++;
      bytes += statSync(f).size;
    }
  }
  return { files, bytes };
}

/** A CPython 3.11 for the hosts (the wheels include cp311 ones): `preferred`, else pyenv's. */
export function findPython311(preferred?: string): string | undefined {
  const candidates = [preferred ?? ""];
  const pyenv = join(
    process.env.PYENV_ROOT ?? join(process.env.HOME ?? "/root", ".pyenv"),
    "versions",
  );
  if (existsSync(pyenv)) {
    for (const v of readdirSync(pyenv)
      .filter((v) => v.startsWith("3.11."))
      .sort()
      .reverse())
      candidates.push(join(pyenv, v, "bin", "python3"));
  }
  candidates.push("/usr/bin/python3.11");
  return candidates.find((c) => c !== "" && existsSync(c));
}

/** The wheels of `project` on the first of pip's configured indexes that has any. */
async function indexFiles(project: string): Promise<IndexFile[]> {
  const s = loadPipSettings();
  // pip's default index is skipped when it is not set: there is no PyPI here.
  for (const url of [...(s.sources["index-url"] ? [s.indexUrl] : []), ...s.extraIndexUrls]) {
    const files = ((await projectFiles(url, project).catch(() => [])) ?? []).filter(
      (f) => f.filename.endsWith(".whl") && f.hashes.sha256,
    );
    if (files.length > 0) return files;
  }
  throw new Error(`pip's index has no wheel of ${project}`);
}

const fetched = (f: IndexFile) =>
  fetchDist({ url: f.url, filename: f.filename, sha256: f.hashes.sha256 as string });

/** The first wheel of `project` on pip's configured index, fetched into pyferry's cache. */
export async function indexWheel(project: string): Promise<string> {
  return fetched((await indexFiles(project))[0] as IndexFile);
}

/** Every wheel of `project` on pip's configured index, fetched, sorted by path. */
export async function indexWheels(project: string): Promise<string[]> {
  return (await Promise.all((await indexFiles(project)).map(fetched))).sort();
}
