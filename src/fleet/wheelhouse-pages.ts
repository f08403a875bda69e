/**
 * The pages of the simple repository API a wheelhouse serves: PEP 503 HTML and PEP 691 JSON
 * (chosen by the Accept header), with PEP 658/714 core metadata advertised. Only what is on the
 * page lives here; reading the folder and HTTP are wheelhouse-server.ts.
 */

export const JSON_TYPE = "application/vnd.pypi.simple.v1+json";
export const HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html";
export const HTML_TYPE = "text/html";
/** The API version both formats declare (PEP 629 for HTML, `meta.api-version` in JSON). */
const API_VERSION = "1.0";

export type Format = { kind: "json" | "html"; contentType: string };

/** Media types this server can answer with, as the client may name them. */
const OFFERS: Record<string, Format> = {
  [JSON_TYPE]: { kind: "json", contentType: JSON_TYPE },
  "application/vnd.pypi.simple.latest+json": { kind: "json", contentType: JSON_TYPE },
  [HTML_V1_TYPE]: { kind: "html", contentType: HTML_V1_TYPE },
  "application/vnd.pypi.simple.latest+html": { kind: "html", contentType: HTML_V1_TYPE },
  [HTML_TYPE]: { kind: "html", contentType: HTML_TYPE },
  "text/*": { kind: "html", contentType: HTML_TYPE },
  "*/*": { kind: "html", contentType: HTML_TYPE },
};

/**
 * The format to answer an Accept header with: the acceptable offer of highest quality, the
 * earliest named on a tie; plain HTML when there is no header (PEP 503 clients send none);
 * undefined when nothing offered is acceptable (HTTP 406).
 */
export function negotiate(accept: string | undefined): Format | undefined {
  if (accept === undefined || accept.trim() === "") return OFFERS[HTML_TYPE];
  let best: { format: Format; q: number } | undefined;
  for (const part of accept.split(",")) {
    const [type = "", ...params] = part.split(";").map((s) => s.trim());
    const format = OFFERS[type.toLowerCase()];
    if (!format) continue;
    let q = 1;
    for (const p of params) {
      const m = /^q\s*=\s*([0-9.]+)$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (!(q > 0)) continue;
    if (!best || q > best.q) best = { format, q };
  }
  return best?.format;
}

/** One wheel on a project page. */
export interface PageFile {
  filename: string;
  sha256: string;
  requiresPython?: string;
  /** sha256 of its METADATA, when that is served as `<file>.metadata`. */
  metadataSha256?: string;
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** Where a file is, relative to its project page `/simple/<name>/`. */
export function fileHref(filename: string): string {
  return `../../files/${encodeURIComponent(filename)}`;
}

function htmlPage(title: string, body: string[]): string {
  return [
    "<!DOCTYPE html>",
    "<html>",
    "  <head>",
    `    <meta name="pypi:repository-version" content="${API_VERSION}">`,
    `    <title>${escapeHtml(title)}</title>`,
    "  </head>",
    "  <body>",
    ...body.map((line) => `    ${line}`),
    "  </body>",
    "</html>",
    "",
  ].join("\n");
}

/** The root page: every project, by its normalized name. */
export function rootPage(projects: readonly string[], format: Format): string {
  if (format.kind === "json") {
    const body = {
      meta: { "api-version": API_VERSION },
      projects: projects.map((name) => ({ name })),
    };
    return `${JSON.stringify(body)}\n`;
  }
  const links = projects.map(
    (p) => `<a href="${escapeHtml(encodeURIComponent(p))}/">${escapeHtml(p)}</a><br>`,
  );
  return htmlPage("Simple index", links);
}

/** A project's page: its wheels, with their hashes, requires-python and metadata. */
export function projectPage(name: string, files: readonly PageFile[], format: Format): string {
  if (format.kind === "json") {
    const body = {
      meta: { "api-version": API_VERSION },
      name,
      files: files.map((f) => {
        return {
          filename: f.filename,
          url: fileHref(f.filename),
          hashes: { sha256: f.sha256 },
          ...(f.requiresPython ? { "requires-python": f.requiresPython } : {}),
          // PEP 714's key only: pip 22.3 to 23.1 crash on the older `dist-info-metadata`.
          ...(f.metadataSha256 ? { "core-metadata": { sha256: f.metadataSha256 } } : {}),
        };
      }),
    };
    return `${JSON.stringify(body)}\n`;
  }
  const links = files.map((f) => {
    const attrs = [`href="${escapeHtml(`${fileHref(f.filename)}#sha256=${f.sha256}`)}"`];
    if (f.requiresPython) attrs.push(`data-requires-python="${escapeHtml(f.requiresPython)}"`);
    if (f.metadataSha256) {
      const value = `sha256=${f.metadataSha256}`;
      // The older attribute too (PEP 714 allows it in HTML): pip before 23.2 reads only it.
      attrs.push(`data-core-metadata="${value}"`, `data-dist-info-metadata="${value}"`);
    }
    return `<a ${attrs.join(" ")}>${escapeHtml(f.filename)}</a><br>`;
  });
  return htmlPage(`Links for ${name}`, [`<h1>Links for ${escapeHtml(name)}</h1>`, ...links]);
}
