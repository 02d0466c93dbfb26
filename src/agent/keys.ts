// SSH private keys as the agent protocol carries them, turned into Node KeyObjects,
// and signatures encoded as OpenSSH expects them (RFC 8332, RFC 5656, RFC 8709).
// Slow signatures (RSA, P-384, P-521) use crypto.sign's callback form: they run on
// libuv's thread pool, so an RSA-4096 signature never stalls the event loop for
// other clients. Ed25519 and P-256 are cheaper than the trip there (see sign()).

import * as crypto from 'node:crypto';
import { SIGN_FLAG } from './protocol';
import { b64u, big, ecdsaKey, ed25519Key, padTo, rsaKey } from '../ssh/keyobject';
import { WireError, WireReader, WireWriter } from '../ssh/wire';

const CURVES: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

export type Algorithm = 'ed25519' | 'ecdsa' | 'rsa';

/** A private key the agent can sign with. The public blob is what clients name it by. */
export interface PrivateKey {
  readonly algorithm: Algorithm;
  /** The wire name of the identity (e.g. `ssh-ed25519-cert-v01@openssh.com`). */
  readonly keyType: string;
  /** The public key blob, or the certificate blob for certificates. */
  readonly publicBlob: Buffer;
  readonly keyObject: crypto.KeyObject;
  /** ECDSA curve name (nistp256…) for ECDSA keys. */
  readonly curve?: string;
  readonly bits: number;
}

/** The public half of a key as parsed from a public blob (plain or inside a certificate). */
type PublicParts =
  | { algorithm: 'ed25519'; pk: Buffer }
  | { algorithm: 'ecdsa'; curve: string; q: Buffer }
  | { algorithm: 'rsa'; e: Buffer; n: Buffer };

function readPublicParts(r: WireReader, base: string): PublicParts {
  if (base === 'ssh-ed25519') {
    const pk = r.string();
    if (pk.length !== 32) throw new WireError('ed25519 public key must be 32 bytes');
    return { algorithm: 'ed25519', pk };
  }
  if (base.startsWith('ecdsa-sha2-')) {
    const curve = base.slice('ecdsa-sha2-'.length);
    if (!CURVES[curve]) throw new WireError(`unsupported curve ${curve}`);
    if (r.text() !== curve) throw new WireError('ECDSA curve name does not match key type');
    const q = r.string();
    if (q.length !== 1 + 2 * CURVES[curve].size || q[0] !== 4)
      throw new WireError('ECDSA point must be uncompressed and of the curve size');
    return { algorithm: 'ecdsa', curve, q };
  }
  if (base === 'ssh-rsa') {
    const e = r.mpint();
    const n = r.mpint();
    return { algorithm: 'rsa', e, n };
  }
  throw new WireError(`unsupported key type ${JSON.stringify(base)}`);
}

const CERT_SUFFIX = '-cert-v01@openssh.com';

/** Strip the certificate suffix: `ssh-rsa-cert-v01@openssh.com` → `ssh-rsa`. */
export function baseKeyType(keyType: string): string {
  return keyType.endsWith(CERT_SUFFIX) ? keyType.slice(0, -CERT_SUFFIX.length) : keyType;
}

/** The fields of an OpenSSH certificate (PROTOCOL.certkeys) that policy needs. */
export interface Certificate {
  keyType: string;
  type: number; // 1 = user, 2 = host
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  /** Critical options (raw); host certificates must have none. */
  criticalOptions: Buffer;
  signatureKey: Buffer;
  /** The CA's signature, and the bytes it covers (everything before it). */
  signature: Buffer;
  signedData: Buffer;
}

function readCertificate(cert: Buffer, keyType: string): { cert: Certificate; parts: PublicParts } {
  const r = new WireReader(cert);
  if (r.text() !== keyType) throw new WireError('certificate type does not match key type');
  r.string(); // nonce
  const parts = readPublicParts(r, baseKeyType(keyType));
  r.uint64(); // serial
  const type = r.uint32();
  // Lenient: OpenSSH does not require UTF-8 here, and policy compares exact strings.
  const keyId = r.string().toString('utf8');
  const pr = new WireReader(r.string());
  const principals: string[] = [];
  while (pr.remaining > 0) principals.push(pr.string().toString('utf8'));
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = Buffer.from(r.string());
  r.string(); // extensions
  r.string(); // reserved
  const signatureKey = Buffer.from(r.string());
  const signedData = cert.subarray(0, cert.length - r.remaining);
  const signature = Buffer.from(r.string());
  r.end();
  return {
    cert: {
      keyType,
      type,
      keyId,
      principals,
      validAfter,
      validBefore,
      criticalOptions,
      signatureKey,
      signature,
      signedData,
    },
    parts,
  };
}

/** Parse a certificate blob; null if it is not one (or is malformed). */
export function parseCertificate(blob: Buffer): Certificate | null {
  try {
    const keyType = new WireReader(blob).text();
    if (!keyType.endsWith(CERT_SUFFIX)) return null;
    return readCertificate(blob, keyType).cert;
  } catch {
    return null;
  }
}

function certPublicParts(cert: Buffer, keyType: string): PublicParts {
  return readCertificate(cert, keyType).parts;
}

function publicBlobOf(keyType: string, p: PublicParts): Buffer {
  const w = new WireWriter().string(keyType);
  if (p.algorithm === 'ed25519') w.string(p.pk);
  else if (p.algorithm === 'ecdsa') w.string(p.curve).string(p.q);
  else w.mpint(p.e).mpint(p.n);
  return w.toBuffer();
}

/**
 * Read the private-key fields of ADD_IDENTITY (after the key type, before the
 * comment) and build a PrivateKey. Throws WireError if the fields are malformed
 * or the private and public halves do not belong together.
 */
export function readPrivateKey(r: WireReader, keyType: string): PrivateKey {
  const isCert = keyType.endsWith(CERT_SUFFIX);
  const base = baseKeyType(keyType);
  let pub: PublicParts;
  let publicBlob: Buffer;
  if (isCert) {
    publicBlob = Buffer.from(r.string());
    pub = certPublicParts(publicBlob, keyType);
  } else {
    pub = readPublicPartsForAdd(r, base);
    publicBlob = publicBlobOf(keyType, pub);
  }
  let keyObject: crypto.KeyObject;
  let bits: number;
  if (pub.algorithm === 'ed25519') {
    if (isCert) {
      const pk = r.string();
      if (!pk.equals(pub.pk)) throw new WireError('ed25519 key does not match certificate');
    }
    keyObject = ed25519Key(pub.pk, r.string());
    bits = 256;
  } else if (pub.algorithm === 'ecdsa') {
    keyObject = ecdsaKey(pub.curve, pub.q, r.mpint());
    bits = { nistp256: 256, nistp384: 384, nistp521: 521 }[pub.curve] ?? 0;
  } else {
    const d = r.mpint();
    r.mpint(); // iqmp: recomputed from p and q rather than trusted
    const p = r.mpint();
    const q = r.mpint();
    keyObject = rsaKey(pub.e, pub.n, d, p, q);
    bits = big(pub.n).toString(2).length;
  }
  return {
    algorithm: pub.algorithm,
    keyType,
    publicBlob,
    keyObject,
    curve: pub.algorithm === 'ecdsa' ? pub.curve : undefined,
    bits,
  };
}

/** In ADD_IDENTITY, RSA's public fields come as n, e (not e, n as in the public blob). */
function readPublicPartsForAdd(r: WireReader, base: string): PublicParts {
  if (base !== 'ssh-rsa') return readPublicParts(r, base);
  const n = r.mpint();
  const e = r.mpint();
  return { algorithm: 'rsa', e, n };
}

/** Which signature algorithm a request gets, following OpenSSH's ssh-agent. */
export function signatureAlgorithm(
  key: PrivateKey,
  flags: number,
): { name: string; hash: string | null } {
  if (key.algorithm === 'ed25519') return { name: 'ssh-ed25519', hash: null };
  if (key.algorithm === 'ecdsa')
    return { name: `ecdsa-sha2-${key.curve}`, hash: CURVES[key.curve!].hash };
  if (flags & SIGN_FLAG.RSA_SHA2_256) return { name: 'rsa-sha2-256', hash: 'sha256' };
  if (flags & SIGN_FLAG.RSA_SHA2_512) return { name: 'rsa-sha2-512', hash: 'sha512' };
  return { name: 'ssh-rsa', hash: 'sha1' };
}

/**
 * The DER of an ECDSA signature, SEQUENCE { INTEGER r, INTEGER s }, as SSH's
 * `mpint r, mpint s`: DER integers are already minimal two's complement, i.e.
 * mpint bodies. (Asking OpenSSL for DER and converting is cheaper than P1363.)
 */
function derToMpints(der: Buffer): Buffer {
  let off = 0;
  const len = (): number => {
    const first = der[off++];
    if (first < 0x80) return first;
    let n = 0;
    for (let i = 0; i < (first & 0x7f); i++) n = (n << 8) | der[off++];
    return n;
  };
  if (der[off++] !== 0x30) throw new Error('ECDSA signature is not a DER SEQUENCE');
  len();
  const w = new WireWriter();
  for (let i = 0; i < 2; i++) {
    if (der[off++] !== 0x02) throw new Error('ECDSA signature part is not a DER INTEGER');
    const n = len();
    w.string(der.subarray(off, off + n));
    off += n;
  }
  return w.toBuffer();
}

function signatureBlob(key: PrivateKey, name: string, sig: Buffer): Buffer {
  const w = new WireWriter().string(name);
  w.string(key.algorithm === 'ecdsa' ? derToMpints(sig) : sig);
  return w.toBuffer();
}

/**
 * An Ed25519 or ECDSA P-256 signature of ssh-sized data takes ~30 µs: less than
 * the thread-pool round trip itself (two cross-thread wake-ups, ~70 µs of CPU),
 * so these are made on the event loop, at most LOOP_SIGNS_PER_TURN per loop
 * iteration: when many clients ask at once the rest still go to the thread pool
 * and use every core. Everything else (RSA, P-384, P-521) always goes there.
 */
const LOOP_SIGN_MAX_DATA = 16 * 1024;
const LOOP_SIGNS_PER_TURN = 2;
let loopSigns = 0;

function signOnLoop(key: PrivateKey, data: Buffer): boolean {
  const fast =
    key.algorithm === 'ed25519' || (key.algorithm === 'ecdsa' && key.curve === 'nistp256');
  if (!fast || data.length > LOOP_SIGN_MAX_DATA || loopSigns >= LOOP_SIGNS_PER_TURN) return false;
  if (loopSigns++ === 0) setImmediate(() => (loopSigns = 0));
  return true;
}

/** Sign `data`; resolves to the SSH signature blob. Slow signatures run off the event loop. */
export function sign(key: PrivateKey, data: Buffer, flags: number): Promise<Buffer> {
  const { name, hash } = signatureAlgorithm(key, flags);
  const opts: crypto.SignKeyObjectInput = { key: key.keyObject };
  if (signOnLoop(key, data)) {
    try {
      return Promise.resolve(signatureBlob(key, name, crypto.sign(hash, data, opts)));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => {
    crypto.sign(hash, data, opts, (err, sig) => {
      if (err) return reject(err);
      resolve(signatureBlob(key, name, sig));
    });
  });
}

/** `SHA256:…` (unpadded base64) or `MD5:aa:bb:…`, as ssh-keygen -l prints them. */
export function fingerprint(publicBlob: Buffer, hash: 'sha256' | 'md5' = 'sha256'): string {
  const digest = crypto.createHash(hash).update(publicBlob).digest();
  if (hash === 'md5') return 'MD5:' + digest.toString('hex').replace(/(..)(?!$)/g, '$1:');
  return 'SHA256:' + digest.toString('base64').replace(/=+$/, '');
}

/** The key type named inside a public blob, or null if the blob is not even that. */
export function blobKeyType(blob: Buffer): string | null {
  try {
    return new WireReader(blob).text();
  } catch {
    return null;
  }
}

/** Verify an SSH signature blob over data with a plain public blob (used for session-bind). */
export function verifySignature(publicBlob: Buffer, data: Buffer, signatureBlob: Buffer): boolean {
  try {
    const keyType = new WireReader(publicBlob).text();
    let pub: PublicParts;
    if (keyType.endsWith(CERT_SUFFIX)) {
      // A certificate (e.g. a host certificate in session-bind): the CA's signature
      // must hold (not SHA-1, as OpenSSH's SSH_ALLOWED_CA_SIGALGS), then the embedded key signs.
      const { cert, parts } = readCertificate(publicBlob, keyType);
      if (new WireReader(cert.signature).text() === 'ssh-rsa') return false;
      if (parseCertificate(cert.signatureKey) !== null) return false; // CAs are plain keys
      if (!verifySignature(cert.signatureKey, cert.signedData, cert.signature)) return false;
      pub = parts;
    } else {
      const r = new WireReader(publicBlob);
      r.text();
      pub = readPublicParts(r, keyType);
      r.end();
    }
    const s = new WireReader(signatureBlob);
    const sigName = s.text();
    const sig = s.string();
    s.end();
    let key: crypto.KeyObject;
    let hash: string | null = null;
    let dsaEncoding: 'ieee-p1363' | undefined;
    let raw = sig;
    if (pub.algorithm === 'ed25519') {
      if (sigName !== 'ssh-ed25519') return false;
      key = crypto.createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: b64u(pub.pk) },
        format: 'jwk',
      });
    } else if (pub.algorithm === 'ecdsa') {
      const c = CURVES[pub.curve];
      if (sigName !== `ecdsa-sha2-${pub.curve}`) return false;
      const size = c.size;
      key = crypto.createPublicKey({
        key: {
          kty: 'EC',
          crv: c.crv,
          x: b64u(pub.q.subarray(1, 1 + size)),
          y: b64u(pub.q.subarray(1 + size)),
        },
        format: 'jwk',
      });
      const rs = new WireReader(sig);
      raw = Buffer.concat([padTo(rs.mpint(), size), padTo(rs.mpint(), size)]);
      rs.end();
      hash = c.hash;
      dsaEncoding = 'ieee-p1363';
    } else {
      hash =
        { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512', 'ssh-rsa': 'sha1' }[sigName] ?? null;
      if (!hash) return false;
      key = crypto.createPublicKey({
        key: { kty: 'RSA', n: b64u(pub.n), e: b64u(pub.e) },
        format: 'jwk',
      });
    }
    return crypto.verify(hash, data, { key, dsaEncoding }, raw);
  } catch {
    return false;
  }
}
