// The vault's side of ssh-mldsa44-ed25519@openssh.com: importing OpenSSH 10.5's
// key files (plain and bcrypt-encrypted, read by src/ssh/openssh-key.ts since
// ssh2 does not know the type) and `tsagent vault generate -t mldsa44-ed25519`.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { sign } from '../src/agent/signer';
import { readPrivateKey } from '../src/ssh/privatekey';
import { verifySignature } from '../src/ssh/signature';
import { WireReader } from '../src/ssh/wire';
import { KeyFileError, parseKeyFile } from '../src/vault/keyfile';
import {
  checkGenerateBits,
  generateKey,
  keyBits,
  keyLabel,
  toPrivateKeyObject,
} from '../src/vault/sshkey';

const VECTORS = path.resolve(__dirname, '..', '..', '..', 'shared', 'vectors', 'mldsa44-ed25519');
const DIR = fs.existsSync(VECTORS) ? VECTORS : '/work/shared/vectors/mldsa44-ed25519';
const file = (name: string) => fs.readFileSync(path.join(DIR, name));
const pubBlob = (name: string) => Buffer.from(file(name).toString('utf8').split(' ')[1], 'base64');

async function signsAndVerifies(keyType: string, fields: Buffer, publicBlob: Buffer) {
  const key = readPrivateKey(new WireReader(fields), keyType);
  const data = Buffer.from('vault key test');
  assert.equal(verifySignature(publicBlob, data, await sign(key, data, 0)), true);
}

describe('importing OpenSSH 10.5 ML-DSA-44+Ed25519 key files', () => {
  test('the plain file', async () => {
    const km = parseKeyFile(file('id_mldsa44_ed25519'), { defaultComment: 'file' });
    assert.equal(km.format, 'openssh');
    assert.equal(km.keyType, 'ssh-mldsa44-ed25519@openssh.com');
    assert.equal(km.comment, 'vector-plain');
    assert.deepEqual(km.publicBlob, pubBlob('id_mldsa44_ed25519.pub'));
    assert.equal(toPrivateKeyObject(km).asymmetricKeyType, 'ed25519');
    assert.equal(keyBits(km), 256);
    assert.equal(keyLabel(km.keyType), 'MLDSA44-ED25519');
    // The same private fields OpenSSH's ssh-add sends for this key.
    const add = file('agent-messages/add-identity.bin');
    assert.ok(add.includes(km.privateFields));
    await signsAndVerifies(km.keyType, km.privateFields, km.publicBlob);
  });

  test('the bcrypt-encrypted file: needs the passphrase, refuses a wrong one, opens with the right one', async () => {
    const data = file('id_mldsa44_ed25519_encrypted');
    const code = (passphrase?: string) => {
      try {
        parseKeyFile(data, {
          defaultComment: 'file',
          passphrase: passphrase === undefined ? undefined : Buffer.from(passphrase),
        });
        return 'ok';
      } catch (e) {
        assert.ok(e instanceof KeyFileError, String(e));
        return e.code;
      }
    };
    assert.equal(code(), 'NEEDS_PASSPHRASE');
    assert.equal(code('not-the-pass'), 'WRONG_PASSPHRASE');
    const km = parseKeyFile(data, {
      defaultComment: 'file',
      passphrase: Buffer.from('vector-pass'),
    });
    assert.deepEqual(km.publicBlob, pubBlob('id_mldsa44_ed25519_encrypted.pub'));
    await signsAndVerifies(km.keyType, km.privateFields, km.publicBlob);
  });

  test('a damaged file is NOT_A_KEY, not a crash', () => {
    const text = file('id_mldsa44_ed25519').toString('utf8');
    const lines = text.split('\n');
    lines[5] = lines[5].replace(/[A-Za-z]/, (c) => (c === 'A' ? 'B' : 'A'));
    assert.throws(
      () => parseKeyFile(Buffer.from(lines.join('\n')), { defaultComment: 'file' }),
      (e: unknown) => e instanceof KeyFileError && e.code === 'NOT_A_KEY',
    );
  });
});

describe('generate -t mldsa44-ed25519', () => {
  test('a new key that the agent can sign with; fixed size', async () => {
    assert.equal(checkGenerateBits('mldsa44-ed25519'), 256);
    assert.throws(() => checkGenerateBits('mldsa44-ed25519', 512), /fixed size/);
    const a = await generateKey('mldsa44-ed25519', undefined, 'gen');
    const b = await generateKey('mldsa44-ed25519', undefined, 'gen');
    assert.notDeepEqual(a.publicBlob, b.publicBlob);
    assert.equal(a.keyType, 'ssh-mldsa44-ed25519@openssh.com');
    toPrivateKeyObject(a);
    assert.throws(() => toPrivateKeyObject({ ...a, publicBlob: b.publicBlob }), /does not match/);
    await signsAndVerifies(a.keyType, a.privateFields, a.publicBlob);
  });
});

describe('importing an ssh-keygen DSA key file (ssh-dss, issue 12)', () => {
  test('the key, its public blob and a signature that verifies', async (t) => {
    const { execFileSync } = await import('node:child_process');
    const os = await import('node:os');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-dsa-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const f = path.join(dir, 'id_dsa');
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'dsa', '-N', '', '-C', 'dsa-import', '-f', f]);
    const km = parseKeyFile(fs.readFileSync(f), { defaultComment: 'file' });
    assert.equal(km.keyType, 'ssh-dss');
    assert.equal(km.comment, 'dsa-import');
    assert.deepEqual(
      km.publicBlob,
      Buffer.from(fs.readFileSync(`${f}.pub`, 'utf8').split(' ')[1], 'base64'),
    );
    assert.equal(keyBits(km), 1024);
    assert.equal(keyLabel(km.keyType), 'DSA');
    toPrivateKeyObject(km);
    await signsAndVerifies(km.keyType, km.privateFields, km.publicBlob);
  });
});
