/** Small pieces every benchmark script uses. */

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
