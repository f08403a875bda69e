/** `pyferry run --on TARGET`: the command-line side of a remote run. */

import { basename } from "node:path";
import { findPack } from "../pipeline/pack-folder.js";
import { remoteRun } from "../pipeline/remote-run.js";
import { RemoteStore, SshConnection } from "../transport/index.js";
import { UserError } from "../util/errors.js";
import { progress } from "../util/progress.js";
import { mib } from "../util/units.js";
import type { RunFlags } from "./build-commands.js";
import { sshTargetOf, targetFor } from "./ssh-target.js";

export async function remoteRunCommand(
  script: string,
  args: string[],
  flags: RunFlags,
): Promise<void> {
  const t = targetFor(flags.on);
  const pack = script.endsWith(".py") ? undefined : findPack(script);
  const report = await remoteRun({
    script,
    ...(pack ? { pack, name: flags.name ?? basename(pack) } : {}),
    args,
    ...(flags.python ? { pythonRequest: flags.python } : {}),
    target: sshTargetOf(t),
    root: t.root ?? "",
    python: t.python,
    fetch: flags.fetch ?? [],
    env: flags.env ?? [],
    verbose: flags.verbose === true,
    cleanAfter: flags.cleanAfter === true,
    ...(flags.name && !pack ? { name: flags.name } : {}),
    ...(flags.guessFiles ? { guessFiles: true } : {}),
    // With -v the steps are lines of their own.
    status: progress(process.stderr, flags.verbose === true),
  });
  process.exitCode = report.code;
}

/** `pyferry sync ID --on TARGET`: ship a pack folder's environment and files, run nothing. */
export async function syncCommand(
  id: string,
  flags: { on: string; verbose?: boolean },
): Promise<void> {
  const pack = findPack(id);
  if (!pack)
    throw new UserError(
      `There is no pack folder ${id} here; write one with pyferry pack SCRIPT --folder.`,
    );
  const t = targetFor(flags.on);
  const report = await remoteRun({
    script: id,
    pack,
    name: basename(pack),
    syncOnly: true,
    args: [],
    target: sshTargetOf(t),
    root: t.root ?? "",
    fetch: [],
    env: [],
    verbose: flags.verbose === true,
    cleanAfter: false,
    status: progress(process.stderr, flags.verbose === true),
  });
  process.stderr.write(
    `Synced ${basename(pack)} to ${flags.on}: sent ${report.objectsSent} file(s), ${mib(report.bytesSent)}.\n`,
  );
}

/** Run `fn` against the store on the target `spec` names, closing the connection after. */
export async function withStore<T>(
  spec: string | undefined,
  fn: (store: RemoteStore) => Promise<T>,
): Promise<T> {
  const t = targetFor(spec);
  const conn = new SshConnection(sshTargetOf(t));
  try {
    return await fn(new RemoteStore(conn, t.root ?? ""));
  } finally {
    await conn.close();
  }
}
