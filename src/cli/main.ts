/** The `pyferry` command line. */
import { Command } from "commander";
import { VERSION } from "../version.js";
import { registerAnalyze } from "./analyze.js";
import { registerBuildCommands } from "./build-commands.js";
import { registerConfig } from "./config-command.js";
import { registerFleet } from "./fleet-command.js";
import { runProgram } from "./parse.js";
import { registerRemoteCommands } from "./remote-commands.js";
import { registerWheelhouse } from "./wheelhouse-command.js";

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
  registerConfig(program);
  registerRemoteCommands(program);
  registerWheelhouse(program);
  registerFleet(program);
  program.addHelpText(
    "after",
    `
Examples:
  pyferry analyze examples/hello/hello.py      what the example script needs
  pyferry analyze train.py -o spec.json        write a conda-style spec
  pyferry run examples/hello/hello.py          analyze, lock, build and run, all cached
  pyferry run --on gpu1 train.py               the same on another machine, over ssh

Run 'pyferry <command> --help' for a command's options.`,
  );
  return program;
}

/** Parse and run; resolves to the process exit code. */
export function run(argv: string[], program = buildProgram()): Promise<number> {
  return runProgram(program, argv);
}
