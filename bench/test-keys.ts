// The benchmark's test keys as the agent protocol sees them (ADD_IDENTITY
// fields, public blobs), the requests it sends, and adding keys to an agent.
// Shared by the benchmark, the load generator and the async-sign guard test.
// The keys OpenSSH's ssh-add loads itself (security keys, PKCS#11) are in
// ssh-add-keys.ts.

import * as crypto from 'node:crypto';
import { AgentClient } from '../src/agent/client';
import {
  MSG,
  OutgoingRequest,
  SIGN_FLAG,
  decodeResponse,
  encodeRequest,
} from '../src/agent/protocol';
import { WireWriter } from '../src/ssh/wire';

/** The key types every agent measured signs: loaded at the start of each round. */
export type BaseKeyKind = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';
export const KEY_KINDS: BaseKeyKind[] = [
  'ed25519',
  'ecdsa-p256',
  'ecdsa-p384',
  'rsa-2048',
  'rsa-4096',
];

/**
 * Issue 12's types, which an agent may refuse (its rows then say so): loaded
 * after the idle measurements, only for their own cases.
 */
export type OptionalKeyKind =
  | 'dsa-1024'
  | 'sk-ed25519'
  | 'sk-ecdsa-p256'
  | 'pkcs11-rsa-2048'
  | 'pkcs11-ecdsa-p256'
  | 'mldsa44-ed25519';
export const OPTIONAL_KEY_KINDS: OptionalKeyKind[] = [
  'dsa-1024',
  'sk-ed25519',
  'sk-ecdsa-p256',
  'pkcs11-rsa-2048',
  'pkcs11-ecdsa-p256',
  'mldsa44-ed25519',
];

export type KeyKind = BaseKeyKind | OptionalKeyKind;
/** The kinds added over the protocol with ADD_IDENTITY (the rest: ssh-add-keys.ts). */
export type ProtocolKeyKind = BaseKeyKind | 'dsa-1024' | 'mldsa44-ed25519';

export const isOptionalKind = (k: KeyKind): k is OptionalKeyKind =>
  (OPTIONAL_KEY_KINDS as KeyKind[]).includes(k);

/** What a sign request needs of a key. */
export interface SignKey {
  kind: KeyKind;
  keyType: string;
  publicBlob: Buffer;
  /** SIGN_REQUEST flags: rsa-sha2-256 for rsa-2048, rsa-sha2-512 for rsa-4096. */
  signFlags: number;
}

/** A key ready to be added over the protocol and named in sign requests. */
export interface TestKey extends SignKey {
  /** ADD_IDENTITY private-key fields (after the key type, before the comment). */
  fields: Buffer;
}

const b64 = (s: string | undefined): Buffer => Buffer.from(s!, 'base64url');

/** The TLVs one after another in `der` (X.690; short and long lengths). */
function derItems(der: Buffer): { tag: number; body: Buffer }[] {
  const out: { tag: number; body: Buffer }[] = [];
  for (let i = 0; i < der.length;) {
    const tag = der[i++];
    let len = der[i++];
    if (len & 0x80) {
      const n = len & 0x7f;
      len = der.readUIntBE(i, n);
      i += n;
    }
    out.push({ tag, body: der.subarray(i, i + len) });
    i += len;
  }
  return out;
}

/** ssh-dss: mpint p, q, g, y, x from PKCS#8 and SPKI (Node has no JWK for DSA). */
function dsaTestKey(key: crypto.KeyObject): TestKey {
  // PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE { OID, SEQUENCE { p, q, g } }, OCTET STRING { INTEGER x } }
  const [, alg, octets] = derItems(derItems(key.export({ format: 'der', type: 'pkcs8' }))[0].body);
  const [p, q, g] = derItems(derItems(alg.body)[1].body).map((i) => i.body);
  const x = derItems(octets.body)[0].body;
  // SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING { INTEGER y } }
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  const bits = derItems(derItems(spki)[0].body)[1].body;
  const y = derItems(bits.subarray(1))[0].body;
  const w = new WireWriter();
  for (const v of [p, q, g, y, x]) w.mpint(v);
  const pub = new WireWriter().string('ssh-dss');
  for (const v of [p, q, g, y]) pub.mpint(v);
  return {
    kind: 'dsa-1024',
    keyType: 'ssh-dss',
    fields: w.toBuffer(),
    publicBlob: pub.toBuffer(),
    signFlags: 0,
  };
}

interface MlDsa44 {
  keygen(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array };
}

/**
 * ssh-mldsa44-ed25519@openssh.com (OpenSSH 10.5): pk = ML-DSA-44 public key
 * (1312) || Ed25519 public key (32), private part `string sk` = ML-DSA-44 seed
 * (32) || Ed25519 seed (32). ML-DSA is @noble/post-quantum's (an ES module,
 * which Node 20.19+ require()s); without it the case says why it did not run.
 */
function mldsaTestKey(): TestKey {
  const mod = require('@noble/post-quantum/ml-dsa.js') as { ml_dsa44: MlDsa44 };
  const seed = crypto.randomBytes(32);
  const mlPublic = Buffer.from(mod.ml_dsa44.keygen(seed).publicKey);
  const ed = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const pk = Buffer.concat([mlPublic, b64(ed.x)]);
  const sk = Buffer.concat([seed, b64(ed.d)]);
  const keyType = 'ssh-mldsa44-ed25519@openssh.com';
  return {
    kind: 'mldsa44-ed25519',
    keyType,
    fields: new WireWriter().string(pk).string(sk).toBuffer(),
    publicBlob: new WireWriter().string(keyType).string(pk).toBuffer(),
    signFlags: 0,
  };
}

/** Turn a Node private key into the agent protocol's view of it. */
export function testKeyFrom(kind: KeyKind, key: crypto.KeyObject): TestKey {
  if (kind === 'dsa-1024') return dsaTestKey(key);
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
export async function generateTestKey(kind: ProtocolKeyKind): Promise<TestKey> {
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
    case 'dsa-1024':
      return testKeyFrom(kind, await gen('dsa', { modulusLength: 1024, divisorLength: 160 }));
    case 'mldsa44-ed25519':
      return mldsaTestKey();
  }
}

/** An Ed25519 private key in PKCS#8 (RFC 8410 §7): this prefix, then the 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Many ed25519 keys, synchronously, from random seeds. Not with
 * generateKeyPairSync: in Node 20 a key's export can deadlock when a GC during
 * it collects the KeyGenJob that made the key (both lock the key's data), and
 * 200 in a row hung the memory benchmark about once in twenty runs.
 */
export function manyEd25519(count: number): TestKey[] {
  const out: TestKey[] = [];
  for (let i = 0; i < count; i++) {
    const der = Buffer.concat([ED25519_PKCS8_PREFIX, crypto.randomBytes(32)]);
    const key = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    out.push(testKeyFrom('ed25519', key));
  }
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

export function signRequest(key: SignKey, data: Buffer = SIGN_DATA): Buffer {
  return encodeRequest({ type: 'sign', keyBlob: key.publicBlob, data, flags: key.signFlags });
}

export const LIST_REQUEST = encodeRequest({ type: 'request-identities' } as OutgoingRequest);

/** The public blobs of the identities an agent lists. */
export async function listedBlobs(sock: string): Promise<Buffer[]> {
  const c = await AgentClient.connect(sock);
  try {
    const r = decodeResponse(await c.raw(LIST_REQUEST));
    if (r.type !== 'identities') throw new Error(`listing identities: reply ${r.type}`);
    return r.identities.map((i) => i.keyBlob);
  } finally {
    c.close();
  }
}

/** Add keys one after another; per kind an agent refused, what it answered. */
export async function tryAddKeys(sock: string, keys: TestKey[]): Promise<Map<KeyKind, string>> {
  const refused = new Map<KeyKind, string>();
  const c = await AgentClient.connect(sock);
  try {
    for (const key of keys) {
      const r = await c.raw(addRequest(key, `bench-${key.kind}`));
      if (r[0] !== MSG.SUCCESS)
        refused.set(
          key.kind,
          `ADD_IDENTITY of ${key.keyType} answered ${r[0] === MSG.FAILURE ? 'FAILURE' : `type ${r[0]}`}`,
        );
    }
  } finally {
    c.close();
  }
  return refused;
}

/** Forget every identity (REMOVE_ALL_IDENTITIES); throws unless answered SUCCESS. */
export async function removeAllKeys(sock: string): Promise<void> {
  const c = await AgentClient.connect(sock);
  try {
    const r = await c.raw(encodeRequest({ type: 'remove-all' }));
    if (r[0] !== MSG.SUCCESS) throw new Error(`REMOVE_ALL_IDENTITIES: reply ${r[0]}`);
  } finally {
    c.close();
  }
}

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
