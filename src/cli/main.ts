/** The `pyferry` command line. */
import { Command } from "commander";
import { VERSION } from "../version.js";
import { registerAnalyze } from "./analyze.js";
import { registerBuildCommands } from "./build-commands.js";
import { registerConfig } from "./config-command.js";
import { registerFleet } from "./fleet-command.js";
import { runProgram } from "./parse.js";
import { registerRemoteCommands } from "./remote-commands.js";
import { GLOBAL_FLAGS, RUN_WITH_VALUE } from "./run-options.js";
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

/** Commands whose arguments after the first operand belong to the program they run. */
const PASS_THROUGH = new Set(["run", "exec"]);

/**
 * `argv` with --debug and --no-color moved in front of the command wherever they were given
 * among pyferry's own options (`pyferry deploy --check --debug`); never from after `--`, nor
 * from the arguments of the program that run or exec starts.
 */
export function hoistGlobalFlags(argv: readonly string[]): string[] {
  const front: string[] = [];
  const rest: string[] = [];
  const passThrough = PASS_THROUGH.has(argv.find((a) => !a.startsWith("-")) ?? "");
  let operands = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (passThrough && operands >= 2) {
      rest.push(...argv.slice(i));
      break;
    }
    if (GLOBAL_FLAGS.has(a)) front.push(a);
    else rest.push(a);
    // A value of run's own options (--on HOST) is not the script.
    if (passThrough && RUN_WITH_VALUE.has(a) && i + 1 < argv.length) rest.push(argv[++i] as string);
    else if (!a.startsWith("-")) operands++;
  }
  return [...front, ...rest];
}

/** Parse and run; resolves to the process exit code. */
export function run(argv: string[], program = buildProgram()): Promise<number> {
  return runProgram(program, hoistGlobalFlags(argv));
}
