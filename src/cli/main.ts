/** The `pyferry` command line. */
import { Command, CommanderError } from "commander";
import { VERSION } from "../version.js";
import { registerAnalyze } from "./analyze.js";
import { registerBuildCommands } from "./build-commands.js";
import { reportError } from "./output.js";

export function buildProgram(): Command {
  const program = new Command("pyferry")
    .description(
      "Carry a Python program, with everything it needs, to any machine and run it there.",
    )
    .version(VERSION, "-V, --version")
    .option("--debug", "show stack traces and internal details on errors")
    .option("--no-color", "never colour the output (also: NO_COLOR=1)")
    .showHelpAfterError("(run with --help for usage)")
    .enablePositionalOptions()
    .exitOverride();
  registerAnalyze(program);
  registerBuildCommands(program);
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
    // Commands that run a program (run, exec) leave its status in process.exitCode.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is a usage error.
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, debug);
  }
}
