// decodeSignedData / describeSignedData (src/agent/signed-data.ts): what a
// SIGN_REQUEST asks to sign. Userauth requests are built byte by byte from
// RFC 4252 §7; the SSHSIG data is what the real `ssh-keygen -Y sign` sends to
// an agent (a tiny recording agent below), cross-checked against the spec.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  decodeSignedData,
  describeSignedData,
  hasSshsigLayout,
  SignedData,
} from '../src/agent/signed-data';
import { SSH_KEYGEN, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';

const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x5eed;

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const str = (s: Buffer | string) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u32(b.length), b]);
};

const KEY = str('ssh-ed25519'); // a stand-in key blob, only compared
const KEY_BLOB = Buffer.concat([KEY, str(Buffer.alloc(32, 7))]);
const HOST_KEY = Buffer.concat([str('ssh-ed25519'), str(Buffer.alloc(32, 9))]);
const SID = Buffer.alloc(32, 0xab);

function userauth(
  opts: {
    method?: string;
    user?: Buffer | string;
    service?: string;
    sigFollows?: number;
    msg?: number;
    sid?: Buffer;
    hostKey?: Buffer;
    key?: Buffer;
    alg?: string;
  } = {},
): Buffer {
  const parts = [
    str(opts.sid ?? SID),
    Buffer.of(opts.msg ?? 50), // SSH_MSG_USERAUTH_REQUEST
    str(opts.user ?? 'alice'),
    str(opts.service ?? 'ssh-connection'),
    str(opts.method ?? 'publickey'),
    Buffer.of(opts.sigFollows ?? 1),
    str(opts.alg ?? 'ssh-ed25519'),
    str(opts.key ?? KEY_BLOB),
  ];
  if (opts.hostKey) parts.push(str(opts.hostKey));
  return Buffer.concat(parts);
}

const HOSTBOUND = 'publickey-hostbound-v00@openssh.com';

function sshsigData(namespace: string, hashAlg = 'sha512', message = 'hello\n'): Buffer {
  const h = crypto.createHash(hashAlg).update(message).digest();
  return Buffer.concat([Buffer.from('SSHSIG'), str(namespace), str(''), str(hashAlg), str(h)]);
}

describe('userauth requests (RFC 4252 §7)', () => {
  test('publickey', () => {
    const d = decodeSignedData(userauth(), KEY_BLOB);
    assert.deepEqual(d, {
      kind: 'login',
      method: 'publickey',
      user: 'alice',
      service: 'ssh-connection',
      algorithm: 'ssh-ed25519',
      keyBlob: KEY_BLOB,
      sessionId: SID,
    });
    assert.equal(
      describeSignedData(d, { host: 'example.org', verified: true }),
      'log in as alice to example.org',
    );
  });

  test('publickey-hostbound-v00@openssh.com carries the host key', () => {
    const d = decodeSignedData(userauth({ method: HOSTBOUND, hostKey: HOST_KEY }), KEY_BLOB);
    assert.equal(d.kind, 'login');
    assert.ok(d.kind === 'login' && d.hostKey?.equals(HOST_KEY));
    assert.ok(d.kind === 'login' && d.sessionId.equals(SID));
    assert.equal(d.kind === 'login' && d.method, HOSTBOUND);
  });

  test('the destination is marked unverified unless the caller verified it', () => {
    const d = decodeSignedData(userauth());
    assert.equal(
      describeSignedData(d, { host: 'example.org', verified: false }),
      'log in as alice to example.org (unverified)',
    );
    assert.equal(describeSignedData(d), 'log in as alice to an unverified host');
  });

  test('the user and host are escaped', () => {
    const d = decodeSignedData(userauth({ user: 'root\nLogin: bob\u202e' }));
    assert.equal(
      describeSignedData(d, { host: 'h\x1b]0;x\x07', verified: true }),
      'log in as root\\nLogin: bob\\u{202e} to h\\x1b]0;x\\x07',
    );
  });

  const notLogins: [string, Buffer][] = [
    ['empty session id', userauth({ sid: Buffer.alloc(0) })],
    ['another message type', userauth({ msg: 51 })],
    ['another service', userauth({ service: 'ssh-userauth' })],
    ['another method', userauth({ method: 'hostbased' })],
    ['sig-follows false', userauth({ sigFollows: 0 })],
    ['hostbound without a host key', userauth({ method: HOSTBOUND })],
    ['a host key on plain publickey', userauth({ hostKey: HOST_KEY })],
    ['trailing bytes', Buffer.concat([userauth(), Buffer.of(0)])],
    ['NUL in the user name', userauth({ user: 'ali\0ce' })],
    ['invalid UTF-8 user', userauth({ user: Buffer.of(0x61, 0xff) })],
    ['empty key blob', userauth({ key: Buffer.alloc(0) })],
    ['empty algorithm', userauth({ alg: '' })],
    ['an algorithm of another key type', userauth({ alg: 'ssh-rsa' })],
    ['a malformed key blob', userauth({ key: Buffer.of(0, 0, 0, 9, 1) })],
  ];
  for (const [what, data] of notLogins)
    test(`not a login: ${what}`, () =>
      assert.deepEqual(decodeSignedData(data), { kind: 'unknown', length: data.length }));

  test('the algorithm is checked against the key type as ssh-agent.c does (RFC 8332 names)', () => {
    const rsaKey = Buffer.concat([str('ssh-rsa'), str(Buffer.of(1, 0, 1)), str(Buffer.alloc(9))]);
    for (const alg of ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512'])
      assert.equal(decodeSignedData(userauth({ alg, key: rsaKey }), rsaKey).kind, 'login', alg);
    const p256 = Buffer.concat([str('ecdsa-sha2-nistp256'), str('nistp256'), str(Buffer.of(4))]);
    const alg = 'ecdsa-sha2-nistp256';
    assert.equal(decodeSignedData(userauth({ alg, key: p256 }), p256).kind, 'login');
    assert.equal(
      decodeSignedData(userauth({ alg: 'ssh-ed25519', key: p256 }), p256).kind,
      'unknown',
    );
  });

  test('the user is decoded byte for byte (a leading U+FEFF is kept and escaped)', () => {
    const d = decodeSignedData(userauth({ user: '\ufeffroot' }), KEY_BLOB);
    assert.equal(d.kind === 'login' && d.user, '\ufeffroot');
    assert.equal(describeSignedData(d), 'log in as \\u{feff}root to an unverified host');
  });

  test('a login naming another key than the one asked to sign is not shown as a login', () => {
    const other = Buffer.concat([KEY, str(Buffer.alloc(32, 8))]);
    assert.equal(decodeSignedData(userauth(), other).kind, 'unknown');
    assert.equal(decodeSignedData(userauth(), KEY_BLOB).kind, 'login');
  });
});

describe('SSHSIG signed data (PROTOCOL.sshsig)', () => {
  test('git, file and other namespaces', () => {
    const git = decodeSignedData(sshsigData('git'));
    assert.deepEqual(
      { ...git, hash: undefined },
      { kind: 'sshsig', namespace: 'git', hashAlgorithm: 'sha512', hash: undefined },
    );
    assert.equal(describeSignedData(git), 'sign a git commit or tag (namespace git)');
    assert.equal(
      describeSignedData(decodeSignedData(sshsigData('file', 'sha256'))),
      'sign a file (namespace file)',
    );
    assert.equal(
      describeSignedData(decodeSignedData(sshsigData('x@example.com'))),
      'sign x@example.com data (namespace x@example.com)',
    );
    assert.equal(
      describeSignedData(decodeSignedData(sshsigData(''))),
      'sign data with an empty namespace (namespace )',
    );
  });

  test('the namespace is escaped', () => {
    const d = decodeSignedData(sshsigData('git\n\x1b[31mfile'));
    assert.equal(
      describeSignedData(d),
      'sign git\\n\\x1b[31mfile data (namespace git\\n\\x1b[31mfile)',
    );
  });

  const notSshsig: [string, Buffer][] = [
    ['another preamble', Buffer.concat([Buffer.from('SSHSIH'), sshsigData('git').subarray(6)])],
    ['unknown hash algorithm', sshsigData('git', 'sha1')],
    ['hash of the wrong length', sshsigData('git').subarray(0, -1)],
    ['trailing bytes', Buffer.concat([sshsigData('git'), Buffer.of(0)])],
    ['the armoured signature preamble', Buffer.from('-----BEGIN SSH SIGNATURE-----\n')],
  ];
  for (const [what, data] of notSshsig)
    test(`not SSHSIG: ${what}`, () =>
      assert.deepEqual(decodeSignedData(data), { kind: 'unknown', length: data.length }));

  test('the SSHSIG layout alone (the websafe rule) admits any hash, and nothing else', () => {
    assert.ok(hasSshsigLayout(sshsigData('git')));
    assert.ok(hasSshsigLayout(sshsigData('git', 'sha1')));
    const shortHash = [Buffer.from('SSHSIG'), str('git'), str(''), str('sha512'), str('x')];
    assert.ok(hasSshsigLayout(Buffer.concat(shortHash)));
    assert.equal(decodeSignedData(Buffer.concat(shortHash)).kind, 'unknown');
    for (const [what, data] of notSshsig.filter(([w]) => !/hash/.test(w)))
      assert.equal(hasSshsigLayout(data), false, what);
    assert.equal(hasSshsigLayout(userauth()), false);
  });
});

describe('unrecognised data', () => {
  test('is described by its length', () => {
    assert.equal(
      describeSignedData(decodeSignedData(Buffer.alloc(37))),
      'sign 37 bytes of unrecognised data',
    );
    assert.equal(
      describeSignedData(decodeSignedData(Buffer.alloc(1))),
      'sign 1 byte of unrecognised data',
    );
    assert.deepEqual(decodeSignedData(Buffer.alloc(0)), { kind: 'unknown', length: 0 });
  });

  test('every truncation of a valid request is unknown, never a throw', () => {
    const valid = [
      userauth(),
      userauth({ method: HOSTBOUND, hostKey: HOST_KEY }),
      sshsigData('git'),
      sshsigData('file', 'sha256'),
    ];
    for (const data of valid)
      for (let n = 0; n < data.length; n++)
        assert.deepEqual(decodeSignedData(data.subarray(0, n)), { kind: 'unknown', length: n });
  });

  test('fast-check: arbitrary bytes and mutations never throw, and describe stays one line', () => {
    const seeds = [userauth({ method: HOSTBOUND, hostKey: HOST_KEY }), sshsigData('git')];
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      )
      .map(([seed, edits]) => {
        const b = Buffer.from(seed);
        for (const [at, v] of edits) b[at % b.length] = v;
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map(Buffer.from), mutated), (b) => {
        const d: SignedData = decodeSignedData(b, KEY_BLOB);
        const text = describeSignedData(d, { host: 'h', verified: false });
        assert.doesNotMatch(text, /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
        if (d.kind === 'unknown') assert.equal(d.length, b.length);
      }),
      { numRuns: 2000, seed: SEED },
    );
  });
});

/**
 * An agent that holds one Ed25519 key and records what it is asked to sign
 * (PROTOCOL.agent: REQUEST_IDENTITIES 11 → 12, SIGN_REQUEST 13 → 14).
 */
function recordingAgent(sock: string) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const blob = Buffer.concat([str('ssh-ed25519'), str(raw)]);
  const signed: Buffer[] = [];
  const server = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const msg = buf.subarray(4, 4 + buf.readUInt32BE(0));
        buf = buf.subarray(4 + msg.length);
        let reply: Buffer;
        if (msg[0] === 11) reply = Buffer.concat([Buffer.of(12), u32(1), str(blob), str('rec')]);
        else if (msg[0] === 13) {
          const keyLen = msg.readUInt32BE(1);
          const dataAt = 5 + keyLen;
          const data = msg.subarray(dataAt + 4, dataAt + 4 + msg.readUInt32BE(dataAt));
          signed.push(Buffer.from(data));
          const sig = crypto.sign(null, data, privateKey);
          reply = Buffer.concat([
            Buffer.of(14),
            str(Buffer.concat([str('ssh-ed25519'), str(sig)])),
          ]);
        } else reply = Buffer.of(5);
        c.write(Buffer.concat([u32(reply.length), reply]));
      }
    });
  });
  const listening = new Promise<void>((r) => server.listen(sock, r));
  const publicLine = `ssh-ed25519 ${blob.toString('base64')} rec`;
  return { server, listening, signed, publicLine };
}

describe('SSHSIG data from the real ssh-keygen -Y sign', { skip: skipUnless([SSH_KEYGEN]) }, () => {
  let dir: string;
  let agent: ReturnType<typeof recordingAgent>;
  before(async () => {
    dir = mkTemp();
    agent = recordingAgent(path.join(dir, 'agent.sock'));
    await agent.listening;
    fs.writeFileSync(path.join(dir, 'key.pub'), agent.publicLine + '\n');
  });
  after(() => {
    agent.server.close();
    rmTemp(dir);
  });

  for (const [namespace, want] of [
    ['git', 'sign a git commit or tag (namespace git)'],
    ['file', 'sign a file (namespace file)'],
  ])
    test(`-n ${namespace}`, async () => {
      const msg = path.join(dir, `msg-${namespace}`);
      fs.writeFileSync(msg, `message for ${namespace}\n`);
      const before = agent.signed.length;
      const r = await run(
        SSH_KEYGEN,
        ['-Y', 'sign', '-f', path.join(dir, 'key.pub'), '-n', namespace, msg],
        { env: baseEnv({ SSH_AUTH_SOCK: path.join(dir, 'agent.sock') }), timeout: 20_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(agent.signed.length, before + 1, 'ssh-keygen signed through the agent');
      const data = agent.signed[before];
      // The bytes are exactly what PROTOCOL.sshsig says (ssh-keygen's default hash is sha512).
      assert.ok(data.equals(sshsigData(namespace, 'sha512', `message for ${namespace}\n`)));
      const d = decodeSignedData(data);
      assert.equal(d.kind, 'sshsig');
      assert.equal(describeSignedData(d), want);
      // And the signature made over them verifies with ssh-keygen itself.
      const check = await run(
        SSH_KEYGEN,
        ['-Y', 'check-novalidate', '-n', namespace, '-s', `${msg}.sig`],
        { env: baseEnv(), input: `message for ${namespace}\n`, timeout: 20_000 },
      );
      assert.equal(check.code, 0, check.stderr);
    });
});
