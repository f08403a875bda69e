/**
 * Wheel and sdist file names (PEP 427, PEP 625) and compatibility tags (PEP 425, PEP 600,
 * PEP 656): which tags a target interpreter accepts, in the order pip prefers them.
 */
import { UserError } from "../util/errors.js";
import { normalizeName } from "./names.js";
import { isValidVersion } from "./version.js";

export interface Tag {
  interpreter: string;
  abi: string;
  platform: string;
}

export interface WheelName {
  /** The distribution part of the file name, as written (escaped: `-` appears as `_`). */
  name: string;
  normalized: string;
  version: string;
  build?: string;
  /** Every tag the file name covers, compressed sets (`py2.py3`) expanded. */
  tags: Tag[];
}

export interface TargetPlatform {
  implementation: "cpython" | "pypy" | string;
  /** "3.11" or "3.11.7"; only major and minor matter. */
  pythonVersion: string;
  /** Interpreter-specific ABIs, e.g. ["cp311"]; "abi3" and "none" are added as appropriate. */
  abiTags: string[];
  /** Most specific first, e.g. ["manylinux_2_36_x86_64", ..., "linux_x86_64"]. */
  platforms: string[];
}

export class InvalidWheelFilename extends UserError {
  constructor(filename: string, reason: string) {
    super(`"${filename}" is not a valid wheel file name: ${reason}.`);
    this.name = "InvalidWheelFilename";
  }
}

// PEP 427 escapes the name so that it holds no "-"; older tools left dots and mixed case.
const WHEEL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?$/;

function expandTags(interpreters: string, abis: string, platforms: string): Tag[] {
  const tags: Tag[] = [];
  for (const interpreter of interpreters.toLowerCase().split(".")) {
    for (const abi of abis.toLowerCase().split(".")) {
      for (const platform of platforms.toLowerCase().split(".")) {
        tags.push({ interpreter, abi, platform });
      }
    }
  }
  return tags;
}

/** Split `name-version[-build]-python-abi-platform.whl`. Throws InvalidWheelFilename. */
export function parseWheelFilename(filename: string): WheelName {
  if (!filename.endsWith(".whl")) throw new InvalidWheelFilename(filename, 'it must end in ".whl"');
  const parts = filename.slice(0, -4).split("-");
  if (parts.length !== 5 && parts.length !== 6) {
    throw new InvalidWheelFilename(filename, "it must have five or six dash-separated parts");
  }
  const [name, version] = parts as [string, string];
  if (!WHEEL_NAME.test(name) || name.includes("__")) {
    throw new InvalidWheelFilename(filename, `"${name}" is not a valid project name`);
  }
  if (!isValidVersion(version)) {
    throw new InvalidWheelFilename(filename, `"${version}" is not a valid version`);
  }
  const build = parts.length === 6 ? (parts[2] as string) : undefined;
  if (build !== undefined && !/^[0-9]/.test(build)) {
    throw new InvalidWheelFilename(filename, `build tag "${build}" must start with a digit`);
  }
  const [py, abi, plat] = parts.slice(-3) as [string, string, string];
  if ([py, abi, plat].some((t) => t === "" || t.split(".").includes(""))) {
    throw new InvalidWheelFilename(filename, "a compatibility tag is empty");
  }
  return {
    name,
    normalized: normalizeName(name),
    version,
    ...(build !== undefined ? { build } : {}),
    tags: expandTags(py, abi, plat),
  };
}

/** `name-version.tar.gz` or `.zip`; undefined when the name does not have that shape. */
export function parseSdistFilename(
  filename: string,
): { name: string; version: string } | undefined {
  const stem = filename.endsWith(".tar.gz")
    ? filename.slice(0, -7)
    : filename.endsWith(".zip")
      ? filename.slice(0, -4)
      : undefined;
  if (stem === undefined) return undefined;
  // The version never contains "-", so the last one separates it from the name.
  const dash = stem.lastIndexOf("-");
  if (dash <= 0) return undefined;
  const name = stem.slice(0, dash);
  const version = stem.slice(dash + 1);
  if (!isValidVersion(version) || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return undefined;
  return { name, version };
}

// PEP 600 guesses no glibc 2.x minor beyond this when counting down from a glibc 3.x.
const LAST_GLIBC_MINOR = 50;
const LEGACY_MANYLINUX: Record<string, string> = {
  "2_17": "manylinux2014",
  "2_12": "manylinux2010",
  "2_5": "manylinux1",
};
// Architectures pypa/packaging grants manylinux tags (armv7l and i686 only on a matching ABI).
const MANYLINUX_ARCHS = new Set([
  "x86_64",
  "i686",
  "aarch64",
  "armv7l",
  "ppc64",
  "ppc64le",
  "s390x",
  "loongarch64",
  "riscv64",
]);

type LibcVersion = { major: number; minor: number };

/**
 * Linux platform tags for a CPU architecture (as in `linux_<arch>`), most specific first:
 * `manylinux_<glibc>` counting down to 2_5 on x86 (2_17 elsewhere, where nothing older was
 * ever built), each legacy alias (manylinux2014/2010/1) right after the glibc version it
 * stands for, then `musllinux_1_<minor>` down to 1_0, then `linux_<arch>`. armv8l also
 * accepts armv7l, as pypa/packaging does for 32-bit ARM on 64-bit kernels.
 */
export function linuxPlatformTags(arch: string, glibc?: LibcVersion, musl?: LibcVersion): string[] {
  const archs = arch === "armv8l" ? ["armv8l", "armv7l"] : [arch];
  const tags: string[] = [];
  if (glibc && archs.some((a) => MANYLINUX_ARCHS.has(a))) {
    const x86 = archs.includes("x86_64") || archs.includes("i686");
    const oldest = x86 ? 5 : 17;
    const maxima: LibcVersion[] = [glibc];
    for (let major = glibc.major - 1; major >= 2; major--) {
      maxima.push({ major, minor: LAST_GLIBC_MINOR });
    }
    for (const a of archs) {
      for (const max of maxima) {
        const lowest = max.major === 2 ? oldest : 0;
        for (let minor = max.minor; minor >= lowest; minor--) {
          const version = `${max.major}_${minor}`;
          tags.push(`manylinux_${version}_${a}`);
          const legacy = LEGACY_MANYLINUX[version];
          if (legacy) tags.push(`${legacy}_${a}`);
        }
      }
    }
  }
  if (musl) {
    for (const a of archs) {
      for (let minor = musl.minor; minor >= 0; minor--) {
        tags.push(`musllinux_${musl.major}_${minor}_${a}`);
      }
    }
  }
  for (const a of archs) tags.push(`linux_${a}`);
  return tags;
}

// Binary formats a macOS wheel built for `arch` on the given OS version may declare.
function macBinaryFormats(major: number, minor: number, arch: string): string[] {
  const before = (ma: number, mi: number) => major < ma || (major === ma && minor < mi);
  const formats = [arch];
  if (arch === "x86_64" || arch === "i386") {
    if (before(10, 4)) return [];
    formats.push(...(arch === "x86_64" ? ["intel", "fat64", "fat32"] : ["intel", "fat32", "fat"]));
  } else if (arch === "ppc64") {
    if (before(10, 4) || !before(10, 6)) return [];
    formats.push("fat64");
  } else if (arch === "ppc") {
    if (!before(10, 7)) return [];
    formats.push("fat32", "fat");
  }
  if (arch === "arm64" || arch === "x86_64") formats.push("universal2");
  if (["x86_64", "i386", "ppc64", "ppc", "intel"].includes(arch)) formats.push("universal");
  return formats;
}

/**
 * macOS platform tags for an OS version and CPU architecture ("arm64", "x86_64"), most
 * specific first, in pypa/packaging's order: before 11 each minor counts down to 10.0;
 * from 11 each major counts down to 11.0, then 10.16..10.4 (for arm64 only universal2).
 */
export function macosPlatformTags(version: LibcVersion, arch: string): string[] {
  const tags: string[] = [];
  const add = (major: number, minor: number, formats: string[]) => {
    for (const f of formats) tags.push(`macosx_${major}_${minor}_${f}`);
  };
  if (version.major === 10) {
    for (let minor = version.minor; minor >= 0; minor--) {
      add(10, minor, macBinaryFormats(10, minor, arch));
    }
  } else if (version.major >= 11) {
    for (let major = version.major; major >= 11; major--) {
      add(major, 0, macBinaryFormats(major, 0, arch));
    }
    for (let minor = 16; minor >= 4; minor--) {
      add(10, minor, arch === "x86_64" ? macBinaryFormats(10, minor, arch) : ["universal2"]);
    }
  }
  return tags;
}

const INTERPRETER_ABBREVIATIONS: Record<string, string> = {
  python: "py",
  cpython: "cp",
  pypy: "pp",
  ironpython: "ip",
  jython: "jy",
};

/**
 * Every tag the target accepts, most preferred first, in the order of pypa/packaging's
 * `sys_tags()`: for CPython `cpXY-<abi>-*`, `cpXY-abi3-*`, `cpXY-none-*`, then abi3 of
 * older minors down to cp32; for others `<impl>XY-<abi>-*` and `-none-*`; then
 * `pyXY-none-*`, `pyX-none-*`, older `py3Z-none-*`, `cpXY-none-any` (`pp3-none-any` for
 * PyPy), and the `py*-none-any` tags.
 */
export function targetTags(t: TargetPlatform): Tag[] {
  const [major, minor] = t.pythonVersion.split(".").map(Number) as [number, number];
  if (!Number.isInteger(major) || !Number.isInteger(minor)) {
    throw new RangeError(`Python version "${t.pythonVersion}" must be like "3.11".`);
  }
  const impl = t.implementation.toLowerCase();
  const short = INTERPRETER_ABBREVIATIONS[impl] ?? impl;
  const interpreter = `${short}${major}${minor}`;
  const platforms = t.platforms.map((p) => p.toLowerCase());
  const tags: Tag[] = [];
  const addAll = (interp: string, abi: string) => {
    for (const platform of platforms) tags.push({ interpreter: interp, abi, platform });
  };

  if (short === "cp") {
    const abis = t.abiTags.filter((a) => a !== "abi3" && a !== "none");
    for (const abi of abis) addAll(interpreter, abi);
    // Free-threaded builds ("cp313t") cannot load the stable ABI.
    const threaded = /^cp\d+[a-z]*t/.test(abis[0] ?? "");
    const abi3 = (major > 3 || (major === 3 && minor >= 2)) && !threaded;
    if (abi3) addAll(interpreter, "abi3");
    addAll(interpreter, "none");
    if (abi3) {
      for (let older = minor - 1; older >= 2; older--) addAll(`cp${major}${older}`, "abi3");
    }
  } else {
    const abis = t.abiTags.includes("none") ? t.abiTags : [...t.abiTags, "none"];
    for (const abi of abis) addAll(interpreter, abi);
  }

  const pyVersions = [`py${major}${minor}`, `py${major}`];
  for (let older = minor - 1; older >= 0; older--) pyVersions.push(`py${major}${older}`);
  for (const py of pyVersions) addAll(py, "none");
  const anyInterpreter = short === "cp" ? interpreter : short === "pp" ? `pp${major}` : undefined;
  if (anyInterpreter) tags.push({ interpreter: anyInterpreter, abi: "none", platform: "any" });
  for (const py of pyVersions) tags.push({ interpreter: py, abi: "none", platform: "any" });
  return tags;
}

/** "cp311-cp311-manylinux_2_17_x86_64". */
export function tagKey(t: Tag): string {
  return `${t.interpreter}-${t.abi}-${t.platform}`;
}

/** Tag key -> position in `tags` (first occurrence), lower is better. */
export function tagRanks(tags: Tag[]): Map<string, number> {
  const ranks = new Map<string, number>();
  tags.forEach((t, i) => {
    const key = tagKey(t);
    if (!ranks.has(key)) ranks.set(key, i);
  });
  return ranks;
}

/** The best (lowest) rank among the wheel's tags, or undefined if the target takes none. */
export function bestTagRank(wheel: WheelName, ranked: Map<string, number>): number | undefined {
  let best: number | undefined;
  for (const t of wheel.tags) {
    const rank = ranked.get(tagKey(t));
    if (rank !== undefined && (best === undefined || rank < best)) best = rank;
  }
  return best;
}
