// The right key first (issue 13): which of the agent's keys each server (by
// its host key) accepted, so REQUEST_IDENTITIES on a connection bound to that
// host lists it first, and servers with a low MaxAuthTries stop cutting ssh off.
//
// What the agent can observe: ssh sends session-bind@openssh.com with the
// server's host key before it asks for identities, and asks the agent to sign
// only after the server accepted the key (RFC 4252 §7: the query without a
// signature is answered SSH_MSG_USERAUTH_PK_OK first). So a SIGN_REQUEST on a
// connection last bound to H means H accepts that key. A bound connection that
// ends without any signature means the keys it was offered were refused.

import { WireReader, WireWriter } from '../ssh/wire';

/** Version byte of the persisted form (stored, encrypted, in the vault). */
const FORMAT_VERSION = 1;
/** Bounds on what is kept and on what a persisted blob may claim. */
const DEFAULT_MAX_HOSTS = 1024;
/**
 * Hosts seen only through forwarded connections: a hostile hop can make up as
 * many host keys as it likes (it signs its own session-binds), so they are
 * capped apart and push out only each other, never what local logins taught.
 */
const DEFAULT_MAX_FORWARDED_HOSTS = 64;
/** A host key: RSA-16384 is about 2 KiB, ML-DSA-87 2.6 KiB. */
const MAX_HOST_KEY = 4096;
/** A learned key: one of the agent's, certificates included. */
const MAX_BLOB = 16 * 1024;
const MAX_FAILURES = 0xffff;
/** A refused bound connection moves the unknown host's order on by this many keys. */
const ROTATE_BY = 2;

export interface HostRecord {
  hostKey: Buffer;
  /** The key this host last accepted, if any since its last refusal. */
  learnedKey?: Buffer;
  /** Bound connections that ended without a signature since the last one that signed. */
  failures: number;
  /** When this host was last seen (ms since the epoch). */
  lastSeen: number;
  /** Seen only through forwarded connections so far (see DEFAULT_MAX_FORWARDED_HOSTS). */
  forwarded?: boolean;
}

export interface HostKeyOrderOptions {
  maxHosts?: number;
  maxForwardedHosts?: number;
  now?: () => number;
  /**
   * Called after anything that should be persisted changed; `significant` is
   * false when only a known host's last-seen time moved (a login with the key
   * it already accepts), which can wait for the next write.
   */
  onChange?: (significant: boolean) => void;
}

const id = (hostKey: Buffer) => hostKey.toString('base64');

export class HostKeyOrder {
  /** In least recently seen first order, so the first entry is the one to drop. */
  private readonly hosts = new Map<string, HostRecord>();
  private readonly maxHosts: number;
  private readonly maxForwardedHosts: number;
  private readonly now: () => number;
  private readonly onChange: (significant: boolean) => void;

  constructor(opts: HostKeyOrderOptions = {}) {
    this.maxHosts = opts.maxHosts ?? DEFAULT_MAX_HOSTS;
    this.maxForwardedHosts = opts.maxForwardedHosts ?? DEFAULT_MAX_FORWARDED_HOSTS;
    this.now = opts.now ?? Date.now;
    this.onChange = opts.onChange ?? (() => {});
  }

  /**
   * The record of a host, now seen (created if new), or null for a host key
   * too big to be one. A host seen locally once is local from then on.
   */
  private touch(hostKey: Buffer, forwarded: boolean): HostRecord | null {
    if (hostKey.length === 0 || hostKey.length > MAX_HOST_KEY) return null;
    const k = id(hostKey);
    const rec = this.hosts.get(k) ?? {
      hostKey: Buffer.from(hostKey),
      failures: 0,
      lastSeen: 0,
      forwarded,
    };
    this.hosts.delete(k);
    rec.lastSeen = this.now();
    if (!forwarded) delete rec.forwarded;
    this.hosts.set(k, rec);
    if (rec.forwarded) this.evict((r) => !!r.forwarded, this.maxForwardedHosts);
    this.evict(() => true, this.maxHosts);
    return rec;
  }

  /** Drop the least recently seen of the records `which` selects while there are more than `max`. */
  private evict(which: (r: HostRecord) => boolean, max: number): void {
    let n = 0;
    for (const r of this.hosts.values()) if (which(r)) n++;
    for (const [k, r] of this.hosts) {
      if (n <= max) break;
      if (!which(r)) continue;
      this.hosts.delete(k);
      n--;
    }
  }

  /**
   * A SIGN_REQUEST for `keyBlob` on a connection whose last bind is `hostKey`:
   * H accepts K. `forwarded`: the connection is a forwarded agent's.
   */
  signed(hostKey: Buffer, keyBlob: Buffer, forwarded = false): void {
    const before = this.hosts.get(id(hostKey));
    const wasForwarded = !!before?.forwarded;
    const rec = this.touch(hostKey, forwarded);
    if (!rec) return;
    const same =
      !!before &&
      wasForwarded === !!rec.forwarded &&
      rec.failures === 0 &&
      !!rec.learnedKey?.equals(keyBlob);
    rec.learnedKey = Buffer.from(keyBlob);
    rec.failures = 0;
    this.onChange(!same);
  }

  /**
   * A connection last bound to `hostKey` ended without a signature: what it
   * was offered was refused. A learned key among them is no longer trusted to
   * be accepted (the server would have led ssh to sign with it), so it is
   * dropped and the order starts rotating.
   */
  unsignedEnd(hostKey: Buffer, forwarded = false): void {
    const rec = this.touch(hostKey, forwarded);
    if (!rec) return;
    delete rec.learnedKey;
    rec.failures = Math.min(rec.failures + 1, MAX_FAILURES);
    this.onChange(true);
  }

  learned(hostKey: Buffer): Buffer | undefined {
    return this.hosts.get(id(hostKey))?.learnedKey;
  }

  /**
   * The identities in the order to offer them on a connection bound to
   * `hostKey` (null: no bind, the agent's own order): the learned key first,
   * then keys whose `--allow` rules name this host, then the rest; everything
   * after the learned key is rotated by two places per refused connection, so
   * with K keys and a server allowing two tries a login succeeds within ⌈K/2⌉.
   * `keys` must already be the visible ones (hidden keys are filtered elsewhere).
   */
  order<T>(
    hostKey: Buffer | null,
    keys: readonly T[],
    blobOf: (key: T) => Buffer,
    allowsHost: (key: T) => boolean = () => false,
  ): T[] {
    if (hostKey === null) return [...keys];
    const rec = this.hosts.get(id(hostKey));
    const learned = rec?.learnedKey;
    const first = learned ? keys.filter((k) => blobOf(k).equals(learned)) : [];
    const others = keys.filter((k) => !first.includes(k));
    const ranked = [...others.filter(allowsHost), ...others.filter((k) => !allowsHost(k))];
    const n = ranked.length;
    const shift = n === 0 ? 0 : (ROTATE_BY * (rec?.failures ?? 0)) % n;
    return [...first, ...ranked.slice(shift), ...ranked.slice(0, shift)];
  }

  /** What is known, most recently seen first (for `tsagent status` and `tsagent hosts`). */
  entries(): HostRecord[] {
    return [...this.hosts.values()].reverse().map((r) => ({ ...r }));
  }

  forget(hostKey: Buffer): boolean {
    const gone = this.hosts.delete(id(hostKey));
    if (gone) this.onChange(true);
    return gone;
  }

  forgetAll(): void {
    const had = this.hosts.size > 0;
    this.hosts.clear();
    if (had) this.onChange(true);
  }

  /**
   * Replace what is known with a persisted form (null: forget everything),
   * without calling onChange: this is the store being read, not a change.
   * Malformed bytes leave nothing known and return false.
   */
  restore(bytes: Buffer | null): boolean {
    this.hosts.clear();
    if (bytes === null) return true;
    const read = HostKeyOrder.fromBytes(bytes, { maxHosts: this.maxHosts });
    if (!read) return false;
    for (const [k, rec] of read.hosts) this.hosts.set(k, rec);
    return true;
  }

  /**
   * byte version (1), uint32 count, then per host, least recently seen first:
   * string host key, string learned key (empty: none), uint32 failures,
   * uint64 last seen (ms), byte flags (1: seen only through forwarded connections).
   */
  toBytes(): Buffer {
    const w = new WireWriter().byte(FORMAT_VERSION).uint32(this.hosts.size);
    for (const r of this.hosts.values())
      w.string(r.hostKey)
        .string(r.learnedKey ?? Buffer.alloc(0))
        .uint32(r.failures)
        .uint64(BigInt(Math.max(0, Math.floor(r.lastSeen))))
        .byte(r.forwarded ? 1 : 0);
    return w.toBuffer();
  }

  /** The persisted form read back, or null for anything malformed or out of bounds (never throws). */
  static fromBytes(bytes: Buffer, opts: HostKeyOrderOptions = {}): HostKeyOrder | null {
    const order = new HostKeyOrder(opts);
    try {
      const r = new WireReader(bytes);
      if (r.byte() !== FORMAT_VERSION) return null;
      const count = r.uint32();
      if (count > order.maxHosts) return null;
      for (let i = 0; i < count; i++) {
        const hostKey = r.string();
        const learnedKey = r.string();
        const failures = r.uint32();
        const lastSeen = r.uint64();
        const flags = r.byte();
        if (hostKey.length === 0 || hostKey.length > MAX_HOST_KEY || learnedKey.length > MAX_BLOB)
          return null;
        if (flags > 1) return null;
        if (failures > MAX_FAILURES || lastSeen > BigInt(Number.MAX_SAFE_INTEGER)) return null;
        if (order.hosts.has(id(hostKey))) return null;
        const rec: HostRecord = {
          hostKey: Buffer.from(hostKey),
          failures,
          lastSeen: Number(lastSeen),
        };
        if (learnedKey.length > 0) rec.learnedKey = Buffer.from(learnedKey);
        if (flags === 1) rec.forwarded = true;
        order.hosts.set(id(hostKey), rec);
      }
      if (r.remaining !== 0) return null;
      const forwarded = [...order.hosts.values()].filter((h) => h.forwarded).length;
      if (forwarded > order.maxForwardedHosts) return null;
    } catch {
      return null; // WireError: truncated
    }
    return order;
  }
}
