/** The per-file work the speed benchmark times: read, decode, scan — what `analyze` does per file. */
import { readFileSync } from "node:fs";
import { scanSource } from "../src/analyze/scan.js";
import { decodePythonSource } from "../src/analyze/source.js";

export interface ScanCounts {
  files: number;
  /** Files that could not be decoded or did not parse (CPython's counterpart: SyntaxError etc.). */
  failed: number;
  /** Distinct import names per file, summed: comparable with bench/ast_imports.py's count. */
  imports: number;
}

export function emptyCounts(): ScanCounts {
  return { files: 0, failed: 0, imports: 0 };
}

export function addCounts(into: ScanCounts, more: ScanCounts): void {
  into.files += more.files;
  into.failed += more.failed;
  into.imports += more.imports;
}

/** Scan `paths` in order and add what was seen to `into`. */
export function scanFiles(paths: readonly string[], into: ScanCounts): void {
  for (const path of paths) {
    into.files++;
    // Synchronous reads, like CPython's loop: the benchmark measures scanning, not libuv.
    const buf = readFileSync(path);
    // NUL bytes make CPython's parser refuse the file; readSource refuses them too.
    const decoded = buf.indexOf(0) >= 0 ? undefined : decodePythonSource(buf);
    if (!decoded || "error" in decoded) {
      into.failed++;
      continue;
    }
    const scan = scanSource(decoded.text);
    if (scan.error) {
      into.failed++;
      continue;
    }
    const names = new Set<string>();
    for (const r of scan.imports) names.add(".".repeat(r.level) + r.module);
    into.imports += names.size;
  }
}
