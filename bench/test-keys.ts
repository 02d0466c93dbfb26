// The benchmark's test keys as the agent protocol sees them (ADD_IDENTITY
// fields, public blobs), the requests it sends, and adding keys to an agent.
// Shared by the benchmark, the load generator and the async-sign guard test.

import * as crypto from 'node:crypto';
import { AgentClient } from '../src/agent/client';
import { MSG, OutgoingRequest, SIGN_FLAG, encodeRequest } from '../src/agent/protocol';
import { WireWriter } from '../src/ssh/wire';

export type KeyKind = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';
export const KEY_KINDS: KeyKind[] = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096'];

/** A key ready to be added over the protocol and named in sign requests. */
export interface TestKey {
  kind: KeyKind;
  keyType: string;
  /** ADD_IDENTITY private-key fields (after the key type, before the comment). */
  fields: Buffer;
  publicBlob: Buffer;
  /** SIGN_REQUEST flags: rsa-sha2-256 for rsa-2048, rsa-sha2-512 for rsa-4096. */
  signFlags: number;
}

const b64 = (s: string | undefined): Buffer => Buffer.from(s!, 'base64url');

/** Turn a Node private key into the agent protocol's view of it. */
export function testKeyFrom(kind: KeyKind, key: crypto.KeyObject): TestKey {
  const jwk = key.export({ format: 'jwk' });
  if (kind === 'ed25519') {
    const pk = b64(jwk.x);
    const sk = Buffer.concat([b64(jwk.d), pk]);
    return {
      kind,
      keyType: 'ssh-ed25519',
      fields: new WireWriter().string(pk).string(sk).toBuffer(),
      publicBlob: new WireWriter().string('ssh-ed25519').string(pk).toBuffer(),
      signFlags: 0,
    };
  }
  if (kind === 'ecdsa-p256' || kind === 'ecdsa-p384') {
    const curve = kind === 'ecdsa-p256' ? 'nistp256' : 'nistp384';
    const keyType = `ecdsa-sha2-${curve}`;
    const q = Buffer.concat([Buffer.of(4), b64(jwk.x), b64(jwk.y)]);
    return {
      kind,
      keyType,
      fields: new WireWriter().string(curve).string(q).mpint(b64(jwk.d)).toBuffer(),
      publicBlob: new WireWriter().string(keyType).string(curve).string(q).toBuffer(),
      signFlags: 0,
    };
  }
  const [n, e, d, iqmp, p, q] = [jwk.n, jwk.e, jwk.d, jwk.qi, jwk.p, jwk.q].map(b64);
  const w = new WireWriter();
  for (const x of [n, e, d, iqmp, p, q]) w.mpint(x);
  return {
    kind,
    keyType: 'ssh-rsa',
    fields: w.toBuffer(),
    publicBlob: new WireWriter().string('ssh-rsa').mpint(e).mpint(n).toBuffer(),
    signFlags: kind === 'rsa-2048' ? SIGN_FLAG.RSA_SHA2_256 : SIGN_FLAG.RSA_SHA2_512,
  };
}

/** Generate one key of a kind (RSA on the thread pool, so several can run at once). */
export async function generateTestKey(kind: KeyKind): Promise<TestKey> {
  const gen = (type: string, opts: object) =>
    new Promise<crypto.KeyObject>((resolve, reject) =>
      crypto.generateKeyPair(
        type as 'rsa',
        opts as crypto.RSAKeyPairKeyObjectOptions,
        (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
      ),
    );
  switch (kind) {
    case 'ed25519':
      return testKeyFrom(kind, await gen('ed25519', {}));
    case 'ecdsa-p256':
      return testKeyFrom(kind, await gen('ec', { namedCurve: 'P-256' }));
    case 'ecdsa-p384':
      return testKeyFrom(kind, await gen('ec', { namedCurve: 'P-384' }));
    case 'rsa-2048':
      return testKeyFrom(kind, await gen('rsa', { modulusLength: 2048 }));
    case 'rsa-4096':
      return testKeyFrom(kind, await gen('rsa', { modulusLength: 4096 }));
  }
}

/** Many ed25519 keys, synchronously (about 20 µs each). */
export function manyEd25519(count: number): TestKey[] {
  const out: TestKey[] = [];
  for (let i = 0; i < count; i++)
    out.push(testKeyFrom('ed25519', crypto.generateKeyPairSync('ed25519').privateKey));
  return out;
}

export function addRequest(key: TestKey, comment: string): Buffer {
  return encodeRequest({
    type: 'add',
    keyType: key.keyType,
    fields: key.fields,
    comment,
    constraints: { extensions: [] },
  });
}

/** Realistic-size data to sign: about what ssh signs for publickey user auth. */
export const SIGN_DATA = crypto.randomBytes(160);

export function signRequest(key: TestKey, data: Buffer = SIGN_DATA): Buffer {
  return encodeRequest({ type: 'sign', keyBlob: key.publicBlob, data, flags: key.signFlags });
}

export const LIST_REQUEST = encodeRequest({ type: 'request-identities' } as OutgoingRequest);

/** Add keys one after another; throws unless every add is answered SUCCESS. */
export async function addKeys(sock: string, keys: TestKey[], prefix = 'bench'): Promise<void> {
  const c = await AgentClient.connect(sock);
  try {
    for (let i = 0; i < keys.length; i++) {
      const r = await c.raw(addRequest(keys[i], `${prefix}-${keys[i].kind}-${i}`));
      if (r[0] !== MSG.SUCCESS) throw new Error(`adding ${keys[i].kind} key: reply ${r[0]}`);
    }
  } finally {
    c.close();
  }
}
