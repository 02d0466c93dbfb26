// Vault format v1: round trips, and the exact classification of every kind of
// damage (flipped bytes, truncation, swapped headers) versus a wrong passphrase.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { before, describe, it } from 'node:test';
import {
  decodePayload,
  DIGEST_LENGTH,
  encodePayload,
  HEADER_LENGTH,
  openVault,
  PAD_BLOCK,
  parseVault,
  SealedVault,
  sealVault,
  unlockVault,
  VaultError,
  VaultIdentity,
} from '../src/vault/format';
import { deriveVaultKey, VaultKey } from '../src/vault/kdf';
import { generateKey } from '../src/vault/sshkey';
import { SMALL_KDF, vaultErrorCode } from './fixtures/vault';

const PASS = Buffer.from('correct horse battery staple');

async function sampleIdentities(): Promise<VaultIdentity[]> {
  const ed = await generateKey('ed25519', undefined, 'ed key');
  const ec = await generateKey('ecdsa', 384, 'ec key');
  const rsa = await generateKey('rsa', 1024, 'rsa key');
  return [
    { ...ed, created: 1700000000 },
    { ...ec, created: 1700000001, lastUsed: 1700000500, confirm: true, lifetime: 3600 },
    { ...rsa, created: 1700000002, allow: ['host-a', 'host-b'], extra: { future: { x: 1 } } },
  ];
}

/** Recompute the trailing SHA-256, as a deliberate forger would. */
function redigest(bytes: Buffer): Buffer {
  const body = bytes.subarray(0, bytes.length - DIGEST_LENGTH);
  return Buffer.concat([body, crypto.createHash('sha256').update(body).digest()]);
}

const codeOf = vaultErrorCode;

describe('vault format v1', () => {
  let identities: VaultIdentity[];
  let key: VaultKey;
  before(async () => {
    identities = await sampleIdentities();
    key = await deriveVaultKey(PASS, SMALL_KDF);
  });

  it('round-trips every identity field, including unknown metadata', async () => {
    const bytes = sealVault(identities, key);
    const opened = await unlockVault(bytes, PASS);
    assert.deepEqual(opened.identities, identities);
    assert.deepEqual(opened.key.kdf, SMALL_KDF);
    assert.deepEqual(openVault(parseVault(bytes), key), identities);
  });

  it('lays out the header as documented', () => {
    const bytes = sealVault(identities, key);
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'TSAGENTV');
    assert.equal(bytes.readUInt16BE(8), 1);
    assert.equal(bytes[10], 1);
    assert.equal(bytes.readUInt32BE(11), SMALL_KDF.memoryKiB);
    assert.equal(bytes.readUInt32BE(15), SMALL_KDF.time);
    assert.equal(bytes[19], SMALL_KDF.parallelism);
    assert.equal(bytes[20], 16);
    assert.ok(bytes.subarray(21, 37).equals(key.salt));
    assert.equal(bytes[37], 1);
    const ctLength = bytes.readUInt32BE(66);
    assert.equal(bytes.length, HEADER_LENGTH + ctLength + 16 + DIGEST_LENGTH);
  });

  it('uses a fresh nonce for every write', () => {
    const a = sealVault(identities, key);
    const b = sealVault(identities, key);
    assert.ok(!a.subarray(38, 50).equals(b.subarray(38, 50)));
    assert.ok(!a.equals(b));
  });

  it('reveals neither comments nor the number of keys of a small vault', () => {
    const empty = sealVault([], key);
    const three = sealVault(identities, key);
    assert.equal(empty.length, three.length, 'padding hides the count');
    for (const id of identities) assert.ok(!three.includes(Buffer.from(id.comment)));
    assert.equal((three.length - HEADER_LENGTH - 16 - DIGEST_LENGTH) % PAD_BLOCK, 0);
  });

  it('reports a wrong passphrase as such', async () => {
    const bytes = sealVault(identities, key);
    await assert.rejects(unlockVault(bytes, Buffer.from('wrong')), (err: VaultError) => {
      assert.equal(err.code, 'WRONG_PASSPHRASE');
      assert.equal(err.message, 'wrong passphrase');
      return true;
    });
  });

  it('reports every single flipped byte as damage, before any key derivation', () => {
    const bytes = sealVault(identities.slice(0, 1), key);
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0xff]) {
        const bad = Buffer.from(bytes);
        bad[i] ^= mask;
        const code = codeOf(() => parseVault(bad));
        // Bytes 8-9 are the version: a different version is "unsupported", which also says "damaged".
        const expected = i === 8 || i === 9 ? 'UNSUPPORTED' : 'DAMAGED';
        assert.equal(code, expected, `byte ${i} ^ ${mask}`);
      }
    }
  });

  it('with the checksum forged: KDF inputs read as a wrong passphrase, everything else as tampering', async () => {
    const bytes = sealVault(identities.slice(0, 1), key);
    // One derivation per distinct (salt, params): flipping ciphertext bytes needs no new KDF run.
    const cache = new Map<string, VaultKey>();
    const keyFor = async (s: SealedVault) => {
      const id = s.header.subarray(10, 37).toString('hex');
      if (!cache.has(id)) cache.set(id, await deriveVaultKey(PASS, s.kdf, s.salt));
      return cache.get(id) as VaultKey;
    };
    const counts: Record<string, number> = {};
    for (let i = 0; i < bytes.length - DIGEST_LENGTH; i++) {
      for (const mask of [0x01, 0xff]) {
        const bad = Buffer.from(bytes);
        bad[i] ^= mask;
        const forged = redigest(bad);
        let code: string;
        try {
          const sealed = parseVault(forged);
          openVault(sealed, await keyFor(sealed));
          code = 'OPENED';
        } catch (err) {
          assert.ok(err instanceof VaultError, String(err));
          code = err.code;
        }
        const where =
          i < 8
            ? 'magic'
            : i < 10
              ? 'version'
              : i < 20
                ? 'kdf'
                : i === 20
                  ? 'saltlen'
                  : i < 37
                    ? 'salt'
                    : i < 50
                      ? 'cipher/nonce'
                      : i < 66
                        ? 'keycheck'
                        : 'length/ciphertext/tag';
        const expected: Record<string, string[]> = {
          magic: ['DAMAGED'],
          version: ['UNSUPPORTED'],
          // An id byte or an out-of-range parameter is structural damage; an in-range
          // parameter changes the derived key, which looks exactly like a wrong passphrase.
          kdf: i === 10 ? ['DAMAGED'] : ['DAMAGED', 'WRONG_PASSPHRASE'],
          saltlen: ['DAMAGED'],
          salt: ['WRONG_PASSPHRASE'],
          'cipher/nonce': ['DAMAGED'],
          keycheck: ['WRONG_PASSPHRASE'],
          'length/ciphertext/tag': ['DAMAGED'],
        };
        assert.ok(expected[where].includes(code), `byte ${i} (${where}) ^ ${mask}: got ${code}`);
        counts[code] = (counts[code] ?? 0) + 1;
      }
    }
    assert.ok(!('OPENED' in counts), 'no change may decrypt');
    assert.ok(counts.WRONG_PASSPHRASE >= 64 && counts.DAMAGED > 0, JSON.stringify(counts));
  });

  it('refuses a planted header asking for hours of key derivation, before deriving', () => {
    const bytes = sealVault(identities.slice(0, 1), key);
    const plant = (memoryKiB: number, time: number) => {
      const bad = Buffer.from(bytes);
      bad.writeUInt32BE(memoryKiB, 11);
      bad.writeUInt32BE(time, 15);
      return redigest(bad);
    };
    // Each within its own range, but together hours of argon2 (4 GiB x 100 passes).
    for (const [memoryKiB, time] of [
      [4 * 1024 * 1024, 100],
      [1024 * 1024, 16],
      [2 * 1024 * 1024, 3],
    ]) {
      const started = Date.now();
      assert.throws(() => parseVault(plant(memoryKiB, time)), {
        code: 'DAMAGED',
        message: new RegExp(
          `KDF cost ${memoryKiB} KiB x ${time} passes is more than tsagent derives`,
        ),
      });
      assert.ok(Date.now() - started < 1000);
    }
    // The most allowed: 4 GiB once, 1 GiB four times.
    assert.equal(parseVault(plant(4 * 1024 * 1024, 1)).kdf.memoryKiB, 4 * 1024 * 1024);
    assert.equal(parseVault(plant(1024 * 1024, 4)).kdf.time, 4);
  });

  it('reports every truncation as damage', () => {
    const bytes = sealVault([], key);
    for (let len = 0; len < bytes.length; len++) {
      const code = codeOf(() => parseVault(bytes.subarray(0, len)));
      assert.equal(code, 'DAMAGED', `truncated to ${len}`);
    }
    assert.equal(
      codeOf(() => parseVault(Buffer.concat([bytes, Buffer.of(0)]))),
      'DAMAGED',
      'appended byte',
    );
  });

  it('detects a header swapped between two vaults with the same passphrase', async () => {
    const keyB = await deriveVaultKey(PASS, SMALL_KDF);
    const a = sealVault(identities.slice(0, 1), key);
    const b = sealVault(identities.slice(1), keyB);
    const swapped = Buffer.concat([a.subarray(0, HEADER_LENGTH), b.subarray(HEADER_LENGTH)]);
    assert.equal(
      codeOf(() => parseVault(swapped)),
      'DAMAGED',
    );
    const forged = redigest(swapped);
    // Same length (padding), so it parses; the key check passes (A's header, A's passphrase)
    // and GCM refuses B's ciphertext under A's header and key.
    const sealed = parseVault(forged);
    assert.equal(
      codeOf(() => openVault(sealed, key)),
      'DAMAGED',
    );
    // Only the nonce swapped, with the same key: GCM refuses it too.
    const a2 = sealVault(identities.slice(0, 1), key);
    const nonceSwap = Buffer.from(a);
    a2.copy(nonceSwap, 38, 38, 50);
    assert.equal(
      codeOf(() => openVault(parseVault(redigest(nonceSwap)), key)),
      'DAMAGED',
    );
  });

  it('rejects a payload that does not decode', () => {
    const good = encodePayload(identities);
    assert.deepEqual(decodePayload(good), identities);
    const garbage = Buffer.from(good);
    garbage[garbage.length - 1] = 1; // non-zero padding
    assert.throws(() => decodePayload(garbage), { code: 'DAMAGED' });
    assert.throws(() => decodePayload(Buffer.from([0, 0, 0, 5])), { code: 'DAMAGED' });
  });

  it('refuses to seal identities that would not read back', () => {
    const bad = { ...identities[0], lifetime: -5 };
    assert.throws(() => sealVault([bad], key), { code: 'INVALID' });
  });
});
