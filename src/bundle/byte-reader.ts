/** Reading a byte stream in exact-length pieces, as the tar format needs. */
/** Exact-length reads over a stream of chunks, without gathering more than asked. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  constructor(
    private readonly source: AsyncIterator<Buffer>,
    /** The error for a stream that ends before a read is satisfied. */
    private readonly truncated: (message: string) => Error,
  ) {}

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.source.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.chunks.push(r.value);
    this.have += r.value.length;
    return true;
  }

  /** Up to `max` bytes that are already here, or the next chunk; empty at the end. */
  private async some(max: number): Promise<Buffer> {
    if (this.have === 0 && !(await this.pull())) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length <= max) {
      this.chunks.shift();
      this.have -= first.length;
      return first;
    }
    this.chunks[0] = first.subarray(max);
    this.have -= max;
    return first.subarray(0, max);
  }

  /** Whether `n` more bytes are to come (read nothing). */
  async has(n: number): Promise<boolean> {
    while (this.have < n) if (!(await this.pull())) return false;
    return true;
  }

  /** Exactly `n` bytes; fails when the stream ends first. */
  async read(n: number): Promise<Buffer> {
    while (this.have < n) if (!(await this.pull())) throw this.truncated("it is truncated");
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const b = await this.some(left);
      parts.push(b);
      left -= b.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Exactly `n` bytes, handed over chunk by chunk as they arrive. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      const b = await this.some(left);
      if (b.length === 0) throw this.truncated("it is truncated");
      left -= b.length;
      yield b;
    }
  }

  /** Read to the end, so that gzip checks its trailer (CRC and length). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.have = 0;
    while (await this.pull()) {
      this.chunks = [];
      this.have = 0;
    }
  }
}
