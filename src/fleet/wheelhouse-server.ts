/**
 * Serving a wheelhouse over HTTP as a simple repository (PEP 503/691, with PEP 658/714
 * metadata), so that pip and pyferry can use it as an index:
 *
 *   /simple/                      every project
 *   /simple/<normalized>/         its wheels, linked as ../../files/<file>#sha256=<hex>
 *   /files/<file>                 a wheel
 *   /files/<file>.metadata        its METADATA
 *
 * Anything else is 404. Names come from the folder at request time; a file is served only if
 * it is a regular file in `wheels/` with a wheel's name, so no request reaches anything else.
 */
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename } from "../python/tags.js";
import { UserError } from "../util/errors.js";
import { isWheelName, type Wheelhouse } from "./wheelhouse.js";
import { WheelInfoCache } from "./wheelhouse-files.js";
import {
  type Format,
  negotiate,
  type PageFile,
  projectPage,
  rootPage,
} from "./wheelhouse-pages.js";

export interface ServeOptions {
  /** Address to bind; default 127.0.0.1 (only this machine). */
  host?: string;
  /** Port; default 8080, 0 for any free one. */
  port?: number;
  /** Called with one line per request answered (an access log). */
  onRequest?: (line: string) => void;
}

export interface RunningServer {
  /** The index URL, e.g. http://127.0.0.1:8080/simple/. */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  headers: Record<string, string | number>;
  body?: string | Buffer;
  /** A file streamed as the body. */
  file?: string;
  /** What the access log says was sent ("json", "html", a file name). */
  note?: string;
}

const notFound = (): Reply => ({
  status: 404,
  headers: { "Content-Type": "text/plain; charset=utf-8" },
  body: "Not Found\n",
});

const redirect = (location: string): Reply => ({
  status: 301,
  headers: { Location: location, "Content-Type": "text/plain; charset=utf-8" },
  body: `Moved to ${location}\n`,
});

/** The wheel files now in the folder, by project. */
async function projects(wh: Wheelhouse): Promise<Map<string, string[]>> {
  const byProject = new Map<string, string[]>();
  const entries = await readdir(wh.wheels, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() || !isWheelName(e.name)) continue;
    const name = parseWheelFilename(e.name).normalized;
    byProject.set(name, [...(byProject.get(name) ?? []), e.name]);
  }
  return new Map([...byProject].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** A path's segments, percent-decoded; undefined for anything that could step out of a folder. */
function segments(pathname: string): string[] | undefined {
  const parts = pathname.split("/").slice(1);
  const decoded: string[] = [];
  for (const [i, raw] of parts.entries()) {
    let part: string;
    try {
      part = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    // Only the last segment may be empty: the trailing slash of a page.
    if (part === "" && i !== parts.length - 1) return undefined;
    if (part === "." || part === ".." || /[/\\\0]/.test(part)) return undefined;
    decoded.push(part);
  }
  return decoded;
}

function page(text: string, format: Format): Reply {
  return {
    status: 200,
    headers: {
      "Content-Type":
        format.kind === "json" ? format.contentType : `${format.contentType}; charset=utf-8`,
      Vary: "Accept",
    },
    body: text,
    note: format.kind,
  };
}

async function simpleRoute(
  wh: Wheelhouse,
  infos: WheelInfoCache,
  rest: string[],
  accept: string | undefined,
): Promise<Reply> {
  const format = negotiate(accept);
  const byProject = await projects(wh);
  if (rest.length === 1 && rest[0] === "") {
    if (!format) return notAcceptable();
    return page(rootPage([...byProject.keys()], format), format);
  }
  const [name = "", tail] = rest;
  if (rest.length > 2 || (rest.length === 2 && tail !== "")) return notFound();
  const normalized = normalizeName(name);
  const files = byProject.get(normalized);
  if (!files) return notFound();
  if (rest.length === 1 || name !== normalized) {
    return redirect(`/simple/${encodeURIComponent(normalized)}/`);
  }
  if (!format) return notAcceptable();
  const listed: PageFile[] = [];
  for (const filename of files.sort()) {
    const info = await infos.get(join(wh.wheels, filename), filename).catch(() => undefined);
    // Gone between the listing and now: not listed.
    if (!info) continue;
    listed.push({
      filename,
      sha256: info.sha256,
      ...(info.requiresPython ? { requiresPython: info.requiresPython } : {}),
      ...(info.metadataSha256 ? { metadataSha256: info.metadataSha256 } : {}),
    });
  }
  return page(projectPage(normalized, listed, format), format);
}

function notAcceptable(): Reply {
  return {
    status: 406,
    headers: { "Content-Type": "text/plain; charset=utf-8", Vary: "Accept" },
    body: "Not Acceptable: this index serves application/vnd.pypi.simple.v1+json and text/html\n",
  };
}

async function fileRoute(wh: Wheelhouse, infos: WheelInfoCache, name: string): Promise<Reply> {
  const metadata = name.endsWith(".metadata");
  const filename = metadata ? name.slice(0, -".metadata".length) : name;
  if (!isWheelName(filename)) return notFound();
  const path = join(wh.wheels, filename);
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) return notFound();
  if (metadata) {
    const info = await infos.get(path, filename).catch(() => undefined);
    if (!info?.metadata) return notFound();
    return {
      status: 200,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
      body: info.metadata,
      note: name,
    };
  }
  return {
    status: 200,
    headers: { "Content-Type": "application/octet-stream", "Content-Length": st.size },
    file: path,
    note: filename,
  };
}

async function route(wh: Wheelhouse, infos: WheelInfoCache, req: IncomingMessage): Promise<Reply> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return {
      status: 405,
      headers: { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" },
      body: "Method Not Allowed\n",
    };
  }
  // The raw path, not one a URL parser resolved: a dot segment is refused, never followed.
  const pathname = (req.url ?? "").split(/[?#]/)[0] as string;
  if (!pathname.startsWith("/")) return notFound();
  const parts = segments(pathname);
  if (!parts) return notFound();
  const [top, ...rest] = parts;
  if (top === "simple" && rest.length === 0) return redirect("/simple/");
  if (top === "simple") return simpleRoute(wh, infos, rest, req.headers.accept);
  if (top === "files" && rest.length === 1 && rest[0] !== "") {
    return fileRoute(wh, infos, rest[0] as string);
  }
  return notFound();
}

function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const headers = { ...reply.headers };
  if (reply.body !== undefined) headers["Content-Length"] = Buffer.byteLength(reply.body);
  res.writeHead(reply.status, headers);
  if (req.method === "HEAD") {
    res.end();
  } else if (reply.file !== undefined) {
    const stream = createReadStream(reply.file);
    // The length is already promised: a read failure can only cut the connection.
    stream.on("error", () => res.destroy());
    stream.pipe(res);
  } else {
    res.end(reply.body);
  }
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Start serving `wh`; resolves once the port is bound. */
export async function serveWheelhouse(
  wh: Wheelhouse,
  opts: ServeOptions = {},
): Promise<RunningServer> {
  const host = opts.host ?? "127.0.0.1";
  const infos = new WheelInfoCache();
  const server: Server = createServer((req, res) => {
    route(wh, infos, req)
      .catch(
        (err: unknown): Reply => ({
          status: 500,
          headers: { "Content-Type": "text/plain; charset=utf-8" },
          body: `Internal Server Error: ${err instanceof Error ? err.message : String(err)}\n`,
        }),
      )
      .then((reply) => {
        opts.onRequest?.(
          `${req.socket.remoteAddress ?? "-"} ${req.method} ${req.url} ${reply.status}${reply.note ? ` ${reply.note}` : ""}`,
        );
        send(req, res, reply);
      });
  });
  await new Promise<void>((done, failed) => {
    server.once("error", failed);
    server.listen(opts.port ?? 8080, host, () => {
      server.off("error", failed);
      done();
    });
  }).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${urlHost(host)}:${opts.port ?? 8080}`;
    if (code === "EADDRINUSE")
      throw new UserError(`${where} is already in use; pick another port with --port.`);
    if (code === "EACCES")
      throw new UserError(`Binding ${where} needs privileges; use a port above 1023.`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
      throw new UserError(`${host} is not an address of this machine; pass another --host.`);
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${urlHost(host)}:${port}/simple/`,
    host,
    port,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
