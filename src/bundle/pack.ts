/**
 * Packing: an environment and the app's files into one reproducible tar.gz. The same inputs
 * give the same bytes: entries sorted by path, one fixed mtime, owner 0 without names, modes
 * reduced to 0755/0644, and a gzip header with no timestamp. Everything streams; the archive
 * appears at `output` only when it is complete.
 */
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { lstat, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { UserError } from "../util/errors.js";
import { isInside } from "../util/inside.js";
import { type OutputPlan, writeOutput } from "../util/output-file.js";
import {
  compareBytes,
  type FileRecord,
  isBundlePath,
  type LinkRecord,
  MANIFEST_NAME,
  type Manifest,
  type ManifestHead,
  serializeManifest,
  validateManifest,
} from "./manifest.js";
import { BLOCK, encodeHeader, padding, RECORD, type TarEntry } from "./tar.js";

export interface PackOptions {
  /** The environment folder; stored under env/. */
  envDir: string;
  /** Files or folders of the app; `dest` is a relative path under app/. */
  appFiles: { source: string; dest: string }[];
  manifest: ManifestHead;
  output: string;
  /** How `output` is written, when the caller checked it before its own work (planOutput). */
  outputPlan?: OutputPlan;
  compression?: "gzip";
  /** gzip level, 1-9 (default 6). */
  level?: number;
  /** Keep __pycache__ folders (for environments compiled to hash-based .pyc on purpose). */
  includeBytecode?: boolean;
  /**
   * Files made for this bundle (launchers of the project's scripts) at paths under env/ whose
   * folder the environment has; one replaces the environment's file (not a link or folder) of
   * the same path.
   */
  generated?: { path: string; data: Buffer; mode: 0o644 | 0o755 }[];
}

export interface PackResult {
  /** sha256 of the archive file. */
  sha256: string;
  bytes: number;
  /** Regular files in the bundle. */
  files: number;
}

/** An entry to write, and for files where its content comes from: a file, or bytes made here. */
interface Planned extends TarEntry {
  source?: string;
  data?: Buffer;
}

/** The mtime every entry gets: SOURCE_DATE_EPOCH when set, else 0. */
function fixedMtime(): number {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return 0;
  if (!/^\d+$/.test(v) || Number(v) > 0o77777777777)
    throw new UserError(
      `SOURCE_DATE_EPOCH must be a whole number of seconds, not ${JSON.stringify(v)}.`,
    );
  return Number(v);
}

const toPosix = (p: string): string => p.split(sep).join("/");
const fileMode = (st: Stats): number => (st.mode & 0o111 ? 0o755 : 0o644);

/**
 * Everything under the environment, with symlinks kept as symlinks: a link that stays
 * inside is rewritten relative to its own folder (so it survives the move), one that leaves
 * is stored as the absolute path it pointed to and recorded as external.
 */
async function planEnv(
  envDir: string,
  mtime: number,
  skip: (name: string) => boolean,
  links: Record<string, LinkRecord>,
): Promise<Planned[]> {
  const root = resolve(envDir);
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) throw new UserError(`The environment ${envDir} is not a folder.`);
  const roots = [root, await realpath(root)];
  const out: Planned[] = [{ path: "env", type: "dir", mode: 0o755, size: 0, mtime }];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const abs = join(dir, name);
      const path = `${rel}/${name}`;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        if (skip(name)) continue;
        out.push({ path, type: "dir", mode: 0o755, size: 0, mtime });
        await walk(abs, path);
      } else if (st.isFile()) {
        out.push({ path, type: "file", mode: fileMode(st), size: st.size, mtime, source: abs });
      } else if (st.isSymbolicLink()) {
        const target = await readlink(abs);
        const resolved = resolve(dirname(abs), target);
        const base = roots.find((r) => isInside(r, resolved));
        let linkname: string;
        if (base === undefined) linkname = resolved;
        else {
          const inner = relative(dirname(join(base, relative(root, abs))), resolved);
          linkname = inner === "" ? basename(abs) : toPosix(inner);
        }
        links[path] = { target: linkname, external: base === undefined };
        out.push({ path, type: "symlink", mode: 0o777, size: 0, mtime, linkname });
      } else {
        throw new UserError(
          `Cannot pack ${abs}: only files, folders and symlinks can go in a bundle.`,
        );
      }
    }
  };
  await walk(root, "env");
  return out;
}

/** The app's files, symlinks followed (the app is content, not layout), under app/. */
async function planApp(
  appFiles: PackOptions["appFiles"],
  mtime: number,
  skip: (name: string) => boolean,
): Promise<Planned[]> {
  const out = new Map<string, Planned>();
  const add = (e: Planned): void => {
    const prev = out.get(e.path);
    if (prev && !(prev.type === "dir" && e.type === "dir"))
      throw new UserError(`Two app files want the same place in the bundle: ${e.path}.`);
    out.set(e.path, e);
  };
  const addDirs = (path: string): void => {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (out.get(dir)?.type !== "dir")
        add({ path: dir, type: "dir", mode: 0o755, size: 0, mtime });
    }
  };
  const walk = async (dir: string, path: string, seen: string[]): Promise<void> => {
    const real = await realpath(dir);
    if (seen.includes(real)) throw new UserError(`The app folder ${dir} contains a symlink loop.`);
    for (const name of await readdir(dir)) {
      const abs = join(dir, name);
      const st = await stat(abs).catch(() => {
        throw new UserError(`Cannot pack ${abs}: it is a broken symlink.`);
      });
      const sub = `${path}/${name}`;
      if (st.isDirectory()) {
        if (skip(name)) continue;
        add({ path: sub, type: "dir", mode: 0o755, size: 0, mtime });
        await walk(abs, sub, [...seen, real]);
      } else if (st.isFile()) {
        add({ path: sub, type: "file", mode: fileMode(st), size: st.size, mtime, source: abs });
      }
    }
  };
  out.set("app", { path: "app", type: "dir", mode: 0o755, size: 0, mtime });
  for (const { source, dest } of appFiles) {
    const path = `app/${dest.replace(/\/+$/, "")}`;
    if (!isBundlePath(path))
      throw new UserError(
        `The app path ${JSON.stringify(dest)} must be relative, without "." or "..".`,
      );
    const st = await stat(source).catch(() => {
      throw new UserError(`Cannot pack ${source}: it does not exist.`);
    });
    addDirs(path);
    if (st.isDirectory()) {
      add({ path, type: "dir", mode: 0o755, size: 0, mtime });
      await walk(source, path, []);
    } else if (st.isFile()) {
      add({ path, type: "file", mode: fileMode(st), size: st.size, mtime, source });
    } else {
      throw new UserError(`Cannot pack ${source}: it is neither a file nor a folder.`);
    }
  }
  return [...out.values()];
}

/** Files at most this big are read in one call: a stream per small file costs more than it saves. */
const WHOLE_READ = 1 << 20;

/** A file's content in chunks: in one piece when small, streamed when not. */
async function* chunks(path: string, size: number): AsyncGenerator<Buffer> {
  if (size <= WHOLE_READ) yield await readFile(path);
  else yield* createReadStream(path, { highWaterMark: WHOLE_READ }) as AsyncIterable<Buffer>;
}

/** The bytes of a planned file: those made here, else the source file's. */
function contents(e: Planned): AsyncIterable<Buffer> | Buffer[] {
  return e.data ? [e.data] : chunks(e.source ?? "", e.size);
}

async function hashFile(e: Planned): Promise<{ sha256: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of contents(e)) {
    h.update(chunk);
    size += chunk.length;
  }
  return { sha256: h.digest("hex"), size };
}

/** Run `fn` over `items` with at most `limit` at a time, keeping order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The uncompressed tar stream: manifest first, then every planned entry, then the end blocks.
 * Small pieces are gathered into chunks of about 1 MiB, as each write to zlib is a round trip
 * to its thread pool.
 */
async function* tarStream(
  manifestText: string,
  entries: Planned[],
  files: Record<string, FileRecord>,
): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let written = 0;
  const add = (b: Buffer): void => {
    pending.push(b);
    pendingBytes += b.length;
    written += b.length;
  };
  const take = (): Buffer => {
    const out = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return out;
  };
  const body = Buffer.from(manifestText, "utf8");
  const mtime = entries[0]?.mtime ?? 0;
  add(encodeHeader({ path: MANIFEST_NAME, type: "file", mode: 0o644, size: body.length, mtime }));
  add(body);
  add(Buffer.alloc(padding(body.length)));
  for (const e of entries) {
    add(encodeHeader(e));
    if (e.type === "file") {
      const want = files[e.path];
      const h = createHash("sha256");
      let size = 0;
      for await (const chunk of contents(e)) {
        size += chunk.length;
        // Never write more than the header promised, even if the file grew meanwhile.
        if (size > want.size) break;
        h.update(chunk);
        add(chunk);
        if (pendingBytes >= WHOLE_READ) yield take();
      }
      if (size !== want.size || h.digest("hex") !== want.sha256)
        throw new UserError(`${e.source} changed while it was being packed; pack again.`);
      add(Buffer.alloc(padding(size)));
    }
    if (pendingBytes >= WHOLE_READ) yield take();
  }
  const end = 2 * BLOCK;
  add(Buffer.alloc(end + ((RECORD - ((written + end) % RECORD)) % RECORD)));
  yield take();
}

/**
 * zlib writes the gzip header's OS byte for the machine it runs on; fix it (to 3, Unix) and
 * the mtime (to 0, none), so that the bytes do not depend on where the bundle was packed.
 */
function fixGzipHeader(): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      if (offset < 10) {
        const c = Buffer.from(chunk);
        for (let i = 0; i < c.length && offset + i < 10; i++) {
          const at = offset + i;
          if (at >= 4 && at <= 7) c[i] = 0;
          if (at === 9) c[i] = 3;
        }
        chunk = c;
      }
      offset += chunk.length;
      done(null, chunk);
    },
  });
}

/** The environment's entries with the generated files in, each replacing its path's entry. */
function withGenerated(env: Planned[], { generated }: PackOptions, mtime: number): Planned[] {
  if (!generated?.length) return env;
  const byPath = new Map(env.map((e) => [e.path, e]));
  for (const g of generated) {
    const dir = g.path.slice(0, g.path.lastIndexOf("/"));
    const there = byPath.get(g.path)?.type;
    if (
      !g.path.startsWith("env/") ||
      !isBundlePath(g.path) ||
      byPath.get(dir)?.type !== "dir" ||
      (there !== undefined && there !== "file")
    ) {
      throw new Error(
        `A generated file must go in a folder of env/, over no link or folder: ${g.path}.`,
      );
    }
    const { path, data, mode } = g;
    byPath.set(path, { path, type: "file", mode, size: data.length, mtime, data });
  }
  return [...byPath.values()];
}

/** Pack `envDir` and `appFiles` into the tar.gz `output` (published atomically). */
export async function packBundle(opts: PackOptions): Promise<PackResult> {
  if ((opts.compression ?? "gzip") !== "gzip")
    throw new UserError(`Unknown bundle compression ${JSON.stringify(opts.compression)}.`);
  const level = opts.level ?? 6;
  if (!Number.isInteger(level) || level < 1 || level > 9)
    throw new UserError(`The gzip level must be a whole number from 1 to 9, not ${level}.`);
  const mtime = fixedMtime();
  const skip = (name: string): boolean => name === "__pycache__" && opts.includeBytecode !== true;

  const links: Record<string, LinkRecord> = {};
  const planned = [
    ...withGenerated(await planEnv(opts.envDir, mtime, skip, links), opts, mtime).sort((a, b) =>
      compareBytes(a.path, b.path),
    ),
    ...(await planApp(opts.appFiles, mtime, skip)).sort((a, b) => compareBytes(a.path, b.path)),
  ];
  const fileEntries = planned.filter((e) => e.type === "file");
  const hashes = await mapLimit(fileEntries, 8, hashFile);
  const files: Record<string, FileRecord> = {};
  fileEntries.forEach((e, i) => {
    // The header must promise what the manifest records, even if the file changed since lstat.
    e.size = hashes[i].size;
    files[e.path] = { ...hashes[i], mode: e.mode };
  });
  const manifest: Manifest = validateManifest(
    { ...opts.manifest, files, links },
    "the pack options",
  );

  const digest = createHash("sha256");
  let bytes = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      digest.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  await writeOutput(
    opts.output,
    (out) =>
      pipeline(
        tarStream(serializeManifest(manifest), planned, files),
        createGzip({ level }),
        fixGzipHeader(),
        measure,
        out,
      ),
    opts.outputPlan,
  );
  return { sha256: digest.digest("hex"), bytes, files: fileEntries.length };
}
