/**
 * A wheelhouse's release log, `release.log`: one JSON object per line, only ever appended to.
 * Every change to the wheels folder is one record, so the log tells what was there when, who
 * put it there and from which host.
 */
import { open, readFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";

export type LogAction = "add" | "remove";

export interface LogRecord {
  /** ISO 8601, UTC. */
  time: string;
  action: LogAction;
  file: string;
  /** The project name as the wheel's METADATA writes it. */
  name: string;
  version: string;
  /** Lower-case hex of the wheel file. */
  sha256: string;
  user: string;
  host: string;
  /** What made the change when not a plain add or remove: build, mirror, import, prune, replace. */
  via?: string;
}

/** What a record says about a wheel. */
export interface WheelFacts {
  file: string;
  name: string;
  version: string;
  sha256: string;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    // A uid with no passwd entry (common in containers) has no name to give.
    return process.env.USER ?? process.env.LOGNAME ?? String(process.getuid?.() ?? "unknown");
  }
}

export function makeRecord(
  action: LogAction,
  wheel: WheelFacts,
  via?: string,
  now: Date = new Date(),
): LogRecord {
  // Built field by field so that every line has its keys in the documented order.
  return {
    time: now.toISOString(),
    action,
    file: wheel.file,
    name: wheel.name,
    version: wheel.version,
    sha256: wheel.sha256,
    user: currentUser(),
    host: hostname(),
    ...(via ? { via } : {}),
  };
}

const FIELDS = ["time", "file", "name", "version", "sha256", "user", "host"] as const;

/** The record a parsed line holds, with only the known keys; undefined when it is not one. */
export function asRecord(value: unknown): LogRecord | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if (o.action !== "add" && o.action !== "remove") return undefined;
  if (!FIELDS.every((k) => typeof o[k] === "string")) return undefined;
  if (o.via !== undefined && typeof o.via !== "string") return undefined;
  const text = (k: (typeof FIELDS)[number]) => o[k] as string;
  return {
    time: text("time"),
    action: o.action,
    file: text("file"),
    name: text("name"),
    version: text("version"),
    sha256: text("sha256"),
    user: text("user"),
    host: text("host"),
    ...(typeof o.via === "string" ? { via: o.via } : {}),
  };
}

export interface LogContents {
  records: LogRecord[];
  /** Line numbers (1-based) that hold no record, e.g. a line cut short by a crash. */
  unreadable: number[];
}

/** Parse the log's text; lines that are not records are counted, not fatal. */
export function parseLog(text: string): LogContents {
  const records: LogRecord[] = [];
  const unreadable: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    const record = asRecord(parsed);
    if (record) records.push(record);
    else unreadable.push(i + 1);
  });
  return { records, unreadable };
}

/** The log at `path`; empty when there is none yet. */
export async function readLog(path: string): Promise<LogContents> {
  try {
    return parseLog(await readFile(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { records: [], unreadable: [] };
    throw err;
  }
}

/** One line per record, as the log holds them. */
export function formatRecords(records: readonly LogRecord[]): string {
  return records.map((r) => `${JSON.stringify(r)}\n`).join("");
}

/**
 * Append `records` in one write and flush them to disk. A last line left unfinished by a
 * crash is ended first, so that it cannot swallow the first new record.
 */
export async function appendLog(path: string, records: readonly LogRecord[]): Promise<void> {
  if (records.length === 0) return;
  const handle = await open(path, "a+", 0o644);
  try {
    const { size } = await handle.stat();
    let text = formatRecords(records);
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) text = `\n${text}`;
    }
    await handle.write(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Records that are the same event: used to merge another wheelhouse's log without repeats. */
export function recordKey(r: LogRecord): string {
  return JSON.stringify([r.time, r.action, r.file, r.sha256, r.user, r.host]);
}
