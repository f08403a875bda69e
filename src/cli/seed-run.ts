/**
 * `python_package_run <environment-tarball> <COMMAND...>`: the cctools-compatible entry. Unpacks
 * the archive once into the cache and runs COMMAND inside it; status and signals pass through.
 */
import { existsSync } from "node:fs";
import { reportError, stopQuietlyOnClosedPipe } from "./output.js";

const USAGE = `Usage: python_package_run <environment-tarball|environment-name> <COMMAND...>

Run COMMAND inside the environment packed in <environment-tarball> (written by
python_package_create or pyferry pack). The archive is unpacked once into pyferry's
cache and reused; the command runs in the current folder with the environment's
python first on PATH, and its exit status is returned. An environment's name
(venv) stands for its archive (venv.tar.gz) here.

Example:
  python_package_run venv.tar.gz python3 hi.py
`;

/**
 * The seed names the environment (`example_venv`) where its examples give the archive
 * (`example_venv.tar.gz`): a name with no file of its own is its archive's, when that exists.
 */
function archiveOf(name: string): string {
  if (existsSync(name)) return name;
  return [".tar.gz", ".tgz"].map((ext) => `${name}${ext}`).find((f) => existsSync(f)) ?? name;
}

export async function runSeedRun(given: string[]): Promise<void> {
  stopQuietlyOnClosedPipe();
  // Options only before the archive (pyferry's global ones, as the other entry points take
  // them); everything after it belongs to COMMAND, but for a `--` right after it, as exec takes.
  let argv = given;
  let debug = process.env.PYFERRY_DEBUG === "1";
  while (argv[0]?.startsWith("-")) {
    const option = argv[0];
    if (option === "-h" || option === "--help") {
      process.stdout.write(USAGE);
      return;
    }
    if (option === "--debug") debug = true;
    else if (option !== "--no-color") {
      process.stderr.write(`error: unknown option '${option}'.\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    argv = argv.slice(1);
  }
  if (argv[1] === "--") argv = [argv[0] as string, ...argv.slice(2)];
  if (argv.length < 2) {
    process.stderr.write(`error: need an environment archive and a command.\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  try {
    const { execInBundle } = await import("../bundle/exec.js");
    // execInBundle has already re-raised a signal the command died of; what is left is a status.
    process.exitCode = await execInBundle(archiveOf(argv[0] as string), argv.slice(1));
  } catch (e) {
    process.exitCode = reportError(e, debug);
  }
}
