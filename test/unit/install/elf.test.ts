import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isElf, patchRunpath, readElfDynamic, readRunpath } from "../../../src/install/elf.js";
import { UserError } from "../../../src/util/errors.js";

const PYENV_ROOT = process.env.PYENV_ROOT || join(homedir(), ".pyenv");
const PY311_PREFIX = join(PYENV_ROOT, "versions", "3.11.7");
const PY311 = join(PY311_PREFIX, "bin", "python3.11");
const hasReadelf = (() => {
  try {
    execFileSync("readelf", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

let tmp: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "pyferry-elf-"));
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** What `readelf -d` says the file's search paths are. */
function readelfPaths(file: string): { runpath?: string; rpath?: string } {
  const out = execFileSync("readelf", ["-d", file], { encoding: "utf8" });
  return {
    runpath: /\(RUNPATH\)\s+Library runpath: \[(.*)\]/.exec(out)?.[1],
    rpath: /\(RPATH\)\s+Library rpath: \[(.*)\]/.exec(out)?.[1],
  };
}

interface SyntheticElf {
  bits: 32 | 64;
  littleEndian: boolean;
  /** Strings of the dynamic string table, in order, after its leading NUL. */
  strings: string[];
  /** [tag, index into `strings`] for string-valued dynamic entries. */
  stringEntries: [number, number][];
  /** Dynamic symbol names, as byte offsets into the string table (for tail sharing). */
  symbolNames?: number[];
}

/** Byte offset of `strings[i]` in the table that syntheticElf lays out. */
function stringOffset(strings: string[], i: number): number {
  let at = 1;
  for (let j = 0; j < i; j++) at += Buffer.byteLength(strings[j] as string) + 1;
  return at;
}

/**
 * A minimal ELF shared object: header, a PT_LOAD mapping the whole file at 0x10000 (so that
 * addresses and offsets differ), PT_DYNAMIC, the string table, an optional .dynsym with its
 * section headers, and the dynamic section.
 */
function syntheticElf(spec: SyntheticElf): Buffer {
  const is64 = spec.bits === 64;
  const le = spec.littleEndian;
  const base = 0x10000;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const symentsize = is64 ? 24 : 16;
  const dynentsize = is64 ? 16 : 8;
  const shentsize = is64 ? 64 : 40;
  const align = (n: number) => Math.ceil(n / 8) * 8;
  const strtab = Buffer.concat([
    Buffer.from([0]),
    ...spec.strings.map((s) => Buffer.from(`${s}\0`, "utf8")),
  ]);
  const strOff = ehsize + 2 * phentsize;
  const symOff = align(strOff + strtab.length);
  const syms = spec.symbolNames ? [0, ...spec.symbolNames] : [];
  const dynOff = align(symOff + syms.length * symentsize);
  const dynEntries: [number, number][] = spec.stringEntries.map(([tag, i]) => [
    tag,
    stringOffset(spec.strings, i),
  ]);
  dynEntries.push([5, base + strOff], [10, strtab.length]);
  if (syms.length > 0) dynEntries.push([6, base + symOff], [11, symentsize]);
  dynEntries.push([0, 0]);
  const shOff = align(dynOff + dynEntries.length * dynentsize);
  const shnum = syms.length > 0 ? 2 : 0;
  const size = shOff + shnum * shentsize;
  const buf = Buffer.alloc(size);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const u16 = (at: number, v: number) => view.setUint16(at, v, le);
  const u32 = (at: number, v: number) => view.setUint32(at, v, le);
  const word = (at: number, v: number) =>
    is64 ? view.setBigUint64(at, BigInt(v), le) : view.setUint32(at, v, le);

  buf.write("\x7fELF", 0, "latin1");
  buf[4] = is64 ? 2 : 1;
  buf[5] = le ? 1 : 2;
  buf[6] = 1;
  u16(16, 3); // ET_DYN
  u16(18, is64 ? 62 : 3);
  u32(20, 1);
  word(is64 ? 32 : 28, ehsize); // e_phoff
  word(is64 ? 40 : 32, shnum > 0 ? shOff : 0); // e_shoff
  u16(is64 ? 52 : 40, ehsize);
  u16(is64 ? 54 : 42, phentsize);
  u16(is64 ? 56 : 44, 2);
  u16(is64 ? 58 : 46, shentsize);
  u16(is64 ? 60 : 48, shnum);

  const phdr = (i: number, type: number, offset: number, filesz: number) => {
    const at = ehsize + i * phentsize;
    u32(at, type);
    if (is64) {
      word(at + 8, offset);
      word(at + 16, base + offset);
      word(at + 24, base + offset);
      word(at + 32, filesz);
      word(at + 40, filesz);
    } else {
      u32(at + 4, offset);
      u32(at + 8, base + offset);
      u32(at + 12, base + offset);
      u32(at + 16, filesz);
      u32(at + 20, filesz);
    }
  };
  phdr(0, 1, 0, size);
  phdr(1, 2, dynOff, dynEntries.length * dynentsize);
  strtab.copy(buf, strOff);
  for (const [i, name] of syms.entries()) u32(symOff + i * symentsize, name);
  for (const [i, [tag, value]] of dynEntries.entries()) {
    word(dynOff + i * dynentsize, tag);
    word(dynOff + i * dynentsize + dynentsize / 2, value);
  }
  if (shnum > 0) {
    const at = shOff + shentsize; // section 1, .dynsym (section 0 stays all zero)
    u32(at + 4, 11);
    word(at + (is64 ? 24 : 16), symOff);
    word(at + (is64 ? 32 : 20), syms.length * symentsize);
    word(at + (is64 ? 56 : 36), symentsize);
  }
  return buf;
}

const DT_NEEDED = 1;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

async function writeElf(name: string, spec: SyntheticElf): Promise<string> {
  const file = join(tmp, name);
  await writeFile(file, syntheticElf(spec));
  return file;
}

function isUserError(pattern: RegExp) {
  return (err: unknown) => err instanceof UserError && pattern.test(err.message);
}

describe("synthetic ELF files", () => {
  const layouts: [32 | 64, boolean][] = [
    [64, true],
    [32, true],
    [64, false],
    [32, false],
  ];
  for (const [bits, littleEndian] of layouts) {
    const label = `ELF${bits} ${littleEndian ? "little" : "big"}-endian`;

    test(`${label}: reads and patches DT_RUNPATH`, async () => {
      const file = await writeElf(`rp${bits}${littleEndian}.so`, {
        bits,
        littleEndian,
        strings: ["libc.so.6", "/opt/old prefix/lib", "libfoo.so.1"],
        stringEntries: [
          [DT_NEEDED, 0],
          [DT_NEEDED, 2],
          [DT_SONAME, 2],
          [DT_RUNPATH, 1],
        ],
      });
      const before = await readFile(file);
      const dyn = await readElfDynamic(file);
      assert.equal(dyn.bits, bits);
      assert.equal(dyn.littleEndian, littleEndian);
      assert.deepEqual(dyn.needed, ["libc.so.6", "libfoo.so.1"]);
      assert.equal(dyn.soname, "libfoo.so.1");
      assert.equal(dyn.runpath, "/opt/old prefix/lib");
      assert.equal(dyn.rpath, undefined);

      assert.deepEqual(await patchRunpath(file, "$ORIGIN/../lib"), {
        old: "/opt/old prefix/lib",
        changed: true,
      });
      assert.equal(await readRunpath(file), "$ORIGIN/../lib");
      const afterBytes = await readFile(file);
      assert.equal(afterBytes.length, before.length);
      // Only the old string's bytes changed: the new value, then NULs up to the old NUL.
      const start = (bits === 64 ? 64 + 112 : 52 + 64) + stringOffset(["libc.so.6"], 1);
      const oldLength = Buffer.byteLength("/opt/old prefix/lib");
      const expected = Buffer.from(before);
      expected.fill(0, start, start + oldLength);
      expected.write("$ORIGIN/../lib", start, "utf8");
      assert.deepEqual(afterBytes, expected);
      assert.deepEqual((await readElfDynamic(file)).needed, ["libc.so.6", "libfoo.so.1"]);
      if (hasReadelf) assert.equal(readelfPaths(file).runpath, "$ORIGIN/../lib");
    });
  }

  test("patches DT_RPATH when there is no DT_RUNPATH, and both when both point at one string", async () => {
    const onlyRpath = await writeElf("rpath.so", {
      bits: 64,
      littleEndian: true,
      strings: ["/usr/local/python/lib"],
      stringEntries: [[DT_RPATH, 0]],
    });
    assert.equal(await readRunpath(onlyRpath), "/usr/local/python/lib");
    assert.equal((await patchRunpath(onlyRpath, "$ORIGIN")).changed, true);
    assert.deepEqual(await readElfDynamic(onlyRpath).then((d) => [d.rpath, d.runpath]), [
      "$ORIGIN",
      undefined,
    ]);

    const both = await writeElf("both.so", {
      bits: 32,
      littleEndian: true,
      strings: ["/usr/local/python/lib"],
      stringEntries: [
        [DT_RPATH, 0],
        [DT_RUNPATH, 0],
      ],
    });
    assert.equal((await patchRunpath(both, "$ORIGIN/../lib")).old, "/usr/local/python/lib");
    const dyn = await readElfDynamic(both);
    assert.equal(dyn.runpath, "$ORIGIN/../lib");
    assert.equal(dyn.rpath, "$ORIGIN/../lib");
  });

  test("leaves a file without a search path, or with the same value, untouched", async () => {
    const none = await writeElf("none.so", {
      bits: 64,
      littleEndian: true,
      strings: ["libc.so.6"],
      stringEntries: [[DT_NEEDED, 0]],
    });
    const before = await readFile(none);
    assert.equal(await readRunpath(none), undefined);
    assert.deepEqual(await patchRunpath(none, "$ORIGIN"), { old: undefined, changed: false });
    assert.deepEqual(await readFile(none), before);

    const same = await writeElf("same.so", {
      bits: 64,
      littleEndian: true,
      strings: ["$ORIGIN"],
      stringEntries: [[DT_RUNPATH, 0]],
    });
    assert.deepEqual(await patchRunpath(same, "$ORIGIN"), { old: "$ORIGIN", changed: false });
  });

  test("refuses a value longer than the old one, leaving the file as it was", async () => {
    const file = await writeElf("short.so", {
      bits: 64,
      littleEndian: true,
      strings: ["/opt/x"],
      stringEntries: [[DT_RUNPATH, 0]],
    });
    const before = await readFile(file);
    await assert.rejects(
      patchRunpath(file, "$ORIGIN/../lib"),
      isUserError(/longer than the 6 bytes/),
    );
    assert.deepEqual(await readFile(file), before);
  });

  test("refuses to overwrite a string whose tail another name shares", async () => {
    const strings = ["/opt/old/libfoo"];
    // A symbol named "libfoo" stored as the tail of the search path, as linkers may do.
    const tail = stringOffset(strings, 0) + "/opt/old/".length;
    const file = await writeElf("shared-tail.so", {
      bits: 64,
      littleEndian: true,
      strings,
      stringEntries: [[DT_RUNPATH, 0]],
      symbolNames: [tail],
    });
    const before = await readFile(file);
    await assert.rejects(patchRunpath(file, "$ORIGIN"), isUserError(/shares its bytes/));
    assert.deepEqual(await readFile(file), before);

    // A symbol whose name is a different string does not stop the patch.
    const fine = await writeElf("separate.so", {
      bits: 32,
      littleEndian: false,
      strings: ["/opt/old/libfoo", "libfoo"],
      stringEntries: [[DT_RUNPATH, 0]],
      symbolNames: [stringOffset(["/opt/old/libfoo"], 1)],
    });
    assert.equal((await patchRunpath(fine, "$ORIGIN")).changed, true);
  });

  test("rejects files that are not ELF or are cut short", async () => {
    const text = join(tmp, "script.sh");
    await writeFile(text, "#!/bin/sh\necho hi\n");
    assert.equal(await isElf(text), false);
    assert.equal(await isElf(join(tmp, "missing")), false);
    await assert.rejects(readRunpath(text), isUserError(/is not an ELF file/));
    const whole = syntheticElf({
      bits: 64,
      littleEndian: true,
      strings: ["/opt/x/lib"],
      stringEntries: [[DT_RUNPATH, 0]],
    });
    const cut = join(tmp, "cut.so");
    await writeFile(cut, whole.subarray(0, 150));
    assert.equal(await isElf(cut), true);
    await assert.rejects(readRunpath(cut), isUserError(/malformed ELF file/));
  });
});

describe("real binaries", { skip: !existsSync(PY311) && "no pyenv 3.11.7" }, () => {
  test("reads what readelf reads from pyenv's python, libpython and extension modules", {
    skip: !hasReadelf && "no readelf",
  }, async () => {
    const dynload = join(PY311_PREFIX, "lib", "python3.11", "lib-dynload");
    const files = [
      PY311,
      join(PY311_PREFIX, "lib", "libpython3.11.so.1.0"),
      ...readdirSync(dynload).map((f) => join(dynload, f)),
    ];
    if (existsSync("/usr/bin/python3.11")) files.push("/usr/bin/python3.11");
    for (const file of files) {
      const dyn = await readElfDynamic(file);
      const expected = readelfPaths(file);
      assert.equal(dyn.runpath, expected.runpath, file);
      assert.equal(dyn.rpath, expected.rpath, file);
      const out = execFileSync("readelf", ["-d", file], { encoding: "utf8" });
      const needed = [...out.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]);
      assert.deepEqual(dyn.needed, needed, file);
    }
    const python = await readElfDynamic(PY311);
    assert.equal(python.machine, 62);
    assert.ok(python.needed.includes("libpython3.11.so.1.0"));
    assert.ok(python.versionNeeds["libc.so.6"]?.some((v) => v.startsWith("GLIBC_")));
  });

  test("a patched copy of python3.11 finds libpython through $ORIGIN", async () => {
    const dir = join(tmp, "relocated");
    await mkdir(join(dir, "bin"), { recursive: true });
    await mkdir(join(dir, "lib"));
    const copy = join(dir, "bin", "python3.11");
    await copyFile(PY311, copy);
    await symlink(
      join(PY311_PREFIX, "lib", "libpython3.11.so.1.0"),
      join(dir, "lib", "libpython3.11.so.1.0"),
    );
    const before = await readFile(copy);
    const result = await patchRunpath(copy, "$ORIGIN/../lib");
    assert.deepEqual(result, { old: join(PY311_PREFIX, "lib"), changed: true });
    const afterBytes = await readFile(copy);
    let changed = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== afterBytes[i]) changed++;
    assert.ok(changed > 0 && changed <= join(PY311_PREFIX, "lib").length, `${changed} bytes`);
    if (hasReadelf) assert.equal(readelfPaths(copy).runpath, "$ORIGIN/../lib");
    const env = { PATH: "/usr/bin:/bin" };
    const ldd = execFileSync("ldd", [copy], { encoding: "utf8", env });
    assert.match(ldd, new RegExp(`libpython3\\.11\\.so\\.1\\.0 => ${dir}/bin/\\.\\./lib/`));
    const out = execFileSync(copy, ["-c", "print(6 * 7)"], { encoding: "utf8", env });
    assert.equal(out.trim(), "42");
  });
});
