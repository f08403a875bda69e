/**
 * Option definitions several commands share, so their help reads the same everywhere.
 */
import type { Command } from "commander";

/** Commander's collector for a repeatable option. */
export const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

/** `--platform`'s help: every form readTarget (python/target.ts) takes. */
export const PLATFORM_HELP =
  "a machine you cannot reach: a pyferry lock made for it, or its [tool.pyferry.target] table (TOML or JSON)";

/** Where packages come from, as the commands that resolve take it. */
export function addIndexOptions(cmd: Command): Command {
  return cmd
    .option("--index-url <url>", "package index (default: pip's configuration)")
    .option("--extra-index-url <url>", "extra package index (repeatable)", collect)
    .option("--find-links <path|url>", "folder or page of distribution files (repeatable)", collect)
    .option("--no-index", "use --find-links only")
    .option(
      "--mixed-sources",
      "take a project's files from every source, as pip does (default: the first source that has it)",
    );
}
