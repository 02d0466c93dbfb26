// What a client may add (issue 11 point 5) and what stays in memory after
// (point 7): RSA factors must be prime, comments at most 4 KiB; private keys go
// to Node as DER buffers that are wiped after the import, never as JWK or hex
// strings; the lock passphrase's pre-hash is wiped after scrypt has read it.

import { describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { Keyring } from '../src/agent/keyring';
import { MAX_COMMENT, decodeRequest } from '../src/agent/protocol';
import { WireReader, WireWriter } from '../src/ssh/wire';
import { readPrivateKey } from '../src/ssh/privatekey';
import { big } from '../src/ssh/keyobject';

// The module object itself (not the import's namespace copy), so that mocks reach src/.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeCrypto = require('node:crypto') as typeof import('node:crypto');

const unbig = (n: bigint) => {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  return Buffer.from(h, 'hex');
};

function rsaFields(n: bigint, e: bigint, d: bigint, p: bigint, q: bigint): Buffer {
  const w = new WireWriter();
  for (const v of [n, e, d, 1n, p, q]) w.mpint(unbig(v));
  return w.toBuffer();
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const k = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - k * r1, s1, s0 - k * s1];
  }
  return ((s0 % m) + m) % m;
}
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));

const addBody = (keyType: string, fields: Buffer, comment: Buffer | string) =>
  Buffer.concat([
    Buffer.of(17),
    new WireWriter().string(keyType).raw(fields).string(comment).toBuffer(),
  ]);

function ed25519Fields(): Buffer {
  const jwk = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const pk = Buffer.from(jwk.x!, 'base64url');
  return new WireWriter()
    .string(pk)
    .string(Buffer.concat([Buffer.from(jwk.d!, 'base64url'), pk]))
    .toBuffer();
}

describe('RSA keys a client adds are checked', () => {
  test('a composite "prime" (no small factors) that keeps every other check consistent is refused', () => {
    const e = 65537n;
    for (;;) {
      const p1 = crypto.generatePrimeSync(512, { bigint: true });
      const p2 = crypto.generatePrimeSync(512, { bigint: true });
      const q = crypto.generatePrimeSync(1024, { bigint: true });
      const P = p1 * p2; // composite, and the arithmetic checks cannot tell
      const lambda = ((P - 1n) * (q - 1n)) / gcd(P - 1n, q - 1n);
      if (gcd(e, lambda) !== 1n) continue;
      const d = modInverse(e, lambda);
      const req = decodeRequest(addBody('ssh-rsa', rsaFields(P * q, e, d, P, q), 'c'));
      assert.equal(req.type, 'malformed');
      assert.match(req.type === 'malformed' ? req.reason : '', /not prime/);
      // The same construction with real primes is accepted.
      const lambda2 = ((p1 - 1n) * (q - 1n)) / gcd(p1 - 1n, q - 1n);
      if (gcd(e, lambda2) !== 1n) continue;
      const d2 = modInverse(e, lambda2);
      const ok = decodeRequest(addBody('ssh-rsa', rsaFields(p1 * q, e, d2, p1, q), 'c'));
      assert.equal(ok.type, 'add', ok.type === 'malformed' ? ok.reason : '');
      break;
    }
  });
  test('a factor with a small prime factor is refused', () => {
    const e = 65537n;
    for (;;) {
      const r = crypto.generatePrimeSync(1021, { bigint: true });
      const P = 7n * r;
      const q = crypto.generatePrimeSync(1024, { bigint: true });
      const lambda = ((P - 1n) * (q - 1n)) / gcd(P - 1n, q - 1n);
      if (gcd(e, lambda) !== 1n) continue;
      const req = decodeRequest(
        addBody('ssh-rsa', rsaFields(P * q, e, modInverse(e, lambda), P, q), 'c'),
      );
      assert.equal(req.type, 'malformed');
      assert.match(req.type === 'malformed' ? req.reason : '', /not prime/);
      break;
    }
  });
});

describe('key comments', () => {
  test(`${MAX_COMMENT} bytes are accepted, one more is malformed`, () => {
    const fields = ed25519Fields();
    assert.equal(
      decodeRequest(addBody('ssh-ed25519', fields, Buffer.alloc(MAX_COMMENT, 0x61))).type,
      'add',
    );
    const over = decodeRequest(addBody('ssh-ed25519', fields, Buffer.alloc(MAX_COMMENT + 1, 0x61)));
    assert.equal(over.type, 'malformed');
    assert.equal(MAX_COMMENT, 4096);
  });
});

describe('secrets are wiped', () => {
  test('private keys are imported as DER buffers, wiped after the import', (t) => {
    const seen: { format: unknown; key: unknown }[] = [];
    const real = crypto.createPrivateKey;
    t.mock.method(nodeCrypto, 'createPrivateKey', (arg: crypto.PrivateKeyInput) => {
      const key = real(arg);
      seen.push({ format: arg.format, key: arg.key });
      return key;
    });
    const ed = ed25519Fields();
    readPrivateKey(new WireReader(ed), 'ssh-ed25519');
    const ecJwk = crypto
      .generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      .privateKey.export({ format: 'jwk' });
    const q = Buffer.concat([
      Buffer.of(4),
      Buffer.from(ecJwk.x!, 'base64url'),
      Buffer.from(ecJwk.y!, 'base64url'),
    ]);
    readPrivateKey(
      new WireReader(
        new WireWriter()
          .string('nistp256')
          .string(q)
          .mpint(Buffer.from(ecJwk.d!, 'base64url'))
          .toBuffer(),
      ),
      'ecdsa-sha2-nistp256',
    );
    const rsaJwk = crypto
      .generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'jwk' });
    const f = (s?: string) => big(Buffer.from(s!, 'base64url'));
    readPrivateKey(
      new WireReader(rsaFields(f(rsaJwk.n), f(rsaJwk.e), f(rsaJwk.d), f(rsaJwk.p), f(rsaJwk.q))),
      'ssh-rsa',
    );
    mock.restoreAll();
    assert.equal(seen.length, 3);
    for (const s of seen) {
      assert.equal(s.format, 'der');
      assert.ok(Buffer.isBuffer(s.key));
      assert.ok(
        (s.key as Buffer).every((b) => b === 0),
        'the DER was not wiped',
      );
    }
  });

  test('the SHA-512 pre-hash of the lock passphrase is wiped once scrypt has read it', async (t) => {
    const inputs: Buffer[] = [];
    const real = crypto.scrypt;
    t.mock.method(
      nodeCrypto,
      'scrypt',
      (
        pw: Buffer,
        salt: Buffer,
        len: number,
        opts: crypto.ScryptOptions,
        cb: (e: Error | null, k: Buffer) => void,
      ) => {
        inputs.push(pw);
        real(pw, salt, len, opts, cb);
      },
    );
    const kr = new Keyring({ unlockDelayMs: 0 });
    assert.equal(await kr.lock(Buffer.from('hunter2')), true);
    assert.equal(await kr.unlock(Buffer.from('wrong')), false);
    assert.equal(await kr.unlock(Buffer.from('hunter2')), true);
    mock.restoreAll();
    assert.equal(inputs.length, 3);
    for (const pre of inputs) {
      assert.equal(pre.length, 64);
      assert.ok(
        pre.every((b) => b === 0),
        'a pre-hash was left in memory',
      );
    }
  });
});
