// Signing for the agent: which signature algorithm a request gets (OpenSSH's
// ssh-agent.c agent_decode_alg / sshkey_sign), and where the signature is made.
// Slow signatures (RSA, P-384, P-521) use crypto.sign's callback form: they run
// on libuv's thread pool, so an RSA-4096 signature never stalls the event loop
// for other clients. Ed25519 and P-256 are cheaper than the trip there.

import crypto = require('node:crypto');
import type { AgentKey } from './service';
import { SIGN_FLAG } from './protocol';
import { PrivateKey } from '../ssh/privatekey';
import { encodeSignature } from '../ssh/signature';
import { MLDSA_KEY_TYPE, compositeMessage } from '../ssh/mldsa';

/** Which signature algorithm a request gets, following OpenSSH's ssh-agent. */
export function signatureAlgorithm(
  key: PrivateKey,
  flags: number,
): { name: string; hash: string | null } {
  if (key.algorithm === 'ed25519') return { name: 'ssh-ed25519', hash: null };
  if (key.algorithm === 'ecdsa') return { name: key.curve.keyType, hash: key.curve.hash };
  if (key.algorithm === 'dsa') return { name: 'ssh-dss', hash: 'sha1' };
  if (key.algorithm === 'mldsa44-ed25519') return { name: MLDSA_KEY_TYPE, hash: null };
  if (flags & SIGN_FLAG.RSA_SHA2_256) return { name: 'rsa-sha2-256', hash: 'sha256' };
  if (flags & SIGN_FLAG.RSA_SHA2_512) return { name: 'rsa-sha2-512', hash: 'sha512' };
  return { name: 'ssh-rsa', hash: 'sha1' };
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
    key.algorithm === 'ed25519' || (key.algorithm === 'ecdsa' && key.curve.ssh === 'nistp256');
  if (!fast || data.length > LOOP_SIGN_MAX_DATA || loopSigns >= LOOP_SIGNS_PER_TURN) return false;
  if (loopSigns++ === 0) setImmediate(() => (loopSigns = 0));
  return true;
}

/**
 * The composite signature: ML-DSA-44 in the worker thread while Node signs the
 * Ed25519 half, both over M' (see ssh/mldsa.ts).
 */
async function signComposite(
  key: Extract<PrivateKey, { algorithm: 'mldsa44-ed25519' }>,
  data: Buffer,
): Promise<Buffer> {
  const m = compositeMessage(data);
  // Loaded on the first such key: worker_threads costs the idle agent memory.
  const { signMlDsaInWorker } = require('./sign-worker') as typeof import('./sign-worker');
  const ml = signMlDsaInWorker(key.mlDsaSecret, m);
  const ed = crypto.sign(null, m, key.keyObject);
  return encodeSignature(MLDSA_KEY_TYPE, Buffer.concat([await ml, ed]), false);
}

/**
 * Sign `data`; resolves to the SSH signature blob. Slow signatures run off the
 * event loop; a device key signs on its device, through its helper.
 */
export function sign(key: AgentKey, data: Buffer, flags: number): Promise<Buffer> {
  if (key.algorithm === 'device') return key.sign(data, flags);
  if (key.algorithm === 'mldsa44-ed25519') return signComposite(key, data);
  const { name, hash } = signatureAlgorithm(key, flags);
  // DSA signatures are r || s of 20 bytes each (RFC 4253 §6.6): P1363, not DER.
  const opts: crypto.SignKeyObjectInput = {
    key: key.keyObject,
    dsaEncoding: key.algorithm === 'dsa' ? 'ieee-p1363' : undefined,
  };
  const der = key.algorithm === 'ecdsa';
  if (signOnLoop(key, data)) {
    try {
      return Promise.resolve(encodeSignature(name, crypto.sign(hash, data, opts), der));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => {
    crypto.sign(hash, data, opts, (err, sig) => {
      if (err) return reject(err);
      resolve(encodeSignature(name, sig, der));
    });
  });
}
