import { parse as parseToml } from "smol-toml";
import { UserError } from "../util/errors.js";
import { readText } from "../util/read-text.js";
import { isTable, type Table } from "../util/toml-table.js";
import type { InterpreterInfo } from "./interpreter.js";
import { ENVIRONMENT_VARIABLES, type MarkerEnvironment } from "./marker.js";
import { linuxPlatformTags, type Tag, type TargetPlatform, targetTags } from "./tags.js";

export interface Target {
  implementation: string;
  /** Full version, e.g. "3.11.7". */
  pythonVersion: string;
  abiTags: string[];
  /** Platform tags, most specific first. */
  platforms: string[];
  markerEnv: MarkerEnvironment;
  /** The local interpreter this target was probed from, if any. */
  interpreter?: string;
}

function parseLibc(v: string | undefined): { major: number; minor: number } | undefined {
  const m = v ? /^(\d+)\.(\d+)/.exec(v) : null;
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** The target a local interpreter defines. */
export function targetFromInterpreter(info: InterpreterInfo): Target {
  const arch = info.platform.replace(/^linux-/, "").replace(/[-.]/g, "_");
  const platforms = info.platform.startsWith("linux")
    ? linuxPlatformTags(arch, parseLibc(info.glibc), parseLibc(info.musl))
    : [info.platform.replace(/[-.]/g, "_")];
  return {
    implementation: info.implementation,
    pythonVersion: info.version,
    abiTags: info.abiTag ? [info.abiTag] : [],
    platforms,
    markerEnv: info.markerEnv,
    interpreter: info.executable,
  };
}

/** Wheel tags the target accepts, most preferred first. */
export function targetTagList(t: Target): Tag[] {
  const platform: TargetPlatform = {
    implementation: t.implementation,
    pythonVersion: t.pythonVersion,
    abiTags: t.abiTags,
    platforms: t.platforms,
  };
  return targetTags(platform);
}

/** A target table's keys, as a lock spells them, and as the JSON form does. */
const TABLE_KEYS = [
  "implementation",
  "python-version",
  "abi-tags",
  "platforms",
  "interpreter",
  "marker-env",
];
const JSON_KEYS = [
  "implementation",
  "pythonVersion",
  "abiTags",
  "platforms",
  "interpreter",
  "markerEnv",
];

/**
 * A target from a table of the shape a pyferry lock records under [tool.pyferry.target]:
 * implementation, python-version, abi-tags, platforms, interpreter, and a marker-env table.
 * `fail` words the error for where the table came from; `keys` are the names the source uses
 * for those six (the JSON form's are camelCase), so that a message names what to fix.
 */
export function targetFromTable(
  v: unknown,
  where: string,
  fail: (reason: string) => never,
  keys: readonly string[] = TABLE_KEYS,
): Target {
  if (!isTable(v)) return fail(`${where} is not a table`);
  const [kImpl, kVersion, kAbi, kPlatforms, kInterpreter, kEnv] = keys as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const unknown = Object.keys(v).filter((k) => !keys.includes(k));
  if (unknown.length > 0) {
    fail(`${where} has the unknown key ${unknown[0]} (it takes ${keys.join(", ")})`);
  }
  const text = (k: string, required: boolean): string | undefined => {
    const x = v[k];
    if (x === undefined) return required ? fail(`${where} has no ${k}`) : undefined;
    if (typeof x !== "string" || x === "") return fail(`${k} of ${where} is not a string`);
    return x;
  };
  const texts = (k: string): string[] => {
    const x = v[k];
    if (x === undefined) return [];
    if (!Array.isArray(x) || x.some((e) => typeof e !== "string")) {
      return fail(`${k} of ${where} is not a list of strings`);
    }
    return x as string[];
  };
  const env = v[kEnv];
  if (!isTable(env)) return fail(`${where} has no ${kEnv} table`);
  const markerEnv: Record<string, string> = {};
  for (const [k, x] of Object.entries(env)) {
    if (!ENVIRONMENT_VARIABLES.includes(k)) {
      fail(`${where}.${kEnv} has ${k}, which is not a PEP 508 marker variable`);
    }
    if (typeof x !== "string") fail(`${k} of ${where}.${kEnv} is not a string`);
    markerEnv[k] = x as string;
  }
  const absent = ENVIRONMENT_VARIABLES.filter((k) => !(k in markerEnv));
  if (absent.length > 0) fail(`${where}.${kEnv} has no ${absent.join(", ")}`);
  const pythonVersion = text(kVersion, true) as string;
  if (!/^\d+\.\d+(\.\d+)?((a|b|rc)\d+)?\+?$/.test(pythonVersion)) {
    fail(`${kVersion} of ${where} is "${pythonVersion}", not a version such as 3.11.7`);
  }
  const full = markerEnv.python_full_version as string;
  const short = markerEnv.python_version as string;
  if (!(full === pythonVersion || full.startsWith(`${pythonVersion}.`))) {
    fail(`${kVersion} of ${where} is ${pythonVersion}, but its python_full_version is ${full}`);
  }
  if (short !== full.split(".").slice(0, 2).join(".")) {
    fail(`the python_version of ${where} is ${short}, but its python_full_version is ${full}`);
  }
  const platforms = texts(kPlatforms);
  if (platforms.length === 0) fail(`${where} names no ${kPlatforms} (wheel platform tags)`);
  const t: Target = {
    implementation: text(kImpl, true) as string,
    pythonVersion,
    abiTags: texts(kAbi),
    platforms,
    markerEnv: markerEnv as unknown as MarkerEnvironment,
  };
  const interpreter = text(kInterpreter, false);
  if (interpreter !== undefined) t.interpreter = interpreter;
  return t;
}

/**
 * Read a target for `--platform FILE`: a pyferry lock (the target it was made for), a TOML file
 * of that [tool.pyferry.target] table (at its own place or at the top level), or the JSON of a
 * Target (implementation, pythonVersion, abiTags, platforms, markerEnv).
 */
export async function readTarget(path: string): Promise<Target> {
  // A byte-order mark, as some editors write: JSON.parse takes it for a stray character.
  const text = (await readText(path, "the target description")).replace(/^\uFEFF/, "");
  const fail = (reason: string): never => {
    throw new UserError(`The target description ${path} cannot be used: ${reason}.`);
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    // A TOML table header starts with "[" too; only "{" is surely meant as JSON.
    if (text.trimStart().startsWith("{")) {
      throw new UserError(
        `The target description ${path} is not valid JSON: ${(err as Error).message}.`,
      );
    }
  }
  if (data !== undefined) {
    if (!isTable(data)) return fail("it is not a JSON object");
    return targetFromTable(data, "the JSON object", fail, JSON_KEYS);
  }
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    const first = ((err as Error).message.split("\n")[0] ?? "").replace(/\.$/, "");
    return fail(`it is neither JSON nor valid TOML (${first})`);
  }
  const tool = isTable(doc.tool) && isTable(doc.tool.pyferry) ? doc.tool.pyferry : undefined;
  if (tool && "target" in tool) return targetFromTable(tool.target, "[tool.pyferry.target]", fail);
  if ("lock-version" in doc) return fail("it is a lock that records no target (not pyferry's)");
  return targetFromTable(doc, "the file", fail);
}
