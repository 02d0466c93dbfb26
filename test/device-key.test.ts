// Device keys (src/agent/device-key.ts): a security key and PKCS#11 token keys
// as keyring identities, signing through the real helpers; failures as
// DeviceSignError.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeviceSignError, securityKey, tokenKey } from '../src/agent/device-key';
import { Pkcs11Provider } from '../src/agent/pkcs11-helper';
import { SK_ED25519_CERT, readSkPrivateKey } from '../src/ssh/sk-key';
import { verifySkSignature } from '../src/ssh/sk-signature';
import { WireReader } from '../src/ssh/wire';
import { mkTemp, rmTemp } from './fixtures/run';
import { SK_DUMMY, SK_FIXTURES, skipUnlessSk } from './fixtures/sk';
import {
  SOFTHSM_LIB,
  TOKEN_PIN,
  makeSoftToken,
  skipUnlessSoftHsm,
  sshBlob,
} from './fixtures/softhsm';

function fixtureKey(file: string) {
  const r = new WireReader(fs.readFileSync(path.join(SK_FIXTURES, `${file}.add.bin`)).subarray(1));
  return readSkPrivateKey(r.text(), r);
}

describe('security keys as device keys', { skip: skipUnlessSk() }, () => {
  it('lists as its blob (the certificate for a cert), needs a touch, signs through the helper', async () => {
    for (const file of ['id_ed25519_sk', 'id_ed25519_sk-cert', 'id_ecdsa_sk']) {
      const sk = fixtureKey(file);
      const key = securityKey(sk, SK_DUMMY, { timeoutMs: 20_000 });
      assert.equal(key.device, 'security-key');
      assert.equal(key.keyType, sk.keyType);
      const pubLine = fs.readFileSync(path.join(SK_FIXTURES, `${file}.pub`), 'utf8');
      assert.deepEqual(key.publicBlob, Buffer.from(pubLine.split(' ')[1], 'base64'));
      if (sk.keyType === SK_ED25519_CERT) assert.deepEqual(key.publicBlob, sk.certificate);
      assert.equal(key.provider, SK_DUMMY);
      assert.ok(key.needsTouch);
      const sig = await key.sign(Buffer.from('data'), 0);
      assert.ok(verifySkSignature(sk, Buffer.from('data'), sig));
    }
  });

  it('a key without the user-presence flag needs no touch', () => {
    assert.ok(!securityKey({ ...fixtureKey('id_ed25519_sk'), flags: 0 }, SK_DUMMY).needsTouch);
  });

  it('a failing provider rejects with a DeviceSignError', async () => {
    const key = securityKey(fixtureKey('id_ecdsa_sk'), '/nonexistent/provider.so', {
      timeoutMs: 20_000,
    });
    await assert.rejects(key.sign(Buffer.from('x'), 0), (e: unknown) => {
      assert.ok(e instanceof DeviceSignError);
      assert.equal(e.failure.kind, 'provider');
      return true;
    });
  });
});

describe('PKCS#11 token keys as device keys', { skip: skipUnlessSoftHsm() }, () => {
  let dir: string;
  let provider: Pkcs11Provider;
  before(async () => {
    dir = mkTemp();
    const token = await makeSoftToken(dir);
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN), { env: token.env });
    assert.ok(res.ok, JSON.stringify(res));
    provider = res.value;
  });
  after(async () => {
    await provider?.unload();
    rmTemp(dir);
  });

  it('has the token key type and bits, and signs', async () => {
    const byType = new Map(provider.keys.map((k) => [tokenKey(provider, k.blob).keyType, k.blob]));
    const rsa = tokenKey(provider, byType.get('ssh-rsa')!);
    const ec = tokenKey(provider, byType.get('ecdsa-sha2-nistp256')!);
    assert.equal(rsa.bits, 2048);
    assert.equal(ec.bits, 256);
    assert.equal(rsa.provider, SOFTHSM_LIB);
    assert.ok(!rsa.needsTouch);
    const sig = await rsa.sign(Buffer.from('x'), 2);
    assert.equal(new WireReader(sig).text(), 'rsa-sha2-256');
  });

  it('a key the token does not have rejects with a DeviceSignError', async () => {
    const crypto = await import('node:crypto');
    const other = sshBlob(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    await assert.rejects(tokenKey(provider, other).sign(Buffer.from('x'), 0), DeviceSignError);
  });
});
