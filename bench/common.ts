/** Small pieces every benchmark script uses. */
import { spawnSync } from "node:child_process";

/** Progress goes to stderr so that stdout holds only the tables. */
export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A positive integer from an environment variable, or the default. */
export function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

/** A check inside a benchmark failed: the numbers would mean nothing. */
export class BenchFailure extends Error {}

/** Print what `main` returns; a failed check is one line on stderr and exit status 1. */
export function runBench(name: string, main: () => string): void {
  try {
    console.log(main());
  } catch (err) {
    if (!(err instanceof BenchFailure)) throw err;
    process.stderr.write(`\nbench:${name} FAILED: ${err.message}\n`);
    process.exitCode = 1;
  }
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * Flush what earlier steps wrote, so that their write-back is not billed to the next timed
 * step. The OS page cache is not dropped: "cold" means a tool's own cache is empty.
 */
export function settle(): void {
  spawnSync("sync");
}
