/**
 * The remote store's sh scripts, run by a real sh and tar on this machine (LocalConnection):
 * sending only what is missing, assembling, interrupted transfers, runs, names and gc. The
 * same scripts run over ssh in test/e2e/remote-*.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, test } from "node:test";
import { decodeHeader, encodeHeader, padding } from "../../../src/bundle/tar.js";
import { DISCARD } from "../../../src/fleet/scripts.js";
import { LocalConnection } from "../../../src/transport/connection.js";
import { extractFetched } from "../../../src/transport/fetch.js";
import * as sh from "../../../src/transport/scripts.js";
import { newId, RemoteStore, runHeader } from "../../../src/transport/store.js";
import { objectEntries, tarBytes, tarStream } from "../../../src/transport/tar-stream.js";
import { listTree, type Tree, treeObjects } from "../../../src/transport/tree.js";
import { tempDir } from "../../support/temp.js";

const work = tempDir("pyferry-store-");
after(() => {
  spawnSync("chmod", ["-R", "u+w", work]);
  rmSync(work, { recursive: true, force: true });
});
let n = 0;
const fresh = (name: string) => {
  const d = join(work, `${name}-${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
};
const PYTHON = execFileSync("python3", ["-c", "import sys; print(sys.executable)"])
  .toString()
  .trim();

/** A small environment-like tree: folders, an executable, an empty file, a symlink, a python. */
function sampleTree(): string {
  const d = fresh("tree");
  mkdirSync(join(d, "bin"));
  mkdirSync(join(d, "lib", "pkg"), { recursive: true });
  symlinkSync(PYTHON, join(d, "bin", "python"));
  writeFileSync(join(d, "bin", "tool"), "#!/bin/sh\necho tool\n");
  chmodSync(join(d, "bin", "tool"), 0o755);
  writeFileSync(join(d, "lib", "pkg", "__init__.py"), "");
  writeFileSync(join(d, "lib", "pkg", "mod.py"), "X = 1\n".repeat(1000));
  writeFileSync(join(d, "lib", "pkg", "same.py"), "X = 1\n".repeat(1000));
  return d;
}

function sourcesOf(tree: Tree, root: string) {
  const m = new Map<string, { source: string; size: number }>();
  for (const e of tree.entries)
    if (e.type === "file") m.set(e.object, { source: join(root, e.path), size: e.size });
  return m;
}

/** Every object hashes to its name, and nothing is left half-received. */
function checkStore(root: string): number {
  let count = 0;
  const objects = join(root, "objects");
  for (const dir of readdirSync(objects)) {
    for (const f of readdirSync(join(objects, dir))) {
      const sha = createHash("sha256")
        .update(readFileSync(join(objects, dir, f)))
        .digest("hex");
      assert.equal(`${dir}${f.replace(/\.x$/, "")}`, sha, `objects/${dir}/${f}`);
      count++;
    }
  }
  return count;
}

test("a tree is sent once, assembled whole, and reused", async () => {
  const root = fresh("store");
  const store = new RemoteStore(new LocalConnection(), root);
  const src = sampleTree();
  const tree = listTree(src);
  const first = await store.ensureTree(tree, sourcesOf(tree, src));
  // Two identical files are one object; the empty file needs none.
  assert.equal(first.objectsSent, 2);
  const again = await store.ensureTree(tree, sourcesOf(tree, src));
  assert.deepEqual(again, { objectsSent: 0, bytesSent: 0 });
  const env = join(root, "envs", tree.key);
  assert.ok(existsSync(join(env, ".pyferry-complete")));
  assert.equal(readlinkSync(join(env, "bin", "python")), PYTHON);
  assert.equal(readFileSync(join(env, "lib", "pkg", "mod.py"), "utf8"), "X = 1\n".repeat(1000));
  assert.equal(statSync(join(env, "lib", "pkg", "__init__.py")).size, 0);
  assert.ok((statSync(join(env, "bin", "tool")).mode & 0o111) !== 0);
  // Files are hardlinks to read-only objects.
  const mod = statSync(join(env, "lib", "pkg", "mod.py"));
  assert.equal(mod.nlink, 3);
  assert.equal(mod.mode & 0o222, 0);
  assert.equal(checkStore(root), 2);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key]);
});

test("a copy a deploy found changed stays in place until the next shipment replaces it whole", async () => {
  const root = fresh("store");
  const conn = new LocalConnection();
  const store = new RemoteStore(conn, root);
  const src = sampleTree();
  const tree = listTree(src);
  await store.ensureTree(tree, sourcesOf(tree, src));
  const env = join(root, "envs", tree.key);
  rmSync(join(env, "lib", "pkg", "mod.py"));
  const d = await conn.exec(DISCARD, [root, tree.key]);
  assert.equal(d.code, 0, d.stderr);
  // Still there for a link that points to it, but no longer taken for a whole copy.
  assert.ok(existsSync(join(env, "lib", "pkg", "same.py")));
  assert.ok(!existsSync(join(env, ".pyferry-complete")));
  const again = await store.ensureTree(tree, sourcesOf(tree, src));
  assert.equal(again.objectsSent, 0, "its objects were all still there");
  assert.ok(existsSync(join(env, ".pyferry-complete")));
  assert.equal(readFileSync(join(env, "lib", "pkg", "mod.py"), "utf8"), "X = 1\n".repeat(1000));
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key], "the old copy is gone");
  assert.equal(checkStore(root), 2);
});

test("an interrupted transfer keeps what arrived whole and drops the partial object", async () => {
  const root = fresh("store");
  const conn = new LocalConnection();
  const store = new RemoteStore(conn, root);
  const src = fresh("objs");
  const objects = new Map<string, { source: string; size: number }>();
  for (const [i, size] of [40_000, 50_000, 60_000].entries()) {
    const data = Buffer.alloc(size, 65 + i);
    const path = join(src, `f${i}`);
    writeFileSync(path, data);
    const sha = createHash("sha256").update(data).digest("hex");
    objects.set(`${sha.slice(0, 2)}/${sha.slice(2)}`, { source: path, size });
  }
  const chunks: Buffer[] = [];
  const tx = newId();
  for await (const c of tarStream(objectEntries(objects, `tmp/${tx}`))) chunks.push(c as Buffer);
  const whole = Buffer.concat(chunks);
  const ids = [...objects.keys()].sort();
  // Cut inside the last object's bytes: tar stops, the shell salvages, the rest waits.
  const r = await conn.exec(
    sh.RECEIVE,
    [root, tx, "", "", ""],
    whole.subarray(0, whole.length - 30_000),
  );
  assert.equal(r.code, sh.REMOTE_EXIT.tarFailed);
  assert.equal(checkStore(root), 2);
  assert.deepEqual(await store.missing(ids), [ids[2]]);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  const sent = await store.upload(await store.missing(ids), objects);
  assert.equal(sent.objectsSent, 1);
  assert.equal(checkStore(root), 3);
});

/**
 * A local store whose first transfer is cut (a dropped connection): the receiver gets the
 * stream's first `cut(stream)` bytes.
 */
class CutConnection extends LocalConnection {
  /** The whole stream that was cut, as the store made it. */
  stream: Buffer | undefined;

  constructor(private cut: ((stream: Buffer) => number) | undefined) {
    super();
  }

  override async exec(
    script: string,
    args: readonly string[] = [],
    input?: Buffer | string | Readable,
    onSent?: (n: number) => void,
  ) {
    const cut = this.cut;
    if (
      !script.includes("tar -x -o -f -") ||
      input === undefined ||
      typeof input === "string" ||
      !cut
    )
      return super.exec(script, args, input, onSent);
    this.cut = undefined;
    const chunks: Buffer[] = [];
    if (Buffer.isBuffer(input)) chunks.push(input);
    else for await (const c of input) chunks.push(c as Buffer);
    const whole = Buffer.concat(chunks);
    this.stream = whole;
    return super.exec(script, args, whole.subarray(0, cut(whole)), onSent);
  }
}

/** Where the member whose name matches `name` starts: a cut there is between two members. */
function beforeMember(name: RegExp): (stream: Buffer) => number {
  return (stream) => {
    for (let off = 0; off < stream.length; off += 512) {
      const h = decodeHeader(stream.subarray(off, off + 512));
      if (typeof h !== "string" && name.test(h.name)) return off;
    }
    throw new Error(`no member matches ${name}`);
  };
}

test("stores lacking the same files get one shared stream, each assembled whole", async () => {
  const src = sampleTree();
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const roots = [fresh("shared-a"), fresh("shared-b"), fresh("shared-c")];
  const sent = [];
  for (const root of roots)
    sent.push(
      await new RemoteStore(new LocalConnection(), root).ensureTree(tree, sources, { share: true }),
    );
  for (const [i, root] of roots.entries()) {
    assert.deepEqual(sent[i], sent[0]);
    assert.equal(checkStore(root), 2);
    assert.deepEqual(readdirSync(join(root, "envs")), [tree.key]);
    assert.deepEqual(readdirSync(join(root, "tmp")), []);
    const env = join(root, "envs", tree.key);
    assert.equal(readFileSync(join(env, "lib", "pkg", "same.py"), "utf8"), "X = 1\n".repeat(1000));
    assert.equal(readlinkSync(join(env, "bin", "python")), PYTHON);
  }
});

test("a stream cut between two members is not taken for a whole one", async () => {
  const src = sampleTree();
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const root = fresh("store");
  // Cut before the environment's last file: tar alone would call the rest a whole archive.
  const cut = new RemoteStore(new CutConnection(beforeMember(/\/lib\/pkg\/same\.py$/)), root);
  await assert.rejects(cut.send(treeObjects(tree), sources, tree), /receiving the environment/i);
  assert.deepEqual(readdirSync(join(root, "envs")), [], "no environment published");
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.equal(checkStore(root), 2, "what arrived whole is kept");
  const sent = await new RemoteStore(new LocalConnection(), root).ensureTree(tree, sources);
  assert.equal(sent.objectsSent, 0);
  assert.ok(existsSync(join(root, "envs", tree.key, "lib", "pkg", "same.py")));
});

test("an environment cut mid-transfer: its new files that arrived whole are kept, nothing partial", async () => {
  const src = fresh("big");
  mkdirSync(join(src, "lib"));
  const sizes = [40_000, 50_000, 60_000, 70_000];
  for (const [i, size] of sizes.entries())
    writeFileSync(join(src, "lib", `f${i}`), Buffer.alloc(size, 65 + i));
  // The same bytes twice: one object, linked to the first copy in the stream.
  writeFileSync(join(src, "lib", "f0-again"), Buffer.alloc(sizes[0] as number, 65));
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const root = fresh("store");
  const whole = new RemoteStore(new LocalConnection(), fresh("whole"));
  const all = await whole.ensureTree(tree, sources);
  assert.equal(all.objectsSent, 4);
  // Cut inside f2 (the files go in name order): f0 and f1 arrived whole.
  const cut = new RemoteStore(new CutConnection(() => all.bytesSent - 70_000 - 40_000), root);
  // The cut send fails; the store's one retry asks again what is missing and sends only that.
  const sent = await cut.ensureTree(tree, sources, { knownAbsent: true });
  assert.equal(sent.objectsSent, 2, "f0 and f1 were kept; only f2 and f3 were sent again");
  assert.equal(checkStore(root), 4, "every object whole: the partial f2 was not kept");
  const env = join(root, "envs", tree.key);
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key], "no partial environment");
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.equal(statSync(join(env, "lib", "f0")).ino, statSync(join(env, "lib", "f0-again")).ino);
  assert.equal(readFileSync(join(env, "lib", "f2")).length, 60_000);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
});

/** The files of an assembled environment, each with its contents' hash. */
function envFiles(root: string, key: string): Map<string, string> {
  return new Map(
    listTree(join(root, "envs", key)).entries.map((e) => [
      e.path,
      e.type === "file" ? e.object : e.type,
    ]),
  );
}

test("a stream sent gzip-compressed gives the same environment, in fewer bytes", async () => {
  const src = sampleTree();
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const [plainRoot, gzRoot] = [fresh("store"), fresh("store")];
  const plain = new RemoteStore(new LocalConnection(), plainRoot);
  assert.equal(plain.compress, false, "a local store gains nothing from compression");
  const gz = new RemoteStore(new LocalConnection(), gzRoot);
  gz.compress = true;
  const a = await plain.ensureTree(tree, sources);
  let counted = 0;
  const b = await gz.ensureTree(tree, sources, { onBytes: (n) => (counted += n) });
  assert.equal(counted, b.bytesSent, "the status line hears of every byte sent");
  assert.equal(b.objectsSent, a.objectsSent);
  assert.ok(b.bytesSent * 4 < a.bytesSent, `${b.bytesSent} bytes compressed, ${a.bytesSent} not`);
  assert.deepEqual(envFiles(gzRoot, tree.key), envFiles(plainRoot, tree.key));
  assert.equal(checkStore(gzRoot), 2);
  assert.deepEqual(readdirSync(join(gzRoot, "tmp")), []);
});

test("a gzip stream cut mid-transfer keeps the files that arrived whole, nothing partial", async () => {
  const src = fresh("random");
  mkdirSync(join(src, "lib"));
  // Random bytes do not compress: the cut lands where it would in the tar.
  const sizes = [40_000, 50_000, 60_000, 70_000];
  for (const [i, size] of sizes.entries())
    writeFileSync(join(src, "lib", `f${i}`), randomBytes(size));
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const root = fresh("store");
  // Cut inside f2 (the files go in name order, f3 last): f0 and f1 arrived whole.
  const conn = new CutConnection((gz) => gz.length - 70_000 - 30_000);
  const cut = new RemoteStore(conn, root);
  cut.compress = true;
  const sent = await cut.ensureTree(tree, sources, { knownAbsent: true });
  assert.deepEqual([...(conn.stream as Buffer).subarray(0, 2)], [0x1f, 0x8b], "a gzip stream");
  assert.equal(sent.objectsSent, 2, "f0 and f1 were kept; only f2 and f3 were sent again");
  assert.equal(checkStore(root), 4, "every object whole: the partial f2 was not kept");
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key], "no partial environment");
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.equal(readFileSync(join(root, "envs", tree.key, "lib", "f2")).length, 60_000);
});

/** A local store on a host without gzip: its sh finds every other command of /usr/bin. */
function noGzipConnection(): LocalConnection {
  const bin = fresh("no-gzip-bin");
  for (const name of readdirSync("/usr/bin")) {
    if (!["gzip", "gunzip", "zcat"].includes(name))
      symlinkSync(join("/usr/bin", name), join(bin, name));
  }
  return new LocalConnection({ ...process.env, PATH: bin });
}

test("a host without gzip gets the same transfer uncompressed, and every later one", async () => {
  const src = sampleTree();
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const root = fresh("store");
  const store = new RemoteStore(noGzipConnection(), root);
  store.compress = true;
  const sent = await store.ensureTree(tree, sources);
  assert.equal(sent.objectsSent, 2);
  assert.equal(store.compress, false);
  assert.equal(checkStore(root), 2);
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key]);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
});

test("a tree with thousands of new files (a first ship) is sent as objects, and a cut keeps the whole ones", async () => {
  const src = fresh("many");
  mkdirSync(join(src, "lib"));
  for (let i = 0; i < 2100; i++) writeFileSync(join(src, "lib", `m${i}.py`), `N = ${i}\n`);
  const tree = listTree(src);
  const sources = sourcesOf(tree, src);
  const heard: number[] = [];
  const whole = await new RemoteStore(new LocalConnection(), fresh("whole")).ensureTree(
    tree,
    sources,
    { onBytes: (n) => heard.push(n) },
  );
  assert.equal(whole.objectsSent, 2100);
  // A stream read as it goes out is counted as it goes, not at once.
  assert.ok(heard.length > 1, `${heard.length} counts`);
  assert.equal(
    heard.reduce((x, y) => x + y, 0),
    whole.bytesSent,
  );
  const root = fresh("store");
  // Cut halfway: the objects come first, in id order.
  const cut = new RemoteStore(new CutConnection(() => Math.floor(whole.bytesSent / 2)), root);
  const rest = await cut.ensureTree(tree, sources, { knownAbsent: true });
  assert.ok(rest.objectsSent > 0 && rest.objectsSent < 2100, `sent again: ${rest.objectsSent}`);
  assert.equal(checkStore(root), 2100);
  assert.deepEqual(readdirSync(join(root, "envs")), [tree.key]);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
  assert.equal(readFileSync(join(root, "envs", tree.key, "lib", "m2099.py"), "utf8"), "N = 2099\n");
});

test("a receiver killed mid-environment leaves its files to the next one, which keeps only whole ones", async () => {
  const src = fresh("killed");
  const data = [Buffer.alloc(30_000, 66), Buffer.alloc(20_000, 67)];
  for (const [i, d] of data.entries()) writeFileSync(join(src, `f${i}`), d);
  const tree = listTree(src);
  const root = fresh("store");
  const store = new RemoteStore(new LocalConnection(), root);
  await store.probe();
  // What a receiver killed while writing f1 leaves: f0 whole, f1 short, its sums and links.
  const tx = "dead-env";
  const e = join(root, "envs", `.tmp-${tx}`);
  mkdirSync(e);
  writeFileSync(join(e, "f0"), data[0] as Buffer);
  writeFileSync(join(e, "f1"), (data[1] as Buffer).subarray(0, 5000));
  const ids = tree.entries.flatMap((x) => (x.type === "file" ? [x.object] : []));
  const sha = (id: string) => id.replace("/", "");
  writeFileSync(
    join(root, "tmp", `${tx}.sums`),
    ids.map((id, i) => `${sha(id)}  envs/.tmp-${tx}/f${i}\n`).join(""),
  );
  const links = tarBytes(
    ids.map((id, i) => ({
      entry: {
        path: `objects/${id}`,
        type: "hardlink" as const,
        mode: 0o444,
        size: 0,
        mtime: 0,
        linkname: `envs/.tmp-${tx}/f${i}`,
      },
    })),
  );
  writeFileSync(join(root, "tmp", `${tx}.links`), links);
  mkdirSync(join(root, "tmp", tx));
  writeFileSync(join(root, "tmp", `${tx}.pid`), "2147483646\n");
  assert.deepEqual(await store.missing(ids), [ids[1]]);
  assert.equal(checkStore(root), 1);
  assert.deepEqual(readdirSync(join(root, "envs")), []);
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
});

test("a receiver that died leaves its folder to the next one, which keeps only good objects", async () => {
  const root = fresh("store");
  const store = new RemoteStore(new LocalConnection(), root);
  await store.probe();
  const good = Buffer.from("good object\n");
  const sha = createHash("sha256").update(good).digest("hex");
  const dead = join(root, "tmp", "dead");
  mkdirSync(join(dead, sha.slice(0, 2)), { recursive: true });
  mkdirSync(join(dead, "00"), { recursive: true });
  writeFileSync(join(dead, sha.slice(0, 2), sha.slice(2)), good);
  writeFileSync(join(dead, "00", "0".repeat(62)), "truncated or corrupt");
  // A pid that is not running: the receiver is gone.
  writeFileSync(`${dead}.pid`, "2147483646\n");
  await store.upload([], new Map());
  const src = fresh("one");
  writeFileSync(join(src, "x"), "x");
  const tree = listTree(src);
  await store.ensureTree(tree, sourcesOf(tree, src));
  assert.equal(checkStore(root), 2);
  assert.ok(existsSync(join(root, "objects", sha.slice(0, 2), sha.slice(2))));
  assert.ok(!existsSync(join(root, "objects", "00", "0".repeat(62))));
  assert.deepEqual(readdirSync(join(root, "tmp")), []);
});

async function runToEnd(
  store: RemoteStore,
  runId: string,
  envKey: string,
  header: string,
  env: string[],
  args: string[],
  input = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = await store.conn.spawn(
    sh.RUN,
    [store.root, runId, envKey, "", String(env.length), ...env, ...args],
    ["pipe", "pipe", "pipe"],
  );
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  child.stdin?.end(`${header}\n${input}`);
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

test("a run: its folder made from objects, arguments, variables and stdin exact, its status back", async () => {
  const root = fresh("store");
  const store = new RemoteStore(new LocalConnection(), root);
  const envSrc = sampleTree();
  const env = listTree(envSrc);
  const appSrc = fresh("app");
  mkdirSync(join(appSrc, "data"));
  writeFileSync(
    join(appSrc, "main.py"),
    [
      "import os, sys",
      "print(repr(sys.argv[1:]))",
      "print(os.environ['ODD'])",
      "print(open('data/in.txt').read().strip())",
      "print(sys.stdin.read().strip())",
      "print(os.path.exists('data/empty'))",
      "sys.exit(7)",
      "",
    ].join("\n"),
  );
  writeFileSync(join(appSrc, "data", "in.txt"), "data file\n");
  writeFileSync(join(appSrc, "data", "empty"), "");
  const app = listTree(appSrc);
  const header = runHeader(app) as string;
  const id = newId();
  const args = ["main.py", "a b", "$HOME", "x;rm -rf /", "it's", ""];
  // Nothing there yet: the environment is reported missing and nothing is created.
  const none = await runToEnd(store, id, env.key, header, [], args);
  assert.equal(none.code, sh.REMOTE_EXIT.envMissing);
  assert.match(none.stderr, /^pyferry:env-missing$/m);
  await store.ensureTree(env, sourcesOf(env, envSrc));
  const missing = await runToEnd(store, id, env.key, header, [], args);
  assert.equal(missing.code, sh.REMOTE_EXIT.objectsMissing);
  assert.equal(missing.stderr.match(/^pyferry:missing /gm)?.length, 2);
  assert.ok(!existsSync(join(root, "runs", id)));
  await store.upload(
    await store.missing([...sourcesOf(app, appSrc).keys()]),
    sourcesOf(app, appSrc),
  );
  const r = await runToEnd(store, id, env.key, header, ["ODD=v a l'ue;$x"], args, "from stdin\n");
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /^pyferry:ready$/m);
  // What Python itself prints for these arguments given directly, without any shell.
  const direct = execFileSync(PYTHON, [
    "-c",
    "import sys; print(repr(sys.argv[1:]))",
    ...args.slice(1),
  ]);
  assert.equal(r.stdout, `${direct}v a l'ue;$x\ndata file\nfrom stdin\nTrue\n`);
  assert.equal(readFileSync(join(root, "runs", `${id}.env`), "utf8").trim(), env.key);
  assert.ok(
    !existsSync(join(root, "runs", `${id}.pid`)),
    "the pid file goes when the program ends",
  );
});

test("gc removes finished runs and what nothing uses; names and running programs keep theirs", async () => {
  const root = fresh("store");
  const store = new RemoteStore(new LocalConnection(), root);
  const trees = [sampleTree(), sampleTree()].map((d) => {
    writeFileSync(join(d, "lib", "pkg", "own.py"), `# ${d}\n`);
    return { d, tree: listTree(d) };
  });
  for (const { d, tree } of trees) await store.ensureTree(tree, sourcesOf(tree, d));
  const [kept, dropped] = trees as [{ d: string; tree: Tree }, { d: string; tree: Tree }];
  assert.ok((await store.status(kept.tree.key, "nightly", [])).envComplete);
  const finished = newId();
  const done = await runToEnd(store, finished, dropped.tree.key, "", [], ["-c", "pass"]);
  assert.equal(done.code, 0, done.stderr);
  // A run still going: its environment stays whatever gc thinks of it otherwise.
  const live = newId();
  const child = await store.conn.spawn(
    sh.RUN,
    [
      root,
      live,
      dropped.tree.key,
      "",
      "0",
      "-c",
      "import time; print('up', flush=True); time.sleep(30)",
    ],
    ["pipe", "pipe", "pipe"],
  );
  child.stdin?.end("\n");
  await new Promise<void>((resolve) => child.stdout?.once("data", () => resolve()));
  let removed = await store.gc();
  assert.deepEqual(removed, { runs: 1, envs: 0, objects: 0 });
  assert.ok(existsSync(join(root, "envs", dropped.tree.key)));
  const closed = new Promise((resolve) => child.on("close", resolve));
  await store.signal(live, "TERM");
  await closed;
  removed = await store.gc();
  assert.equal(removed.runs, 1);
  assert.equal(removed.envs, 1);
  assert.equal(removed.objects, 1, "only the dropped tree's own file is unused");
  assert.deepEqual(readdirSync(join(root, "envs")), [kept.tree.key]);
  const cleaned = await store.clean({ name: "nightly" });
  assert.deepEqual(cleaned, { runs: 0, envs: 1 });
  assert.deepEqual((await store.gc()).objects, 3);
  assert.equal(checkStore(root), 0);
});

test("fetched files: only plain files and folders, inside the destination, each whole", async () => {
  const entry = (path: string, type: "file" | "dir" | "symlink", data = "", linkname?: string) => {
    const body = Buffer.from(data);
    const h = encodeHeader({
      path,
      type,
      mode: 0o644,
      size: body.length,
      mtime: 0,
      ...(linkname ? { linkname } : {}),
    });
    return Buffer.concat([h, body, Buffer.alloc(padding(body.length))]);
  };
  const tar = Buffer.concat([
    entry("out", "dir"),
    entry("out/result.txt", "file", "42\n"),
    entry("../escape.txt", "file", "no"),
    entry("/abs.txt", "file", "no"),
    entry("out/link", "symlink", "", "/etc"),
    entry("out/link/passwd", "file", "inside"),
    entry("pre/x", "file", "no"),
    Buffer.alloc(1024),
  ]);
  const dest = fresh("fetch");
  const outside = fresh("outside");
  // A symlink already in the destination must not lead a fetched file out of it.
  symlinkSync(outside, join(dest, "pre"));
  const got = await extractFetched(Readable.from([tar]), dest, "h1");
  // The symlink entry is never made, so out/link is an ordinary folder inside dest.
  assert.deepEqual(got.files, ["out/result.txt", "out/link/passwd"]);
  assert.deepEqual(got.skipped, ["../escape.txt", "/abs.txt", "out/link", "pre/x"]);
  assert.equal(readFileSync(join(dest, "out", "result.txt"), "utf8"), "42\n");
  assert.ok(!existsSync(join(dest, "..", "escape.txt")));
  assert.ok(lstatSync(join(dest, "out", "link")).isDirectory());
  assert.deepEqual(readdirSync(outside), []);
});
