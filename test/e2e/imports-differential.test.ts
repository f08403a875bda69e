/**
 * Differential test: the modules each file imports, as pyferry's scanner reads them, equal
 * what CPython's own ast reports — over the machine's standard library and a few hundred
 * wheels from the configured index.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, test } from "node:test";
import { scanSource } from "../../src/analyze/scan.js";
import { decodePythonSource } from "../../src/analyze/source.js";
import { listInterpreters } from "../../src/python/interpreter.js";
import {
  extractWheels,
  indexWheels,
  pyFiles,
  type ReferenceResult,
  referenceImports,
  stdlibDir,
} from "../support/corpus.js";

function ours(path: string): { imports?: string[]; error?: string } {
  const decoded = decodePythonSource(readFileSync(path));
  if ("error" in decoded) return { error: decoded.error };
  const r = scanSource(decoded.text);
  if (r.error) return { error: `line ${r.error.line}: ${r.error.message}` };
  const names = new Set(r.imports.map((i) => ".".repeat(i.level) + i.module));
  return { imports: [...names].sort() };
}

interface Tally {
  files: number;
  agree: number;
  importMismatches: string[];
  falseErrors: string[];
  missedErrors: string[];
  sharedErrors: number;
}

function compare(files: string[], ref: Map<string, ReferenceResult>): Tally {
  const t: Tally = {
    files: files.length,
    agree: 0,
    importMismatches: [],
    falseErrors: [],
    missedErrors: [],
    sharedErrors: 0,
  };
  for (const f of files) {
    const want = ref.get(f);
    assert.ok(want, `no reference result for ${f}`);
    const got = ours(f);
    if (want.error) {
      if (got.error) t.sharedErrors++;
      else t.missedErrors.push(`${f}: ${want.error}`);
      continue;
    }
    if (got.error) {
      t.falseErrors.push(`${f}: ${got.error}`);
      continue;
    }
    const a = JSON.stringify(got.imports);
    const b = JSON.stringify(want.imports);
    if (a === b) t.agree++;
    else t.importMismatches.push(`${f}\n  pyferry: ${a}\n  cpython: ${b}`);
  }
  return t;
}

function report(name: string, t: Tally): void {
  const refErrors = t.sharedErrors + t.missedErrors.length;
  console.log(
    `${name}: ${t.files} files, ${t.agree} identical import sets, ${t.importMismatches.length} different, ` +
      `${t.falseErrors.length} rejected by pyferry only; of ${refErrors} files CPython rejects, pyferry rejects ${t.sharedErrors}`,
  );
  for (const m of [...t.importMismatches, ...t.falseErrors].slice(0, 20)) console.log(`  ${m}`);
  for (const m of t.missedErrors.slice(0, 10)) console.log(`  accepted by pyferry only: ${m}`);
}

let stdlib: string[] = [];
let wheelFiles: string[] = [];

before(async () => {
  stdlib = pyFiles(stdlibDir());
  const wheels = await indexWheels(Number(process.env.PYFERRY_DIFF_WHEELS ?? 300));
  wheelFiles = pyFiles(extractWheels(wheels));
});

test("imports of every stdlib file match CPython's ast", () => {
  assert.ok(stdlib.length > 1000, `expected a real stdlib, found ${stdlib.length} files`);
  const t = compare(stdlib, referenceImports(stdlib));
  report("stdlib", t);
  assert.deepEqual(t.importMismatches, []);
  assert.deepEqual(t.falseErrors, []);
});

test("imports of the .py files of a few hundred index wheels match CPython's ast", async () => {
  assert.ok(
    wheelFiles.length > 5000,
    `expected a large wheel corpus, found ${wheelFiles.length} files`,
  );
  // The newest interpreter here parses the most syntax, so the fewest files go unchecked.
  const newest = (await listInterpreters()).find((i) => i.version.startsWith("3."));
  const t = compare(wheelFiles, referenceImports(wheelFiles, newest?.executable));
  report(`wheels (CPython ${newest?.version ?? "python3"})`, t);
  assert.deepEqual(t.importMismatches, []);
  assert.deepEqual(t.falseErrors, []);
});
