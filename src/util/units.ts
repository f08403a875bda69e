/** Sizes as people read them. */

/** `bytes` in MiB with one decimal, e.g. "12.3 MiB". */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
