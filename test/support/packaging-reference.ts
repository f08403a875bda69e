/**
 * The reference for differential tests of the packaging model: the `packaging` library that
 * pip vendors, taken from whichever interpreter here carries the newest copy.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

function newer(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return false;
}

let cached: { exe: string | undefined } | undefined;

/** The interpreter whose pip vendors the newest `packaging`; undefined if none has pip. */
export function referencePython(): string | undefined {
  if (cached) return cached.exe;
  const dir = join(homedir(), ".pyenv", "versions");
  const found = existsSync(dir) ? readdirSync(dir).map((v) => join(dir, v, "bin", "python")) : [];
  let best: { exe: string; version: number[] } | undefined;
  for (const exe of ["python3", ...found]) {
    const probe = "import pip._vendor.packaging as p; print(p.__version__)";
    const r = spawnSync(exe, ["-c", probe], { encoding: "utf8" });
    if (r.status !== 0) continue;
    const version = r.stdout.trim().split(".").map(Number);
    if (!best || newer(version, best.version)) best = { exe, version };
  }
  cached = { exe: best?.exe };
  return best?.exe;
}

/** Run `code` with `input` as JSON on stdin; its stdout is parsed as JSON. */
export function runPython(exe: string, code: string, input: unknown): unknown {
  const r = spawnSync(exe, ["-c", code], { input: JSON.stringify(input), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}
