import { UserError } from "../util/errors.js";
import { readText } from "../util/read-text.js";
import type { InterpreterInfo } from "./interpreter.js";
import type { MarkerEnvironment } from "./marker.js";
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

/** Read a hand-written target (`--platform FILE`): the same fields as `Target`, as JSON. */
export async function readTarget(path: string): Promise<Target> {
  const text = await readText(path, "the target description");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(
      `The target description ${path} is not valid JSON: ${(err as Error).message}.`,
    );
  }
  const t = data as Partial<Target>;
  const missing = (
    ["implementation", "pythonVersion", "abiTags", "platforms", "markerEnv"] as const
  ).filter((k) => t[k] === undefined);
  if (missing.length > 0)
    throw new UserError(`The target description ${path} lacks ${missing.join(", ")}.`);
  return t as Target;
}
