/**
 * OpenSSH's multiplexing protocol (PROTOCOL.mux) on a master's control socket: its framing, and
 * the two questions pyferry asks there rather than by starting `ssh -O check` or `ssh -O exit`
 * (an ssh process costs ~10 ms of CPU and a fork of this process, once per host per deploy).
 * Commands through the master's proxy mode are in ssh-channel.ts.
 */
import { connect } from "node:net";

const MUX_VERSION = 4;
const MSG_HELLO = 0x00000001;
const C_ALIVE_CHECK = 0x10000004;
const C_TERMINATE = 0x10000005;
const S_OK = 0x80000001;
const S_ALIVE = 0x80000005;
/** Replies are a few words; anything longer is not a master speaking this protocol. */
const MAX_PACKET = 64 * 1024;
/** Each connection carries one request, so one id serves. */
export const REQUEST_ID = 1;

/** uint32 length, uint32 type, then uint32 words: the protocol's framing. */
function muxPacket(type: number, ...words: number[]): Buffer {
  const b = Buffer.alloc(8 + 4 * words.length);
  b.writeUInt32BE(4 + 4 * words.length, 0);
  b.writeUInt32BE(type, 4);
  words.forEach((w, i) => {
    b.writeUInt32BE(w, 8 + 4 * i);
  });
  return b;
}

/** What a client sends first on a new connection: the hello, then its one request. */
export function muxOpening(request: number): Buffer {
  return Buffer.concat([muxPacket(MSG_HELLO, MUX_VERSION), muxPacket(request, REQUEST_ID)]);
}

/**
 * A socket 'data' handler cutting the stream into the protocol's packets (uint32 length, then
 * the body) and handing each body to `onPacket` until it returns true; a length over `max` is
 * handed on as undefined: not a packet this side asked for.
 */
export function packetReader(
  max: number,
  onPacket: (body: Buffer | undefined) => boolean,
): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  let stopped = false;
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (!stopped && pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (length > max) {
        stopped = true;
        onPacket(undefined);
        return;
      }
      if (pending.length < 4 + length) return;
      const body = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      stopped = onPacket(body);
    }
  };
}

/** Whether `body` is a master's hello in the version this client speaks. */
export function isHello(body: Buffer): boolean {
  return (
    body.length >= 8 && body.readUInt32BE(0) === MSG_HELLO && body.readUInt32BE(4) === MUX_VERSION
  );
}

/**
 * Send one request after the hello; resolves to the type of the master's reply to it, "closed"
 * when a master said hello and then closed the connection without a reply, or undefined when
 * nothing that speaks version 4 answered on `socket` within `timeoutMs`.
 */
function ask(
  socket: string,
  request: number,
  timeoutMs: number,
): Promise<number | "closed" | undefined> {
  return new Promise((resolve) => {
    let helloSeen = false;
    let settled = false;
    const conn = connect(socket);
    const finish = (reply: number | "closed" | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    conn.on("connect", () => conn.write(muxOpening(request)));
    conn.on(
      "data",
      packetReader(MAX_PACKET, (body) => {
        if (!body || body.length < 8 || (!helloSeen && !isHello(body))) {
          finish(undefined);
          return true;
        }
        if (!helloSeen) {
          helloSeen = true;
          return false;
        }
        if (body.readUInt32BE(4) !== REQUEST_ID) return false;
        finish(body.readUInt32BE(0));
        return true;
      }),
    );
    conn.on("error", () => finish(undefined));
    conn.on("close", () => finish(helloSeen ? "closed" : undefined));
  });
}

/** Whether a master answers on `socket` (what `ssh -O check` asks). */
export async function muxAlive(socket: string, timeoutMs = 5000): Promise<boolean> {
  return (await ask(socket, C_ALIVE_CHECK, timeoutMs)) === S_ALIVE;
}

/**
 * Ask the master on `socket` to end now (what `ssh -O exit` asks); true when it agreed. A master
 * often exits before its reply is sent: like ssh, take a close after the hello as agreement.
 */
export async function muxTerminate(socket: string, timeoutMs = 5000): Promise<boolean> {
  const reply = await ask(socket, C_TERMINATE, timeoutMs);
  return reply === S_OK || reply === "closed";
}
