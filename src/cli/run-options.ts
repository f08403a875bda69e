/** Options of `run` that take a value (see build-commands.ts): read before the full parse. */
export const RUN_WITH_VALUE = new Set(["--python", "--on", "--fetch", "--env", "-n", "--name"]);
/** Options of `run` that take none, besides the program's own (GLOBAL_FLAGS). */
export const RUN_FLAGS = new Set(["--clean-after", "-f", "--guess-files", "-v", "--verbose"]);
/** The program's own options, which the README lets a user give after the command too. */
export const GLOBAL_FLAGS = new Set(["--debug", "--no-color"]);
