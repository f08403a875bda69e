/**
 * RECORD files (PEP 376, PEP 627, the wheel spec): CSV rows of `path,algorithm=digest,size`,
 * the digest being unpadded URL-safe base64.
 */
import { createHash, type Hash } from "node:crypto";

export interface RecordRow {
  path: string;
  /** `sha256=...`, or "" when the row gives none (RECORD itself, .pyc files some tools list). */
  hash: string;
  /** Size in bytes as written, or "" when not given. */
  size: string;
}

/** Hash algorithms a RECORD may use: the wheel spec asks for sha256 or stronger. */
const ALGORITHMS: Record<string, string> = {
  sha256: "sha256",
  sha384: "sha384",
  sha512: "sha512",
  sha3_256: "sha3-256",
  sha3_384: "sha3-384",
  sha3_512: "sha3-512",
  blake2b: "blake2b512",
};

/** Whether a RECORD may use the algorithm `name` (an own key: "constructor" is not one). */
export function recordAlgorithmKnown(algorithm: string): boolean {
  return Object.hasOwn(ALGORITHMS, algorithm);
}

/** A Node hash for a RECORD algorithm name, or undefined if the name is not accepted. */
export function recordHasher(algorithm: string): Hash | undefined {
  return recordAlgorithmKnown(algorithm) ? createHash(ALGORITHMS[algorithm] as string) : undefined;
}

/** The RECORD form of a finished digest: `sha256=<unpadded URL-safe base64>`. */
export function recordDigest(algorithm: string, digest: Buffer): string {
  return `${algorithm}=${digest.toString("base64url")}`;
}

/** The RECORD hash of some bytes, in sha256. */
export function sha256Record(data: Uint8Array): string {
  return recordDigest("sha256", createHash("sha256").update(data).digest());
}

/** Parse RECORD text: CSV with `"` quoting, as Python's csv module writes it. */
export function parseRecord(text: string): RecordRow[] {
  const rows: RecordRow[] = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  const endRow = () => {
    fields.push(field);
    if (fields.length > 1 || fields[0] !== "") {
      rows.push({ path: fields[0] ?? "", hash: fields[1] ?? "", size: fields[2] ?? "" });
    }
    fields = [];
    field = "";
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i++;
      continue;
    }
    if (c === '"' && field === "") quoted = true;
    else if (c === ",") {
      fields.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      endRow();
      if (c === "\r" && text[i + 1] === "\n") i++;
    } else field += c;
    i++;
  }
  if (field !== "" || fields.length > 0) endRow();
  return rows;
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** RECORD text for rows, one per line ("\n": the spec's os.linesep on POSIX). */
export function formatRecord(rows: readonly RecordRow[]): string {
  return rows.map((r) => `${[r.path, r.hash, r.size].map(csvField).join(",")}\n`).join("");
}
