// The vault on disk: paths, StrictModes-like permission checks, atomic writes
// with a backup, failed writes (full disk, I/O errors) leaving everything as it
// was, concurrent writers, and the identity operations.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, TestContext } from 'node:test';
import { VaultError } from '../src/vault/format';
import { fingerprint } from '../src/ssh/fingerprint';
import { generateKey, KeyMaterial } from '../src/vault/sshkey';
import type { VaultFs } from '../src/vault/filesystem';
import { defaultVaultPath, resolveVaultPath } from '../src/vault/paths';
import { VaultFile } from '../src/vault/store';
import { findIdentity, UnlockedVault } from '../src/vault/unlocked';
import { SMALL_KDF, tempDir } from './fixtures/vault';

const PASS = Buffer.from('vault passphrase');

/** Names, bytes and mtimes of everything in dir: "nothing was written" means this is unchanged. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = fs.statSync(p);
    out[name] =
      `${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')} ${st.mtimeMs} ${st.mode}`;
  }
  return out;
}

async function newVault(t: TestContext, keys: KeyMaterial[] = []) {
  const dir = path.join(tempDir(t), 'tsagent');
  const file = new VaultFile(path.join(dir, 'vault'));
  const vault = await file.create(PASS, SMALL_KDF);
  if (keys.length) vault.add(keys);
  return { dir, file, vault };
}

function errnoError(code: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: simulated`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('vault paths', () => {
  it('defaults to $XDG_DATA_HOME/tsagent/vault, else ~/.local/share', () => {
    assert.equal(
      defaultVaultPath({ XDG_DATA_HOME: '/x/data' }, '/home/u'),
      '/x/data/tsagent/vault',
    );
    assert.equal(defaultVaultPath({}, '/home/u'), '/home/u/.local/share/tsagent/vault');
    // The XDG spec says relative values are to be ignored.
    assert.equal(
      defaultVaultPath({ XDG_DATA_HOME: 'rel' }, '/home/u'),
      '/home/u/.local/share/tsagent/vault',
    );
  });

  it('prefers --vault, then TSAGENT_VAULT', () => {
    const env = { TSAGENT_VAULT: '/env/vault', XDG_DATA_HOME: '/x' };
    assert.equal(resolveVaultPath('/flag/vault', env), '/flag/vault');
    assert.equal(resolveVaultPath(undefined, env), '/env/vault');
    assert.equal(resolveVaultPath(undefined, { XDG_DATA_HOME: '/x' }), '/x/tsagent/vault');
  });
});

describe('vault file', () => {
  it('creates a 0600 vault in a 0700 directory and refuses to overwrite it', async (t) => {
    const { dir, file } = await newVault(t);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(file.path).mode & 0o777, 0o600);
    const before = snapshot(dir);
    await assert.rejects(file.create(Buffer.from('other'), SMALL_KDF), { code: 'EXISTS' });
    assert.deepEqual(snapshot(dir), before);
    assert.equal((await file.unlock(PASS)).identities.length, 0);
  });

  it('writes nothing on a wrong passphrase', async (t) => {
    const key = await generateKey('ed25519', undefined, 'k');
    const { dir, file } = await newVault(t, [key]);
    const before = snapshot(dir);
    await assert.rejects(file.unlock(Buffer.from('nope')), (err: VaultError) => {
      assert.equal(err.code, 'WRONG_PASSPHRASE');
      assert.equal(err.message, `wrong passphrase for vault ${file.path}`);
      return true;
    });
    assert.deepEqual(snapshot(dir), before);
  });

  it('reports damage with the path and the backup, and writes nothing', async (t) => {
    const key = await generateKey('ed25519', undefined, 'k');
    const { dir, file } = await newVault(t, [key]);
    const bytes = fs.readFileSync(file.path);
    bytes[bytes.length - 100] ^= 0x40;
    fs.writeFileSync(file.path, bytes);
    const before = snapshot(dir);
    await assert.rejects(file.unlock(PASS), (err: VaultError) => {
      assert.equal(err.code, 'DAMAGED');
      assert.ok(
        err.message.startsWith(`${file.path}: vault is damaged or was tampered with`),
        err.message,
      );
      assert.ok(
        err.message.includes(`tsagent vault verify --vault ${file.backupPath}`),
        err.message,
      );
      return true;
    });
    fs.truncateSync(file.path, 100);
    await assert.rejects(file.unlock(PASS), { code: 'DAMAGED' });
    fs.truncateSync(file.path, 0);
    await assert.rejects(file.unlock(PASS), { code: 'DAMAGED' });
    assert.deepEqual(Object.keys(snapshot(dir)), Object.keys(before));
    // The backup is the previous good version.
    assert.equal((await file.unlock(PASS, file.backupPath)).identities.length, 0);
  });

  it('keeps the previous version as vault.bak', async (t) => {
    const a = await generateKey('ed25519', undefined, 'a');
    const b = await generateKey('ecdsa', 256, 'b');
    const { file, vault } = await newVault(t, [a]);
    vault.add([b]);
    const current = await file.unlock(PASS);
    const backup = await file.unlock(PASS, file.backupPath);
    assert.deepEqual(
      current.identities.map((i) => i.comment),
      ['a', 'b'],
    );
    assert.deepEqual(
      backup.identities.map((i) => i.comment),
      ['a'],
    );
    assert.equal(fs.statSync(file.backupPath).mode & 0o777, 0o600);
  });
});

describe('vault permissions (like sshd StrictModes)', () => {
  const cases: [string, number, string][] = [
    ['0644', 0o644, 'readable by group and others (mode 0644)'],
    ['0640', 0o640, 'readable by group (mode 0640)'],
    ['0604', 0o604, 'readable by others (mode 0604)'],
    ['0620', 0o620, 'writable by group (mode 0620)'],
    ['0666', 0o666, 'readable by group and others, writable by group and others (mode 0666)'],
  ];
  for (const [name, mode, wording] of cases) {
    it(`refuses a vault file with mode ${name}, naming the path, mode and fix`, async (t) => {
      const { file } = await newVault(t);
      fs.chmodSync(file.path, mode);
      await assert.rejects(file.unlock(PASS), (err: VaultError) => {
        assert.equal(err.code, 'PERMISSIONS');
        assert.equal(err.message, `vault ${file.path} is ${wording}: run chmod 600 ${file.path}`);
        return true;
      });
    });
  }

  it('refuses a group/other readable or writable directory, but allows search-only bits', async (t) => {
    const { dir, file } = await newVault(t);
    fs.chmodSync(dir, 0o755);
    await assert.rejects(file.unlock(PASS), {
      code: 'PERMISSIONS',
      message: `vault directory ${dir} is readable by group and others (mode 0755): run chmod 700 ${dir}`,
    });
    fs.chmodSync(dir, 0o1777);
    await assert.rejects(file.unlock(PASS), /writable by group and others \(mode 1777\)/);
    fs.chmodSync(dir, 0o711);
    await file.unlock(PASS);
  });

  it('refuses to write through a directory that became unsafe', async (t) => {
    const key = await generateKey('ed25519', undefined, 'k');
    const { dir, vault } = await newVault(t);
    fs.chmodSync(dir, 0o770);
    const before = snapshot(dir);
    assert.throws(() => vault.add([key]), { code: 'PERMISSIONS' });
    assert.deepEqual(snapshot(dir), before);
    assert.equal(vault.identities.length, 0);
  });

  it('refuses a vault or directory owned by another user', async (t) => {
    if (!isRoot) return t.skip('needs root to chown');
    const { dir, file } = await newVault(t);
    fs.chownSync(file.path, 12345, 12345);
    await assert.rejects(file.unlock(PASS), {
      code: 'PERMISSIONS',
      message: new RegExp(
        `^vault ${file.path} is owned by uid 12345, not by you \\(uid 0\\): run chown \\S+ ${file.path}$`,
      ),
    });
    fs.chownSync(file.path, 0, 0);
    fs.chownSync(dir, 12345, 12345);
    await assert.rejects(file.unlock(PASS), {
      code: 'PERMISSIONS',
      message: /vault directory .* owned by uid 12345/,
    });
  });

  it('names the missing directory or file and how to create it', async (t) => {
    const base = tempDir(t);
    const missingDir = new VaultFile(path.join(base, 'nope', 'vault'));
    await assert.rejects(missingDir.unlock(PASS), {
      code: 'NOT_FOUND',
      message: `vault directory ${path.join(base, 'nope')} does not exist: run tsagent vault init (or pass --vault PATH)`,
    });
    const missingFile = new VaultFile(path.join(base, 'vault'));
    await assert.rejects(missingFile.unlock(PASS), {
      code: 'NOT_FOUND',
      message: /^no vault at .*tsagent vault init/,
    });
  });

  it('refuses something that is not a regular file', async (t) => {
    const base = tempDir(t);
    fs.mkdirSync(path.join(base, 'vault'), { mode: 0o700 });
    await assert.rejects(
      new VaultFile(path.join(base, 'vault')).unlock(PASS),
      /not a regular file/,
    );
  });
});

describe('failed writes leave the vault as it was', () => {
  /** Make the n-th call of one fs function fail with `code`. */
  function failing(name: keyof VaultFs, code: string, nth = 1): Partial<VaultFs> {
    let calls = 0;
    const real = (fs as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
    return {
      [name]: (...args: unknown[]) => {
        if (++calls === nth) throw errnoError(code);
        return real(...args);
      },
    } as Partial<VaultFs>;
  }

  const scenarios: [string, Partial<VaultFs>, RegExp][] = [
    [
      'a full disk writing the new vault',
      failing('writeSync', 'ENOSPC'),
      /no space left on device \(ENOSPC\)/,
    ],
    ['a full disk writing the backup', failing('writeSync', 'ENOSPC', 2), /backup .*ENOSPC/],
    ['a quota', failing('writeSync', 'EDQUOT'), /disk quota exceeded \(EDQUOT\)/],
    ['an fsync I/O error', failing('fsyncSync', 'EIO'), /input\/output error \(EIO\)/],
    ['a failed rename', failing('renameSync', 'EXDEV', 2), /cannot write the vault .*EXDEV/],
    ['a read-only file system', failing('openSync', 'EROFS', 2), /read-only file system/],
  ];
  for (const [what, override, message] of scenarios) {
    it(`on ${what}: clear message, old vault and backup untouched, temp files removed`, async (t) => {
      const a = await generateKey('ed25519', undefined, 'a');
      const b = await generateKey('ed25519', undefined, 'b');
      const { dir, file } = await newVault(t, [a]);
      const vault = await new VaultFile(file.path, { fs: override }).unlock(PASS);
      const before = snapshot(dir);
      assert.throws(
        () => vault.add([b]),
        (err: VaultError) => {
          assert.equal(err.code, 'WRITE_FAILED', err.message);
          assert.match(err.message, message);
          assert.ok(err.message.includes(`the vault ${file.path} was left unchanged`), err.message);
          return true;
        },
      );
      // The vault itself is untouched and no temp file is left. The backup is either
      // untouched or (failure after it was refreshed) a copy of the unchanged vault.
      const after = snapshot(dir);
      const bak = after['vault.bak'];
      delete after['vault.bak'];
      const bakBefore = before['vault.bak'];
      delete before['vault.bak'];
      assert.deepEqual(after, before);
      assert.ok(
        bak === bakBefore || fs.readFileSync(file.backupPath).equals(fs.readFileSync(file.path)),
        'backup is the old backup or a copy of the vault',
      );
      assert.deepEqual(
        vault.identities.map((i) => i.comment),
        ['a'],
        'the in-memory vault did not change either',
      );
      assert.deepEqual(
        (await file.unlock(PASS)).identities.map((i) => i.comment),
        ['a'],
      );
    });
  }

  it('on a really full tmpfs (root only)', async (t) => {
    if (!isRoot) return t.skip('mounting a tmpfs needs root');
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-tmpfs-'));
    const mounted = spawnSync('mount', [
      '-t',
      'tmpfs',
      '-o',
      'size=96k,mode=0700',
      'tsagent-test',
      mnt,
    ]);
    t.after(() => {
      if (mounted.status === 0) execFileSync('umount', [mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
    });
    if (mounted.status !== 0) return t.skip(`cannot mount a tmpfs here: ${mounted.stderr}`);
    const file = new VaultFile(path.join(mnt, 'vault'));
    const vault = await file.create(PASS, SMALL_KDF);
    vault.add([await generateKey('ed25519', undefined, 'a')]);
    const b = await generateKey('ed25519', undefined, 'b');
    // Fill the rest of the file system.
    const filler = fs.openSync(path.join(mnt, 'filler'), 'w', 0o600);
    try {
      const chunk = Buffer.alloc(4096);
      for (;;) fs.writeSync(filler, chunk);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      fs.closeSync(filler);
    }
    const before = snapshot(mnt);
    assert.throws(() => vault.add([b]), {
      code: 'WRITE_FAILED',
      message: /no space left on device \(ENOSPC\)/,
    });
    assert.deepEqual(snapshot(mnt), before);
    assert.equal((await file.unlock(PASS)).identities.length, 1);
    fs.unlinkSync(path.join(mnt, 'filler'));
  });
});

describe('concurrent and interrupted writers', () => {
  it('never overwrites changes another process made: it reads them, then makes its own on top', async (t) => {
    const a = await generateKey('ed25519', undefined, 'a');
    const b = await generateKey('ed25519', undefined, 'b');
    const { file } = await newVault(t);
    const first = await file.unlock(PASS);
    const second = await file.unlock(PASS);
    first.add([a]);
    first.setSection('host-order', Buffer.from('learned by the agent'));
    second.add([b]); // stale: it re-reads what first wrote, then adds
    second.update('a', { confirm: true });
    assert.equal(second.reloads, 1);
    const now = await file.unlock(PASS);
    assert.deepEqual(
      now.identities.map((i) => [i.comment, !!i.confirm]),
      [
        ['a', true],
        ['b', false],
      ],
    );
    assert.equal(now.section('host-order')?.toString(), 'learned by the agent');
    // An agent holding the key sees the change without the passphrase.
    assert.equal(file.openWithKey(first.key).identities.length, 2);
    // A vault the key no longer opens (its passphrase changed meanwhile) is refused, not overwritten.
    await now.changePassphrase(Buffer.from('another passphrase'));
    const before = fs.readFileSync(file.path);
    assert.throws(() => first.rename('a', 'c'), {
      code: 'CHANGED',
      message: /changed by another process/,
    });
    assert.ok(fs.readFileSync(file.path).equals(before));
  });

  it('removes temp files left by a killed writer, and only those', async (t) => {
    const { dir, vault } = await newVault(t);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const stale = path.join(dir, `.vault.tmp-${dead}-0123456789ab`);
    const live = path.join(dir, `.vault.tmp-${process.ppid}-0123456789ab`);
    fs.writeFileSync(stale, 'x', { mode: 0o600 });
    fs.writeFileSync(live, 'x', { mode: 0o600 });
    vault.add([await generateKey('ed25519', undefined, 'a')]);
    assert.ok(!fs.existsSync(stale));
    assert.ok(fs.existsSync(live));
  });
});

describe('identity operations', () => {
  it('adds (skipping duplicates), finds, renames, updates, touches and removes', async (t) => {
    const a = await generateKey('ed25519', undefined, 'same');
    const b = await generateKey('ecdsa', 256, 'same');
    const c = await generateKey('ed25519', undefined, 'other');
    const { file, vault } = await newVault(t);
    const first = vault.add([a, b]);
    assert.equal(first.added.length, 2);
    const again = vault.add([{ ...a, comment: 'dup' }, c]);
    assert.deepEqual(
      again.skipped.map((s) => s.existing.comment),
      ['same'],
    );
    assert.equal(again.added.length, 1);

    const fpA = fingerprint(a.publicBlob);
    assert.throws(() => vault.find('same'), { code: 'INVALID', message: /matches 2 keys/ });
    assert.equal(vault.find(fpA).publicBlob, vault.identities[0].publicBlob);
    assert.equal(vault.find(fpA.slice(0, 14)).comment, 'same');
    assert.equal(vault.find(fpA.slice(7, 15)).comment, 'same');
    assert.equal(vault.find('other').comment, 'other');
    assert.throws(() => vault.find('missing'), {
      code: 'NOT_FOUND',
      message: /no key named "missing"/,
    });
    assert.throws(() => findIdentity(vault.identities, 'SHA2'), { code: 'NOT_FOUND' });

    assert.throws(() => vault.rename(fpA, 'other'), {
      code: 'INVALID',
      message: /already named "other"/,
    });
    assert.throws(() => vault.rename(fpA, ' '), { code: 'INVALID' });
    vault.rename(fpA, 'first');
    vault.update('first', { confirm: true, lifetime: 600 });
    vault.touch(a.publicBlob, 1234);
    let id = (await file.unlock(PASS)).find('first');
    assert.deepEqual([id.confirm, id.lifetime, id.lastUsed], [true, 600, 1234]);
    vault.update('first', { confirm: false, lifetime: null });
    id = (await file.unlock(PASS)).find('first');
    assert.deepEqual([id.confirm, id.lifetime], [undefined, undefined]);
    assert.throws(() => vault.update('first', { lifetime: 0 }), { code: 'INVALID' });

    const removed = vault.remove('other');
    assert.equal(removed.comment, 'other');
    assert.deepEqual(
      (await file.unlock(PASS)).identities.map((i) => i.comment),
      ['first', 'same'],
    );
  });

  it('changes the passphrase and KDF cost; the backup opens with the new passphrase only', async (t) => {
    const { file, vault } = await newVault(t, [await generateKey('ed25519', undefined, 'k')]);
    const oldKey = (await file.unlock(PASS)).key;
    vault.touch(vault.identities[0].publicBlob, 1); // a backup under the old passphrase exists
    assert.equal((await file.unlock(PASS, file.backupPath)).identities.length, 1);
    const stronger = { ...SMALL_KDF, memoryKiB: 2048, time: 2 };
    await vault.changePassphrase(Buffer.from('new pass'), stronger);
    await assert.rejects(file.unlock(PASS), { code: 'WRONG_PASSPHRASE' });
    const reopened = await file.unlock(Buffer.from('new pass'));
    assert.deepEqual(reopened.kdf, stronger);
    assert.equal(reopened.identities.length, 1);
    // The old passphrase opens nothing any more, not even the backup.
    await assert.rejects(file.unlock(PASS, file.backupPath), { code: 'WRONG_PASSPHRASE' });
    const backup = await file.unlock(Buffer.from('new pass'), file.backupPath);
    assert.equal(backup.identities.length, 1);
    assert.deepEqual(backup.kdf, stronger);
    // A key derived from the old passphrase (an agent unlocked earlier) no longer opens it.
    assert.throws(() => file.openWithKey(oldKey), { code: 'WRONG_PASSPHRASE' });
  });

  it('after remove, the backup no longer holds the removed key', async (t) => {
    const { file, vault } = await newVault(t, [
      await generateKey('ed25519', undefined, 'keep'),
      await generateKey('ed25519', undefined, 'gone'),
    ]);
    vault.update('keep', { confirm: true }); // the backup holds both keys
    assert.equal((await file.unlock(PASS, file.backupPath)).identities.length, 2);
    vault.remove('gone');
    const backup = await file.unlock(PASS, file.backupPath);
    assert.deepEqual(
      backup.identities.map((i) => i.comment),
      ['keep'],
    );
    // Later writes keep the previous version again, still without the key.
    vault.update('keep', { confirm: false });
    assert.deepEqual(
      (await file.unlock(PASS, file.backupPath)).identities.map((i) => i.comment),
      ['keep'],
    );
  });

  it('reload() and remove() overwrite the decrypted private fields they drop', async (t) => {
    const { file } = await newVault(t, [
      await generateKey('ed25519', undefined, 'a'),
      await generateKey('ed25519', undefined, 'b'),
    ]);
    const vault = await file.unlock(PASS);
    const before = vault.identities.map((i) => i.privateFields);
    // Another process changes the vault; reloading replaces every decrypted copy.
    (await file.unlock(PASS)).update('a', { confirm: true });
    vault.reload();
    assert.ok(
      before.every((f) => f.every((b) => b === 0)),
      'reload left old secrets',
    );
    assert.ok(vault.identities.every((i) => i.privateFields.some((b) => b !== 0)));
    const kept = vault.find('b').privateFields;
    const gone = vault.remove('a');
    assert.equal(gone.comment, 'a');
    assert.ok(
      gone.privateFields.every((b) => b === 0),
      'remove left the secret',
    );
    assert.ok(
      kept.some((b) => b !== 0),
      'remove wiped a key it kept',
    );
  });

  it('isCurrent() reads through the injected file system', async (t) => {
    const { file: plain } = await newVault(t, [await generateKey('ed25519', undefined, 'k')]);
    let reads = 0;
    const file = new VaultFile(plain.path, {
      fs: {
        openSync: ((p: fs.PathLike, flags: number, mode?: number) => {
          if (String(p) === plain.path) reads++;
          return fs.openSync(p, flags, mode);
        }) as typeof fs.openSync,
      },
    });
    const vault = await file.unlock(PASS);
    reads = 0;
    assert.equal(vault.isCurrent(), true);
    assert.equal(reads, 1, 'isCurrent bypassed the injected fs');
    // A read error seen only through the injected fs means "not current".
    const broken = new VaultFile(plain.path, {
      fs: {
        openSync: () => {
          throw errnoError('EIO');
        },
      },
    });
    const elsewhere = await file.unlock(PASS);
    const onBroken = new UnlockedVault(broken, [], elsewhere.key, Buffer.alloc(0));
    assert.equal(onBroken.isCurrent(), false);
  });

  it('lock() overwrites the decrypted private fields', async (t) => {
    const { file } = await newVault(t, [await generateKey('ed25519', undefined, 'k')]);
    const vault = await file.unlock(PASS);
    const fields = vault.identities[0].privateFields;
    vault.lock();
    assert.ok(fields.every((b) => b === 0));
    assert.ok(vault.key.encKey.every((b) => b === 0));
    assert.equal(vault.identities.length, 0);
  });
});
