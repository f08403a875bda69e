/** Commands that look after what pyferry keeps on other machines, and its connections to them: store gc, clean, disconnect. */
import type { Command } from "commander";
import { writeJson } from "./output.js";

export function registerRemoteCommands(program: Command): void {
  const store = program
    .command("store")
    .description("the content-addressed store on a target")
    .addHelpText("after", "\nExample:\n  pyferry store gc --on gpu1 --json");
  store
    .command("gc")
    .description(
      "remove finished runs, environments nothing uses or names, and files no environment holds",
    )
    .option("--on <target>", "the target (default: default_target from the configuration)")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
A program still running there, and what it uses, are never removed.

Example:
  pyferry store gc --on gpu1`,
    )
    .action(async (flags: { on?: string; json?: boolean }) => {
      const { withStore } = await import("./remote-run.js");
      const removed = await withStore(flags.on, (s) => s.gc());
      if (flags.json) writeJson(removed);
      else
        process.stderr.write(
          `Removed ${removed.runs} finished run(s), ${removed.envs} environment(s) and ${removed.objects} file(s) nothing used.\n`,
        );
    });

  program
    .command("disconnect")
    .description("close the ssh connections pyferry keeps open between commands")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
pyferry keeps each ssh connection PYFERRY_SSH_PERSIST seconds (60 by default) after its last
use, so that the next command logs in no more. This closes them all now, say after a host's
key or your access there changed; PYFERRY_SSH_PERSIST=0 keeps none at all.

Example:
  pyferry disconnect`,
    )
    .action(async (flags: { json?: boolean }) => {
      const { closeKeptConnections } = await import("../transport/ssh.js");
      const closed = await closeKeptConnections();
      if (flags.json) writeJson({ closed });
      else process.stderr.write(`Closed ${closed} kept ssh connection(s).\n`);
    });

  program
    .command("clean")
    .description("remove a pack: its local folder, or with --on its copy on a target")
    .argument("<id>", "the pack's ID (its name, as pyferry pack or run -n gave it)")
    .option("--on <target>", "remove the pack's environment and finished runs there instead")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Examples:
  pyferry clean train-3f2a                 remove the local pack folder
  pyferry clean nightly --on gpu1          drop the name "nightly" and what only it kept there`,
    )
    .action(async (id: string, flags: { on?: string; json?: boolean }) => {
      if (flags.on === undefined) {
        const { removePackFolder } = await import("../pipeline/staged.js");
        const removed = await removePackFolder(id);
        if (flags.json) writeJson({ removed });
        else process.stderr.write(`Removed ${removed}.\n`);
        return;
      }
      const { withStore } = await import("./remote-run.js");
      const removed = await withStore(flags.on, (s) => s.clean({ name: id }));
      if (flags.json) writeJson(removed);
      else
        process.stderr.write(
          `Removed the name ${id}, ${removed.runs} finished run(s) and ${removed.envs} environment(s) on ${flags.on}.\n`,
        );
    });
}
