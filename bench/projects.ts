/**
 * The projects of the configured local indexes with the wheel pyferry's index map reads
 * for each (the same choice as test/support/corpus.ts's indexWheels), and unpacking them.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IndexSettings } from "../src/index/pip-config.js";
import { listProjects, projectFiles } from "../src/index/simple.js";
import { chooseWheel } from "../src/index/top-level-map.js";
import { python3 } from "../test/support/corpus.js";

export interface ProjectWheel {
  /** PEP 503 normalized name, as the index lists it. */
  project: string;
  /** Local path of the chosen wheel. */
  wheel: string;
}

const EXTRACT = fileURLToPath(new URL("../../bench/extract_wheels.py", import.meta.url));

/** Every project with a local wheel of at most `maxBytes`, sorted; the first source wins. */
export async function projectWheels(
  settings: IndexSettings,
  maxBytes = 64 * 1024 * 1024,
): Promise<ProjectWheel[]> {
  const sources = [settings.indexUrl, ...settings.extraIndexUrls].filter((u) =>
    u.startsWith("file:"),
  );
  const found = new Map<string, string>();
  for (const url of sources) {
    for (const project of (await listProjects(url)).sort()) {
      if (found.has(project)) continue;
      const file = chooseWheel((await projectFiles(url, project)) ?? [], project);
      if (!file?.url.startsWith("file:")) continue;
      const path = fileURLToPath(file.url);
      if (existsSync(path) && statSync(path).size <= maxBytes) found.set(project, path);
    }
  }
  return [...found]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([project, wheel]) => ({ project, wheel }));
}

/** `count` items spread evenly over `items` (all of them when there are fewer). */
export function spread<T>(items: T[], count: number): T[] {
  if (count >= items.length) return [...items];
  const step = items.length / count;
  return Array.from({ length: count }, (_, i) => items[Math.floor(i * step)] as T);
}

/** Unpack each wheel whole into `<dir>/<wheel name>`; cached in the temp folder by wheel list. */
export function unpackWheels(wheels: string[]): { dir: string; cached: boolean } {
  const key = createHash("sha256").update(wheels.join("\n")).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `pyferry-bench-wheels-${key}`);
  if (existsSync(dir)) return { dir, cached: true };
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // Batches keep the command line short; one interpreter per batch keeps start-up cheap.
  for (let i = 0; i < wheels.length; i += 50) {
    execFileSync(python3(), [EXTRACT, tmp, ...wheels.slice(i, i + 50)], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }
  renameSync(tmp, dir);
  return { dir, cached: false };
}

/** Where unpackWheels put `wheel`. */
export function unpackedPath(dir: string, wheel: string): string {
  return join(dir, basename(wheel, ".whl"));
}
