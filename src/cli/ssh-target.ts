/** From a target given on the command line to what the ssh transport needs. Kept light: the
 * early connection of `run --on` loads it before anything else. */
import { loadConfig, resolveTarget, type TargetConfig, withFlags } from "../config/index.js";
import type { SshTarget } from "../transport/ssh.js";

/** The transport's view of a configured target. */
export function sshTargetOf(t: TargetConfig): SshTarget {
  return {
    destination: t.address,
    label: t.name ?? shownDestination(t),
    ...(t.port !== undefined ? { port: t.port } : {}),
    ...(t.identityFile ? { identityFile: t.identityFile } : {}),
    ...(t.knownHostsFile ? { knownHostsFile: t.knownHostsFile } : {}),
    sshOptions: t.sshOptions.flatMap((o) => ["-o", o]),
    acceptNewHostKeys: t.acceptNewHostKeys,
  };
}

/** A destination as a person writes it: an IPv6 address in brackets when a port follows. */
function shownDestination(t: TargetConfig): string {
  if (t.port === undefined) return t.address;
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user !== undefined ? `${t.user}@` : ""}${host}:${t.port}`;
}

/** The target `spec` names (or the configured default), resolved through the configuration. */
export function targetFor(spec: string | undefined): TargetConfig {
  const config = withFlags(loadConfig(), spec === undefined ? {} : { target: spec });
  return resolveTarget(config, spec);
}
