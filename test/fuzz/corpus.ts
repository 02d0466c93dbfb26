// The fuzzer's corpus: valid agent messages of every type and every constraint
// kind, for every key type the agent takes (Ed25519, ECDSA P-256/384/521, RSA,
// and OpenSSH certificates of each), built here from keys made with node:crypto.
// Also an independent signature check (node:crypto, not the agent's code).
//
// Two disjoint key sets:
//   - baseline keys: added once before fuzzing; the corpus only *signs* with
//     them (and lists them), never adds or removes them, so the final check can
//     insist that exactly these survive, signing correctly;
//   - fuzz keys: the ones the corpus adds (with every constraint), removes and
//     signs with; they may or may not be present at the end.

import * as crypto from 'node:crypto';
import { MSG, CONSTRAIN } from '../../src/agent/protocol';
import { WireReader, WireWriter } from '../../src/ssh/wire';

export type KeyKind = 'ed25519' | 'ecdsa256' | 'ecdsa384' | 'ecdsa521' | 'rsa';

export interface FuzzKey {
  name: string;
  kind: KeyKind;
  /** Wire key type (ssh-ed25519, ecdsa-sha2-nistp256, …-cert-v01@openssh.com). */
  keyType: string;
  /** Public blob (certificate blob for certificates): what sign/remove name it by. */
  blob: Buffer;
  /** ADD_IDENTITY private-key fields (after the key type, before the comment). */
  fields: Buffer;
  publicKey: crypto.KeyObject;
  privateKey: crypto.KeyObject;
  /** The raw secret numbers, for scanning logs (hex). */
  secrets: Buffer[];
}

const CURVE: Record<string, { crv: string; name: string; size: number; hash: string }> = {
  ecdsa256: { crv: 'P-256', name: 'nistp256', size: 32, hash: 'sha256' },
  ecdsa384: { crv: 'P-384', name: 'nistp384', size: 48, hash: 'sha384' },
  ecdsa521: { crv: 'P-521', name: 'nistp521', size: 66, hash: 'sha512' },
};

const unb64u = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'base64url');

function pad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

function baseType(kind: KeyKind): string {
  if (kind === 'ed25519') return 'ssh-ed25519';
  if (kind === 'rsa') return 'ssh-rsa';
  return `ecdsa-sha2-${CURVE[kind].name}`;
}

interface Parts {
  publicKey: crypto.KeyObject;
  privateKey: crypto.KeyObject;
  /** Public fields as in a public blob (after the type). */
  pubFields: Buffer;
  /** ADD_IDENTITY fields of a plain key. */
  addFields: Buffer;
  /** ADD_IDENTITY fields after the certificate blob, for a certificate. */
  certAddFields: Buffer;
  secrets: Buffer[];
}

function generate(kind: KeyKind): Parts {
  if (kind === 'ed25519') {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
    const jwk = privateKey.export({ format: 'jwk' });
    const pk = unb64u(jwk.x);
    const seed = unb64u(jwk.d);
    const sk = Buffer.concat([seed, pk]);
    const w = () => new WireWriter().string(pk).string(sk).toBuffer();
    return {
      publicKey,
      privateKey,
      pubFields: new WireWriter().string(pk).toBuffer(),
      addFields: w(),
      certAddFields: w(),
      secrets: [seed],
    };
  }
  if (kind === 'rsa') {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const j = privateKey.export({ format: 'jwk' });
    const [n, e, d, p, q, qi] = [j.n, j.e, j.d, j.p, j.q, j.qi].map(unb64u);
    const priv = new WireWriter().mpint(d).mpint(qi).mpint(p).mpint(q).toBuffer();
    return {
      publicKey,
      privateKey,
      pubFields: new WireWriter().mpint(e).mpint(n).toBuffer(),
      addFields: Buffer.concat([new WireWriter().mpint(n).mpint(e).toBuffer(), priv]),
      certAddFields: priv,
      secrets: [d, p, q],
    };
  }
  const c = CURVE[kind];
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: c.crv });
  const j = privateKey.export({ format: 'jwk' });
  const q = Buffer.concat([Buffer.of(4), pad(unb64u(j.x), c.size), pad(unb64u(j.y), c.size)]);
  const d = unb64u(j.d);
  const pubFields = new WireWriter().string(c.name).string(q).toBuffer();
  return {
    publicKey,
    privateKey,
    pubFields,
    addFields: Buffer.concat([pubFields, new WireWriter().mpint(d).toBuffer()]),
    certAddFields: new WireWriter().mpint(d).toBuffer(),
    secrets: [d],
  };
}

/** An Ed25519 key used as certificate authority and as host key. */
export interface Signer {
  blob: Buffer;
  sign(data: Buffer): Buffer;
}

export function makeSigner(): Signer {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pk = unb64u(publicKey.export({ format: 'jwk' }).x);
  return {
    blob: new WireWriter().string('ssh-ed25519').string(pk).toBuffer(),
    sign: (data) =>
      new WireWriter()
        .string('ssh-ed25519')
        .string(crypto.sign(null, data, privateKey))
        .toBuffer(),
  };
}

/** An OpenSSH user certificate (PROTOCOL.certkeys) for the public fields, signed by ca. */
function certificate(certType: string, pubFields: Buffer, ca: Signer, serial: bigint): Buffer {
  const body = new WireWriter()
    .string(certType)
    .string(crypto.randomBytes(32))
    .raw(pubFields)
    .uint64(serial)
    .uint32(1)
    .string(`fuzz-cert-${serial}`)
    .string(new WireWriter().string('fuzz').string('root').toBuffer())
    .uint64(0n)
    .uint64(0xffffffffffffffffn)
    .string('')
    .string(new WireWriter().string('permit-pty').string('').toBuffer())
    .string('')
    .string(ca.blob)
    .toBuffer();
  return new WireWriter().raw(body).string(ca.sign(body)).toBuffer();
}

let serial = 1n;

export function makeKey(kind: KeyKind, cert: false | Signer, name: string): FuzzKey {
  const parts = generate(kind);
  const base = baseType(kind);
  if (!cert) {
    return {
      name,
      kind,
      keyType: base,
      blob: new WireWriter().string(base).raw(parts.pubFields).toBuffer(),
      fields: parts.addFields,
      publicKey: parts.publicKey,
      privateKey: parts.privateKey,
      secrets: parts.secrets,
    };
  }
  const keyType = `${base}-cert-v01@openssh.com`;
  const blob = certificate(keyType, parts.pubFields, cert, serial++);
  return {
    name,
    kind,
    keyType,
    blob,
    fields: Buffer.concat([new WireWriter().string(blob).toBuffer(), parts.certAddFields]),
    publicKey: parts.publicKey,
    privateKey: parts.privateKey,
    secrets: parts.secrets,
  };
}

const KINDS: KeyKind[] = ['ed25519', 'ecdsa256', 'ecdsa384', 'ecdsa521', 'rsa'];

/** One key of every kind, plus a certificate of every kind. */
export function makeKeySet(prefix: string, ca: Signer): FuzzKey[] {
  return [
    ...KINDS.map((k) => makeKey(k, false, `${prefix}-${k}`)),
    ...KINDS.map((k) => makeKey(k, ca, `${prefix}-${k}-cert`)),
  ];
}

// Messages (bodies, without the length prefix).

const body = (w: WireWriter) => w.toBuffer();

export function frame(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

export const requestIdentities = (): Buffer => Buffer.of(MSG.REQUEST_IDENTITIES);

export const signRequest = (blob: Buffer, data: Buffer, flags: number): Buffer =>
  body(new WireWriter().byte(MSG.SIGN_REQUEST).string(blob).string(data).uint32(flags));

export interface ConstraintSpec {
  lifetime?: number;
  confirm?: boolean;
  maxSign?: number;
  /** restrict-destination-v00@openssh.com data, possibly several. */
  destinations?: Buffer[];
  /** Other constraint extensions (unsupported names). */
  otherExtensions?: { name: string; data: Buffer }[];
}

export function addRequest(key: FuzzKey, comment: string, c?: ConstraintSpec): Buffer {
  const w = new WireWriter()
    .byte(c ? MSG.ADD_ID_CONSTRAINED : MSG.ADD_IDENTITY)
    .string(key.keyType)
    .raw(key.fields)
    .string(comment);
  if (c) {
    if (c.lifetime !== undefined) w.byte(CONSTRAIN.LIFETIME).uint32(c.lifetime);
    if (c.confirm) w.byte(CONSTRAIN.CONFIRM);
    if (c.maxSign !== undefined) w.byte(CONSTRAIN.MAXSIGN).uint32(c.maxSign);
    for (const d of c.destinations ?? [])
      w.byte(CONSTRAIN.EXTENSION).string('restrict-destination-v00@openssh.com').string(d);
    for (const e of c.otherExtensions ?? [])
      w.byte(CONSTRAIN.EXTENSION).string(e.name).string(e.data);
  }
  return body(w);
}

export const removeRequest = (blob: Buffer): Buffer =>
  body(new WireWriter().byte(MSG.REMOVE_IDENTITY).string(blob));
export const removeAll = (): Buffer => Buffer.of(MSG.REMOVE_ALL_IDENTITIES);
export const lockRequest = (pass: string): Buffer =>
  body(new WireWriter().byte(MSG.LOCK).string(pass));
export const unlockRequest = (pass: string): Buffer =>
  body(new WireWriter().byte(MSG.UNLOCK).string(pass));
export const extension = (name: string, contents: Buffer = Buffer.alloc(0)): Buffer =>
  body(new WireWriter().byte(MSG.EXTENSION).string(name).raw(contents));

/** A hop of a destination constraint: user, hostname, reserved, then (key, isCA)*. */
function hop(user: string, host: string, keys: { key: Buffer; ca: boolean }[]): Buffer {
  const w = new WireWriter().string(user).string(host).string('');
  for (const k of keys) w.string(k.key).bool(k.ca);
  return w.toBuffer();
}

/** restrict-destination-v00@openssh.com data with these (from, to) pairs. */
export function destinationData(pairs: { from: Buffer; to: Buffer }[]): Buffer {
  const w = new WireWriter();
  for (const p of pairs)
    w.string(new WireWriter().string(p.from).string(p.to).string('').toBuffer());
  return w.toBuffer();
}

export function sessionBind(host: Signer, sessionId: Buffer, forwarded: boolean): Buffer {
  return extension(
    'session-bind@openssh.com',
    new WireWriter()
      .string(host.blob)
      .string(sessionId)
      .string(host.sign(sessionId))
      .bool(forwarded)
      .toBuffer(),
  );
}

/** Data shaped as an SSH userauth publickey request (what a destination-constrained key may sign). */
export function userauthData(
  sessionId: Buffer,
  key: FuzzKey,
  user: string,
  hostKey: Buffer | null,
): Buffer {
  const alg = key.kind === 'rsa' ? key.keyType.replace(/^ssh-rsa/, 'rsa-sha2-512') : key.keyType;
  const w = new WireWriter()
    .string(sessionId)
    .byte(50)
    .string(user)
    .string('ssh-connection')
    .string(hostKey ? 'publickey-hostbound-v00@openssh.com' : 'publickey')
    .byte(1)
    .string(alg)
    .string(key.blob);
  if (hostKey) w.string(hostKey);
  return w.toBuffer();
}

/** A corpus entry: messages sent in this order on one connection (each a body). */
export interface Seed {
  /** What it is, for per-type counts ("sign/ed25519", "add-constrained/destination", …). */
  label: string;
  messages: Buffer[];
}

export interface Corpus {
  baseline: FuzzKey[];
  fuzzKeys: FuzzKey[];
  ca: Signer;
  hosts: Signer[];
  seeds: Seed[];
  /** The passphrase of the corpus's own LOCK/UNLOCK messages. */
  lockPassphrase: string;
}

export const LOCK_PASSPHRASE = 'fuzz-known-lock-passphrase';

export function buildCorpus(): Corpus {
  const ca = makeSigner();
  const hosts = [makeSigner(), makeSigner()];
  const baseline = makeKeySet('baseline', ca);
  const fuzzKeys = makeKeySet('fuzz', ca);
  const seeds: Seed[] = [];
  const add = (label: string, ...messages: Buffer[]) => seeds.push({ label, messages });
  const sid = crypto.randomBytes(32);
  const sid2 = crypto.randomBytes(32);

  add('request-identities', requestIdentities());
  for (const k of [...baseline, ...fuzzKeys]) {
    for (const flags of k.kind === 'rsa' ? [0, 2, 4, 6] : [0])
      add(
        `sign/${k.kind}${k.keyType.includes('cert') ? '-cert' : ''}`,
        signRequest(k.blob, crypto.randomBytes(64), flags),
      );
    add('sign/userauth', signRequest(k.blob, userauthData(sid, k, 'root', hosts[0].blob), 0));
  }
  add('sign/unknown-key', signRequest(makeSigner().blob, Buffer.from('data'), 0));
  add('sign/empty-data', signRequest(baseline[0].blob, Buffer.alloc(0), 0));

  const dest1 = destinationData([
    { from: hop('', '', []), to: hop('', 'host0.example', [{ key: hosts[0].blob, ca: false }]) },
  ]);
  const dest2 = destinationData([
    {
      from: hop('', '', []),
      to: hop('root', 'host0.example', [{ key: hosts[0].blob, ca: false }]),
    },
    {
      from: hop('', 'host0.example', [{ key: hosts[0].blob, ca: false }]),
      to: hop('', 'host1.example', [
        { key: hosts[1].blob, ca: false },
        { key: ca.blob, ca: true },
      ]),
    },
  ]);
  const constraintSets: { label: string; c?: ConstraintSpec }[] = [
    { label: 'add' },
    { label: 'add-constrained/lifetime', c: { lifetime: 3600 } },
    { label: 'add-constrained/lifetime-0', c: { lifetime: 0 } },
    { label: 'add-constrained/confirm', c: { confirm: true } },
    { label: 'add-constrained/maxsign', c: { maxSign: 10 } },
    { label: 'add-constrained/destination', c: { destinations: [dest1] } },
    { label: 'add-constrained/destination-2hop', c: { destinations: [dest2] } },
    {
      label: 'add-constrained/all',
      c: { lifetime: 600, confirm: true, maxSign: 5, destinations: [dest2] },
    },
    {
      label: 'add-constrained/unknown-extension',
      c: { otherExtensions: [{ name: 'sk-provider@openssh.com', data: Buffer.from('x') }] },
    },
    // Repeated constraints: OpenSSH refuses them; so must we (FAILURE, no crash).
    { label: 'add-constrained/repeated-destination', c: { destinations: [dest1, dest1] } },
  ];
  for (const k of fuzzKeys)
    for (const cs of constraintSets) add(cs.label, addRequest(k, `${k.name} ${cs.label}`, cs.c));
  // Repeated lifetime/confirm written by hand (the builder writes each once).
  const k0 = fuzzKeys[0];
  add(
    'add-constrained/repeated-lifetime',
    Buffer.concat([
      addRequest(k0, 'rep', { lifetime: 5 }),
      Buffer.of(CONSTRAIN.LIFETIME, 0, 0, 0, 5),
    ]),
  );
  add(
    'add-constrained/repeated-confirm',
    Buffer.concat([addRequest(k0, 'rep', { confirm: true }), Buffer.of(CONSTRAIN.CONFIRM)]),
  );
  for (const k of fuzzKeys) add('remove', removeRequest(k.blob));
  add('remove/unknown', removeRequest(makeSigner().blob));
  add('remove-all', removeAll());
  add('lock', lockRequest(LOCK_PASSPHRASE));
  add('unlock', unlockRequest(LOCK_PASSPHRASE));
  add('lock+unlock', lockRequest(LOCK_PASSPHRASE), unlockRequest(LOCK_PASSPHRASE));
  add(
    'smartcard',
    body(new WireWriter().byte(MSG.ADD_SMARTCARD_KEY).string('/nonexistent.so').string('1234')),
  );
  add(
    'smartcard',
    body(new WireWriter().byte(MSG.REMOVE_SMARTCARD_KEY).string('/nonexistent.so').string('')),
  );
  add(
    'smartcard',
    body(
      new WireWriter()
        .byte(MSG.ADD_SMARTCARD_KEY_CONSTRAINED)
        .string('/nonexistent.so')
        .string('')
        .byte(CONSTRAIN.LIFETIME)
        .uint32(10),
    ),
  );
  add('extension/query', extension('query'));
  add('extension/unknown', extension('nonexistent@example.com', Buffer.from('abc')));
  add('extension/status', extension('status@tsagent'));
  add('extension/lock', extension('lock@tsagent'));
  add('extension/vault-unlock', extension('vault-unlock@tsagent', Buffer.from('pw')));
  add('session-bind', sessionBind(hosts[0], sid, false));
  add('session-bind/forwarded', sessionBind(hosts[0], sid, true));
  add(
    'session-bind/bad-signature',
    extension(
      'session-bind@openssh.com',
      new WireWriter()
        .string(hosts[0].blob)
        .string(sid)
        .string(hosts[1].sign(sid))
        .bool(false)
        .toBuffer(),
    ),
  );
  // Sequences: bind then use a destination-constrained key through it.
  for (const k of fuzzKeys.slice(0, 5)) {
    add(
      'sequence/bind-sign',
      addRequest(k, 'dest', { destinations: [dest2] }),
      sessionBind(hosts[0], sid, false),
      requestIdentities(),
      signRequest(k.blob, userauthData(sid, k, 'root', hosts[0].blob), 0),
    );
    add(
      'sequence/forwarded-bind-sign',
      addRequest(k, 'dest', { destinations: [dest2] }),
      sessionBind(hosts[0], sid, true),
      sessionBind(hosts[1], sid2, false),
      requestIdentities(),
      signRequest(k.blob, userauthData(sid2, k, 'root', hosts[1].blob), 0),
      removeRequest(k.blob),
    );
  }
  // More binds than OpenSSH keeps on one connection (16).
  add(
    'sequence/many-binds',
    ...Array.from({ length: 17 }, () => sessionBind(hosts[0], crypto.randomBytes(32), true)),
  );
  add('unknown', Buffer.of(0));
  add('unknown', Buffer.of(200, 1, 2, 3));
  add('unknown', Buffer.of(MSG.SUCCESS));
  return { baseline, fuzzKeys, ca, hosts, seeds, lockPassphrase: LOCK_PASSPHRASE };
}

/**
 * Verify an SSH signature blob over data with the key's own KeyObject
 * (independent of the agent's code). RSA: the algorithm the flags asked for.
 */
export function verify(key: FuzzKey, data: Buffer, flags: number, sigBlob: Buffer): boolean {
  try {
    const r = new WireReader(sigBlob);
    const alg = r.text();
    const sig = r.string();
    r.end();
    if (key.kind === 'ed25519')
      return alg === 'ssh-ed25519' && crypto.verify(null, data, key.publicKey, sig);
    if (key.kind === 'rsa') {
      const want = flags & 2 ? 'rsa-sha2-256' : flags & 4 ? 'rsa-sha2-512' : 'ssh-rsa';
      const hash = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512', 'ssh-rsa': 'sha1' }[want];
      return alg === want && crypto.verify(hash, data, key.publicKey, sig);
    }
    const c = CURVE[key.kind];
    if (alg !== `ecdsa-sha2-${c.name}`) return false;
    const rs = new WireReader(sig);
    const rr = rs.mpint();
    const ss = rs.mpint();
    rs.end();
    return crypto.verify(
      c.hash,
      data,
      { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.concat([pad(rr, c.size), pad(ss, c.size)]),
    );
  } catch {
    return false;
  }
}
