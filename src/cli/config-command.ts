/** `pyferry config show`: the merged configuration, and where every value came from. */
import type { Command } from "commander";
import { out, writeJson } from "./output.js";

export function registerConfig(program: Command): void {
  const config = program
    .command("config")
    .description("inspect pyferry's configuration (files, environment, flags)")
    .addHelpText("after", "\nExample:\n  PYFERRY_TARGET=gpu1 pyferry config show");
  config
    .command("show")
    .description("print the merged configuration and, for every value, where it came from")
    .option("--json", "machine-readable output: {values: [{key, value, source}], files: [...]}")
    .addHelpText(
      "after",
      `
Configuration layers, later overriding earlier key by key:
  /etc/pyferry.toml, $XDG_CONFIG_HOME/pyferry/config.toml (~/.config/pyferry/config.toml),
  ./pyferry.toml, [tool.pyferry] in ./pyproject.toml, the file named by $PYFERRY_CONFIG,
  $PYFERRY_TARGET, flags such as --on.

Example pyferry.toml:
  default_target = "gpu1"
  [targets.gpu1]
  address = "ubuntu@10.0.0.5:2222"
  identity_file = "~/.ssh/id_gpu"

Examples:
  pyferry config show                 values with the file or variable behind each
  pyferry config show --json          the same as JSON, with the files read in order`,
    )
    .action(async (flags: { json?: boolean }) => {
      // Loaded here, not at start-up, like every command's implementation.
      const { describeConfig, loadConfig } = await import("../config/index.js");
      const loaded = loadConfig();
      const values = describeConfig(loaded);
      if (flags.json) {
        writeJson({ values, files: loaded.files });
        return;
      }
      process.stdout.write(renderTable(values, loaded.files, loaded.searched));
    });
}

interface Row {
  key: string;
  value: unknown;
  source: string;
}

/** An aligned KEY / VALUE / SOURCE table, then the files read (or where pyferry looked). */
function renderTable(rows: Row[], files: readonly string[], searched: readonly string[]): string {
  const lines: string[] = [];
  if (rows.length === 0) {
    lines.push("No configuration is set.");
  } else {
    const cells = rows.map((r) => [r.key, JSON.stringify(r.value), r.source] as const);
    const w0 = Math.max(3, ...cells.map((c) => c[0].length));
    const w1 = Math.max(5, ...cells.map((c) => c[1].length));
    lines.push(out.bold(`${"KEY".padEnd(w0)}  ${"VALUE".padEnd(w1)}  SOURCE`));
    for (const [k, v, s] of cells) lines.push(`${k.padEnd(w0)}  ${v.padEnd(w1)}  ${out.dim(s)}`);
  }
  lines.push("");
  if (files.length > 0) {
    lines.push("Files read, in order:", ...files.map((f) => `  ${f}`));
  } else {
    lines.push(
      "No configuration file was found; pyferry looks for:",
      ...searched.map((f) => `  ${f}`),
    );
  }
  return `${lines.join("\n")}\n`;
}
