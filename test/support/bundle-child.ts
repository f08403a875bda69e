/**
 * Bundle test support. As a module: a manifest head and a small fake environment for tests.
 * As a process (`node bundle-child.js ensure ARCHIVE` or `... exec ARCHIVE [--cwd DIR] --
 * ARGV...`): what a task on a remote machine does, so that tests can run many at once,
 * kill them, and signal them. Errors are printed as the CLI would: one line, its exit code.
 */
import { createHash } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ManifestHead } from "../../src/bundle/manifest.js";
import { UserError } from "../../src/util/errors.js";
import { tempDir } from "./temp.js";

export const CHILD = fileURLToPath(import.meta.url);

export function testHead(overrides: Partial<ManifestHead> = {}): ManifestHead {
  return {
    format: 1,
    name: "demo",
    created_by: "pyferry tests",
    python: { version: "3.11.7", implementation: "cpython", abi: "cp311", bundled: false },
    platform: { tags: ["manylinux_2_17_x86_64", "linux_x86_64"], machine: "x86_64" },
    lock: 'lock-version = "1.0"\n',
    app: { root: "app" },
    env: { root: "env", python: "env/bin/python" },
    ...overrides,
  };
}

export const LONG_DIR = `${"deep-folder-name-".repeat(5)}end`;
export const LONG_FILE = `${"a-very-long-module-name-".repeat(4)}x.py`;
export const UNICODE_FILE = "données_μ_日本.txt";

/**
 * A fake environment with what packing must get right: an executable, internal symlinks (to
 * a file and to a folder), a link to a base interpreter outside, a __pycache__ to leave out,
 * an empty folder, a path over 100 bytes and a non-ASCII name.
 */
export function fakeEnv(): string {
  const root = tempDir("pyferry-bundle-env-");
  const put = (rel: string, content: string | Buffer, mode = 0o644): void => {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), content, { mode });
  };
  put("pyvenv.cfg", "home = /usr/bin\n");
  put("bin/tool", "#!/bin/sh\necho tool\n", 0o755);
  put("lib/python3.11/site-packages/pkg/__init__.py", "VALUE = 1\n");
  put("lib/python3.11/site-packages/pkg/__pycache__/__init__.cpython-311.pyc", "junk");
  put(`lib/python3.11/site-packages/${LONG_DIR}/${LONG_FILE}`, "long = True\n");
  put(`lib/python3.11/site-packages/${UNICODE_FILE}`, "unicode\n");
  put(
    "lib/python3.11/site-packages/blob.bin",
    Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256)),
  );
  mkdirSync(join(root, "share/empty"), { recursive: true });
  symlinkSync("/usr/bin/python3", join(root, "bin/python3"));
  symlinkSync("python3", join(root, "bin/python"));
  symlinkSync("lib", join(root, "lib64"));
  // Absolute, but inside the environment: must come out relative.
  symlinkSync(join(root, "bin/tool"), join(root, "bin/tool-abs"));
  return root;
}

/** Every entry under `dir`: files by sha256 and exec bit, symlinks by target, folders. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[r] = "dir";
        walk(p, r);
      } else {
        const sha = createHash("sha256").update(readFileSync(p)).digest("hex");
        out[r] = `file ${st.mode & 0o111 ? "x" : "-"} ${sha}`;
      }
    }
  };
  walk(dir, "");
  return out;
}

async function main(argv: string[]): Promise<number> {
  const [mode, archive, ...rest] = argv;
  if (mode === "ensure") {
    const { ensureUnpacked } = await import("../../src/bundle/unpack.js");
    const r = await ensureUnpacked(archive);
    process.stdout.write(
      `${JSON.stringify({ dir: r.dir, unpacked: r.unpacked, pid: process.pid })}\n`,
    );
    return 0;
  }
  if (mode === "exec") {
    const { execInBundle } = await import("../../src/bundle/exec.js");
    const sep = rest.indexOf("--");
    const flags = rest.slice(0, sep);
    const cwd = flags[0] === "--cwd" ? flags[1] : undefined;
    return execInBundle(archive, rest.slice(sep + 1), cwd ? { cwd } : {});
  }
  throw new Error(`unknown mode ${mode}`);
}

if (process.argv[1] === CHILD) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    process.stderr.write(`pyferry: ${err.message}\n`);
    process.exitCode = err.exitCode;
  }
}
