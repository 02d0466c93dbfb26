// Shared by the agent and the vault (the vault may not import the agent).
// SSH wire primitives (RFC 4251 §5): byte, boolean, uint32, uint64, string, mpint.
// The reader never throws anything but WireError, so callers can turn every
// malformed input into a protocol FAILURE with a single catch.

export class WireError extends Error {}

export class WireReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number): void {
    if (n > this.remaining)
      throw new WireError(`truncated: need ${n} bytes, have ${this.remaining}`);
  }

  byte(): number {
    this.need(1);
    return this.buf[this.off++];
  }

  bool(): boolean {
    return this.byte() !== 0;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }

  /** A length-prefixed byte string (a view, not a copy). */
  string(): Buffer {
    const n = this.uint32();
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  /** A string that must be valid UTF-8 (names, comments). */
  text(): string {
    const b = this.string();
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) throw new WireError('invalid UTF-8 in string');
    return s;
  }

  /** A non-negative mpint, returned as its magnitude without sign padding. */
  mpint(): Buffer {
    const b = this.string();
    if (b.length > 0 && b[0] & 0x80) throw new WireError('negative mpint');
    // Zero is the empty string; a 00 byte may only precede a byte with the top bit set.
    if (b.length > 0 && b[0] === 0 && (b.length === 1 || !(b[1] & 0x80)))
      throw new WireError('mpint not minimal');
    return b[0] === 0 ? b.subarray(1) : b;
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return v;
  }

  end(): void {
    if (this.remaining !== 0) throw new WireError(`${this.remaining} trailing bytes`);
  }
}

export class WireWriter {
  // The buffers as given (copied once, by toBuffer) and the small fields as
  // numbers: a uint32 as itself, a byte as -1 - value. A Buffer per field was
  // most of the garbage a signature left behind (bench/memory.ts under load).
  private parts: (Buffer | number)[] = [];
  private size = 0;

  byte(v: number): this {
    this.parts.push(-1 - (v & 0xff));
    this.size += 1;
    return this;
  }

  bool(v: boolean): this {
    return this.byte(v ? 1 : 0);
  }

  uint32(v: number): this {
    this.parts.push(v >>> 0);
    this.size += 4;
    return this;
  }

  uint64(v: bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(v);
    return this.raw(b);
  }

  string(v: Buffer | string): this {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.uint32(b.length);
    return this.raw(b);
  }

  /** Encode a non-negative magnitude as an mpint (strip zeros, add a sign byte when needed). */
  mpint(magnitude: Buffer): this {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    return this.string(m.length > 0 && m[0] & 0x80 ? Buffer.concat([Buffer.of(0), m]) : m);
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  toBuffer(): Buffer {
    // As Buffer.concat would: one allocation, every part copied into it.
    const out = Buffer.allocUnsafe(this.size);
    let o = 0;
    for (const p of this.parts) {
      if (typeof p !== 'number') {
        out.set(p, o);
        o += p.length;
      } else if (p < 0) out[o++] = -1 - p;
      else o = out.writeUInt32BE(p, o);
    }
    return out;
  }
}
