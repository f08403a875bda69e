import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { normalizeName } from "../python/names.js";
import { UserError } from "../util/errors.js";
import { whyUnreadable } from "../util/read-text.js";
import { HttpFailure, type HttpOptions, httpGet, redactUrl, statusFailure } from "./http.js";

/** One distribution file offered by an index or a find-links location. */
export interface IndexFile {
  filename: string;
  /** Absolute URL, without the hash fragment (that is in `hashes`). */
  url: string;
  hashes: Record<string, string>;
  requiresPython?: string;
  /** true, or the reason given, when the file is yanked (PEP 592). */
  yanked: boolean | string;
  /** PEP 658/714: whether the core metadata is served separately, with its hashes if given. */
  metadata?: boolean | Record<string, string>;
}

/**
 * An index or find-links location that could not be read. `page`: only this page failed (an
 * HTTP error status, a page that does not parse), not the connection to the whole source.
 */
export class IndexUnavailable extends UserError {
  constructor(
    readonly url: string,
    readonly reason: string,
    what = "package index",
    readonly page = false,
    /** The HTTP status the server answered with, when it answered. */
    readonly status?: number,
  ) {
    super(`The ${what} ${redactUrl(url)} could not be read because ${reason}.`);
    this.name = "IndexUnavailable";
  }
}

/** Raised by listProjects when the root page lists more projects than the caller will handle. */
export class IndexTooLarge extends Error {
  constructor(
    readonly url: string,
    readonly limit: number,
  ) {
    super(`The package index ${redactUrl(url)} lists more than ${limit} projects.`);
    this.name = "IndexTooLarge";
  }
}

export interface ListOptions extends HttpOptions {
  /** Stop reading and throw IndexTooLarge once the root page has more projects than this. */
  maxProjects?: number;
}

const ACCEPT =
  "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
const JSON_TYPE = "application/vnd.pypi.simple.v1+json";

/** Extensions pip recognises as distributions; other links on a page are ignored. */
const DIST_EXTENSIONS = [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tgz"];
const HASH_NAMES = new Set(["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]);

function isDistFile(filename: string): boolean {
  const lower = filename.toLowerCase();
  return DIST_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

function hasScheme(location: string): boolean {
  return /^[a-z][a-z0-9+.-]+:/i.test(location);
}

/** A URL for a location given as a URL or a local path; `dir` adds the trailing slash. */
function toUrl(location: string, dir: boolean): string {
  const url = hasScheme(location) ? location : pathToFileURL(resolve(location)).href;
  return dir && !url.endsWith("/") ? `${url}/` : url;
}

/** A fetched page: parsed later according to its kind; a "dir" is a local folder listing. */
type Page =
  | { kind: "html"; url: string; text: string }
  | { kind: "json"; url: string; text: string }
  | { kind: "dir"; url: string; path: string; entries: { name: string; isDir: boolean }[] };

async function listDirectory(path: string): Promise<{ name: string; isDir: boolean }[]> {
  const entries = await readdir(path, { withFileTypes: true });
  const out: { name: string; isDir: boolean }[] = [];
  for (const e of entries) {
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) {
      const target = await stat(join(path, e.name)).catch(() => undefined);
      if (!target) continue;
      isDir = target.isDirectory();
    }
    out.push({ name: e.name, isDir });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Counts a pattern in a streamed text, for stopping early on giant root pages. */
function linkCounter(kind: "html" | "json"): (text: string) => number {
  const pattern = kind === "json" ? /"name"\s*:/g : /<a[\s>]/gi;
  return (text) => text.match(pattern)?.length ?? 0;
}

/**
 * Read a page of an index (`index`) or find-links location. Returns undefined when it does not
 * exist (HTTP 404/410 or a missing local path), since pip treats that as "no files here".
 */
async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true;
}

async function readPage(
  location: string,
  opts: ListOptions,
  what: string,
  index: boolean,
): Promise<Page | undefined> {
  const url = toUrl(location, index);
  if (url.startsWith("file:")) {
    let path: string;
    try {
      // A trailing slash is only a hint that a folder is meant; a file is read as a page.
      path = fileURLToPath(url).replace(/(.)\/+$/, "$1");
    } catch (err) {
      throw new IndexUnavailable(url, `it is not a usable file URL (${String(err)})`, what);
    }
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const dirUrl = toUrl(url, true);
        // pip reads a local index folder's index.html (a bare one is listed instead), while a
        // find-links folder is always listed.
        const html = index
          ? await readFile(join(path, "index.html"), "utf8").catch(() => undefined)
          : undefined;
        if (html !== undefined) return { kind: "html", url: dirUrl, text: html };
        return { kind: "dir", url: dirUrl, path, entries: await listDirectory(path) };
      }
      const text = await readFile(path, "utf8");
      return { kind: text.trimStart().startsWith("{") ? "json" : "html", url, text };
    } catch (err) {
      // No page for the project is "not found"; no index folder at all cannot answer, and a
      // mistyped index must not pass the project on to a later source.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && (!index || (await isDirectory(dirname(path))))) return undefined;
      throw new IndexUnavailable(
        url,
        code === "ENOENT" ? `the index folder ${dirname(path)} does not exist` : whyUnreadable(err),
        what,
      );
    }
  }
  if (!/^https?:/i.test(url)) {
    throw new IndexUnavailable(url, "only http, https and file URLs are supported", what);
  }
  try {
    const res = await httpGet(url, { Accept: ACCEPT }, opts);
    if (res.status === 404 || res.status === 410) {
      await res.discard();
      return undefined;
    }
    if (res.status < 200 || res.status >= 300) {
      await res.discard();
      throw statusFailure(res);
    }
    const kind = res.headers.get("content-type")?.startsWith(JSON_TYPE) ? "json" : "html";
    const decoder = new TextDecoder();
    const count = linkCounter(kind);
    let text = "";
    let counted = 0;
    let tail = "";
    for await (const chunk of res.chunks()) {
      const piece = decoder.decode(chunk, { stream: true });
      text += piece;
      if (opts.maxProjects !== undefined) {
        // Only the carried-over tail plus the new piece is scanned; the tail is short enough that
        // a match lying wholly inside it was not already counted.
        const window = tail + piece;
        counted += count(window) - count(tail);
        tail = window.slice(-32);
        if (counted > opts.maxProjects) throw new IndexTooLarge(url, opts.maxProjects);
      }
    }
    text += decoder.decode();
    return { kind, url: res.url, text };
  } catch (err) {
    if (err instanceof HttpFailure)
      throw new IndexUnavailable(url, err.reason, what, err.status !== undefined, err.status);
    throw err;
  }
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

/** Decode HTML character references; unknown named ones are left as written, as browsers do. */
export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z][a-z0-9]*);?/gi, (whole, ref: string) => {
    if (ref.startsWith("#")) {
      const hex = ref[1] === "x" || ref[1] === "X";
      const code = Number.parseInt(ref.slice(hex ? 2 : 1), hex ? 16 : 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
    }
    return NAMED_ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

/** A tag's attribute text: quoted values may hold `>`. */
const ATTRS = `((?:[^>"']|"[^"]*"|'[^']*')*)`;
const ANCHOR_RE = new RegExp(String.raw`<a(?=[\s>/])${ATTRS}>([\s\S]*?)</a\s*>`, "gi");
const BASE_RE = new RegExp(String.raw`<base(?=[\s>/])${ATTRS}>`, "i");
const ATTR_RE = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

/** Attribute name (lower case) -> decoded value ("" when given without a value). */
function parseAttributes(text: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const m of text.matchAll(ATTR_RE)) {
    const name = (m[1] as string).toLowerCase();
    // Like browsers, the first of duplicated attributes wins.
    if (!attrs.has(name)) attrs.set(name, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ""));
  }
  return attrs;
}

interface Anchor {
  href: string;
  text: string;
  attrs: Map<string, string>;
}

/** Anchors with an href, resolved against the page URL or its <base href>. */
function parseAnchors(html: string, pageUrl: string): Anchor[] {
  const clean = html.replace(/<!--[\s\S]*?-->/g, "");
  let base = pageUrl;
  const baseTag = BASE_RE.exec(clean);
  const baseHref = baseTag ? parseAttributes(baseTag[1] as string).get("href") : undefined;
  if (baseHref) base = new URL(baseHref.trim(), pageUrl).href;
  const anchors: Anchor[] = [];
  for (const m of clean.matchAll(ANCHOR_RE)) {
    const attrs = parseAttributes(m[1] as string);
    const href = attrs.get("href")?.trim();
    if (!href) continue;
    let abs: string;
    try {
      abs = new URL(href, base).href;
    } catch {
      continue;
    }
    const text = decodeEntities((m[2] as string).replace(/<[^>]*>/g, "")).trim();
    anchors.push({ href: abs, text, attrs });
  }
  return anchors;
}

function hashesFromFragment(url: URL): Record<string, string> {
  const m = /^#([a-z0-9]+)=([0-9a-f]+)$/i.exec(url.hash);
  if (!m) return {};
  const name = (m[1] as string).toLowerCase();
  return HASH_NAMES.has(name) ? { [name]: (m[2] as string).toLowerCase() } : {};
}

function metadataAttr(value: string | undefined): IndexFile["metadata"] {
  if (value === undefined) return undefined;
  const hash = /^([a-z0-9]+)=([0-9a-f]+)$/i.exec(value.trim());
  if (hash) return { [(hash[1] as string).toLowerCase()]: (hash[2] as string).toLowerCase() };
  return value.trim().toLowerCase() === "false" ? undefined : true;
}

/** The last path segment of a URL, percent-decoded where that is well-formed. */
function lastSegment(url: URL): string {
  const last = url.pathname.replace(/\/$/, "").split("/").pop() ?? "";
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** Split a file URL into its filename and fragment-free URL; undefined for non-file links. */
function fileLink(href: string): { url: URL; filename: string } | undefined {
  const url = new URL(href);
  const filename = url.pathname.endsWith("/") ? "" : lastSegment(url);
  return filename && isDistFile(filename) ? { url, filename } : undefined;
}

function filesFromHtml(html: string, pageUrl: string): IndexFile[] {
  const files: IndexFile[] = [];
  for (const a of parseAnchors(html, pageUrl)) {
    const link = fileLink(a.href);
    if (!link) continue;
    const hashes = hashesFromFragment(link.url);
    link.url.hash = "";
    const file: IndexFile = { filename: link.filename, url: link.url.href, hashes, yanked: false };
    const requiresPython = a.attrs.get("data-requires-python")?.trim();
    if (requiresPython) file.requiresPython = requiresPython;
    const yanked = a.attrs.get("data-yanked");
    if (yanked !== undefined) file.yanked = yanked.trim() === "" ? true : yanked;
    const metadata = metadataAttr(
      a.attrs.get("data-core-metadata") ?? a.attrs.get("data-dist-info-metadata"),
    );
    if (metadata !== undefined) file.metadata = metadata;
    files.push(file);
  }
  return files;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isRecord(v)) for (const [k, x] of Object.entries(v)) if (typeof x === "string") out[k] = x;
  return out;
}

function parseJson(page: { url: string; text: string }, what: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(page.text);
  } catch (err) {
    const why = `its JSON is invalid (${(err as Error).message})`;
    throw new IndexUnavailable(page.url, why, what, true);
  }
  const version = isRecord(data) && isRecord(data.meta) ? data.meta["api-version"] : undefined;
  if (!isRecord(data) || typeof version !== "string" || !version.startsWith("1.")) {
    const why = "it is not a version 1 simple API JSON response";
    throw new IndexUnavailable(page.url, why, what, true);
  }
  return data;
}

function filesFromJson(page: { url: string; text: string }, what: string): IndexFile[] {
  const data = parseJson(page, what);
  const files: IndexFile[] = [];
  for (const f of Array.isArray(data.files) ? data.files : []) {
    if (!isRecord(f) || typeof f.filename !== "string" || typeof f.url !== "string") continue;
    const file: IndexFile = {
      filename: f.filename,
      url: new URL(f.url, page.url).href,
      hashes: stringRecord(f.hashes),
      yanked: typeof f.yanked === "string" || f.yanked === true ? f.yanked : false,
    };
    if (typeof f["requires-python"] === "string") file.requiresPython = f["requires-python"];
    const metadata = f["core-metadata"] ?? f["dist-info-metadata"];
    if (metadata === true) file.metadata = true;
    else if (isRecord(metadata)) file.metadata = stringRecord(metadata);
    files.push(file);
  }
  return files;
}

function filesFromPage(page: Page, what: string): IndexFile[] {
  if (page.kind === "json") return filesFromJson(page, what);
  if (page.kind === "html") return filesFromHtml(page.text, page.url);
  return page.entries
    .filter((e) => !e.isDir && isDistFile(e.name))
    .map((e) => ({
      filename: e.name,
      url: pathToFileURL(join(page.path, e.name)).href,
      hashes: {},
      yanked: false,
    }));
}

/** Project names listed on an index's root page, as written there, without duplicates. */
export async function listProjects(indexUrl: string, opts: ListOptions = {}): Promise<string[]> {
  const page = await readPage(indexUrl, opts, "package index", true);
  if (!page) throw new IndexUnavailable(indexUrl, "it does not exist");
  let names: string[];
  if (page.kind === "json") {
    const projects = parseJson(page, "package index").projects;
    names = (Array.isArray(projects) ? projects : [])
      .map((p) => (isRecord(p) && typeof p.name === "string" ? p.name : ""))
      .filter((n) => n.length > 0);
  } else if (page.kind === "html") {
    names = parseAnchors(page.text, page.url).map((a) => a.text || lastSegment(new URL(a.href)));
  } else {
    names = page.entries.filter((e) => e.isDir).map((e) => e.name);
  }
  const unique = [...new Set(names.filter((n) => n.length > 0))];
  if (opts.maxProjects !== undefined && unique.length > opts.maxProjects) {
    throw new IndexTooLarge(indexUrl, opts.maxProjects);
  }
  return unique;
}

/**
 * Files on a project's page (`<index>/<normalized name>/`); undefined when the index has no
 * such page (404, 410), [] when its page lists none.
 */
export async function projectFiles(
  indexUrl: string,
  project: string,
  opts: HttpOptions = {},
): Promise<IndexFile[] | undefined> {
  const pageUrl = new URL(`${normalizeName(project)}/`, toUrl(indexUrl, true)).href;
  const page = await readPage(pageUrl, opts, "package index page", true);
  return page && filesFromPage(page, "package index page");
}

/**
 * Distribution files at a find-links location: a local folder (its HTML files are read as
 * link pages too, as pip does), a local HTML file, or a URL of an HTML or JSON page.
 */
export async function findLinksFiles(
  location: string,
  opts: HttpOptions = {},
): Promise<IndexFile[]> {
  const what = "find-links location";
  const page = await readPage(location, opts, what, false);
  if (!page) throw new IndexUnavailable(location, "it does not exist", what);
  const files = filesFromPage(page, what);
  if (page.kind === "dir") {
    for (const e of page.entries) {
      if (e.isDir || !/\.html?$/i.test(e.name)) continue;
      const html = await readFile(join(page.path, e.name), "utf8");
      files.push(...filesFromHtml(html, pathToFileURL(join(page.path, e.name)).href));
    }
  }
  return files;
}
