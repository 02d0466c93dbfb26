// The loaded PKCS#11 providers (src/agent/pkcs11-providers.ts): one helper per
// provider, a second load of one refused, unload, and a helper that dies
// reported once so the agent can drop its keys.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pkcs11Providers } from '../src/agent/pkcs11-providers';
import { mkTemp, rmTemp, waitFor } from './fixtures/run';
import {
  SOFTHSM_LIB,
  SoftToken,
  TOKEN_PIN,
  makeSoftToken,
  skipUnlessSoftHsm,
} from './fixtures/softhsm';

describe('Pkcs11Providers with SoftHSM2', { skip: skipUnlessSoftHsm() }, () => {
  let dir: string;
  let token: SoftToken;
  before(async () => {
    dir = mkTemp();
    token = await makeSoftToken(dir);
  });
  after(() => rmTemp(dir));

  it('loads once, refuses a second load while loaded, unloads quietly', async () => {
    const gone: string[] = [];
    const providers = new Pkcs11Providers({
      helper: { env: token.env },
      onGone: (c) => gone.push(c),
    });
    const first = await providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN));
    assert.ok(first.ok, JSON.stringify(first));
    assert.equal(first.provider.keys.length, 2);
    const [a, b] = await Promise.all([
      providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN)),
      providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN)),
    ]);
    for (const r of [a, b]) {
      assert.ok(!r.ok);
      assert.match(r.message, /already loaded/);
    }
    assert.equal(providers.get(SOFTHSM_LIB), first.provider);
    assert.ok(await providers.unload(SOFTHSM_LIB));
    assert.ok(!first.provider.running);
    assert.equal(providers.get(SOFTHSM_LIB), undefined);
    assert.ok(!(await providers.unload(SOFTHSM_LIB)), 'not loaded any more');
    await first.provider.exited;
    assert.deepEqual(gone, [], 'an unload is not a loss');
    const again = await providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN));
    assert.ok(again.ok, 'loadable again after unload');
    await providers.unloadAll();
    assert.equal(providers.size, 0);
  });

  it('a wrong PIN says so and leaves nothing loaded', async () => {
    const providers = new Pkcs11Providers({ helper: { env: token.env } });
    const res = await providers.load(SOFTHSM_LIB, Buffer.from('0000'));
    assert.ok(!res.ok);
    assert.ok(res.wrongPin);
    assert.ok(!res.message.includes('0000'));
    assert.equal(providers.size, 0);
  });

  it('a helper that dies is reported once, and the provider can be loaded again', async () => {
    const gone: string[] = [];
    const providers = new Pkcs11Providers({
      helper: { env: token.env },
      onGone: (c) => gone.push(c),
    });
    const res = await providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN));
    assert.ok(res.ok);
    process.kill(res.provider.pid!, 'SIGKILL');
    await waitFor('the loss to be reported', () => gone.length > 0);
    assert.deepEqual(gone, [SOFTHSM_LIB]);
    assert.equal(providers.size, 0);
    const again = await providers.load(SOFTHSM_LIB, Buffer.from(TOKEN_PIN));
    assert.ok(again.ok);
    await providers.unloadAll();
    assert.deepEqual(gone, [SOFTHSM_LIB]);
  });
});
