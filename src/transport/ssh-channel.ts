/**
 * One remote command over an OpenSSH master without starting an ssh process for it: the master's
 * proxy mode (PROTOCOL.mux, "Requesting proxy mode") carries SSH connection-protocol messages
 * (RFC 4254) between this process and the server, unencrypted over the control socket. Used for
 * commands whose input and output fit in memory; each saves a fork of this process and an ssh
 * start (~10 ms of CPU), which adds up over a fleet of hosts.
 */
import { connect } from "node:net";
import { SSH_FAILED } from "./connection.js";
import { isHello, muxOpening, packetReader, REQUEST_ID } from "./ssh-mux.js";

const C_PROXY = 0x1000000f;
const S_PROXY = 0x8000000f;

const CHANNEL_OPEN = 90;
const CHANNEL_OPEN_CONFIRMATION = 91;
const CHANNEL_OPEN_FAILURE = 92;
const CHANNEL_WINDOW_ADJUST = 93;
const CHANNEL_DATA = 94;
const CHANNEL_EXTENDED_DATA = 95;
const CHANNEL_EOF = 96;
const CHANNEL_CLOSE = 97;
const CHANNEL_REQUEST = 98;
const CHANNEL_SUCCESS = 99;
const CHANNEL_FAILURE = 100;
const EXTENDED_STDERR = 1;

/** What this side lets the server send before it must wait for a window adjust. */
const WINDOW = 2 * 1024 * 1024;
const MAX_PACKET = 32 * 1024;
/** A packet from the master larger than this is not one this client asked for. */
const MAX_INCOMING = 1024 * 1024;

export interface ChannelResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Writes the wire types of SSH packets. */
class Writer {
  private parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }
  string(v: string | Buffer): this {
    const b = typeof v === "string" ? Buffer.from(v, "utf8") : v;
    this.u32(b.length);
    this.parts.push(b);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Reads the wire types of one SSH packet's payload; throws on a short packet. */
class Reader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  u8(): number {
    if (this.at + 1 > this.b.length) throw new Error("short packet");
    return this.b[this.at++] as number;
  }
  u32(): number {
    if (this.at + 4 > this.b.length) throw new Error("short packet");
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  string(): Buffer {
    const n = this.u32();
    if (this.at + n > this.b.length) throw new Error("short packet");
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
}

/** A proxied SSH packet: uint32 length, padding length 0, then the payload (type first). */
function sshPacket(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1);
  head[4] = 0;
  return Buffer.concat([head, payload]);
}

/** The packet framing and payload head of a CHANNEL_DATA message carrying `n` bytes. */
function dataHeader(channel: number, n: number): Buffer {
  const head = Buffer.alloc(14);
  // Packet length: padding length, type, channel and the string's length, then the data.
  head.writeUInt32BE(10 + n, 0);
  head[4] = 0;
  head[5] = CHANNEL_DATA;
  head.writeUInt32BE(channel, 6);
  head.writeUInt32BE(n, 10);
  return head;
}

/** proxyExec's answer when the server did not open a channel within the deadline. */
export const STALLED = Symbol("stalled");

/**
 * Run `command` through the master on `socket`, sending `input` as its standard input. Resolves
 * to undefined when the command was not started (no master, no proxy mode, no channel), so the
 * caller may run it another way; once it is started, a lost connection is exit status 255 with
 * a sentence on stderr, as ssh reports it. `onSent` hears of input as the server's window lets
 * it go. With `openDeadlineMs`, a server that has not opened the channel by then (a link that
 * died in silence) gives STALLED; the command was not sent, so nothing ran.
 */
export function proxyExec(
  socket: string,
  command: string,
  input: Buffer | string = "",
  onSent?: (n: number) => void,
  openDeadlineMs?: number,
): Promise<ChannelResult | undefined | typeof STALLED> {
  const stdin = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  return new Promise((resolve) => {
    const conn = connect(socket);
    let stage: "hello" | "proxy" | "open" | "exec" | "running" = "hello";
    let remoteChannel = 0;
    let remoteWindow = 0;
    let remoteMaxPacket = 0;
    let sent = 0;
    let eofSent = false;
    let consumed = 0;
    let code: number | undefined;
    let closed = false;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    // Cleared once the channel opens and in finish, so when it fires nothing else has settled.
    const deadline =
      openDeadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            settled = true;
            conn.destroy();
            resolve(STALLED);
          }, openDeadlineMs);

    const finish = (notStarted: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      conn.destroy();
      if (notStarted) return resolve(undefined);
      let stderr = Buffer.concat(err).toString("utf8");
      if (!closed) {
        stderr += `${stderr && !stderr.endsWith("\n") ? "\n" : ""}Connection to the master closed before the command ended\n`;
      }
      resolve({
        code: closed && code !== undefined ? code : SSH_FAILED,
        stdout: Buffer.concat(out),
        stderr,
      });
    };
    const send = (payload: Buffer) => conn.write(sshPacket(payload));

    /**
     * Send as much of stdin as the server's window allows, then EOF. Each data packet goes
     * out as its header and a view of stdin, gathered into one write: stdin is never copied.
     */
    const pump = () => {
      const from = sent;
      conn.cork();
      while (sent < stdin.length && remoteWindow > 0) {
        const n = Math.min(stdin.length - sent, remoteWindow, remoteMaxPacket);
        conn.write(dataHeader(remoteChannel, n));
        conn.write(stdin.subarray(sent, sent + n));
        sent += n;
        remoteWindow -= n;
      }
      if (sent === stdin.length && !eofSent) {
        eofSent = true;
        send(new Writer().u8(CHANNEL_EOF).u32(remoteChannel).done());
      }
      conn.uncork();
      if (sent > from) onSent?.(sent - from);
    };

    /** Count what the server sent us, and give the window back once half is used. */
    const took = (n: number) => {
      consumed += n;
      if (consumed >= WINDOW / 2) {
        send(new Writer().u8(CHANNEL_WINDOW_ADJUST).u32(remoteChannel).u32(consumed).done());
        consumed = 0;
      }
    };

    const onSsh = (payload: Buffer) => {
      const r = new Reader(payload);
      const type = r.u8();
      if (stage === "open") {
        if (type === CHANNEL_OPEN_FAILURE) return finish(true);
        if (type !== CHANNEL_OPEN_CONFIRMATION) return;
        r.u32();
        remoteChannel = r.u32();
        remoteWindow = r.u32();
        remoteMaxPacket = r.u32();
        stage = "exec";
        clearTimeout(deadline);
        send(
          new Writer()
            .u8(CHANNEL_REQUEST)
            .u32(remoteChannel)
            .string("exec")
            .bool(true)
            .string(command)
            .done(),
        );
        return;
      }
      if (stage === "exec" && (type === CHANNEL_FAILURE || type === CHANNEL_SUCCESS)) {
        // Until the server accepts the command, nothing has run: a refusal can be retried.
        if (type === CHANNEL_FAILURE) return finish(true);
        stage = "running";
        pump();
        return;
      }
      switch (type) {
        case CHANNEL_WINDOW_ADJUST:
          r.u32();
          remoteWindow += r.u32();
          if (stage === "running") pump();
          break;
        case CHANNEL_DATA: {
          r.u32();
          const data = r.string();
          out.push(Buffer.from(data));
          took(data.length);
          break;
        }
        case CHANNEL_EXTENDED_DATA: {
          r.u32();
          const kind = r.u32();
          const data = r.string();
          if (kind === EXTENDED_STDERR) err.push(Buffer.from(data));
          took(data.length);
          break;
        }
        case CHANNEL_REQUEST: {
          r.u32();
          const name = r.string().toString("latin1");
          const wantReply = r.u8() !== 0;
          if (name === "exit-status") code = r.u32();
          // Killed by a signal: ssh itself then exits with 255.
          else if (name === "exit-signal") code = SSH_FAILED;
          else if (wantReply) send(new Writer().u8(CHANNEL_FAILURE).u32(remoteChannel).done());
          break;
        }
        case CHANNEL_CLOSE:
          closed = true;
          send(new Writer().u8(CHANNEL_CLOSE).u32(remoteChannel).done());
          finish(false);
          break;
        default:
          break;
      }
    };

    conn.on("connect", () => conn.write(muxOpening(C_PROXY)));
    conn.on(
      "data",
      packetReader(MAX_INCOMING, (body) => {
        try {
          if (!body) {
            finish(stage !== "running");
          } else if (stage === "hello") {
            if (isHello(body)) stage = "proxy";
            else finish(true);
          } else if (stage === "proxy") {
            const r = new Reader(body);
            if (r.u32() !== S_PROXY || r.u32() !== REQUEST_ID) finish(true);
            else {
              stage = "open";
              send(
                new Writer()
                  .u8(CHANNEL_OPEN)
                  .string("session")
                  .u32(0)
                  .u32(WINDOW)
                  .u32(MAX_PACKET)
                  .done(),
              );
            }
          } else {
            // Proxied packets: a padding length byte, then the payload.
            const pad = body[0] ?? 0;
            onSsh(body.subarray(1, body.length - pad));
          }
        } catch {
          finish(stage !== "running");
        }
        return settled;
      }),
    );
    conn.on("error", () => finish(stage !== "running"));
    conn.on("close", () => finish(stage !== "running"));
  });
}
