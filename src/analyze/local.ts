/**
 * Resolving imports to the program's own files the way Python's path finder would from
 * the script's folder: regular packages (with __init__.py) and modules win over namespace
 * portions, a dotted import runs every package __init__.py on its way, and relative imports
 * resolve against the importing module's package.
 */
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { isSkippedDir } from "./files.js";

const EXTENSION = /^([A-Za-z_][A-Za-z0-9_]*)\.(cpython-[^.]+\.so|abi3\.so|so|pyd)$/;

export interface LocalResolution {
  /** Files Python would execute, outermost package first (__init__.py files, then the module). */
  files: string[];
  /** The dotted name actually found (a prefix of the request when the rest is an attribute). */
  found: string;
  /**
   * The deepest name found is a namespace package. If it is shorter than the request, the rest
   * may live in another portion of the namespace (an installed distribution), not locally.
   */
  namespace: boolean;
}

/** Cached directory listings: resolution asks about the same folders over and over. */
export class LocalFinder {
  private readonly listings = new Map<string, Map<string, "file" | "dir"> | null>();

  /** `roots` is the module search path of the program's own code (the script's folder first). */
  constructor(readonly roots: string[]) {}

  private list(dir: string): Map<string, "file" | "dir"> | null {
    let l = this.listings.get(dir);
    if (l !== undefined) return l;
    try {
      l = new Map();
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) {
          if (!isSkippedDir(dir, e.name)) l.set(e.name, "dir");
        } else if (e.isFile()) l.set(e.name, "file");
        else if (e.isSymbolicLink()) {
          try {
            l.set(e.name, statSync(join(dir, e.name)).isDirectory() ? "dir" : "file");
          } catch {
            // A dangling link is not a module.
          }
        }
      }
    } catch {
      l = null;
    }
    this.listings.set(dir, l);
    return l;
  }

  /** Find one name in one folder: package, module, extension or namespace portion. */
  private findIn(
    dir: string,
    name: string,
  ): { kind: "package" | "module" | "namespace"; path: string } | undefined {
    const l = this.list(dir);
    if (!l) return undefined;
    if (l.get(name) === "dir") {
      const sub = this.list(join(dir, name));
      if (sub?.get("__init__.py") === "file")
        return { kind: "package", path: join(dir, name, "__init__.py") };
    }
    if (l.get(`${name}.py`) === "file") return { kind: "module", path: join(dir, `${name}.py`) };
    for (const [entry, type] of l) {
      if (type === "file" && EXTENSION.exec(entry)?.[1] === name)
        return { kind: "module", path: join(dir, entry) };
    }
    if (l.get(name) === "dir" && this.holdsPython(join(dir, name)))
      return { kind: "namespace", path: join(dir, name) };
    return undefined;
  }

  /** A folder counts as a namespace package only when it holds Python code. */
  private holdsPython(dir: string, depth = 0): boolean {
    const l = this.list(dir);
    if (!l || depth > 3) return false;
    for (const [entry, type] of l) {
      if (type === "file" && (entry.endsWith(".py") || EXTENSION.test(entry))) return true;
      if (type === "dir" && this.holdsPython(join(dir, entry), depth + 1)) return true;
    }
    return false;
  }

  /**
   * Resolve a dotted absolute name. Like Python, the first root holding the top-level name as
   * a module or regular package wins; namespace portions across roots are merged.
   */
  resolve(dotted: string): LocalResolution | undefined {
    const parts = dotted.split(".");
    let dirs: string[] = [];
    const files: string[] = [];
    let found = "";
    let namespace = false;
    for (let k = 0; k < parts.length; k++) {
      const name = parts[k] as string;
      const search = k === 0 ? this.roots : dirs;
      const portions: string[] = [];
      let hit: { kind: "package" | "module" | "namespace"; path: string } | undefined;
      for (const d of search) {
        const f = this.findIn(d, name);
        if (!f) continue;
        if (f.kind === "namespace") portions.push(f.path);
        else {
          hit = f;
          break;
        }
      }
      if (hit) {
        namespace = false;
        files.push(hit.path);
        found = found ? `${found}.${name}` : name;
        if (hit.kind === "module") break;
        dirs = [dirname(hit.path)];
      } else if (portions.length > 0) {
        namespace = true;
        found = found ? `${found}.${name}` : name;
        dirs = portions;
      } else break;
    }
    return found ? { files, found, namespace } : undefined;
  }

  /** The folders that make a top-level name a namespace package (none if it is anything else). */
  namespacePortions(name: string): string[] {
    const found = this.roots.map((r) => this.findIn(r, name)).filter((f) => f !== undefined);
    return found.every((f) => f.kind === "namespace") ? found.map((f) => f.path) : [];
  }

  /**
   * The package a file belongs to, as a dotted name, or undefined for a top-level module
   * (a file directly in a root). `pkg/sub/mod.py` -> "pkg.sub"; `pkg/__init__.py` -> "pkg".
   */
  packageOf(file: string): string | undefined {
    for (const root of this.roots) {
      const rel = relative(root, dirname(file));
      if (rel.startsWith("..") || rel.startsWith(sep)) continue;
      return rel === "" ? undefined : rel.split(sep).join(".");
    }
    return undefined;
  }
}

/**
 * The absolute name of a relative import `level` dots up from `pkg` (the importing module's
 * package). Undefined when it climbs above the top-level package.
 */
export function absoluteName(
  pkg: string | undefined,
  level: number,
  module: string,
): string | undefined {
  if (level === 0) return module;
  if (pkg === undefined) return undefined;
  const parts = pkg.split(".");
  if (level - 1 > parts.length - 1) return undefined;
  const base = parts.slice(0, parts.length - (level - 1)).join(".");
  return module ? `${base}.${module}` : base;
}
