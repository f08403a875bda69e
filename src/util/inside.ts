/**
 * Whether one path lies in another, compared as resolved paths (relative ones from the working
 * directory). A name that merely starts with two dots, such as "..data", is inside.
 */
import { isAbsolute, relative, sep } from "node:path";

function relativeInside(parent: string, path: string): string | undefined {
  const rel = relative(parent, path);
  return rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? undefined : rel;
}

/** `path` is `parent` itself or anything under it. */
export function isInside(parent: string, path: string): boolean {
  return relativeInside(parent, path) !== undefined;
}

/** `path` is under `parent`, and not `parent` itself. */
export function isUnder(parent: string, path: string): boolean {
  const rel = relativeInside(parent, path);
  return rel !== undefined && rel !== "";
}
