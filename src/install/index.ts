/** The native installer: the wheel cache, environments, installing wheels, bytecode. */
export {
  type CacheInfo,
  cacheInfo,
  cachePaths,
  type DistFile,
  fetchDist,
  fetchMany,
  findUnpacked,
  type PruneOptions,
  type PruneResult,
  pruneCache,
  type UnpackedFile,
  type UnpackedWheel,
  unpackWheel,
} from "./cache.js";
export { type CompileResult, compileBytecode } from "./compile.js";
export { createVenv, type EnvLayout, layoutFor } from "./env.js";
export { unpackMany } from "./unpack-pool.js";
export { BadWheel } from "./wheel-archive.js";
export {
  type InstallOptions,
  type InstallResult,
  installAll,
  installWheel,
  type LinkMode,
  uninstall,
} from "./wheel-install.js";
