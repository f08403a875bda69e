/**
 * OpenSSH's multiplexing protocol (PROTOCOL.mux) on a master's control socket: its framing, and
 * the two questions pyferry asks there rather than by starting `ssh -O check` or `ssh -O exit`
 * (an ssh process costs ~10 ms of CPU and a fork of this process, once per host per deploy).
 * Commands through the master's proxy mode are in ssh-channel.ts.
 */
import { connect } from "node:net";

export const MUX_VERSION = 4;
export const MSG_HELLO = 0x00000001;
const C_ALIVE_CHECK = 0x10000004;
const C_TERMINATE = 0x10000005;
const S_OK = 0x80000001;
const S_ALIVE = 0x80000005;
/** Replies are a few words; anything longer is not a master speaking this protocol. */
const MAX_PACKET = 64 * 1024;
/** Each connection carries one request, so one id serves. */
export const REQUEST_ID = 1;

/** uint32 length, uint32 type, then uint32 words: the protocol's framing. */
export function muxPacket(type: number, ...words: number[]): Buffer {
  const b = Buffer.alloc(8 + 4 * words.length);
  b.writeUInt32BE(4 + 4 * words.length, 0);
  b.writeUInt32BE(type, 4);
  words.forEach((w, i) => {
    b.writeUInt32BE(w, 8 + 4 * i);
  });
  return b;
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
    let pending = Buffer.alloc(0);
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
    conn.on("connect", () => {
      conn.write(
        Buffer.concat([muxPacket(MSG_HELLO, MUX_VERSION), muxPacket(request, REQUEST_ID)]),
      );
    });
    conn.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (length < 8 || length > MAX_PACKET) return finish(undefined);
        if (pending.length < 4 + length) return;
        const type = pending.readUInt32BE(4);
        const first = pending.readUInt32BE(8);
        pending = pending.subarray(4 + length);
        if (!helloSeen) {
          if (type !== MSG_HELLO || first !== MUX_VERSION) return finish(undefined);
          helloSeen = true;
        } else if (first === REQUEST_ID) return finish(type);
      }
    });
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
