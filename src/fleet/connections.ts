/**
 * One SSH connection per host and login user for a whole deploy or rollback: planning and
 * applying share it. Kept apart from the deploy logic so that the command line can start the
 * handshakes before loading the resolver and the installer.
 */
import { resolve } from "node:path";
import { createLimiter } from "../install/pool.js";
import { RemoteStore, SshConnection, type SshTarget } from "../transport/index.js";
import { envUser, type FleetEnv, type FleetHost } from "./inventory.js";
import type { Selected } from "./selector.js";

function connectionKey(host: FleetHost, env: FleetEnv): string {
  return `${host.name}\0${envUser(host, env) ?? ""}`;
}

/** How ssh reaches `host` as `user` (undefined: the user ssh's configuration says). */
export function sshTarget(host: FleetHost, user: string | undefined): SshTarget {
  return {
    destination: user ? `${user}@${host.address.replace(/^.*@/, "")}` : host.address,
    label: user ? `${user}@${host.name}` : host.name,
    ...(host.port !== undefined ? { port: host.port } : {}),
    ...(host.identityFile ? { identityFile: host.identityFile } : {}),
    ...(host.knownHostsFile ? { knownHostsFile: host.knownHostsFile } : {}),
    acceptNewHostKeys: host.acceptNewHostKeys,
    sshOptions: host.sshOptions.flatMap((o) => ["-o", o]),
  };
}

/** The selections grouped by connection, in the order they were given. */
function byConnection(sels: readonly Selected[]): Selected[][] {
  const groups = new Map<string, Selected[]>();
  for (const s of sels) {
    const k = connectionKey(s.host, s.env);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  return [...groups.values()];
}

export class Connections {
  private readonly open = new Map<string, RemoteStore>();

  store(sel: Selected): RemoteStore {
    const k = connectionKey(sel.host, sel.env);
    let s = this.open.get(k);
    if (!s) {
      s = new RemoteStore(
        new SshConnection(sshTarget(sel.host, envUser(sel.host, sel.env))),
        sel.host.root,
      );
      this.open.set(k, s);
    }
    return s;
  }

  /**
   * Start the handshakes of the first `forks` connections now, so that they overlap whatever
   * comes before their first session. A failure is reported by that session.
   */
  connectAhead(sels: readonly Selected[], forks: number): void {
    for (const group of byConnection(sels).slice(0, Math.max(1, forks))) {
      const conn = this.store(group[0] as Selected).conn;
      if (conn instanceof SshConnection) conn.open().catch(() => undefined);
    }
  }

  /** `fn` for each connection's selections, at most `forks` connections at once. */
  async each<T>(
    sels: Selected[],
    forks: number,
    fn: (store: RemoteStore, group: Selected[]) => Promise<T[]>,
    onError: (group: Selected[], err: unknown) => T[],
  ): Promise<T[]> {
    const limit = createLimiter(Math.max(1, forks));
    const results = await Promise.all(
      byConnection(sels).map((group) =>
        limit(async () => {
          try {
            return await fn(this.store(group[0] as Selected), group);
          } catch (err) {
            return onError(group, err);
          }
        }),
      ),
    );
    return results.flat();
  }

  /** close(), for an exiting process that can no longer wait. */
  closeSync(): void {
    for (const s of this.open.values()) if (s.conn instanceof SshConnection) s.conn.closeSync();
    this.open.clear();
  }

  /** Close every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.open.values()].map((s) => s.conn.close()));
    this.open.clear();
  }
}

/** Connections started before the command line was parsed (see cli/early-connect.ts). */
let early: { key: string; connections: Connections } | undefined;

/** Start connecting for `sels` now, under `key` (what the command will ask for). */
export function connectEarly(key: string, sels: readonly Selected[], forks: number): void {
  const connections = new Connections();
  connections.connectAhead(sels, forks);
  early = { key, connections };
  // Nobody took them over (the command failed before): close them on the way out.
  process.once("exit", () => {
    if (early?.connections === connections) connections.closeSync();
  });
}

/** The connections started early under `key`, if any; the caller closes them. */
export function takeEarly(key: string): Connections | undefined {
  if (early?.key !== key) return undefined;
  const { connections } = early;
  early = undefined;
  return connections;
}

/** What identifies a deploy's connections: the inventory, the selectors and --forks. */
export function earlyKey(inventory: string, selectors: readonly string[], forks: number): string {
  return JSON.stringify([resolve(inventory), selectors, forks]);
}
