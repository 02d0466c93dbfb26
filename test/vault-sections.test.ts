// Vault sections (vault/format.ts): agent state kept beside the keys, here the
// learned host → key order of issue 13. A vault without sections is written
// byte for byte as before them, every write keeps them, and malformed ones
// are damage.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  decodeContents,
  decodePayload,
  encodePayload,
  openVaultContents,
  PAD_BLOCK,
  parseVault,
  sealVault,
  VaultIdentity,
} from '../src/vault/format';
import { deriveVaultKey, VaultKey } from '../src/vault/kdf';
import { generateKey } from '../src/vault/sshkey';
import { VaultFile } from '../src/vault/store';
import { WireWriter } from '../src/ssh/wire';
import { SMALL_KDF, tempDir, vaultErrorCode } from './fixtures/vault';

const PASS = Buffer.from('sections passphrase');

/** What the payload encoder wrote before sections existed. */
function legacyPayload(ids: VaultIdentity[]): Buffer {
  const w = new WireWriter().uint32(ids.length);
  for (const id of ids)
    w.string(id.keyType)
      .string(id.publicBlob)
      .string(id.privateFields)
      .string(JSON.stringify({ comment: id.comment, created: id.created }));
  const data = w.toBuffer();
  const padded = Buffer.alloc(Math.ceil((data.length + 1) / PAD_BLOCK) * PAD_BLOCK);
  data.copy(padded);
  return padded;
}

describe('vault sections', () => {
  let ids: VaultIdentity[];
  let key: VaultKey;
  before(async () => {
    ids = [{ ...(await generateKey('ed25519', undefined, 'k')), created: 1700000000 }];
    key = await deriveVaultKey(PASS, SMALL_KDF);
  });

  it('a vault without sections is encoded exactly as before, and old payloads read back', () => {
    assert.ok(encodePayload(ids).equals(legacyPayload(ids)));
    assert.deepEqual(decodeContents(legacyPayload(ids)), { identities: ids, sections: [] });
    // Padding of fewer than four bytes after the identities has no room for a count: none.
    for (let pad = 0; pad < 8; pad++)
      assert.deepEqual(decodeContents(Buffer.alloc(4 + pad)), { identities: [], sections: [] });
  });

  it('sections round-trip through the sealed file, after the identities', () => {
    const sections = [
      { name: 'host-order', data: Buffer.from([1, 0, 0, 0, 0]) },
      { name: 'future@example.com', data: Buffer.alloc(5000, 7) },
    ];
    const plain = encodePayload(ids, sections);
    assert.equal(plain.length % PAD_BLOCK, 0);
    assert.deepEqual(decodeContents(plain), { identities: ids, sections });
    assert.deepEqual(decodePayload(plain), ids);
    const sealed = sealVault(ids, key, sections);
    assert.deepEqual(openVaultContents(parseVault(sealed), key), { identities: ids, sections });
    assert.equal(sealed.indexOf(Buffer.from('future@example.com')), -1, 'encrypted');
  });

  it('malformed sections are damage, and are refused when writing', () => {
    const withRaw = (tail: (w: WireWriter) => void) => {
      const w = new WireWriter().uint32(0);
      tail(w);
      const data = w.toBuffer();
      const p = Buffer.alloc(PAD_BLOCK);
      data.copy(p);
      return p;
    };
    const cases: [string, Buffer][] = [
      ['a count past 64', withRaw((w) => w.uint32(65))],
      ['a truncated section', withRaw((w) => w.uint32(2).string('host-order').string('x'))],
      ['a bad name', withRaw((w) => w.uint32(1).string('Host Order').string('x'))],
      ['an empty name', withRaw((w) => w.uint32(1).string('').string('x'))],
      ['a name twice', withRaw((w) => w.uint32(2).string('a').string('1').string('a').string('2'))],
      ['garbage after', withRaw((w) => w.uint32(1).string('a').string('1').byte(9))],
    ];
    for (const [what, p] of cases)
      assert.equal(
        vaultErrorCode(() => decodeContents(p)),
        'DAMAGED',
        what,
      );
    assert.throws(() => encodePayload(ids, [{ name: 'NO', data: Buffer.alloc(1) }]));
    assert.throws(() =>
      encodePayload(ids, [
        { name: 'a', data: Buffer.alloc(1) },
        { name: 'a', data: Buffer.alloc(1) },
      ]),
    );
  });

  it('an unlocked vault keeps its sections through every other write, reload and re-open', async (t) => {
    const file = new VaultFile(path.join(tempDir(t), 'tsagent', 'vault'));
    const vault = await file.create(PASS, SMALL_KDF);
    assert.equal(vault.section('host-order'), undefined);
    vault.setSection('host-order', Buffer.from('learned'));
    vault.add([await generateKey('ed25519', undefined, 'second')]);
    vault.rename('second', 'renamed');
    vault.update('renamed', { confirm: true });
    vault.touch(vault.identities[0].publicBlob);
    assert.equal(vault.section('host-order')?.toString(), 'learned');

    // Another process (the CLI) opens it, changes a key, and keeps the section too.
    const cli = await file.unlock(PASS);
    assert.equal(cli.section('host-order')?.toString(), 'learned');
    cli.update('renamed', { confirm: false });
    vault.reload();
    assert.equal(vault.section('host-order')?.toString(), 'learned');
    vault.setSection('host-order', Buffer.from('learned more'));
    await vault.changePassphrase(Buffer.from('new one'));
    const again = await file.unlock(Buffer.from('new one'));
    assert.equal(again.section('host-order')?.toString(), 'learned more');
    assert.equal(again.identities.length, 1);
    again.setSection('host-order', null);
    assert.equal((await file.unlock(Buffer.from('new one'))).section('host-order'), undefined);
    assert.equal(fs.readFileSync(file.path).indexOf(Buffer.from('learned')), -1);

    // Locking wipes the section's bytes with the keys.
    const locked = await file.unlock(Buffer.from('new one'));
    locked.setSection('host-order', Buffer.from('secret state'));
    const kept = locked.section('host-order')!;
    locked.lock();
    assert.ok(kept.every((b) => b === 0));
    assert.equal(locked.section('host-order'), undefined);
  });
});
