// Node KeyObjects from the fields of SSH keys, with the consistency checks Node
// leaves out (a mismatched key would only sign garbage). Shared by the agent
// (ADD_IDENTITY, session-bind) and the vault (stored identities). Keys go to
// Node as DER buffers built here (PKCS#1, SEC1, PKCS#8, SPKI), never as JWK or
// hex strings, and every buffer holding private fields is wiped after the import.

import crypto = require('node:crypto');
import { Curve } from './curves';
import { DerBuilder } from './der';
import {
  COMPOSITE_PUBLIC_LENGTH,
  COMPOSITE_SECRET_LENGTH,
  MLDSA_PUBLIC_LENGTH,
  mlDsaKeyPair,
} from './mldsa';
import { PublicParts, magnitudeBits } from './publickey';
import { WireError } from './wire';

/** The RSA sizes accepted anywhere (OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE; 16384 as ssh-keygen's maximum). */
export const RSA_MIN_BITS = 1024;
export const RSA_MAX_BITS = 16384;

const OID = {
  ed25519: '1.3.101.112',
  ecPublicKey: '1.2.840.10045.2.1',
  dsa: '1.2.840.10040.4.1',
} as const;

export function padTo(b: Buffer, size: number): Buffer {
  if (b.length > size) throw new WireError('integer too large for field');
  return b.length === size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** A big-endian magnitude as a bigint, read 64 bits at a time (no hex string of it is made). */
export function big(b: Buffer): bigint {
  let n = 0n;
  let i = 0;
  const head = b.length % 8;
  for (; i < head; i++) n = (n << 8n) | BigInt(b[i]);
  for (; i < b.length; i += 8) n = (n << 64n) | b.readBigUInt64BE(i);
  return n;
}

/** A non-negative bigint as a minimal big-endian magnitude (written into a buffer, not via hex). */
function unbig(n: bigint): Buffer {
  let len = 0;
  for (let v = n; v > 0n; v >>= 8n) len++;
  const out = Buffer.alloc(len);
  for (let i = len - 1, v = n; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new WireError('RSA parameters are not invertible');
  return ((s0 % m) + m) % m;
}

/** Import DER made by `der`, then wipe every buffer it made (also when the import fails). */
function importPrivate(der: DerBuilder, encoded: Buffer, type: 'pkcs1' | 'pkcs8' | 'sec1') {
  try {
    return crypto.createPrivateKey({ key: encoded, format: 'der', type });
  } finally {
    der.wipe();
  }
}

export function ed25519Key(pk: Buffer, sk: Buffer): crypto.KeyObject {
  if (pk.length !== 32 || sk.length !== 64) throw new WireError('bad ed25519 key lengths');
  if (!sk.subarray(32).equals(pk)) throw new WireError('ed25519 private key does not match public');
  // RFC 8410: PrivateKeyInfo { version 0, AlgorithmIdentifier { id-Ed25519 }, OCTET STRING { OCTET STRING seed } }
  const der = new DerBuilder();
  const seed = der.octets(sk.subarray(0, 32));
  const encoded = der.sequence(
    der.integer(Buffer.of(0)),
    der.sequence(der.oid(OID.ed25519)),
    der.octets(seed),
  );
  const key = importPrivate(der, encoded, 'pkcs8');
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  if (!spki.subarray(spki.length - 32).equals(pk))
    throw new WireError('ed25519 private key does not match public');
  return key;
}

export function ecdsaKey(curve: Curve, q: Buffer, d: Buffer): crypto.KeyObject {
  const der = new DerBuilder();
  const scalar = der.scratch(Buffer.alloc(curve.size));
  try {
    padTo(d, curve.size).copy(scalar);
  } catch (e) {
    der.wipe();
    throw e;
  }
  // createPrivateKey keeps the given public point without checking it against d,
  // so derive d·G independently (setPrivateKey also refuses d = 0 and d >= order).
  const ecdh = crypto.createECDH(curve.openssl);
  try {
    ecdh.setPrivateKey(scalar);
  } catch {
    der.wipe();
    throw new WireError('invalid ECDSA private key');
  }
  if (!ecdh.getPublicKey().equals(q)) {
    der.wipe();
    throw new WireError('ECDSA private key does not match public');
  }
  // RFC 5915: ECPrivateKey { version 1, OCTET STRING d, [0] curve OID, [1] BIT STRING Q }
  const encoded = der.sequence(
    der.integer(Buffer.of(1)),
    der.octets(scalar),
    der.explicit(0, der.oid(curve.oid)),
    der.explicit(1, der.bits(q)),
  );
  try {
    return importPrivate(der, encoded, 'sec1');
  } catch {
    throw new WireError('invalid ECDSA key');
  }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** Odd primes below 2^11: trial division finds any factor this small in a claimed prime. */
const SMALL_PRIMES: readonly bigint[] = (() => {
  const out: bigint[] = [];
  for (let n = 3; n < 2048; n += 2) if (out.every((p) => n % Number(p) !== 0)) out.push(BigInt(n));
  return out;
})();

/**
 * Is `p` plausibly prime? Trial division, then (for primes OpenSSL lets us use
 * as a modulus with any exponent, up to 3072 bits, i.e. keys up to ~6000 bits)
 * a base-2 Fermat test computed natively: 2^(p-1) mod p through an RSA public
 * operation with modulus p and exponent p-1. A full Miller-Rabin of an 8192-bit
 * prime takes seconds of CPU, which an unauthenticated add must not cost.
 */
function looksPrime(p: bigint): boolean {
  if (p < 2n) return false;
  for (const s of SMALL_PRIMES) if (p % s === 0n) return p === s;
  const pm = unbig(p);
  if (pm.length * 8 > 3072) return true;
  const key = crypto.createPublicKey({
    key: rsaPublicDer(unbig(p - 1n), pm),
    format: 'der',
    type: 'pkcs1',
  });
  const two = Buffer.alloc(pm.length);
  two[two.length - 1] = 2;
  const out = crypto.publicEncrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, two);
  return out.every((b, i) => b === (i === out.length - 1 ? 1 : 0));
}

function rsaPublicDer(e: Buffer, n: Buffer): Buffer {
  const der = new DerBuilder();
  return der.sequence(der.integer(n), der.integer(e)); // PKCS#1 RSAPublicKey
}

export function rsaKey(e: Buffer, n: Buffer, dBuf: Buffer, p: Buffer, q: Buffer): crypto.KeyObject {
  const bits = magnitudeBits(n);
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
    throw new WireError(`RSA key of ${bits} bits refused`);
  const [N, D, P, Q] = [big(n), big(dBuf), big(p), big(q)];
  if (P * Q !== N || P < 2n || Q < 2n) throw new WireError('RSA primes do not match modulus');
  // Nor does Node check d against e: a wrong d would only show as invalid signatures.
  const lambda = ((P - 1n) * (Q - 1n)) / gcd(P - 1n, Q - 1n);
  if ((big(e) * D) % lambda !== 1n)
    throw new WireError('RSA private exponent does not match public');
  // Composite "primes" keep the checks above consistent yet break CRT (OpenSSL then
  // silently redoes every signature without it, at several times the cost).
  if (!looksPrime(P) || !looksPrime(Q)) throw new WireError('RSA factors are not prime');
  const der = new DerBuilder();
  const fields = [
    n,
    e,
    dBuf,
    p,
    q,
    unbig(D % (P - 1n)),
    unbig(D % (Q - 1n)),
    unbig(modInverse(Q, P)),
  ];
  // RFC 8017 A.1.2: RSAPrivateKey { version 0, n, e, d, p, q, dp, dq, qinv }
  const encoded = der.sequence(der.integer(Buffer.of(0)), ...fields.map((f) => der.integer(f)));
  for (const f of fields.slice(5)) der.scratch(f);
  try {
    return importPrivate(der, encoded, 'pkcs1');
  } catch {
    throw new WireError('invalid RSA key');
  }
}

type DsaParts = Extract<PublicParts, { algorithm: 'dsa' }>;

/** FIPS 186 Dss-Parms / SubjectPublicKeyInfo parts as DER. */
function dsaParams(der: DerBuilder, k: DsaParts): Buffer {
  return der.sequence(
    der.oid(OID.dsa),
    der.sequence(der.integer(k.p), der.integer(k.q), der.integer(k.g)),
  );
}

export function dsaKey(pub: DsaParts, x: Buffer): crypto.KeyObject {
  const [P, Q, G] = [big(pub.p), big(pub.q), big(pub.g)];
  const X = big(x);
  if (X <= 0n || X >= Q) throw new WireError('invalid DSA private key');
  if (G <= 1n || G >= P) throw new WireError('invalid DSA generator');
  // PKCS#8 PrivateKeyInfo { version 0, { id-dsa, Dss-Parms }, OCTET STRING { INTEGER x } }
  const der = new DerBuilder();
  const encoded = der.sequence(
    der.integer(Buffer.of(0)),
    dsaParams(der, pub),
    der.octets(der.integer(x)),
  );
  let key: crypto.KeyObject;
  try {
    key = importPrivate(der, encoded, 'pkcs8');
  } catch {
    throw new WireError('invalid DSA key');
  }
  // OpenSSL derives y = g^x mod p on import: it must be the y of the public half.
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  const check = new DerBuilder();
  const expected = check.sequence(dsaParams(check, pub), check.bits(check.integer(pub.y)));
  if (!spki.equals(expected)) throw new WireError('DSA private key does not match public');
  return key;
}

/**
 * The two halves of an ssh-mldsa44-ed25519 private key: Node's Ed25519 key and
 * noble's expanded ML-DSA-44 secret key, each checked against its public half.
 */
export function mlDsaEd25519Key(
  pk: Buffer,
  sk: Buffer,
): { keyObject: crypto.KeyObject; mlDsaSecret: Uint8Array } {
  if (pk.length !== COMPOSITE_PUBLIC_LENGTH || sk.length !== COMPOSITE_SECRET_LENGTH)
    throw new WireError('bad ML-DSA-44+Ed25519 key lengths');
  const edPk = pk.subarray(MLDSA_PUBLIC_LENGTH);
  const edSk = Buffer.concat([sk.subarray(32), edPk]);
  let keyObject: crypto.KeyObject;
  try {
    keyObject = ed25519Key(edPk, edSk);
  } finally {
    edSk.fill(0);
  }
  const { publicKey, secretKey } = mlDsaKeyPair(sk.subarray(0, 32));
  if (!Buffer.from(publicKey).equals(pk.subarray(0, MLDSA_PUBLIC_LENGTH))) {
    secretKey.fill(0);
    throw new WireError('ML-DSA-44 private key does not match public');
  }
  return { keyObject, mlDsaSecret: secretKey };
}

/** A public KeyObject from a key's public parts (SPKI / PKCS#1 DER; nothing secret to wipe). */
export function publicKeyObject(
  pub: Exclude<PublicParts, { algorithm: 'mldsa44-ed25519' }>,
): crypto.KeyObject {
  const der = new DerBuilder();
  if (pub.algorithm === 'ed25519') {
    const spki = der.sequence(der.sequence(der.oid(OID.ed25519)), der.bits(pub.pk));
    return crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  }
  if (pub.algorithm === 'ecdsa') {
    const alg = der.sequence(der.oid(OID.ecPublicKey), der.oid(pub.curve.oid));
    const spki = der.sequence(alg, der.bits(pub.q));
    return crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  }
  if (pub.algorithm === 'dsa') {
    const spki = der.sequence(dsaParams(der, pub), der.bits(der.integer(pub.y)));
    return crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  }
  return crypto.createPublicKey({ key: rsaPublicDer(pub.e, pub.n), format: 'der', type: 'pkcs1' });
}
