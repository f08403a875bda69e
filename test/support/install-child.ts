/**
 * Support for the installer's end-to-end tests: pinning real wheels from the configured index,
 * and, run as a script, a child process for tests that need several processes or one to kill:
 *   install-child.js unpack WHEEL SHA256   unpack into the cache; prints the tree's JSON summary
 *   install-child.js install ENV PYTHON    fetch, unpack and install the DistFile list on stdin
 * The cache is PYFERRY_CACHE_DIR, as for pyferry itself.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { HttpOptions } from "../../src/index/http.js";
import { loadPipSettings } from "../../src/index/pip-config.js";
import { findLinksFiles, type IndexFile, projectFiles } from "../../src/index/simple.js";
import { type DistFile, fetchMany, unpackWheel } from "../../src/install/cache.js";
import { createVenv, type EnvLayout } from "../../src/install/env.js";
import { mapLimit } from "../../src/install/pool.js";
import { installAll } from "../../src/install/wheel-install.js";
import { probeInterpreter } from "../../src/python/interpreter.js";
import { tempDir } from "./temp.js";

/** Options for every pip run: its default index is unreachable here, so fail fast. */
export const PIP_FLAGS = ["--retries", "0", "--timeout", "2", "--disable-pip-version-check"];

/** The interpreter the tests install for, as an absolute path. */
export function testPython(): string {
  return execFileSync(process.env.PYFERRY_TEST_PYTHON ?? "python3", [
    "-c",
    "import sys; print(sys.executable)",
  ])
    .toString()
    .trim();
}

export interface Pinned {
  name: string;
  version: string;
  file: DistFile;
}

interface ReportItem {
  metadata: { name: string; version: string };
  download_info: { url: string; archive_info?: { hashes?: Record<string, string> } };
}

function pipResolve(python: string, requirements: string[]): ReportItem[] {
  const dir = tempDir("pyferry-report-");
  try {
    const report = join(dir, "report.json");
    const r = spawnSync(
      python,
      [
        "-m",
        "pip",
        "install",
        ...PIP_FLAGS,
        "--dry-run",
        "--ignore-installed",
        "--only-binary",
        ":all:",
        "--quiet",
        "--report",
        report,
        ...requirements,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(readFileSync(report, "utf8")) as { install: ReportItem[] }).install;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The exact wheels pip resolves `requirements` to, found again through pyferry's own reading
 * of pip's configured indexes and find-links locations (never a fixed path).
 */
export async function pinWheels(python: string, requirements: string[]): Promise<Pinned[]> {
  const items = pipResolve(python, requirements);
  const settings = loadPipSettings();
  const opts: HttpOptions = { timeoutMs: 2000, readTimeoutMs: 2000 };
  const dead = new Set<string>();
  const flinks: IndexFile[] = [];
  for (const loc of settings.findLinks) {
    flinks.push(...(await findLinksFiles(loc, opts).catch(() => [])));
  }
  const indexes = settings.noIndex ? [] : [settings.indexUrl, ...settings.extraIndexUrls];
  return mapLimit(items, 8, async (item) => {
    const filename = decodeURIComponent(basename(new URL(item.download_info.url).pathname));
    const candidates = flinks.filter((f) => f.filename === filename);
    for (const index of indexes) {
      if (dead.has(index)) continue;
      try {
        const files = (await projectFiles(index, item.metadata.name, opts)) ?? [];
        candidates.push(...files.filter((f) => f.filename === filename));
      } catch {
        // An unreachable index (pip's default, with no network) is not asked again.
        dead.add(index);
      }
    }
    const found = candidates.find((f) => f.hashes.sha256 !== undefined) ?? candidates[0];
    assert.ok(found, `${filename} is not on the configured indexes`);
    const reported = item.download_info.archive_info?.hashes?.sha256;
    const sha256 = found.hashes.sha256 ?? reported;
    assert.ok(sha256, `no sha256 for ${filename}`);
    if (reported) assert.equal(sha256, reported, filename);
    return {
      name: item.metadata.name,
      version: item.metadata.version,
      file: { url: found.url, filename, sha256 },
    };
  });
}

/** Fetch, unpack and install `files` into a new or existing environment at `dir`. */
export async function installFiles(
  dir: string,
  python: string,
  files: DistFile[],
): Promise<EnvLayout> {
  const paths = await fetchMany(files);
  const wheels = await mapLimit(paths, 4, (p, i) => unpackWheel(p, (files[i] as DistFile).sha256));
  const layout = await createVenv(dir, await probeInterpreter(python));
  await installAll(wheels, layout, { requested: true });
  return layout;
}

async function main(args: string[]): Promise<void> {
  const [command, a, b] = args;
  if (command === "unpack" && a && b) {
    const w = await unpackWheel(a, b);
    process.stdout.write(`${JSON.stringify({ dir: w.dir, files: w.files.length })}\n`);
    return;
  }
  if (command === "install" && a && b) {
    await installFiles(a, b, JSON.parse(readFileSync(0, "utf8")) as DistFile[]);
    process.stdout.write("installed\n");
    return;
  }
  throw new Error("usage: install-child.js unpack WHEEL SHA256 | install ENV PYTHON");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
