/** Small fetch wrapper shared by the index readers: timeouts, URL credentials, readable errors. */
import { netrcFor } from "./netrc.js";

export interface HttpOptions {
  /** Longest wait for the response headers (name lookup, connect, TLS, server); default 10 s. */
  timeoutMs?: number;
  /** Longest silence while reading a response body; default 15 s, pip's default timeout. */
  readTimeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_READ_TIMEOUT_MS = 15_000;

/** A request that failed; `reason` is a lower-case phrase that fits after "because". */
export class HttpFailure extends Error {
  constructor(
    readonly reason: string,
    readonly status?: number,
  ) {
    super(reason);
    this.name = "HttpFailure";
  }
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  /** The final URL after redirects, without credentials. */
  url: string;
  chunks(): AsyncGenerator<Uint8Array>;
  bytes(): Promise<Buffer>;
  /** Release the connection without reading the body. */
  discard(): Promise<void>;
}

/** Origin -> Authorization header, learnt from URLs with user info, reused for that origin. */
const credentials = new Map<string, string>();

/** The URL with any password masked, for messages and stored files. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    // A user name with no password is a token (as pip takes it): masked too.
    else if (u.username) u.username = "****";
    return u.href;
  } catch {
    return url;
  }
}

/** The URL without its user info, for what is stored (a lock's index). */
export function withoutUserInfo(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = "";
    u.password = "";
    return u.href;
  } catch {
    return url;
  }
}

function learn(u: URL): void {
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  credentials.set(u.origin, `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`);
}

/**
 * Credentials in configured source URLs, for files on the same origins that are fetched
 * without the page that links them (installing a lock), as pip does. Ones already known stay.
 */
export function knowCredentials(urls: readonly string[]): void {
  for (const url of urls) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      continue;
    }
    if ((u.username || u.password) && !credentials.has(u.origin)) learn(u);
  }
}

function withoutCredentials(url: string): { url: string; auth?: string } {
  const u = new URL(url);
  if (u.username || u.password) {
    learn(u);
    u.username = "";
    u.password = "";
  }
  if (!credentials.has(u.origin)) {
    // No credentials in any URL for this origin: ~/.netrc may have them (as for pip).
    const entry = netrcFor(u.hostname);
    if (entry?.login) {
      const basic = Buffer.from(`${entry.login}:${entry.password}`).toString("base64");
      credentials.set(u.origin, `Basic ${basic}`);
    }
  }
  return { url: u.href, auth: credentials.get(u.origin) };
}

const ERROR_CODES: Record<string, string> = {
  ENOTFOUND: "the host name could not be resolved",
  EAI_AGAIN: "the host name could not be resolved",
  ECONNREFUSED: "the connection was refused",
  ECONNRESET: "the connection was reset",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  ETIMEDOUT: "the connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
  UND_ERR_SOCKET: "the connection was closed unexpectedly",
};

function toFailure(err: unknown): HttpFailure {
  if (err instanceof HttpFailure) return err;
  const cause = err instanceof Error ? err.cause : undefined;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code && ERROR_CODES[code]) return new HttpFailure(ERROR_CODES[code]);
  if (code?.includes("CERT") || code?.startsWith("ERR_TLS")) {
    return new HttpFailure(`its TLS certificate was not accepted (${code})`);
  }
  const detail = cause instanceof Error ? cause.message : err instanceof Error ? err.message : "";
  return new HttpFailure(`the request failed (${detail || String(err)})`);
}

export function statusFailure(res: HttpResponse): HttpFailure {
  return new HttpFailure(`the server answered HTTP ${res.status}`, res.status);
}

/** GET `url`, following redirects; any status is returned, network failures throw HttpFailure. */
export async function httpGet(
  url: string,
  headers: Record<string, string>,
  opts: HttpOptions = {},
): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const readTimeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  let target: { url: string; auth?: string };
  try {
    target = withoutCredentials(url);
  } catch {
    throw new HttpFailure("it is not a valid URL");
  }
  const controller = new AbortController();
  const abortAfter = (ms: number, reason: string) =>
    setTimeout(() => controller.abort(new HttpFailure(reason)), ms);
  const connectTimer = abortAfter(timeoutMs, `there was no response within ${timeoutMs / 1000} s`);
  let res: Response;
  try {
    res = await fetch(target.url, {
      headers: target.auth ? { ...headers, Authorization: target.auth } : headers,
      signal: controller.signal,
    });
  } catch (err) {
    throw toFailure(err);
  } finally {
    clearTimeout(connectTimer);
  }
  const body = res.body;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (!body) return;
    const reader = body.getReader();
    const read = async () => {
      const timer = abortAfter(readTimeoutMs, `no data arrived for ${readTimeoutMs / 1000} s`);
      try {
        return await reader.read();
      } catch (err) {
        throw toFailure(err);
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      for (;;) {
        const next = await read();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
  return {
    status: res.status,
    headers: res.headers,
    url: res.url || target.url,
    chunks,
    async bytes() {
      const parts: Uint8Array[] = [];
      for await (const c of chunks()) parts.push(c);
      return Buffer.concat(parts);
    },
    async discard() {
      await body?.cancel().catch(() => undefined);
    },
  };
}

export interface RangeBytes {
  data: Buffer;
  /** Offset of `data` in the file, and the file's total size. */
  start: number;
  total: number;
}

/** Bytes from a Range request (e.g. "-65536"), or undefined when the server ignored Range. */
export async function fetchRange(
  url: string,
  range: string,
  opts: HttpOptions,
): Promise<RangeBytes | undefined> {
  const res = await httpGet(url, { Range: `bytes=${range}`, "Accept-Encoding": "identity" }, opts);
  if (res.status === 200) {
    await res.discard();
    return undefined;
  }
  if (res.status !== 206) {
    await res.discard();
    throw statusFailure(res);
  }
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
  if (!m) {
    await res.discard();
    throw new HttpFailure("the server's Content-Range header was missing or not understood");
  }
  return { data: await res.bytes(), start: Number(m[1]), total: Number(m[3]) };
}
