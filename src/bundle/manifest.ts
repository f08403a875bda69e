/**
 * `manifest.json`, the first entry of every bundle: what the bundle was built for, the lock it
 * was built from, and the sha256, size and mode of every file in it, so that unpacking can
 * verify each byte and running can check the target before starting anything.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";

export const MANIFEST_NAME = "manifest.json";

export interface FileRecord {
  sha256: string;
  size: number;
  /** 0o755 or 0o644: only the executable bit survives packing. */
  mode: number;
}

export interface LinkRecord {
  /** The symlink's target exactly as stored. */
  target: string;
  /**
   * True when the target lies outside the bundle (a venv's bin/python pointing at the base
   * interpreter): it must exist on the machine that runs the bundle.
   */
  external: boolean;
}

export interface Manifest {
  format: 1;
  name: string;
  created_by: string;
  python: { version: string; implementation: string; abi: string; bundled: boolean };
  /** `tags`: the wheel platform tags the environment was built for. */
  platform: { tags: string[]; machine: string };
  /** The pylock.toml text the environment was installed from. */
  lock: string;
  /** The default command, if the bundle has one. */
  entry?: string[];
  /**
   * A packed script ("app/..."): with no command, `python` runs it by its path, so that its own
   * folder comes first on sys.path (never the caller's working folder, as with `-m`).
   */
  script?: string;
  /**
   * `import_roots`: folders under app/ (a src layout's "src") that go on PYTHONPATH after app/
   * itself, so that the packed project's own imports resolve as they did where it was packed.
   */
  app: { root: "app"; import_roots?: string[] };
  env: { root: "env"; python: "env/bin/python" };
  /** Every regular file, by its path inside the bundle ("env/..." or "app/..."). */
  files: Record<string, FileRecord>;
  /** Every symlink, by its path inside the bundle. */
  links: Record<string, LinkRecord>;
}

/** What a packer supplies; the file and link tables are computed from the tree it packs. */
export type ManifestHead = Omit<Manifest, "files" | "links">;

/**
 * True for a path a bundle may contain: relative, "/"-separated, under env/ or app/, with no
 * empty, "." or ".." component and no NUL.
 */
export function isBundlePath(p: string): boolean {
  const parts = p.split("/");
  return (
    parts.length >= 2 &&
    (parts[0] === "env" || parts[0] === "app") &&
    !p.includes("\0") &&
    parts.every((c) => c !== "" && c !== "." && c !== "..")
  );
}

const isString = (v: unknown): v is string => typeof v === "string";
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The first thing wrong with `v` as a manifest, or undefined when it is valid. */
function problem(v: unknown): string | undefined {
  if (!isObject(v)) return "it is not a JSON object";
  if (v.format !== 1)
    return `its format is ${JSON.stringify(v.format)}, and only format 1 is known`;
  if (!isString(v.name) || v.name === "") return "it has no name";
  if (!isString(v.created_by)) return "created_by is not a string";
  const py = v.python;
  if (
    !isObject(py) ||
    !isString(py.version) ||
    !isString(py.implementation) ||
    !isString(py.abi) ||
    typeof py.bundled !== "boolean"
  )
    return "python needs version, implementation, abi (strings) and bundled (true or false)";
  const pl = v.platform;
  if (!isObject(pl) || !isStringArray(pl.tags) || !isString(pl.machine))
    return "platform needs tags (a list of strings) and machine (a string)";
  if (!isString(v.lock)) return "lock is not a string";
  if (v.entry !== undefined && (!isStringArray(v.entry) || v.entry.length === 0))
    return "entry is not a non-empty list of strings";
  if (v.script !== undefined && (!isString(v.script) || !v.script.startsWith("app/")))
    return 'script is not a path under "app/"';
  if (!isObject(v.app) || v.app.root !== "app") return 'app.root is not "app"';
  const roots = v.app.import_roots;
  if (
    roots !== undefined &&
    (!isStringArray(roots) || !roots.every((r) => isBundlePath(`app/${r}`)))
  )
    return "app.import_roots is not a list of folders under app/";
  if (!isObject(v.env) || v.env.root !== "env" || v.env.python !== "env/bin/python")
    return 'env is not { root: "env", python: "env/bin/python" }';
  if (!isObject(v.files)) return "files is not an object";
  for (const [path, f] of Object.entries(v.files)) {
    if (!isBundlePath(path)) return `files lists an unsafe path ${JSON.stringify(path)}`;
    if (
      !isObject(f) ||
      !isString(f.sha256) ||
      !/^[0-9a-f]{64}$/.test(f.sha256) ||
      !Number.isSafeInteger(f.size) ||
      (f.size as number) < 0 ||
      (f.mode !== 0o755 && f.mode !== 0o644)
    )
      return `the record of ${path} needs sha256 (64 hex digits), size and mode (420 or 493)`;
  }
  if (!isObject(v.links)) return "links is not an object";
  for (const [path, l] of Object.entries(v.links)) {
    if (!isBundlePath(path)) return `links lists an unsafe path ${JSON.stringify(path)}`;
    if (Object.hasOwn(v.files, path)) return `${path} is both a file and a link`;
    if (!isObject(l) || !isString(l.target) || l.target === "" || typeof l.external !== "boolean")
      return `the record of link ${path} needs target (a string) and external (true or false)`;
  }
  if (isString(v.script) && !Object.hasOwn(v.files, v.script))
    return `script names ${v.script}, which is not a file of the bundle`;
  return undefined;
}

/** Check `v` and return it as a manifest, or throw one UserError naming `source`. */
export function validateManifest(v: unknown, source: string): Manifest {
  const why = problem(v);
  if (why !== undefined)
    throw new UserError(`The bundle manifest in ${source} is invalid: ${why}.`);
  return v as Manifest;
}

/** Parse manifest.json text; malformed JSON and invalid content are the same one error. */
export function parseManifest(text: string, source: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UserError(
      `The bundle manifest in ${source} is invalid: ${(err as Error).message.replace(/\.$/, "")}.`,
    );
  }
  return validateManifest(v, source);
}

/** The manifest's text, with keys in a fixed order so that packing is reproducible. */
export function serializeManifest(m: Manifest): string {
  const sorted = <T>(rec: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(rec).sort(([a], [b]) => compareBytes(a, b)));
  const ordered = {
    format: m.format,
    name: m.name,
    created_by: m.created_by,
    python: {
      version: m.python.version,
      implementation: m.python.implementation,
      abi: m.python.abi,
      bundled: m.python.bundled,
    },
    platform: { tags: m.platform.tags, machine: m.platform.machine },
    lock: m.lock,
    ...(m.entry ? { entry: m.entry } : {}),
    ...(m.script ? { script: m.script } : {}),
    app: { root: m.app.root, ...(m.app.import_roots ? { import_roots: m.app.import_roots } : {}) },
    env: { root: m.env.root, python: m.env.python },
    files: sorted(m.files),
    links: sorted(m.links),
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/** Order strings by their UTF-8 bytes: the same on every machine, whatever its locale. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Write `<dir>/manifest.json` atomically. */
export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(join(dir, MANIFEST_NAME), serializeManifest(validateManifest(m, dir)));
}

/** Read and validate `<dir>/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new UserError(`Cannot read the bundle manifest ${path} (${whyUnreadable(err)}).`);
  }
  return parseManifest(text, path);
}
