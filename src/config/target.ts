/** From a target spec (a configured name or an SSH destination) to what the transport needs. */
import { UserError } from "../util/errors.js";
import { parseDestination } from "./destination.js";
import { type Config, q, TARGET_DEFAULTS, type TargetConfig } from "./types.js";

/**
 * The target `spec` names: a `[targets.NAME]` from the configuration (exact name), else an SSH
 * destination ("user@host:port", "user@[::1]:2222", "host", or an ~/.ssh/config alias that ssh
 * resolves). Without a spec, the configuration's default_target (file, PYFERRY_TARGET or --on).
 */
export function resolveTarget(config: Config, spec?: string): TargetConfig {
  let from = "";
  if (spec === undefined) {
    if (!config.defaultTarget) {
      throw new UserError(
        "No target was given; pass --on TARGET, set PYFERRY_TARGET, or set default_target in pyferry.toml.",
      );
    }
    spec = config.defaultTarget.value;
    from = ` from ${config.defaultTarget.source}`;
  }
  const entry = config.targets.get(spec);
  if (entry === undefined) {
    const d = parseDestination(spec, `The target ${q(spec)}${from}`);
    return { ...d, ...TARGET_DEFAULTS, sshOptions: [] };
  }
  // A target without an address is reached by its name, so it can add settings to an ssh alias.
  const address = entry.address?.value ?? spec;
  const d = parseDestination(address, `The address ${q(address)} of target ${q(spec)}`);
  const t: TargetConfig = {
    name: spec,
    address: d.address,
    host: d.host,
    sshOptions: [...(entry.sshOptions?.value ?? TARGET_DEFAULTS.sshOptions)],
    python: entry.python?.value ?? TARGET_DEFAULTS.python,
    acceptNewHostKeys: entry.acceptNewHostKeys?.value ?? TARGET_DEFAULTS.acceptNewHostKeys,
  };
  if (d.user !== undefined) t.user = d.user;
  // The port key already carries any port written in the address (see schema.ts).
  if (entry.port) t.port = entry.port.value;
  if (entry.identityFile) t.identityFile = entry.identityFile.value;
  if (entry.knownHostsFile) t.knownHostsFile = entry.knownHostsFile.value;
  if (entry.root) t.root = entry.root.value;
  return t;
}
