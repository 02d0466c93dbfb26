// argon2id key derivation: the default cost (measured once and logged),
// determinism, and the parameter ranges a header may ask for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_KDF, deriveVaultKey, kdfParamsProblem } from '../src/vault/kdf';
import { SMALL_KDF } from './fixtures/vault';

describe('vault KDF', () => {
  it('uses defaults of at least 64 MiB and t >= 3, and they derive well under 2 s here', async () => {
    assert.ok(DEFAULT_KDF.memoryKiB >= 65536 && DEFAULT_KDF.time >= 3);
    const start = process.hrtime.bigint();
    await deriveVaultKey(Buffer.from('passphrase'), DEFAULT_KDF);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    console.log(
      `# argon2id m=${DEFAULT_KDF.memoryKiB} KiB t=${DEFAULT_KDF.time} p=${DEFAULT_KDF.parallelism}: ${ms.toFixed(0)} ms`,
    );
    // Generous bound: the requirement is < 2 s on the 2-core machine; a loaded CI box gets slack.
    assert.ok(ms < 10_000, `default KDF took ${ms} ms`);
  });

  it('derives the same keys from the same passphrase, salt and parameters only', async () => {
    const salt = Buffer.alloc(16, 7);
    const a = await deriveVaultKey(Buffer.from('pw'), SMALL_KDF, salt);
    const b = await deriveVaultKey(Buffer.from('pw'), SMALL_KDF, salt);
    assert.ok(a.encKey.equals(b.encKey) && a.keyCheck.equals(b.keyCheck));
    assert.ok(
      !a.encKey.subarray(0, 16).equals(a.keyCheck),
      'the check value is not part of the key',
    );
    const c = await deriveVaultKey(Buffer.from('pw2'), SMALL_KDF, salt);
    const d = await deriveVaultKey(Buffer.from('pw'), SMALL_KDF, Buffer.alloc(16, 8));
    const e = await deriveVaultKey(Buffer.from('pw'), { ...SMALL_KDF, time: 2 }, salt);
    for (const other of [c, d, e]) assert.ok(!other.keyCheck.equals(a.keyCheck));
  });

  it('accepts sane parameters and names the bad one otherwise', () => {
    assert.equal(kdfParamsProblem(DEFAULT_KDF), undefined);
    assert.equal(kdfParamsProblem(SMALL_KDF), undefined);
    assert.match(kdfParamsProblem({ ...SMALL_KDF, time: 0 }) ?? '', /time/);
    assert.match(kdfParamsProblem({ ...SMALL_KDF, memoryKiB: 16 }) ?? '', /memoryKiB/);
    assert.match(kdfParamsProblem({ ...SMALL_KDF, memoryKiB: 2 ** 32 - 1 }) ?? '', /memoryKiB/);
    assert.match(kdfParamsProblem({ ...SMALL_KDF, parallelism: 200 }) ?? '', /parallelism/);
    assert.match(kdfParamsProblem({ ...SMALL_KDF, time: 1.5 }) ?? '', /time/);
    assert.match(
      kdfParamsProblem({ ...SMALL_KDF, memoryKiB: 4 * 1024 * 1024, time: 2 }) ?? '',
      /more than tsagent derives/,
    );
  });
});
