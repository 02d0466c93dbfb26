// SSH public key blobs (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4): the key
// type, then the public parts of the key. Certificates (PROTOCOL.certkeys)
// carry the same parts after their nonce; see certificate.ts.

import { Curve, curveBySshName } from './curves';
import { quoted } from './escape';
import { COMPOSITE_PUBLIC_LENGTH, MLDSA_KEY_TYPE } from './mldsa';
import { WireError, WireReader, WireWriter } from './wire';

/** The public half of a key, as its blob (or a certificate) carries it. */
export type PublicParts =
  | { algorithm: 'ed25519'; pk: Buffer }
  | { algorithm: 'ecdsa'; curve: Curve; q: Buffer }
  | { algorithm: 'rsa'; e: Buffer; n: Buffer }
  | { algorithm: 'dsa'; p: Buffer; q: Buffer; g: Buffer; y: Buffer }
  /** ssh-mldsa44-ed25519@openssh.com: pk = ML-DSA-44 public key || Ed25519 public key. */
  | { algorithm: 'mldsa44-ed25519'; pk: Buffer };

export type Algorithm = PublicParts['algorithm'];

export const CERT_SUFFIX = '-cert-v01@openssh.com';

/** Plain key types named in OpenSSH's domain: their certificate types drop the `@openssh.com`. */
const OPENSSH_DOMAIN_TYPES = new Set([
  MLDSA_KEY_TYPE,
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/**
 * The plain key type of a certificate type: `ssh-rsa-cert-v01@openssh.com` →
 * `ssh-rsa`, `ssh-mldsa44-ed25519-cert-v01@openssh.com` → `ssh-mldsa44-ed25519@openssh.com`.
 */
export function baseKeyType(keyType: string): string {
  if (!keyType.endsWith(CERT_SUFFIX)) return keyType;
  const stem = keyType.slice(0, -CERT_SUFFIX.length);
  return OPENSSH_DOMAIN_TYPES.has(`${stem}@openssh.com`) ? `${stem}@openssh.com` : stem;
}

export function isCertificateType(keyType: string): boolean {
  return keyType.endsWith(CERT_SUFFIX);
}

/** Read the public parts of a key of type `base` (a plain key type, not a certificate's). */
export function readPublicParts(r: WireReader, base: string): PublicParts {
  if (base === 'ssh-ed25519') {
    const pk = r.string();
    if (pk.length !== 32) throw new WireError('ed25519 public key must be 32 bytes');
    return { algorithm: 'ed25519', pk };
  }
  if (base.startsWith('ecdsa-sha2-')) {
    const name = base.slice('ecdsa-sha2-'.length);
    const curve = curveBySshName(name);
    if (!curve) throw new WireError(`unsupported curve ${quoted(name)}`);
    if (r.text() !== curve.ssh) throw new WireError('ECDSA curve name does not match key type');
    const q = r.string();
    if (q.length !== 1 + 2 * curve.size || q[0] !== 4)
      throw new WireError('ECDSA point must be uncompressed and of the curve size');
    return { algorithm: 'ecdsa', curve, q };
  }
  if (base === 'ssh-rsa') {
    const e = r.mpint();
    const n = r.mpint();
    return { algorithm: 'rsa', e, n };
  }
  if (base === 'ssh-dss') return readDsaParts(r);
  if (base === MLDSA_KEY_TYPE) {
    const pk = r.string();
    if (pk.length !== COMPOSITE_PUBLIC_LENGTH)
      throw new WireError(`ML-DSA-44+Ed25519 public key must be ${COMPOSITE_PUBLIC_LENGTH} bytes`);
    return { algorithm: 'mldsa44-ed25519', pk };
  }
  throw new WireError(`unsupported key type ${quoted(base)}`);
}

/**
 * ssh-dss (RFC 4253 §6.6): mpint p, q, g, y. As OpenSSH 9.2 (ssh-dss.c,
 * sshkey.c): q of 160 bits, so signatures are r || s of 20 bytes each, and p of
 * 1024 bits, the only size ssh-keygen makes.
 */
function readDsaParts(r: WireReader): PublicParts {
  const p = r.mpint();
  const q = r.mpint();
  const g = r.mpint();
  const y = r.mpint();
  if (magnitudeBits(q) !== 160) throw new WireError('DSA q must be 160 bits');
  if (magnitudeBits(p) !== 1024) throw new WireError('DSA p must be 1024 bits');
  return { algorithm: 'dsa', p, q, g, y };
}

/** Write the public parts as a public blob's body (after the key type). */
export function writePublicParts(w: WireWriter, p: PublicParts): WireWriter {
  if (p.algorithm === 'ed25519' || p.algorithm === 'mldsa44-ed25519') return w.string(p.pk);
  if (p.algorithm === 'ecdsa') return w.string(p.curve.ssh).string(p.q);
  if (p.algorithm === 'dsa') return w.mpint(p.p).mpint(p.q).mpint(p.g).mpint(p.y);
  return w.mpint(p.e).mpint(p.n);
}

/** The public blob of a plain key. */
export function encodePublicBlob(keyType: string, p: PublicParts): Buffer {
  return writePublicParts(new WireWriter().string(keyType), p).toBuffer();
}

/** Parse a plain (not certificate) public blob; throws WireError. */
export function parsePublicBlob(blob: Buffer): { keyType: string; parts: PublicParts } {
  const r = new WireReader(blob);
  const keyType = r.text();
  if (isCertificateType(keyType)) throw new WireError('a certificate, not a plain public key');
  const parts = readPublicParts(r, keyType);
  r.end();
  return { keyType, parts };
}

/** The key type named inside a public blob, or null if the blob is not even that. */
export function blobKeyType(blob: Buffer): string | null {
  try {
    return new WireReader(blob).text();
  } catch {
    return null;
  }
}

/** Key size in bits as ssh-keygen -l reports it. */
export function publicBits(p: PublicParts): number {
  // OpenSSH's keybits for both (ssh-ed25519.c, ssh-mldsa.c).
  if (p.algorithm === 'ed25519' || p.algorithm === 'mldsa44-ed25519') return 256;
  if (p.algorithm === 'ecdsa') return p.curve.bits;
  if (p.algorithm === 'dsa') return magnitudeBits(p.p);
  return magnitudeBits(p.n);
}

/** Bits in a big-endian magnitude (leading zero bytes ignored). */
export function magnitudeBits(m: Buffer): number {
  let i = 0;
  while (i < m.length && m[i] === 0) i++;
  return i === m.length ? 0 : (m.length - i - 1) * 8 + (32 - Math.clz32(m[i]));
}
