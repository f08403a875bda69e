/** Sizes as people read them. */

/** `bytes` in MiB with one decimal, e.g. "12.3 MiB". */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** "1 package", "3 packages": `n` and the word, plural when n is not 1. */
export function count(n: number, word: string, plural = `${word}s`): string {
  return `${n} ${n === 1 ? word : plural}`;
}
