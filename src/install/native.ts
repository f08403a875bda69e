/**
 * pyferry's native addon (native/unzip.c: libdeflate and Node's own OpenSSL), which npm install
 * builds when it can. Everything it does has a JavaScript fallback, used when it was not built,
 * cannot be loaded here, or PYFERRY_NATIVE=0 turns it off.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { packageRoot } from "../util/package-root.js";

export interface NativeAddon {
  /** Decodes `src` into `dst`, returning the bytes written; throws on bad data or no room. */
  inflateRaw(src: Uint8Array, dst: Uint8Array): number;
  /**
   * Writes zip entries into `dir` (its subfolders made) and their sha256 into `digests`, 32
   * bytes each, from `source` (the archive's bytes or a descriptor of it). `names` are their
   * paths under `dir`, each ended by a NUL; `meta` holds four numbers per entry: its local
   * header's offset, its compressed size, its size, and flags (1 deflated, 2 executable).
   * Throws a NativeFailure at the first entry that fails, leaving the files already written.
   */
  extractFiles(
    source: Uint8Array | number,
    dir: string,
    names: Uint8Array,
    meta: Float64Array,
    digests: Uint8Array,
  ): void;
}

/**
 * What extractFiles throws: the entry (absent for the folder itself) and, when a call on a file
 * failed, its errno (positive) and name.
 */
export interface NativeFailure extends Error {
  index?: number;
  errno?: number;
  syscall?: string;
}

export const NATIVE_FILE = join("native", "build", "Release", "pyferry_native.node");

let addon: NativeAddon | null | undefined;

/** The addon, or null when it was not built, cannot be loaded here, or is turned off. */
export function nativeAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.PYFERRY_NATIVE !== "0") {
    try {
      addon = createRequire(import.meta.url)(join(packageRoot(), NATIVE_FILE)) as NativeAddon;
    } catch {
      // Not built, or built for another Node: the JavaScript fallback does the same work.
    }
  }
  return addon;
}
