/** `--guess-files`: string literals in the program that name files or folders beside it. */
import { type Stats, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";

/** String literals that name files or folders inside the program's folder. */
export function guessDataFiles(
  strings: { value: string; file: string }[],
  root: string,
  localFiles: Set<string>,
): string[] {
  const out = new Set<string>();
  for (const { value, file } of strings) {
    if (
      value.length === 0 ||
      value.length > 255 ||
      /[\n\r\0*?]/.test(value) ||
      value === "." ||
      value === ".."
    )
      continue;
    if (!/[./\\]/.test(value) && !/^[\w-]+$/.test(value)) continue;
    for (const base of [root, dirname(file)]) {
      const p = isAbsolute(value) ? value : resolve(base, value);
      const rel = relative(root, p);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) continue;
      let st: Stats;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (localFiles.has(p)) break;
      out.add(rel.split(sep).join("/") + (st.isDirectory() ? "/" : ""));
      break;
    }
  }
  return [...out].sort();
}
