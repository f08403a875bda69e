/** Parsing and running a commander program, with pyferry's exit statuses. */
import { type Command, CommanderError } from "commander";
import { markLightRun } from "./code-cache.js";
import { reportError, stopQuietlyOnClosedPipe } from "./output.js";

/** Parse and run; resolves to the process exit code. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  stopQuietlyOnClosedPipe();
  try {
    await program.parseAsync(argv, { from: "user" });
    // Commands that run a program (run, exec) leave its status in process.exitCode.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      markLightRun();
      // Help and version are successes; everything else commander rejects is a usage error.
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, argv.includes("--debug") || process.env.PYFERRY_DEBUG === "1");
  }
}
