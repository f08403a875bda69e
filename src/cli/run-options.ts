/** Options of `run` that take a value (see build-commands.ts): read before the full parse. */
export const RUN_WITH_VALUE = new Set(["--python", "--on", "--fetch", "--env", "-n", "--name"]);
