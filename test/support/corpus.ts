/**
 * A corpus of real Python source for differential tests and benchmarks: the standard
 * library of the machine's python3, plus the .py files of wheels found on the index that
 * pip is configured to use (discovered through pip's configuration, never a fixed path).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPipSettings } from "../../src/index/pip-config.js";
import { listProjects, projectFiles } from "../../src/index/simple.js";
import { chooseWheel } from "../../src/index/top-level-map.js";

export const REFERENCE_DIR = fileURLToPath(new URL("../../../test/reference/", import.meta.url));

export function python3(): string {
  return process.env.PYFERRY_TEST_PYTHON ?? "python3";
}

export function stdlibDir(python = python3()): string {
  return execFileSync(python, ["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"], {
    encoding: "utf8",
  }).trim();
}

/** Every .py file under `dir`, sorted, skipping site-packages. */
export function pyFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== "site-packages" && e.name !== "__pycache__") walk(p);
      } else if (e.isFile() && e.name.endsWith(".py")) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** Local wheel files of up to `limit` projects from the configured indexes, spread evenly. */
export async function indexWheels(limit: number, maxBytes = 64 * 1024 * 1024): Promise<string[]> {
  const settings = loadPipSettings();
  const sources = [settings.indexUrl, ...settings.extraIndexUrls].filter((u) =>
    u.startsWith("file:"),
  );
  const wheels: string[] = [];
  for (const url of sources) {
    const projects = (await listProjects(url)).sort();
    for (const project of projects) {
      const file = chooseWheel((await projectFiles(url, project)) ?? [], project);
      if (!file?.url.startsWith("file:")) continue;
      const path = fileURLToPath(file.url);
      if (existsSync(path) && statSync(path).size <= maxBytes) wheels.push(path);
    }
  }
  const step = Math.max(1, wheels.length / limit);
  const picked: string[] = [];
  for (let i = 0; i < wheels.length && picked.length < limit; i += step) {
    picked.push(wheels[Math.floor(i)] as string);
  }
  return picked;
}

/** Extract the .py files of `wheels` once into a folder keyed by their names; returns it. */
export function extractWheels(wheels: string[]): string {
  const key = createHash("sha256").update(wheels.join("\n")).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `pyferry-corpus-${key}`);
  if (existsSync(dir)) return dir;
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (let i = 0; i < wheels.length; i += 50) {
    execFileSync(
      python3(),
      [join(REFERENCE_DIR, "extract_py.py"), tmp, ...wheels.slice(i, i + 50)],
      {
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
  }
  renameSync(tmp, dir);
  return dir;
}

export interface ReferenceResult {
  path: string;
  imports?: string[];
  error?: string;
}

/** CPython's ast on each file (see test/reference/imports.py). */
export function referenceImports(
  files: string[],
  python = python3(),
): Map<string, ReferenceResult> {
  const out = execFileSync(python, [join(REFERENCE_DIR, "imports.py")], {
    input: files.join("\n"),
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  const results = new Map<string, ReferenceResult>();
  for (const line of out.split("\n")) {
    if (!line) continue;
    const r = JSON.parse(line) as ReferenceResult;
    results.set(r.path, r);
  }
  return results;
}
