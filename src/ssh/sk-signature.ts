// Security-key signatures (PROTOCOL.u2f "SSH U2F signatures"): the
// authenticator signs not the message but
//   sha256(application) || flags || uint32 counter || sha256(message)
// (Ed25519 over those 69 bytes; ECDSA P-256 over their SHA-256), and the SSH
// signature carries the flags and counter after the signature proper.

import crypto = require('node:crypto');
import { SK_ECDSA, SK_ED25519, SkPublicKey, skPublicKeyObject } from './sk-key';
import { WireError, WireReader } from './wire';

export interface SkSignature {
  /** The signature algorithm name: the plain key type. */
  algorithm: string;
  /** Ed25519: 64 bytes; ECDSA: r || s, 32 bytes each. */
  signature: Buffer;
  flags: number;
  counter: number;
}

function fixed(mag: Buffer, size: number): Buffer {
  if (mag.length > size) throw new WireError('ECDSA signature integer too large');
  return Buffer.concat([Buffer.alloc(size - mag.length), mag]);
}

/** Parses an sk signature blob; WireError on anything malformed. */
export function parseSkSignature(blob: Buffer): SkSignature {
  const r = new WireReader(blob);
  const algorithm = r.text();
  let signature: Buffer;
  if (algorithm === SK_ED25519) {
    signature = Buffer.from(r.string());
    if (signature.length !== 64) throw new WireError('bad sk-ed25519 signature length');
  } else if (algorithm === SK_ECDSA) {
    const inner = new WireReader(r.string());
    signature = Buffer.concat([fixed(inner.mpint(), 32), fixed(inner.mpint(), 32)]);
    inner.end();
  } else {
    throw new WireError(`not an sk signature: ${algorithm}`);
  }
  const flags = r.byte();
  const counter = r.uint32();
  r.end();
  return { algorithm, signature, flags, counter };
}

const sha256 = (b: Buffer | string): Buffer => crypto.createHash('sha256').update(b).digest();

/** What the authenticator signed for `message` (PROTOCOL.u2f). */
export function skSignedData(
  application: string,
  flags: number,
  counter: number,
  message: Buffer,
): Buffer {
  const fc = Buffer.alloc(5);
  fc[0] = flags;
  fc.writeUInt32BE(counter >>> 0, 1);
  return Buffer.concat([sha256(application), fc, sha256(message)]);
}

/**
 * Does `blob` sign `message` with `key`? With `requireFlags` (e.g.
 * SK_USER_PRESENCE_REQD) the signature's flags must include them, as sshd
 * checks unless "no-touch-required".
 */
export function verifySkSignature(
  key: SkPublicKey,
  message: Buffer,
  blob: Buffer,
  requireFlags = 0,
): boolean {
  let sig: SkSignature;
  try {
    sig = parseSkSignature(blob);
  } catch {
    return false;
  }
  if (sig.algorithm !== key.type || (sig.flags & requireFlags) !== requireFlags) return false;
  const data = skSignedData(key.application, sig.flags, sig.counter, message);
  const pub = skPublicKeyObject(key);
  if (key.type === SK_ED25519) return crypto.verify(null, data, pub, sig.signature);
  return crypto.verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig.signature);
}
