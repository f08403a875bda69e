/**
 * Which environments a command acts on, in the seed's notation: `hostname`, `vpy_user@host`,
 * `user@host:full_path_to_vpy`, `host:full_path_vpy`, `:full_path`, `user@`; plus group names.
 * No selector means every environment.
 */
import { posix } from "node:path";
import { loginUser } from "../transport/index.js";
import { UserError } from "../util/errors.js";
import { sshTarget } from "./connections.js";
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
    // Spelt as the inventory's paths are: /srv//app/venv/ is /srv/app/venv.
    const raw = text.slice(colon + 1);
    p.path = raw === "" ? raw : posix.normalize(raw).replace(/\/+$/, "");
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
  // A group where a host goes (web:/srv/app/venv, deploy@web): every host of the group.
  if (p.host !== undefined && !inv.hosts.some((h) => h.name === p.host) && inv.groups.has(p.host)) {
    p.group = p.host;
    delete p.host;
  }
  if (p.host !== undefined && !inv.hosts.some((h) => h.name === p.host)) {
    const known = inv.hosts.map((h) => h.name).join(", ");
    fail(`names no host or group of the inventory (hosts: ${known || "none"})`);
  }
  return p;
}

/** Host name to the user ssh logs in as there, for environments the inventory names no user. */
export type LoginUsers = ReadonlyMap<string, string>;

function matches(
  p: Pattern,
  host: FleetHost,
  env: FleetEnv,
  inv: Inventory,
  logins: LoginUsers,
): boolean {
  if (p.group !== undefined && !(inv.groups.get(p.group) ?? []).includes(host.name)) return false;
  if (p.host !== undefined && p.host !== host.name) return false;
  if (p.user !== undefined && p.user !== (envUser(host, env) ?? logins.get(host.name)))
    return false;
  if (p.path !== undefined && p.path !== env.path) return false;
  return true;
}

/**
 * The environments any of `selectors` picks (all of them for none), in inventory order. An
 * environment the inventory names no user for belongs to the user ssh logs in as: `logins`.
 */
export function selectEnvs(
  inv: Inventory,
  selectors: readonly string[],
  logins: LoginUsers = new Map(),
): Selected[] {
  const patterns = selectors.map((s) => parseSelector(s, inv));
  const out: Selected[] = [];
  const used = new Set<number>();
  for (const host of inv.hosts) {
    for (const env of host.envs) {
      const hits = patterns.flatMap((p, i) => (matches(p, host, env, inv, logins) ? [i] : []));
      for (const i of hits) used.add(i);
      if (patterns.length === 0 || hits.length > 0) out.push({ host, env });
    }
  }
  if (selectors.length === 0 && out.length === 0)
    throw new UserError(`${inv.file} lists no environments.`, 2);
  // A selector that picks nothing is a typo more often than not: acting on the others alone
  // would look like success.
  const unused = selectors.filter((_, i) => !used.has(i));
  if (unused.length > 0) {
    throw new UserError(
      `No environment of ${inv.file} matches ${unused.map((u) => `"${u}"`).join(" or ")}.`,
      2,
    );
  }
  return out;
}

/** Login users asked of ssh, by the target asked about. */
const askedLogins = new Map<string, Promise<string | undefined>>();

/**
 * selectEnvs, with the login users a selector's user part needs: for a host with an environment
 * the inventory names no user for, `ssh -G` says whom ssh logs in as there (its configuration's
 * `User`, else the local user), so `deploy@web1` picks what a deploy to web1 would do as deploy.
 * Asked only when a selector names a user, of all such hosts at once, and once per process (the
 * early connect and the command both select).
 */
export async function resolveSelection(
  inv: Inventory,
  selectors: readonly string[],
): Promise<Selected[]> {
  const logins = new Map<string, string>();
  // Parsed as selectEnvs will (a bad selector fails here, before any ssh is asked).
  if (selectors.some((s) => parseSelector(s, inv).user !== undefined)) {
    const hosts = inv.hosts.filter((h) => h.envs.some((e) => envUser(h, e) === undefined));
    await Promise.all(
      hosts.map(async (h) => {
        const target = sshTarget(h, undefined);
        const key = JSON.stringify(target);
        const asked = askedLogins.get(key) ?? loginUser(target);
        askedLogins.set(key, asked);
        const user = await asked;
        if (user) logins.set(h.name, user);
      }),
    );
  }
  return selectEnvs(inv, selectors, logins);
}
