import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Manifest } from "../../../src/bundle/manifest.js";
import { packBundle } from "../../../src/bundle/pack.js";
import { decodeHeader, encodeHeader, parsePax } from "../../../src/bundle/tar.js";
import { unpackBundle } from "../../../src/bundle/unpack.js";
import { UserError } from "../../../src/util/errors.js";
import {
  fakeEnv,
  LONG_DIR,
  LONG_FILE,
  snapshot,
  testHead,
  UNICODE_FILE,
} from "../../support/bundle-child.js";
import { tempDir } from "../../support/temp.js";

const SP = "env/lib/python3.11/site-packages";

function appDir(): string {
  const dir = tempDir("pyferry-bundle-app-");
  writeFileSync(join(dir, "main.py"), "import pkg\nprint(pkg.VALUE)\n");
  mkdirSync(join(dir, "data/__pycache__"), { recursive: true });
  writeFileSync(join(dir, "data/table.csv"), "a,b\n1,2\n");
  writeFileSync(join(dir, "data/__pycache__/x.pyc"), "junk");
  writeFileSync(join(dir, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
  return dir;
}

async function pack(env: string, app: string, output: string) {
  return packBundle({
    envDir: env,
    appFiles: [
      { source: join(app, "main.py"), dest: "main.py" },
      { source: join(app, "data"), dest: "data/" },
      { source: join(app, "run.sh"), dest: "bin/run.sh" },
    ],
    manifest: testHead({ entry: ["python", "main.py"] }),
    output,
  });
}

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
const out = () => join(tempDir("pyferry-bundle-out-"), "b.tar.gz");

describe("packing", () => {
  const env = fakeEnv();
  const app = appDir();

  test("the same inputs give the same bytes, whatever the files' mtimes and extra mode bits", async () => {
    const a = await pack(env, app, out());
    const b = await pack(env, app, out());
    assert.equal(a.sha256, b.sha256);
    for (const f of [join(env, "bin/tool"), join(env, "pyvenv.cfg"), join(app, "main.py")])
      utimesSync(f, new Date(2001, 1, 1), new Date(2001, 1, 1));
    chmodSync(join(env, "bin/tool"), 0o700);
    chmodSync(join(env, "pyvenv.cfg"), 0o600);
    const output = out();
    const c = await pack(env, app, output);
    assert.equal(c.sha256, a.sha256);
    assert.equal(c.sha256, sha(output), "the reported sha256 is the file's");
    assert.equal(c.bytes, readFileSync(output).length);
    chmodSync(join(env, "bin/tool"), 0o644);
    const d = await pack(env, app, out());
    assert.notEqual(d.sha256, a.sha256, "losing the executable bit changes the bundle");
    chmodSync(join(env, "bin/tool"), 0o755);
  });

  test("SOURCE_DATE_EPOCH sets every mtime; the gzip header has no time and a fixed OS", async () => {
    const output = out();
    process.env.SOURCE_DATE_EPOCH = "1700000000";
    try {
      await pack(env, app, output);
    } finally {
      delete process.env.SOURCE_DATE_EPOCH;
    }
    const gz = readFileSync(output);
    assert.deepEqual([...gz.subarray(0, 3)], [0x1f, 0x8b, 8]);
    assert.equal(gz.readUInt32LE(4), 0);
    assert.equal(gz[9], 3);
    const listing = execFileSync("tar", ["--utc", "-tvzf", output], { encoding: "utf8" });
    for (const line of listing.trim().split("\n")) assert.match(line, / 0\/0 .* 2023-11-14 22:13 /);
    process.env.SOURCE_DATE_EPOCH = "yesterday";
    try {
      await assert.rejects(pack(env, app, out()), /SOURCE_DATE_EPOCH/);
    } finally {
      delete process.env.SOURCE_DATE_EPOCH;
    }
  });

  test("the layout: manifest first, env/ sorted, then app/; __pycache__ left out", async () => {
    const output = out();
    const r = await pack(env, app, output);
    const names = execFileSync("tar", ["-tzf", output], { encoding: "utf8" }).trim().split("\n");
    assert.equal(names[0], "manifest.json");
    const envNames = names.filter((n) => n.startsWith("env"));
    const appNames = names.filter((n) => n.startsWith("app"));
    assert.deepEqual(names, ["manifest.json", ...envNames, ...appNames]);
    assert.deepEqual(
      envNames,
      [...envNames].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    );
    assert.ok(!names.some((n) => n.includes("__pycache__")));
    assert.ok(names.includes("env/share/empty/"), "empty folders are kept");
    assert.ok(names.includes(`${SP}/${LONG_DIR}/${LONG_FILE}`), "long paths are whole");
    assert.ok(names.includes(`${SP}/${UNICODE_FILE}`));
    assert.deepEqual(appNames, [
      "app/",
      "app/bin/",
      "app/bin/run.sh",
      "app/data/",
      "app/data/table.csv",
      "app/main.py",
    ]);
    const m = JSON.parse(
      execFileSync("tar", ["-xzOf", output, "manifest.json"], { encoding: "utf8" }),
    ) as Manifest;
    assert.equal(r.files, Object.keys(m.files).length);
    assert.deepEqual(m.entry, ["python", "main.py"]);
    assert.deepEqual(m.files["env/bin/tool"], {
      sha256: sha(join(env, "bin/tool")),
      size: readFileSync(join(env, "bin/tool")).length,
      mode: 0o755,
    });
    assert.equal(m.files["app/bin/run.sh"].mode, 0o755);
    assert.equal(m.files["app/main.py"].mode, 0o644);
    assert.deepEqual(m.links, {
      "env/bin/python": { target: "python3", external: false },
      "env/bin/python3": { target: "/usr/bin/python3", external: true },
      "env/bin/tool-abs": { target: "tool", external: false },
      "env/lib64": { target: "lib", external: false },
    });
  });

  test("GNU tar extracts the same tree that went in", async () => {
    const output = out();
    await pack(env, app, output);
    const dest = tempDir("pyferry-gnutar-");
    execFileSync("tar", ["-xzf", output, "-C", dest]);
    const got = snapshot(join(dest, "env"));
    const want = snapshot(env);
    delete want["lib/python3.11/site-packages/pkg/__pycache__"];
    delete want["lib/python3.11/site-packages/pkg/__pycache__/__init__.cpython-311.pyc"];
    want["bin/tool-abs"] = "link -> tool";
    assert.deepEqual(got, want);
    assert.equal(readFileSync(join(dest, "app/data/table.csv"), "utf8"), "a,b\n1,2\n");
  });

  test("round trip through unpackBundle: identical tree, manifest beside it", async () => {
    const output = out();
    await pack(env, app, output);
    const gnu = tempDir("pyferry-gnutar-");
    execFileSync("tar", ["-xzf", output, "-C", gnu]);
    const dest = join(tempDir("pyferry-unpack-"), "b");
    const m = await unpackBundle(output, dest);
    assert.deepEqual(snapshot(dest), snapshot(gnu));
    assert.equal(m.name, "demo");
    assert.equal(readdirSync(join(dest, "..")).length, 1, "no temporary folder is left beside it");
  });

  test("app paths must be safe and distinct; a failed pack leaves no file behind", async () => {
    const dir = tempDir("pyferry-bundle-out-");
    const output = join(dir, "b.tar.gz");
    const main = join(app, "main.py");
    const cases: [{ source: string; dest: string }[], RegExp][] = [
      [[{ source: main, dest: "../main.py" }], /must be relative/],
      [[{ source: main, dest: "/main.py" }], /must be relative/],
      [
        [
          { source: main, dest: "m.py" },
          { source: join(app, "run.sh"), dest: "m.py" },
        ],
        /same place/,
      ],
      [[{ source: join(app, "missing.py"), dest: "x.py" }], /does not exist/],
    ];
    for (const [appFiles, message] of cases) {
      await assert.rejects(
        packBundle({ envDir: env, appFiles, manifest: testHead(), output }),
        (err: unknown) => err instanceof UserError && message.test(err.message),
      );
    }
    await assert.rejects(
      packBundle({ envDir: join(env, "nope"), appFiles: [], manifest: testHead(), output }),
      /is not a folder/,
    );
    await assert.rejects(
      packBundle({ envDir: env, appFiles: [], manifest: testHead({ name: "" }), output }),
      /has no name/,
    );
    // Something that is neither file, folder nor symlink is refused rather than skipped.
    const fifoEnv = fakeEnv();
    execFileSync("mkfifo", [join(fifoEnv, "pipe")]);
    await assert.rejects(
      packBundle({ envDir: fifoEnv, appFiles: [], manifest: testHead(), output }),
      /only files, folders and symlinks/,
    );
    assert.deepEqual(readdirSync(dir), []);
    assert.ok(!existsSync(output));
  });
});

describe("tar headers", () => {
  test("names up to 256 bytes split into ustar's prefix and name, with no pax header", () => {
    const path = `envs/.tmp-x/lib/python3.11/site-packages/${"d".repeat(90)}/${"m".repeat(95)}.py`;
    const h = encodeHeader({ path, type: "file", mode: 0o444, size: 0, mtime: 0 });
    assert.equal(h.length, 512);
    const back = decodeHeader(h);
    assert.ok(typeof back !== "string");
    assert.equal(back.name, path);
    // Python's tarfile, a reader we did not write, agrees.
    const archive = Buffer.concat([h, Buffer.alloc(1024)]);
    const names = execFileSync(
      "python3",
      [
        "-c",
        "import sys, tarfile; print(tarfile.open(fileobj=sys.stdin.buffer, mode='r|').next().name)",
      ],
      { input: archive },
    );
    assert.equal(names.toString().trim(), path);
    // No "/" that leaves both parts short enough: a pax header then.
    const unsplittable = `${"a".repeat(60)}/${"b".repeat(120)}`;
    assert.ok(
      encodeHeader({ path: unsplittable, type: "file", mode: 0o644, size: 0, mtime: 0 }).length >
        512,
    );
  });

  test("ustar fields, and pax records only where ustar cannot hold the value", () => {
    const short = encodeHeader({ path: "env/a", type: "file", mode: 0o755, size: 5, mtime: 7 });
    assert.equal(short.length, 512);
    assert.deepEqual(decodeHeader(short), {
      name: "env/a",
      mode: 0o755,
      size: 5,
      typeflag: "0",
      linkname: "",
    });
    const longPath = `env/${"ü".repeat(60)}`;
    const longLink = `/${"l".repeat(150)}`;
    const big = 9 * 1024 ** 3;
    const h = encodeHeader({
      path: longPath,
      type: "symlink",
      mode: 0o777,
      size: 0,
      mtime: 0,
      linkname: longLink,
    });
    const pax = decodeHeader(h.subarray(0, 512));
    assert.ok(typeof pax !== "string" && pax.typeflag === "x");
    assert.equal(h.length % 512, 0);
    const records = parsePax(h.subarray(512, 512 + (pax as { size: number }).size));
    assert.deepEqual(
      records,
      new Map([
        ["path", longPath],
        ["linkpath", longLink],
      ]),
    );
    const huge = encodeHeader({ path: "env/big", type: "file", mode: 0o644, size: big, mtime: 0 });
    const hugePax = decodeHeader(huge.subarray(0, 512));
    assert.ok(typeof hugePax !== "string");
    assert.deepEqual(
      parsePax(huge.subarray(512, 512 + hugePax.size)),
      new Map([["size", String(big)]]),
    );
    // A record's length counts its own digits: paths whose record is near 1000 bytes.
    for (let n = 980; n < 1000; n++) {
      const path = `env/${"p".repeat(n)}`;
      const body = encodeHeader({ path, type: "dir", mode: 0o755, size: 0, mtime: 0 });
      const first = decodeHeader(body.subarray(0, 512));
      assert.ok(typeof first !== "string" && first.typeflag === "x");
      assert.deepEqual(
        parsePax(body.subarray(512, 512 + first.size)),
        new Map([["path", `${path}/`]]),
      );
    }
    const corrupt = Buffer.from(short);
    corrupt[0] ^= 1;
    assert.equal(decodeHeader(corrupt), "a header checksum does not match");
    assert.equal(parsePax(Buffer.from("99 path=x\n")), "a pax header is malformed");
  });

  test("GNU tar reads our pax headers", () => {
    const dir = tempDir("pyferry-tar-");
    const name = `env/${"x".repeat(120)}/${"y".repeat(120)}`;
    const data = Buffer.from("hello\n");
    const tar = Buffer.concat([
      encodeHeader({ path: name, type: "file", mode: 0o644, size: data.length, mtime: 0 }),
      data,
      Buffer.alloc(512 - data.length),
      Buffer.alloc(1024),
    ]);
    writeFileSync(join(dir, "t.tar"), tar);
    assert.equal(
      execFileSync("tar", ["-tf", join(dir, "t.tar")], { encoding: "utf8" }),
      `${name}\n`,
    );
    assert.equal(
      execFileSync("tar", ["-xOf", join(dir, "t.tar")], { encoding: "utf8" }),
      "hello\n",
    );
  });
});
