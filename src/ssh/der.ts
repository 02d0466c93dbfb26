// The little DER (X.690) needed to hand keys to Node as DER buffers instead of
// JWK strings: buffers can be wiped after the import, strings cannot (issue 11
// point 7). Only what PKCS#1, SEC1, PKCS#8 and SPKI key encodings use.
// Every buffer a DerBuilder makes is kept, so wipe() clears the intermediate
// copies of private fields too, not only the final encoding.

export class DerBuilder {
  private readonly made: Buffer[] = [];

  private keep(b: Buffer): Buffer {
    this.made.push(b);
    return b;
  }

  private length(n: number): Buffer {
    if (n < 0x80) return Buffer.of(n);
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    return Buffer.of(0x80 | bytes.length, ...bytes);
  }

  /** A DER TLV of `tag` around `body`. */
  tlv(tag: number, ...body: Buffer[]): Buffer {
    const len = body.reduce((n, b) => n + b.length, 0);
    return this.keep(Buffer.concat([Buffer.of(tag), this.length(len), ...body]));
  }

  sequence(...items: Buffer[]): Buffer {
    return this.tlv(0x30, ...items);
  }

  octets(b: Buffer): Buffer {
    return this.tlv(0x04, b);
  }

  /** A BIT STRING with no unused bits. */
  bits(b: Buffer): Buffer {
    return this.tlv(0x03, Buffer.of(0), b);
  }

  /** A context-specific constructed tag ([n] EXPLICIT). */
  explicit(n: number, inner: Buffer): Buffer {
    return this.tlv(0xa0 | n, inner);
  }

  /** A non-negative INTEGER from a big-endian magnitude (leading zeros dropped, sign byte added). */
  integer(magnitude: Buffer): Buffer {
    let i = 0;
    while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    if (m.length === 0) return this.tlv(0x02, Buffer.of(0));
    return m[0] & 0x80 ? this.tlv(0x02, Buffer.of(0), m) : this.tlv(0x02, m);
  }

  /** An OBJECT IDENTIFIER from its dotted form. */
  oid(dotted: string): Buffer {
    const arcs = dotted.split('.').map(Number);
    const out = [40 * arcs[0] + arcs[1]];
    for (const arc of arcs.slice(2)) {
      const septets: number[] = [];
      for (let v = arc; ; v = Math.floor(v / 128)) {
        septets.unshift(v % 128);
        if (v < 128) break;
      }
      out.push(...septets.map((s, i) => (i < septets.length - 1 ? s | 0x80 : s)));
    }
    return this.tlv(0x06, Buffer.from(out));
  }

  /** A buffer of the builder's own (e.g. a padded scalar), wiped with the rest. */
  scratch(b: Buffer): Buffer {
    return this.keep(b);
  }

  /** Overwrite every buffer this builder made. */
  wipe(): void {
    for (const b of this.made) b.fill(0);
    this.made.length = 0;
  }
}

/** One TLV read from DER: its tag and contents (a view into the input). */
export interface DerItem {
  tag: number;
  body: Buffer;
}

/** Read the TLVs of a DER buffer in order (definite lengths only, as DER requires). */
export class DerReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}

  next(expectedTag: number): Buffer {
    const tag = this.buf[this.off++];
    if (tag !== expectedTag) throw new Error(`DER: tag ${tag} where ${expectedTag} was expected`);
    let len = this.buf[this.off++];
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw new Error('DER: unsupported length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + this.buf[this.off++];
    }
    if (this.off + len > this.buf.length) throw new Error('DER: truncated');
    const body = this.buf.subarray(this.off, this.off + len);
    this.off += len;
    return body;
  }

  /** A non-negative INTEGER's magnitude (the sign byte dropped). */
  integer(): Buffer {
    const b = this.next(0x02);
    return b.length > 1 && b[0] === 0 ? b.subarray(1) : b;
  }
}
