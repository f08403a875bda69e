/** `pyferry run --on TARGET`: the command-line side of a remote run. */
import { loadConfig, resolveTarget, type TargetConfig, withFlags } from "../config/index.js";
import { remoteRun } from "../pipeline/remote-run.js";
import type { SshTarget } from "../transport/index.js";
import { UserError } from "../util/errors.js";
import type { RunFlags } from "./build-commands.js";

/** The transport's view of a configured target. */
export function sshTargetOf(t: TargetConfig): SshTarget {
  return {
    destination: t.address,
    label: t.name ?? (t.port ? `${t.address}:${t.port}` : t.address),
    ...(t.port !== undefined ? { port: t.port } : {}),
    ...(t.identityFile ? { identityFile: t.identityFile } : {}),
    ...(t.knownHostsFile ? { knownHostsFile: t.knownHostsFile } : {}),
    sshOptions: t.sshOptions.flatMap((o) => ["-o", o]),
    acceptNewHostKeys: t.acceptNewHostKeys,
  };
}

/** The target `spec` names (or the configured default), resolved through the configuration. */
export function targetFor(spec: string | undefined): TargetConfig {
  const config = withFlags(loadConfig(), spec === undefined ? {} : { target: spec });
  const t = resolveTarget(config, spec);
  if (t.python !== "bundled") {
    throw new UserError(
      `Target ${t.name ?? t.address} asks for python = "${t.python}"; only "bundled" is supported so far (the interpreter travels with the environment).`,
      2,
    );
  }
  return t;
}

export async function remoteRunCommand(
  script: string,
  args: string[],
  flags: RunFlags,
): Promise<void> {
  const t = targetFor(flags.on);
  const report = await remoteRun({
    script,
    args,
    ...(flags.python ? { pythonRequest: flags.python } : {}),
    target: sshTargetOf(t),
    root: t.root ?? "",
    fetch: flags.fetch ?? [],
    env: flags.env ?? [],
    verbose: flags.verbose === true,
    cleanAfter: flags.cleanAfter === true,
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.guessFiles ? { guessFiles: true } : {}),
  });
  process.exitCode = report.code;
}
