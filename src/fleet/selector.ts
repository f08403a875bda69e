/**
 * Which environments a command acts on, in the seed's notation: `hostname`, `vpy_user@host`,
 * `user@host:full_path_to_vpy`, `host:full_path_vpy`, `:full_path`, `user@`; plus group names.
 * No selector means every environment.
 */
import { UserError } from "../util/errors.js";
import { envUser, type FleetEnv, type FleetHost, type Inventory } from "./inventory.js";

export interface Selected {
  host: FleetHost;
  env: FleetEnv;
}

interface Pattern {
  user?: string;
  host?: string;
  group?: string;
  path?: string;
}

function parseSelector(text: string, inv: Inventory): Pattern {
  const fail = (why: string): never => {
    throw new UserError(`The selector "${text}" ${why}.`, 2);
  };
  if (text === "" || /\s/.test(text)) fail("is empty or has whitespace");
  const colon = text.indexOf(":");
  const left = colon === -1 ? text : text.slice(0, colon);
  const p: Pattern = {};
  if (colon !== -1) {
    p.path = text.slice(colon + 1).replace(/\/+$/, "");
    if (!p.path.startsWith("/")) fail("needs an absolute path after the colon");
  }
  const at = left.indexOf("@");
  if (at !== -1) {
    p.user = left.slice(0, at);
    if (p.user === "") fail("has an empty user name");
    const host = left.slice(at + 1);
    if (host !== "") p.host = host;
  } else if (left !== "") {
    if (colon === -1 && !inv.hosts.some((h) => h.name === left) && inv.groups.has(left))
      p.group = left;
    else p.host = left;
  }
  if (p.host !== undefined && !inv.hosts.some((h) => h.name === p.host)) {
    const known = inv.hosts.map((h) => h.name).join(", ");
    fail(`names no host or group of the inventory (hosts: ${known || "none"})`);
  }
  return p;
}

function matches(p: Pattern, host: FleetHost, env: FleetEnv, inv: Inventory): boolean {
  if (p.group !== undefined && !(inv.groups.get(p.group) ?? []).includes(host.name)) return false;
  if (p.host !== undefined && p.host !== host.name) return false;
  if (p.user !== undefined && p.user !== envUser(host, env)) return false;
  if (p.path !== undefined && p.path !== env.path) return false;
  return true;
}

/** The environments any of `selectors` picks (all of them for none), in inventory order. */
export function selectEnvs(inv: Inventory, selectors: readonly string[]): Selected[] {
  const patterns = selectors.map((s) => parseSelector(s, inv));
  const out: Selected[] = [];
  for (const host of inv.hosts) {
    for (const env of host.envs) {
      if (patterns.length === 0 || patterns.some((p) => matches(p, host, env, inv)))
        out.push({ host, env });
    }
  }
  if (out.length === 0) {
    throw new UserError(
      selectors.length === 0
        ? `${inv.file} lists no environments.`
        : `No environment of ${inv.file} matches ${selectors.join(" or ")}.`,
      2,
    );
  }
  return out;
}
