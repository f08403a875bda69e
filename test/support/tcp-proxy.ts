/**
 * A loopback TCP proxy in front of a host, to break connections on purpose: drop them after a
 * number of bytes (a link lost mid-transfer), drop them now, or let them hang silently.
 */
import { createServer, type Socket, connect as tcpConnect } from "node:net";

export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** Bytes passed client -> server so far, over all connections. */
  bytes(): number;
  /** Drop every connection (with a TCP reset) once n more bytes have passed client -> server;
   *  the proxy keeps accepting new connections afterwards. */
  cutAfter(n: number): void;
  /** Drop every open connection now, with a TCP reset to the client. */
  dropAll(): void;
  /** Stop forwarding in both directions without closing anything: the peers see a dead link. */
  stall(): void;
  /** stall() for the connections open now only; later ones pass as usual. */
  stallOpen(): void;
  /** Open connections. */
  connections(): number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
}

/**
 * A reset, not a FIN, so the peer cannot mistake a lost link for an orderly end. Not after end():
 * a reset racing a pending shutdown leaves the native handle behind and node then spins forever
 * at exit (seen on Node 20; cf. libp2p/js-libp2p#3597), so such a socket is just destroyed.
 */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

export function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let total = 0;
  /** Bytes still allowed through before the cut; undefined: no cut armed. */
  let budget: number | undefined;
  let stalled = false;
  /** Sockets of the connections stallOpen() stopped. */
  const frozen = new WeakSet<Socket>();

  const drop = (p: Pair) => {
    pairs.delete(p);
    abort(p.client);
    abort(p.server);
  };
  const dropAll = () => {
    for (const p of [...pairs]) drop(p);
  };

  /** Copy `from` to `to` with backpressure; `count` for the client -> server direction. */
  const forward = (from: Socket, to: Socket, count: boolean) => {
    from.on("data", (chunk: Buffer) => {
      if (stalled || frozen.has(from)) return;
      let data = chunk;
      let cut = false;
      if (count && budget !== undefined) {
        if (data.length >= budget) {
          data = data.subarray(0, budget);
          cut = true;
        } else {
          budget -= data.length;
        }
      }
      if (count) total += data.length;
      if (cut) {
        budget = undefined;
        // Let the last allowed bytes reach the server before everything is dropped.
        to.write(data, () => dropAll());
        from.pause();
        return;
      }
      if (!to.write(data)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    from.on("end", () => {
      if (!stalled && !frozen.has(from)) to.end();
    });
  };

  const server = createServer((client) => {
    client.pause();
    const upstream = tcpConnect({ host: targetHost, port: targetPort });
    const pair: Pair = { client, server: upstream };
    pairs.add(pair);
    const onError = () => drop(pair);
    client.on("error", onError);
    upstream.on("error", onError);
    client.on("close", () => drop(pair));
    upstream.on("close", () => drop(pair));
    upstream.once("connect", () => {
      forward(client, upstream, true);
      forward(upstream, client, false);
      client.resume();
    });
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      resolve({
        port,
        bytes: () => total,
        cutAfter: (n: number) => {
          if (n <= 0) dropAll();
          else budget = n;
        },
        dropAll,
        stall: () => {
          stalled = true;
        },
        stallOpen: () => {
          for (const p of pairs) {
            frozen.add(p.client);
            frozen.add(p.server);
          }
        },
        connections: () => pairs.size,
        close: () =>
          new Promise<void>((done) => {
            dropAll();
            server.close(() => done());
          }),
      });
    });
  });
}
