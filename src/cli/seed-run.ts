/**
 * `python_package_run <environment-tarball> <COMMAND...>`: the cctools-compatible entry. Unpacks
 * the archive once into the cache and runs COMMAND inside it; status and signals pass through.
 */
import { reportError, stopQuietlyOnClosedPipe } from "./output.js";

const USAGE = `Usage: python_package_run <environment-tarball> <COMMAND...>

Run COMMAND inside the environment packed in <environment-tarball> (written by
python_package_create or pyferry pack). The archive is unpacked once into pyferry's
cache and reused; the command runs in the current folder with the environment's
python first on PATH, and its exit status is returned.

Example:
  python_package_run venv.tar.gz python3 hi.py
`;

export async function runSeedRun(argv: string[]): Promise<void> {
  stopQuietlyOnClosedPipe();
  // Everything after the archive belongs to COMMAND, options included: no option parsing there.
  if (argv[0] === "-h" || argv[0] === "--help") {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.length < 2) {
    process.stderr.write(`error: need an environment archive and a command.\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  try {
    const { execInBundle } = await import("../bundle/exec.js");
    // execInBundle has already re-raised a signal the command died of; what is left is a status.
    process.exitCode = await execInBundle(argv[0] as string, argv.slice(1));
  } catch (e) {
    process.exitCode = reportError(e, process.env.PYFERRY_DEBUG === "1");
  }
}
