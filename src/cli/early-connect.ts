/**
 * For `pyferry run [OPTIONS] --on TARGET SCRIPT ...`: start the SSH connection before the
 * command line framework and the commands load. Anything unusual is left to the full parse,
 * which also reports every error; this never fails.
 */
import { connectEarly } from "../transport/early.js";
import { sshTargetOf, targetFor } from "./ssh-target.js";

/** Options of `run` that take a value (see build-commands.ts). */
const WITH_VALUE = new Set(["--python", "--on", "--fetch", "--env", "-n", "--name"]);

export function connectForRun(argv: readonly string[]): void {
  if (argv[0] !== "run") return;
  let on: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("-")) break;
    if (a === "--") break;
    if (a.startsWith("--on=")) on = a.slice(5);
    else if (WITH_VALUE.has(a)) {
      if (a === "--on") on = argv[i + 1];
      i++;
    }
  }
  if (on === undefined) return;
  try {
    connectEarly(sshTargetOf(targetFor(on)));
  } catch {
    // The full parse says what is wrong.
  }
}
