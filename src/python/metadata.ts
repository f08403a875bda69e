/**
 * Core metadata (a wheel's METADATA, an sdist's PKG-INFO): RFC 822-style headers, folded
 * lines, repeatable fields, and the description in the body after the first blank line.
 */
import { UserError } from "../util/errors.js";

export interface CoreMetadata {
  metadataVersion: string;
  name: string;
  version: string;
  summary?: string;
  requiresPython?: string;
  requiresDist: string[];
  providesExtra: string[];
  /** Every header in file order, keyed by lowercase field name. */
  fields: Map<string, string[]>;
  description?: string;
}

export class MetadataError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "MetadataError";
  }
}

const HEADER = /^([^\s:]+):[ \t]*(.*)$/;

/**
 * Undo the folding of a multi-line Description header: writers indent continuation lines
 * (distutils by 8 spaces), so remove the indentation they share, counting the first line
 * as indented by 8, as importlib.metadata does.
 */
function unfoldDescription(value: string): string {
  const [first = "", ...rest] = value.split("\n");
  const lines = [`        ${first}`, ...rest];
  const indents = lines
    .filter((line) => line.trim() !== "")
    .map((line) => /^[ \t]*/.exec(line)?.[0] ?? "");
  let common = indents[0] ?? "";
  for (const indent of indents) {
    while (!indent.startsWith(common)) common = common.slice(0, -1);
  }
  return lines.map((line) => (line.trim() === "" ? "" : line.slice(common.length))).join("\n");
}

/**
 * Parse METADATA / PKG-INFO text. A folded header keeps its line breaks (the value is the
 * first line plus "\n" and each continuation line as written), like Python's email parser.
 * Throws MetadataError on a malformed header line or when Name or Version is missing.
 */
export function parseCoreMetadata(text: string): CoreMetadata {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  const fields = new Map<string, string[]>();
  let current: { key: string; index: number } | undefined;
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") break;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (!current) throw new MetadataError(`Metadata line ${i + 1} continues no header.`);
      const values = fields.get(current.key) as string[];
      values[current.index] = `${values[current.index]}\n${line}`;
      continue;
    }
    const m = HEADER.exec(line);
    if (!m) throw new MetadataError(`Metadata line ${i + 1} is not a "Name: value" header.`);
    const key = (m[1] as string).toLowerCase();
    const values = fields.get(key) ?? [];
    values.push(m[2] as string);
    fields.set(key, values);
    current = { key, index: values.length - 1 };
  }
  for (const values of fields.values()) {
    values.forEach((v, j) => {
      values[j] = v.trimEnd();
    });
  }

  const first = (key: string) => fields.get(key)?.[0];
  const name = first("name");
  const version = first("version");
  if (!name) throw new MetadataError("The metadata has no Name field.");
  if (!version) throw new MetadataError(`The metadata for ${name} has no Version field.`);

  const body = lines.slice(i + 1).join("\n");
  const headerDescription = first("description");
  const description =
    body.trim() !== ""
      ? body
      : headerDescription !== undefined
        ? unfoldDescription(headerDescription)
        : undefined;

  const summary = first("summary");
  const requiresPython = first("requires-python");
  return {
    metadataVersion: first("metadata-version") ?? "",
    name,
    version,
    ...(summary !== undefined ? { summary } : {}),
    ...(requiresPython !== undefined ? { requiresPython } : {}),
    requiresDist: fields.get("requires-dist") ?? [],
    providesExtra: fields.get("provides-extra") ?? [],
    fields,
    ...(description !== undefined ? { description } : {}),
  };
}
