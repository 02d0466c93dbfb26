// The agent's side of the vault and known_hosts: known_hosts is parsed again
// only when it changed, and recording a key's use never holds up the reply.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { KnownHostsCache } from '../src/daemon/known-hosts-cache';
import { VaultBridge } from '../src/daemon/vault-bridge';
import { generateKey } from '../src/vault/sshkey';
import { VaultFile } from '../src/vault/store';
import { SMALL_KDF, tempDir } from './fixtures/vault';

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

describe('known_hosts cache', () => {
  it('parses a file again only when its mtime, size or inode changed', (t) => {
    const file = path.join(tempDir(t), 'known_hosts');
    fs.writeFileSync(file, `goober ${HOST_KEY}\n`);
    let reads = 0;
    const cache = new KnownHostsCache({
      files: [file],
      read: (f) => {
        reads++;
        return fs.readFileSync(f, 'utf8');
      },
    });
    assert.equal(cache.get().length, 1);
    assert.equal(cache.get().length, 1);
    assert.equal(cache.changed(), false);
    assert.equal(reads, 1, 'read again although nothing changed');
    fs.writeFileSync(file, `goober ${HOST_KEY}\nboomer ${HOST_KEY}\n`);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(file, later, later);
    assert.equal(cache.changed(), true);
    assert.equal(cache.get().length, 2);
    assert.equal(reads, 2);
    fs.rmSync(file);
    assert.equal(cache.get().length, 0, 'a removed file has no entries');
  });
});

describe('vault bridge', () => {
  it('touch() writes the last use after the current event, not before the reply', async (t) => {
    const vaultPath = path.join(tempDir(t), 'tsagent', 'vault');
    const pass = Buffer.from('bridge pass');
    const key = await generateKey('ed25519', undefined, 'k');
    const created = await new VaultFile(vaultPath).create(pass, SMALL_KDF);
    created.add([key]);
    created.lock();
    const bridge = new VaultBridge(
      vaultPath,
      () => {},
      () => {},
    );
    t.after(() => bridge.forget());
    const ids = await bridge.unlock(Buffer.from(pass));
    assert.equal(ids?.length, 1);
    const before = fs.readFileSync(vaultPath);
    bridge.touch(key.publicBlob);
    assert.ok(fs.readFileSync(vaultPath).equals(before), 'the vault was written before the reply');
    await new Promise((r) => setImmediate(r));
    assert.ok(!fs.readFileSync(vaultPath).equals(before), 'the last use was never written');
    const reopened = await new VaultFile(vaultPath).unlock(pass);
    assert.ok(reopened.identities[0].lastUsed);
  });
});
