// Node KeyObjects from the private fields of SSH keys, with the consistency
// checks Node leaves out (a mismatched key would only sign garbage). Shared by
// the agent (ADD_IDENTITY) and the vault (stored identities).

import * as crypto from 'node:crypto';
import { Curve } from './curves';
import { WireError } from './wire';

/** The RSA sizes accepted anywhere (OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE; 16384 as ssh-keygen's maximum). */
export const RSA_MIN_BITS = 1024;
export const RSA_MAX_BITS = 16384;

export const b64u = (b: Buffer): string => b.toString('base64url');

export function padTo(b: Buffer, size: number): Buffer {
  if (b.length > size) throw new WireError('integer too large for field');
  return b.length === size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

export const big = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt('0x' + b.toString('hex')));
function unbig(n: bigint): Buffer {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  return Buffer.from(h, 'hex');
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

export function ed25519Key(pk: Buffer, sk: Buffer): crypto.KeyObject {
  if (pk.length !== 32 || sk.length !== 64) throw new WireError('bad ed25519 key lengths');
  if (!sk.subarray(32).equals(pk)) throw new WireError('ed25519 private key does not match public');
  const key = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: b64u(pk), d: b64u(sk.subarray(0, 32)) },
    format: 'jwk',
  });
  const derived = crypto.createPublicKey(key).export({ format: 'jwk' });
  if (derived.x !== b64u(pk)) throw new WireError('ed25519 private key does not match public');
  return key;
}

export function ecdsaKey(curve: Curve, q: Buffer, d: Buffer): crypto.KeyObject {
  const { jwk: crv, size } = curve;
  const x = b64u(q.subarray(1, 1 + size));
  const y = b64u(q.subarray(1 + size));
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({
      key: { kty: 'EC', crv, x, y, d: b64u(padTo(d, size)) },
      format: 'jwk',
    });
  } catch {
    throw new WireError('invalid ECDSA key');
  }
  // createPrivateKey keeps the given public point without checking it against d,
  // so derive d·G independently (setPrivateKey also refuses d = 0 and d >= order).
  const ecdh = crypto.createECDH(curve.openssl);
  try {
    ecdh.setPrivateKey(padTo(d, size));
  } catch {
    throw new WireError('invalid ECDSA private key');
  }
  if (!ecdh.getPublicKey().equals(q))
    throw new WireError('ECDSA private key does not match public');
  return key;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rsaKey(e: Buffer, n: Buffer, dBuf: Buffer, p: Buffer, q: Buffer): crypto.KeyObject {
  const bits = big(n).toString(2).length;
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
    throw new WireError(`RSA key of ${bits} bits refused`);
  const [N, D, P, Q] = [big(n), big(dBuf), big(p), big(q)];
  if (P * Q !== N || P < 2n || Q < 2n) throw new WireError('RSA primes do not match modulus');
  // Nor does Node check d against e: a wrong d would only show as invalid signatures.
  const lambda = ((P - 1n) * (Q - 1n)) / gcd(P - 1n, Q - 1n);
  if ((big(e) * D) % lambda !== 1n)
    throw new WireError('RSA private exponent does not match public');
  const jwk = {
    kty: 'RSA',
    n: b64u(n),
    e: b64u(e),
    d: b64u(dBuf),
    p: b64u(p),
    q: b64u(q),
    dp: b64u(unbig(D % (P - 1n))),
    dq: b64u(unbig(D % (Q - 1n))),
    qi: b64u(unbig(modInverse(Q, P))),
  };
  try {
    return crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    throw new WireError('invalid RSA key');
  }
}
