/**
 * `python_package_create <dependency-file> <output-path>`: the cctools-compatible entry. Builds
 * the environment a spec describes, with its own interpreter so it runs on machines of the
 * same architecture that have no Python, and packs it into a .tar.gz.
 */
import { Command } from "commander";
import { UserError } from "../util/errors.js";
import { inputAt, sameName } from "../util/output-file.js";
import { runProgram } from "./parse.js";

export async function runSeedCreate(argv: string[]): Promise<number> {
  const program = new Command("python_package_create")
    .description(
      "Create a relocatable environment archive from a dependency file written by python_package_analyze.",
    )
    .argument("<dependency-file>", "the JSON spec from python_package_analyze")
    .argument("<output-path>", "the environment archive to write (usually NAME.tar.gz)")
    .option("--debug", "show stack traces on errors")
    .option(
      "--mixed-sources",
      "take a project's files from every package source, as pip does (default: the first source that has it)",
    )
    .showHelpAfterError()
    .exitOverride()
    .addHelpText(
      "after",
      `
Example:
  python_package_analyze example.py dependencies.json
  python_package_create dependencies.json example_venv.tar.gz
  python_package_run example_venv.tar.gz python3 example.py`,
    )
    .action(async (spec: string, output: string, flags: { mixedSources?: boolean }) => {
      if (inputAt(output, [spec]) !== undefined)
        throw new UserError(
          `${output} is ${sameName(output, spec)}the dependency file being read; name another file for the archive.`,
          2,
        );
      const { createFromSpec } = await import("../pipeline/commands.js");
      await createFromSpec(spec, output, { mixedSources: flags.mixedSources === true });
    });
  return runProgram(program, argv);
}
