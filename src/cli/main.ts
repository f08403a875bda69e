/** The `pyferry` command line. */
import { Command, CommanderError } from "commander";
import { registerAnalyze } from "./analyze.js";
import { reportError } from "./output.js";

export const VERSION = "0.1.0";

export function buildProgram(): Command {
  const program = new Command("pyferry")
    .description(
      "Carry a Python program, with everything it needs, to any machine and run it there.",
    )
    .version(VERSION, "-V, --version")
    .option("--debug", "show stack traces and internal details on errors")
    .option("--no-color", "never colour the output (also: NO_COLOR=1)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerAnalyze(program);
  program.addHelpText(
    "after",
    `
Examples:
  pyferry analyze examples/hello/hello.py      what the example script needs
  pyferry analyze train.py -o spec.json        write a conda-style spec

Run 'pyferry <command> --help' for a command's options.`,
  );
  return program;
}

/** Parse and run; resolves to the process exit code. */
export async function run(argv: string[], program = buildProgram()): Promise<number> {
  const debug = argv.includes("--debug");
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is a usage error.
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, debug);
  }
}
