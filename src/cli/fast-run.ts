/**
 * `pyferry run SCRIPT ARGS...` without building the command-line parser and its commands: the
 * warm path of run must add as little as possible to starting Python. Anything unusual (options
 * before the script, help) goes through the full CLI instead.
 */
export async function tryFastRun(argv: string[]): Promise<number | undefined> {
  if (argv[0] === "deploy") {
    const { connectForDeploy } = await import("./early-connect.js");
    await connectForDeploy(argv);
    return undefined;
  }
  if (argv[0] === "run" && argv.includes("--on")) {
    // Remote: the full parse follows, but the SSH handshake can start now.
    const { connectForRun } = await import("./early-connect.js");
    connectForRun(argv);
    return undefined;
  }
  if (argv[0] !== "run" || argv.length < 2 || (argv[1] as string).startsWith("-")) return undefined;
  try {
    const { runCommand } = await import("../pipeline/run.js");
    await runCommand(argv[1] as string, argv.slice(2));
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    const { reportError } = await import("./output.js");
    return reportError(e, process.env.PYFERRY_DEBUG === "1");
  }
}
