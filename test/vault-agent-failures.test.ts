// Acceptance (vault issue): a wrong passphrase, a tampered or truncated file,
// wrong permissions, a missing directory and a full disk each give a clear
// message, from the CLI and in the agent's debug log (where `ssh-add -X` fails),
// and leave the vault's bytes exactly as they were.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { keyType, makeKey } from './fixtures/keys';
import { SSH_ADD, SSH_KEYGEN, skipUnless } from './fixtures/run';
import {
  LOCK_PASS,
  NO_IDENTITIES,
  VAULT_PASS,
  VaultAgent,
  VaultWorld,
  poll,
  sha256,
} from './fixtures/vault-agent';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

/** A path as a literal inside a RegExp. */
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** sha256 of the vault and its backup (absent files as null). */
function fingerprints(vault: string): (string | null)[] {
  return [vault, `${vault}.bak`].map((f) => (fs.existsSync(f) ? sha256(f) : null));
}

/** The store's temp files left in a directory. */
const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.includes('.tmp-'));

describe(
  'vault failures: clear messages from the CLI and the agent, the vault left as it was',
  { skip },
  () => {
    let world: VaultWorld;
    let agent: VaultAgent;
    let vaultDir: string;
    let pristine: Buffer;
    let keyFile: string;

    before(async () => {
      world = new VaultWorld({ explicitVault: true });
      vaultDir = path.join(world.root, 'vaults');
      world.vaultPath = path.join(vaultDir, 'vault');
      await world.init();
      await world.vault(['generate', '-t', 'ed25519', '-C', 'victim']);
      pristine = fs.readFileSync(world.vaultPath);
      keyFile = (await makeKey(world.work, keyType('ecdsa256'), { name: 'to-import' })).priv;
      agent = await world.startAgent();
    });
    after(async () => {
      await agent?.stop();
      await world?.cleanup();
    });

    /** Run `fn`; the vault and vault.bak must have the same bytes afterwards. */
    const unchanged = async (fn: () => Promise<void>) => {
      const before = fingerprints(world.vaultPath);
      await fn();
      assert.deepEqual(fingerprints(world.vaultPath), before, 'the vault (or its backup) changed');
      assert.deepEqual(temps(path.dirname(world.vaultPath)), []);
    };

    /** `tsagent vault ARGS` must fail (exit 1) with a message matching `why`. */
    const cliFails = async (args: string[], why: RegExp, lines = [VAULT_PASS]) => {
      const r = await world.tsagent(['vault', ...args], { lines });
      assert.equal(r.code, 1, `vault ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why, `vault ${args.join(' ')}`);
      return r;
    };

    /** ssh-add -X must fail as with OpenSSH, and the agent's debug log must say `why`. */
    const agentRefuses = async (why: RegExp, pass = VAULT_PASS) => {
      const from = agent.log().length;
      const r = await world.sshAdd(agent, ['-X'], pass);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^Failed to unlock agent/);
      await poll(
        'the reason in the debug log',
        async () => agent.log().slice(from),
        (l) => why.test(l),
        5000,
      );
      const l = await world.sshAdd(agent, ['-l']);
      assert.equal(l.stdout, NO_IDENTITIES);
    };

    /** `tsagent unlock` with the vault passphrase must fail with a message matching `why`. */
    const unlockFails = async (why: RegExp, pass = VAULT_PASS) => {
      const r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: [pass],
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, why);
    };

    /**
     * Once the cause is gone, the vault opens again with its passphrase; then lock
     * again (which also resets the agent's growing delay after wrong passphrases).
     */
    const opensAgain = async () => {
      assert.deepEqual(fs.readFileSync(world.vaultPath), pristine);
      const r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, `${r.stderr}\n${agent.log().slice(-1000)}`);
      assert.match((await world.sshAdd(agent, ['-l'])).stdout, / victim \(ED25519\)\n$/);
      const l = await world.lock(agent);
      assert.equal(l.code, 0, l.stderr);
    };

    afterEach(opensAgain);

    it('a wrong passphrase', async () => {
      await unchanged(async () => {
        const wrong = new RegExp(`wrong passphrase for vault ${re(world.vaultPath)}`);
        await cliFails(['list'], wrong, ['not the passphrase']);
        await cliFails(['import', keyFile], wrong, ['not the passphrase']);
        await cliFails(['generate', '-t', 'ed25519'], wrong, ['not the passphrase']);
        await unlockFails(
          new RegExp(`^tsagent unlock: wrong passphrase for vault ${re(world.vaultPath)}\\n$`),
          'not the passphrase',
        );
        await agentRefuses(/the passphrase given does not open it/, 'not the passphrase');
      });
    });

    const damaged = async (bytes: Buffer, why: RegExp) => {
      fs.writeFileSync(world.vaultPath, bytes);
      await unchanged(async () => {
        const r = await world.tsagent(['vault', 'verify'], { lines: [VAULT_PASS] });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, why);
        // The message tells where a good copy may be.
        assert.match(r.stderr, /tsagent vault verify --vault .*vault\.bak/);
        await cliFails(['list'], why);
        await cliFails(['import', keyFile], why);
        await unlockFails(new RegExp(`^tsagent unlock: cannot open the vault: .*${why.source}`));
        await agentRefuses(why);
      });
      fs.writeFileSync(world.vaultPath, pristine);
    };

    it('a tampered file (one byte changed in the payload, then in the header)', async () => {
      const payload = Buffer.from(pristine);
      payload[payload.length - 20] ^= 0x01;
      await damaged(payload, /damaged or was tampered with/);
      const header = Buffer.from(pristine);
      header[12] ^= 0x40;
      await damaged(header, /damaged or was tampered with/);
    });

    it('a truncated file', async () => {
      await damaged(pristine.subarray(0, Math.floor(pristine.length / 2)), /truncated/);
      await damaged(pristine.subarray(0, 40), /truncated/);
    });

    it('a vault readable by others (chmod 644)', async () => {
      fs.chmodSync(world.vaultPath, 0o644);
      try {
        await unchanged(async () => {
          const why = new RegExp(
            `vault ${re(world.vaultPath)} is readable by group and others \\(mode 0644\\): run chmod 600 ${re(world.vaultPath)}`,
          );
          await cliFails(['list'], why);
          await cliFails(['import', keyFile], why);
          await unlockFails(why);
          await agentRefuses(why);
        });
        assert.equal(fs.statSync(world.vaultPath).mode & 0o777, 0o644, 'nothing "fixed" the mode');
      } finally {
        fs.chmodSync(world.vaultPath, 0o600);
      }
    });

    it('a vault directory readable by others (chmod 755)', async () => {
      fs.chmodSync(vaultDir, 0o755);
      try {
        await unchanged(async () => {
          const why = new RegExp(
            `vault directory ${re(vaultDir)} is readable by group and others \\(mode 0755\\): run chmod 700 ${re(vaultDir)}`,
          );
          await cliFails(['list'], why);
          await cliFails(['generate', '-t', 'ed25519'], why);
          await unlockFails(why);
          await agentRefuses(why);
        });
      } finally {
        fs.chmodSync(vaultDir, 0o700);
      }
    });

    it('the vault directory gone while the agent runs', async () => {
      const moved = `${vaultDir}.moved`;
      fs.renameSync(vaultDir, moved);
      try {
        const why = new RegExp(
          `vault directory ${re(vaultDir)} does not exist: run tsagent vault init`,
        );
        await cliFails(['list'], why);
        await cliFails(['import', keyFile], why);
        assert.equal(fs.existsSync(vaultDir), false, 'nothing was created');
        // With no vault to open, the lock password opens the lock (memory keys
        // only), and unlock says the vault is missing; lock again.
        const u = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
          sock: agent.sock,
          lines: [LOCK_PASS],
        });
        assert.equal(u.code, 0, u.stderr);
        assert.match(u.stderr, new RegExp(`there is no vault at ${re(world.vaultPath)}`));
        assert.equal((await world.lock(agent)).code, 0);
        await agentRefuses(new RegExp(`vault ${re(world.vaultPath)}: not there`));
      } finally {
        fs.renameSync(moved, vaultDir);
      }
    });

    it('a missing directory: the CLI says so; an agent started without a vault says so in its log', async () => {
      const nowhere = path.join(world.root, 'nowhere', 'tsagent', 'vault');
      const r = await world.tsagent(['vault', '--vault', nowhere, '--passphrase-fd', '3', 'list'], {
        lines: [VAULT_PASS],
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `vault directory ${re(path.dirname(nowhere))} does not exist: run tsagent vault init`,
        ),
      );
      assert.equal(fs.existsSync(path.join(world.root, 'nowhere')), false);

      const lone = await world.startAgent({ args: ['--vault', nowhere], vault: false });
      try {
        const st = await world.status(lone);
        assert.deepEqual(st.vault, { path: nowhere, present: false });
        assert.equal(st.locked, false);
        assert.match(lone.log(), new RegExp(`no vault at ${re(nowhere)}: starting unlocked`));
        const x = await world.sshAdd(lone, ['-X'], VAULT_PASS);
        assert.equal(x.code, 1);
        assert.match(x.stderr, /^Failed to unlock agent/);
        const u = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
          sock: lone.sock,
          lines: [VAULT_PASS],
        });
        assert.match(u.stderr, new RegExp(`there is no vault at ${re(nowhere)}`));
        assert.equal(fs.existsSync(path.join(world.root, 'nowhere')), false);
      } finally {
        await lone.stop();
      }
    });
  },
);

describe('vault on a full disk (a 64 KiB tmpfs)', { skip }, () => {
  let world: VaultWorld;
  let mnt: string;
  let mounted = false;
  let skipReason: string | undefined;

  before(async () => {
    world = new VaultWorld({ explicitVault: true });
    mnt = path.join(world.root, 'tmpfs');
    fs.mkdirSync(mnt);
    if (process.getuid?.() !== 0) {
      skipReason = 'mounting a tmpfs needs root';
      return;
    }
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    if (m.status !== 0) {
      skipReason = `cannot mount a tmpfs here: ${m.stderr.trim()}`;
      if (process.env.CI) throw new Error(skipReason);
      return;
    }
    mounted = true;
    world.vaultPath = path.join(mnt, 'tsagent', 'vault');
  });
  after(async () => {
    // The test stops its agent; unmount before removing the rest.
    if (mounted) spawnSync('umount', [mnt]);
    await world?.cleanup();
  });

  it('writes fail with "no space left on device", the vault stays as it was; the agent still serves it', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await world.init();
    const gen = await world.vault(['generate', '-t', 'ed25519', '-C', 'on-tmpfs']);
    const pub = path.join(world.work, 'on-tmpfs.pub');
    fs.writeFileSync(pub, gen.stdout);
    const keyFile = (await makeKey(world.work, keyType('ed25519'), { name: 'no-room' })).priv;

    // Fill the file system to the last byte.
    const fd = fs.openSync(path.join(mnt, 'filler'), 'w');
    const chunk = Buffer.alloc(4096, 0x55);
    try {
      for (;;) fs.writeSync(fd, chunk);
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    try {
      for (;;) fs.writeSync(fd, chunk, 0, 1);
    } catch {
      // full
    } finally {
      fs.closeSync(fd);
    }

    const dir = path.dirname(world.vaultPath);
    const before = fingerprints(world.vaultPath);
    const full = /no space left on device \(ENOSPC\); the vault .* was left unchanged/;
    for (const args of [
      ['generate', '-t', 'ed25519', '-C', 'too-much'],
      ['import', keyFile],
      ['rename', 'on-tmpfs', 'renamed'],
      ['set', 'on-tmpfs', '--confirm'],
    ]) {
      const r = await world.tsagent(['vault', ...args], { lines: [VAULT_PASS] });
      assert.equal(r.code, 1, `vault ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, full, `vault ${args.join(' ')}`);
      assert.deepEqual(fingerprints(world.vaultPath), before, `vault ${args.join(' ')}`);
      assert.deepEqual(temps(dir), [], `vault ${args.join(' ')} left a temp file`);
    }
    const v = await world.tsagent(['vault', 'verify'], { lines: [VAULT_PASS] });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /OK, 1 key/);

    // The agent opens it (reading needs no room), signs, and says why it cannot record the use.
    const agent = await world.startAgent();
    try {
      const x = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(x.code, 0, x.stderr);
      const s = await world.sign(agent, pub, 'on a full disk\n');
      assert.equal(s.code, 0, s.stderr);
      await poll(
        'the failed write in the debug log',
        async () => agent.log(),
        (l) => /could not record key use in the vault: .*ENOSPC/.test(l),
        5000,
      );
      assert.deepEqual(fingerprints(world.vaultPath), before);
      assert.deepEqual(temps(dir), []);
    } finally {
      await agent.stop();
    }
  });
});
