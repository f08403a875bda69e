/** Parsing and running a commander program, with pyferry's exit statuses. */
import { type Command, CommanderError } from "commander";
import { markLightRun } from "./code-cache.js";
import {
  errorSentence,
  reportError,
  stopQuietlyOnClosedPipe,
  writeJson,
  wroteJson,
} from "./output.js";

/**
 * Whether `--json` is among the options of the command line (not after `--`, nor among the
 * arguments of the program run or exec starts), for an error commander raised while parsing.
 */
function jsonAsked(argv: readonly string[]): boolean {
  const cut = argv.indexOf("--");
  const own = cut < 0 ? argv : argv.slice(0, cut);
  return (
    own.includes("--json") && !["run", "exec"].includes(own.find((a) => !a.startsWith("-")) ?? "")
  );
}

/**
 * Parse and run; resolves to the process exit code. A command given --json that fails before
 * printing its JSON prints `{"error": SENTENCE}` on stdout too: a reader always gets JSON.
 */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  stopQuietlyOnClosedPipe();
  let json = false;
  program.hook("preAction", (_self, action) => {
    json = action.opts().json === true;
  });
  // Commander answers `help NAME` for a command it lacks with the whole help and status 2,
  // never saying why: say it as `pyferry NAME` would.
  const [first, second] = argv;
  if (
    first === "help" &&
    second !== undefined &&
    !program.commands.some((c) => c.name() === second)
  ) {
    process.stderr.write(`error: unknown command '${second}'\n(run with --help for usage)\n`);
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    // Commands that run a program (run, exec) leave its status in process.exitCode.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      markLightRun();
      // Help and version are successes; everything else commander rejects is a usage error.
      if (e.exitCode === 0) return 0;
      if (jsonAsked(argv) && !wroteJson())
        writeJson({ error: e.message.replace(/^error: /, "").replace(/\.?$/, ".") });
      return 2;
    }
    const status = reportError(e, argv.includes("--debug") || process.env.PYFERRY_DEBUG === "1");
    if (json && !wroteJson()) writeJson({ error: errorSentence(e).sentence });
    return status;
  }
}
