/**
 * Just enough of the ELF format to read and rewrite a shared object's dynamic section: its
 * DT_NEEDED list, DT_SONAME, DT_RUNPATH/DT_RPATH and the symbol versions it needs. Both classes
 * (ELF32, ELF64) and both byte orders are read. Rewriting is in place only: a new search path
 * overwrites the old string's bytes, so the file's layout never changes.
 */
import { type FileHandle, open } from "node:fs/promises";
import { UserError } from "../util/errors.js";

const ELF_MAGIC = "\x7fELF";

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PN_XNUM = 0xffff;

const SHT_DYNSYM = 11;

const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_HASH = 4;
const DT_STRTAB = 5;
const DT_SYMTAB = 6;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_CONFIG = 0x6ffffefa;
const DT_DEPAUDIT = 0x6ffffefb;
const DT_AUDIT = 0x6ffffefc;
const DT_VERDEF = 0x6ffffffc;
const DT_VERDEFNUM = 0x6ffffffd;
const DT_VERNEED = 0x6ffffffe;
const DT_VERNEEDNUM = 0x6fffffff;
const DT_AUXILIARY = 0x7ffffffd;
const DT_FILTER = 0x7fffffff;

/** Dynamic tags whose value is an offset into the dynamic string table. */
const STRING_TAGS = new Set([
  DT_NEEDED,
  DT_SONAME,
  DT_RPATH,
  DT_RUNPATH,
  DT_CONFIG,
  DT_DEPAUDIT,
  DT_AUDIT,
  DT_AUXILIARY,
  DT_FILTER,
]);

export interface ElfDynamic {
  bits: 32 | 64;
  littleEndian: boolean;
  /** e_machine: 62 is x86-64, 183 AArch64, 3 i386. */
  machine: number;
  needed: string[];
  soname?: string;
  runpath?: string;
  rpath?: string;
  /** Symbol versions needed, by library: {"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.34"]}. */
  versionNeeds: Record<string, string[]>;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

interface DynEntry {
  tag: number;
  value: number;
}

/** An open ELF file: header fields decoded, reads at file offsets in the file's byte order. */
class ElfFile {
  readonly bits: 32 | 64;
  readonly littleEndian: boolean;
  machine = 0;
  private segments: Segment[] = [];
  private dynamic: DynEntry[] = [];
  private shoff = 0;
  private shentsize = 0;
  private shnum = 0;
  private strtab: Buffer | undefined;
  private strtabOffset = -1;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    private readonly size: number,
    ident: Buffer,
  ) {
    this.bits = ident[4] === 2 ? 64 : 32;
    this.littleEndian = ident[5] === 1;
  }

  static async open(path: string, writable: boolean): Promise<ElfFile> {
    const handle = await open(path, writable ? "r+" : "r");
    try {
      const ident = Buffer.alloc(16);
      const { bytesRead } = await handle.read(ident, 0, 16, 0);
      if (bytesRead < 16 || ident.toString("latin1", 0, 4) !== ELF_MAGIC) {
        throw new UserError(`${path} is not an ELF file.`);
      }
      if ((ident[4] !== 1 && ident[4] !== 2) || (ident[5] !== 1 && ident[5] !== 2)) {
        throw new UserError(`${path} is an ELF file of an unknown class or byte order.`);
      }
      const elf = new ElfFile(handle, path, (await handle.stat()).size, ident);
      await elf.load();
      return elf;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  private malformed(what: string): UserError {
    return new UserError(`${this.path} is a malformed ELF file (${what}).`);
  }

  async read(offset: number, length: number): Promise<DataView> {
    // Checked before allocating, so that a corrupt size cannot ask for gigabytes.
    if (offset + length > this.size) throw this.malformed(`truncated at offset ${offset}`);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.handle.read(buf, 0, length, offset);
    if (bytesRead < length) throw this.malformed(`truncated at offset ${offset}`);
    return new DataView(buf.buffer, buf.byteOffset, length);
  }

  u16(view: DataView, at: number): number {
    return view.getUint16(at, this.littleEndian);
  }

  u32(view: DataView, at: number): number {
    return view.getUint32(at, this.littleEndian);
  }

  /** A 4- or 8-byte word, by class. Offsets and sizes in real files stay below 2^53. */
  word(view: DataView, at: number): number {
    return this.bits === 64
      ? Number(view.getBigUint64(at, this.littleEndian))
      : view.getUint32(at, this.littleEndian);
  }

  private async load(): Promise<void> {
    const is64 = this.bits === 64;
    const header = await this.read(0, is64 ? 64 : 52);
    this.machine = this.u16(header, 18);
    const phoff = this.word(header, is64 ? 32 : 28);
    const phentsize = this.u16(header, is64 ? 54 : 42);
    let phnum = this.u16(header, is64 ? 56 : 44);
    this.shoff = this.word(header, is64 ? 40 : 32);
    this.shentsize = this.u16(header, is64 ? 58 : 46);
    this.shnum = this.u16(header, is64 ? 60 : 48);
    if (this.shoff !== 0 && (phnum === PN_XNUM || this.shnum === 0)) {
      // Counts too large for the header live in section header 0: sh_info and sh_size.
      const first = await this.read(this.shoff, is64 ? 64 : 40);
      if (phnum === PN_XNUM) phnum = this.u32(first, is64 ? 44 : 28);
      if (this.shnum === 0) this.shnum = this.word(first, is64 ? 32 : 20);
    }
    if (phnum === 0) return;
    const table = await this.read(phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      this.segments.push(
        is64
          ? {
              type: this.u32(table, at),
              offset: this.word(table, at + 8),
              vaddr: this.word(table, at + 16),
              filesz: this.word(table, at + 32),
            }
          : {
              type: this.u32(table, at),
              offset: this.u32(table, at + 4),
              vaddr: this.u32(table, at + 8),
              filesz: this.u32(table, at + 16),
            },
      );
    }
    const dyn = this.segments.find((s) => s.type === PT_DYNAMIC);
    if (!dyn) return;
    const entsize = is64 ? 16 : 8;
    const view = await this.read(dyn.offset, dyn.filesz - (dyn.filesz % entsize));
    for (let at = 0; at + entsize <= view.byteLength; at += entsize) {
      // d_tag is signed, but every tag this module reads is a small positive number.
      const tag = this.word(view, at);
      if (tag === DT_NULL) break;
      this.dynamic.push({ tag, value: this.word(view, at + entsize / 2) });
    }
    const [strtab] = this.entries(DT_STRTAB);
    const [strsz] = this.entries(DT_STRSZ);
    if (strtab !== undefined && strsz !== undefined) {
      this.strtabOffset = this.fileOffset(strtab);
      const view = await this.read(this.strtabOffset, strsz);
      this.strtab = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    }
  }

  /** Map a virtual address to the file offset holding it, through the PT_LOAD segments. */
  fileOffset(vaddr: number): number {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
        return vaddr - s.vaddr + s.offset;
      }
    }
    throw this.malformed(`address 0x${vaddr.toString(16)} is in no loaded segment`);
  }

  entries(tag: number): number[] {
    return this.dynamic.filter((e) => e.tag === tag).map((e) => e.value);
  }

  /** The NUL-terminated string at `offset` in the dynamic string table, and its byte length. */
  string(offset: number): { text: string; length: number } {
    if (!this.strtab) throw this.malformed("dynamic section without DT_STRTAB or DT_STRSZ");
    const end = this.strtab.indexOf(0, offset);
    if (offset >= this.strtab.length || end < 0) throw this.malformed("string past DT_STRSZ");
    return { text: this.strtab.toString("utf8", offset, end), length: end - offset };
  }

  /** Overwrite bytes of the dynamic string table, starting `offset` bytes into it. */
  async writeString(offset: number, bytes: Buffer): Promise<void> {
    await this.handle.write(bytes, 0, bytes.length, this.strtabOffset + offset);
  }

  /**
   * Every offset into the dynamic string table that something in the file points at: dynamic
   * entries, dynamic symbol names and symbol-version records. The linker may let one string be
   * the tail of another, so overwriting a string is safe only if nothing points inside it.
   */
  async stringReferences(): Promise<number[]> {
    const refs: number[] = [];
    for (const e of this.dynamic) if (STRING_TAGS.has(e.tag)) refs.push(e.value);
    refs.push(...(await this.symbolNameOffsets()));
    await this.walkVerneed((file, names) => refs.push(file, ...names));
    const [verdef] = this.entries(DT_VERDEF);
    const [verdefnum] = this.entries(DT_VERDEFNUM);
    if (verdef !== undefined && verdefnum !== undefined) {
      let at = this.fileOffset(verdef);
      for (let i = 0; i < verdefnum; i++) {
        const def = await this.read(at, 20);
        let aux = at + this.u32(def, 12);
        for (let j = 0; j < this.u16(def, 6); j++) {
          const verdaux = await this.read(aux, 8);
          refs.push(this.u32(verdaux, 0));
          aux += this.u32(verdaux, 4);
        }
        const next = this.u32(def, 16);
        if (next === 0) break;
        at += next;
      }
    }
    return refs;
  }

  /** Calls `visit` with each needed file's name offset and its version names' offsets. */
  async walkVerneed(visit: (file: number, names: number[]) => void): Promise<void> {
    const [verneed] = this.entries(DT_VERNEED);
    const [count] = this.entries(DT_VERNEEDNUM);
    if (verneed === undefined || count === undefined) return;
    let at = this.fileOffset(verneed);
    for (let i = 0; i < count; i++) {
      const need = await this.read(at, 16);
      const names: number[] = [];
      let aux = at + this.u32(need, 8);
      for (let j = 0; j < this.u16(need, 2); j++) {
        const vernaux = await this.read(aux, 16);
        names.push(this.u32(vernaux, 8));
        aux += this.u32(vernaux, 12);
      }
      visit(this.u32(need, 4), names);
      const next = this.u32(need, 12);
      if (next === 0) break;
      at += next;
    }
  }

  /** st_name of every dynamic symbol (st_name is each entry's first field in both classes). */
  private async symbolNameOffsets(): Promise<number[]> {
    const table = (await this.dynsymFromSections()) ?? (await this.dynsymFromHash());
    if (!table) {
      const [symtab] = this.entries(DT_SYMTAB);
      if (symtab === undefined) return [];
      throw new UserError(
        `${this.path} has neither section headers nor DT_HASH, so its symbol table cannot be ` +
          "checked before rewriting a string.",
      );
    }
    const view = await this.read(table.offset, table.count * table.entsize);
    const offsets: number[] = [];
    for (let i = 0; i < table.count; i++) offsets.push(this.u32(view, i * table.entsize));
    return offsets;
  }

  private async dynsymFromSections(): Promise<
    { offset: number; count: number; entsize: number } | undefined
  > {
    if (this.shoff === 0 || this.shnum === 0) return undefined;
    const is64 = this.bits === 64;
    const table = await this.read(this.shoff, this.shentsize * this.shnum);
    for (let i = 0; i < this.shnum; i++) {
      const at = i * this.shentsize;
      if (this.u32(table, at + 4) !== SHT_DYNSYM) continue;
      const offset = this.word(table, at + (is64 ? 24 : 16));
      const size = this.word(table, at + (is64 ? 32 : 20));
      const entsize = this.word(table, at + (is64 ? 56 : 36)) || (is64 ? 24 : 16);
      return { offset, count: Math.floor(size / entsize), entsize };
    }
    return undefined;
  }

  private async dynsymFromHash(): Promise<
    { offset: number; count: number; entsize: number } | undefined
  > {
    const [hash] = this.entries(DT_HASH);
    const [symtab] = this.entries(DT_SYMTAB);
    if (hash === undefined || symtab === undefined) return undefined;
    // DT_HASH is nbucket, nchain, ...: nchain is the number of symbols.
    const count = this.u32(await this.read(this.fileOffset(hash) + 4, 4), 0);
    return { offset: this.fileOffset(symtab), count, entsize: this.bits === 64 ? 24 : 16 };
  }
}

async function withElf<T>(
  path: string,
  writable: boolean,
  fn: (elf: ElfFile) => Promise<T>,
): Promise<T> {
  const elf = await ElfFile.open(path, writable);
  try {
    return await fn(elf);
  } finally {
    await elf.close();
  }
}

/** True if `path` starts with the ELF magic number (a missing or short file is not ELF). */
export async function isElf(path: string): Promise<boolean> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.toString("latin1") === ELF_MAGIC;
  } finally {
    await handle.close();
  }
}

/** The dynamic-linking facts of an ELF file; a static executable has empty lists. */
export function readElfDynamic(path: string): Promise<ElfDynamic> {
  return withElf(path, false, async (elf) => {
    const str = (offset: number) => elf.string(offset).text;
    const first = (tag: number) => {
      const [offset] = elf.entries(tag);
      return offset === undefined ? undefined : str(offset);
    };
    const versionNeeds: Record<string, string[]> = {};
    await elf.walkVerneed((file, names) => {
      const versions = names.map(str);
      versionNeeds[str(file)] = [...(versionNeeds[str(file)] ?? []), ...versions];
    });
    return {
      bits: elf.bits,
      littleEndian: elf.littleEndian,
      machine: elf.machine,
      needed: elf.entries(DT_NEEDED).map(str),
      soname: first(DT_SONAME),
      runpath: first(DT_RUNPATH),
      rpath: first(DT_RPATH),
      versionNeeds,
    };
  });
}

/** The library search path the dynamic loader uses for this file: DT_RUNPATH, else DT_RPATH. */
export async function readRunpath(elfPath: string): Promise<string | undefined> {
  const dyn = await readElfDynamic(elfPath);
  return dyn.runpath ?? dyn.rpath;
}

/**
 * Overwrite the file's DT_RUNPATH (and DT_RPATH, if it has one) with `newValue`, in place. The new
 * value must fit in the old string's bytes; the rest is padded with NULs. `old` is the value
 * readRunpath gave before; a file with neither tag is left alone (`changed: false`).
 */
export function patchRunpath(
  elfPath: string,
  newValue: string,
): Promise<{ old: string | undefined; changed: boolean }> {
  const replacement = Buffer.from(newValue, "utf8");
  if (replacement.includes(0)) throw new UserError("A library search path cannot contain NUL.");
  return withElf(elfPath, true, async (elf) => {
    const offsets = [...new Set([...elf.entries(DT_RUNPATH), ...elf.entries(DT_RPATH)])];
    const [runpath] = elf.entries(DT_RUNPATH);
    const [rpath] = elf.entries(DT_RPATH);
    const effective = runpath ?? rpath;
    const old = effective === undefined ? undefined : elf.string(effective).text;
    const targets: { offset: number; length: number }[] = [];
    for (const offset of offsets) {
      const { text, length } = elf.string(offset);
      if (text === newValue) continue;
      if (replacement.length > length) {
        throw new UserError(
          `Cannot set the library search path of ${elfPath} to "${newValue}": it is longer than ` +
            `the ${length} bytes the old one ("${text}") leaves, and the file is only patched ` +
            "in place.",
        );
      }
      targets.push({ offset, length });
    }
    if (targets.length === 0) return { old, changed: false };
    const refs = await elf.stringReferences();
    for (const { offset, length } of targets) {
      if (refs.some((ref) => ref > offset && ref < offset + length)) {
        throw new UserError(
          `Cannot rewrite the library search path of ${elfPath} in place: another name in the ` +
            "file shares its bytes.",
        );
      }
    }
    for (const { offset, length } of targets) {
      const bytes = Buffer.alloc(length);
      replacement.copy(bytes);
      await elf.writeString(offset, bytes);
    }
    return { old, changed: true };
  });
}
