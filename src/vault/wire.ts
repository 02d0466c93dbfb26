// SSH wire primitives (RFC 4251 §5) for the vault. src/vault may not import
// src/agent, so this is a deliberately small copy: only what key fields and
// the vault payload need. Every malformed input throws VaultWireError.

export class VaultWireError extends Error {}

export class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private take(n: number): Buffer {
    if (n > this.remaining)
      throw new VaultWireError(`truncated: need ${n} bytes, have ${this.remaining}`);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  byte(): number {
    return this.take(1)[0];
  }

  uint32(): number {
    return this.take(4).readUInt32BE(0);
  }

  /** A length-prefixed byte string (a view into the input, not a copy). */
  string(): Buffer {
    return this.take(this.uint32());
  }

  /** A string that must be valid UTF-8. */
  text(): string {
    const b = this.string();
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) throw new VaultWireError('invalid UTF-8 in string');
    return s;
  }

  /** A non-negative, minimally encoded mpint; returns its magnitude (no sign byte). */
  mpint(): Buffer {
    const b = this.string();
    if (b.length > 0 && b[0] & 0x80) throw new VaultWireError('negative mpint');
    if (b.length > 1 && b[0] === 0 && !(b[1] & 0x80)) throw new VaultWireError('mpint not minimal');
    return b.length > 0 && b[0] === 0 ? b.subarray(1) : b;
  }

  rest(): Buffer {
    return this.take(this.remaining);
  }

  end(): void {
    if (this.remaining !== 0)
      throw new VaultWireError(`${this.remaining} unexpected trailing bytes`);
  }
}

export class Writer {
  private readonly parts: Buffer[] = [];

  byte(v: number): this {
    this.parts.push(Buffer.of(v & 0xff));
    return this;
  }

  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }

  string(v: Buffer | string): this {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.uint32(b.length);
    this.parts.push(b);
    return this;
  }

  /** Encode a non-negative big-endian magnitude as a minimal SSH mpint. */
  mpint(magnitude: Buffer): this {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    return this.string(m.length > 0 && m[0] & 0x80 ? Buffer.concat([Buffer.of(0), m]) : m);
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}
